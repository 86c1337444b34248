"""vcp's pure parts: where the config lives, how it is written, how kubeconfigs merge."""

import stat
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from vcp import config, credentials, kubeconfig
from vcp.api import exit_code_for
from vcp.errors import AUTH, NOT_FOUND, OTHER, QUOTA, USAGE, VcpError


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_it_finds_the_config_by_vcp_config_then_xdg_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert config.config_path({"VCP_CONFIG": "/x/c.yaml", "XDG_CONFIG_HOME": "/xdg"}) == Path("/x/c.yaml")
    assert config.config_path({"XDG_CONFIG_HOME": "/xdg"}) == Path("/xdg/vcp/config.yaml")
    assert config.config_path({}) == tmp_path / ".config" / "vcp" / "config.yaml"


def test_it_writes_the_config_0600_in_a_0700_directory_and_reads_it_back(tmp_path):
    path = tmp_path / "vcp" / "config.yaml"
    config.save(path, config.Config(url="http://portal", token="secret"))
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    assert config.load(path) == config.Config(url="http://portal", token="secret")
    assert [p.name for p in path.parent.iterdir()] == ["config.yaml"]  # no temporary file left


def test_it_makes_an_existing_directory_private_too(tmp_path):
    (tmp_path / "vcp").mkdir(mode=0o755)
    config.save(tmp_path / "vcp" / "config.yaml", config.Config(url="http://portal", token="secret"))
    assert mode(tmp_path / "vcp") == 0o700


def test_it_says_how_to_log_in_when_there_is_no_config(tmp_path):
    with pytest.raises(VcpError, match="vcp login") as error:
        config.load(tmp_path / "missing.yaml")
    assert error.value.exit_code == AUTH


@pytest.mark.parametrize("text", ["[1, 2]", "url: http://portal\n", "{: bad"])
def test_it_refuses_a_config_that_is_not_one(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(VcpError, match=str(path)):
        config.load(path)


def test_logout_removes_the_config_once(tmp_path):
    path = tmp_path / "config.yaml"
    config.save(path, config.Config(url="http://portal", token="secret"))
    assert config.remove(path) is True and not path.exists()
    assert config.remove(path) is False


PORTAL_KUBECONFIG = {
    "apiVersion": "v1", "kind": "Config",
    "clusters": [{"name": "alpha-web", "cluster": {"server": "https://127.0.0.1:7443", "certificate-authority-data": "Q0E="}}],
    "users": [{"name": "admin", "user": {"client-certificate-data": "Q0VSVA==", "client-key-data": "S0VZ"}}],
    "contexts": [{"name": "admin@alpha-web", "context": {"cluster": "alpha-web", "user": "admin", "namespace": "default"}}],
    "current-context": "admin@alpha-web",
}
OTHER_KUBECONFIG = {
    "apiVersion": "v1", "kind": "Config", "preferences": {"colors": True},
    "clusters": [{"name": "prod", "cluster": {"server": "https://prod.example:6443"}}],
    "users": [{"name": "me", "user": {"token": "t"}}],
    "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "me"}}],
    "current-context": "prod",
}


def test_it_names_contexts_so_two_vclusters_never_share_one():
    assert kubeconfig.context_name("data", "science-prod") != kubeconfig.context_name("data-science", "prod")


def test_it_renames_the_portal_kubeconfig_to_one_name_and_keeps_its_credentials():
    result = kubeconfig.renamed(PORTAL_KUBECONFIG, "vcp_alpha_web")
    assert [c["name"] for c in result["clusters"]] == [u["name"] for u in result["users"]] == ["vcp_alpha_web"]
    assert result["contexts"] == [{"name": "vcp_alpha_web", "context": {"cluster": "vcp_alpha_web",
                                                                        "user": "vcp_alpha_web", "namespace": "default"}}]
    assert result["clusters"][0]["cluster"] == PORTAL_KUBECONFIG["clusters"][0]["cluster"]
    assert result["users"][0]["user"] == PORTAL_KUBECONFIG["users"][0]["user"]
    assert result["current-context"] == "vcp_alpha_web"


def test_it_merges_without_clobbering_other_contexts_and_switches():
    addition = kubeconfig.renamed(PORTAL_KUBECONFIG, "vcp_alpha_web")
    result = kubeconfig.merged(OTHER_KUBECONFIG, addition)
    assert [c["name"] for c in result["contexts"]] == ["prod", "vcp_alpha_web"]
    assert [c["name"] for c in result["clusters"]] == ["prod", "vcp_alpha_web"]
    assert result["users"][0] == OTHER_KUBECONFIG["users"][0]
    assert result["preferences"] == {"colors": True} and result["current-context"] == "vcp_alpha_web"
    assert OTHER_KUBECONFIG["current-context"] == "prod"  # the input is not changed


def test_it_replaces_its_own_entries_when_connecting_again():
    first = kubeconfig.merged(OTHER_KUBECONFIG, kubeconfig.renamed(PORTAL_KUBECONFIG, "vcp_alpha_web"))
    moved = {**PORTAL_KUBECONFIG, "clusters": [{"name": "alpha-web", "cluster": {"server": "https://127.0.0.1:9999"}}]}
    again = kubeconfig.merged(first, kubeconfig.renamed(moved, "vcp_alpha_web"))
    assert [c["name"] for c in again["clusters"]] == ["prod", "vcp_alpha_web"]
    assert again["clusters"][1]["cluster"]["server"] == "https://127.0.0.1:9999"


def test_it_starts_a_kubeconfig_when_there_is_none(tmp_path):
    path = tmp_path / "kube" / "config"
    assert kubeconfig.read(path) is None
    kubeconfig.write(path, kubeconfig.merged(None, kubeconfig.renamed(PORTAL_KUBECONFIG, "vcp_alpha_web")))
    assert mode(path) == 0o600
    written = yaml.safe_load(path.read_text())
    assert written["kind"] == "Config" and written["current-context"] == "vcp_alpha_web"


def test_it_uses_the_first_kubeconfig_kubectl_reads(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert kubeconfig.default_path({"KUBECONFIG": "/a/one:/b/two"}) == Path("/a/one")
    assert kubeconfig.default_path({}) == tmp_path / ".kube" / "config"


@pytest.mark.parametrize("status, code, exit_code", [
    (400, "invalid", USAGE), (400, "quota_exceeded", QUOTA), (401, "not_authenticated", AUTH),
    (403, "permission_denied", AUTH), (404, "not_found", NOT_FOUND), (409, "not_ready", OTHER),
    (429, "throttled", OTHER), (500, "error", OTHER),
])
def test_it_maps_api_errors_to_documented_exit_codes(status, code, exit_code):
    assert exit_code_for(status, code) == exit_code


def test_an_exec_kubeconfig_runs_vcp_token_instead_of_holding_a_token():
    portal = {
        "clusters": [{"name": "c", "cluster": {"server": "https://portal/kube/vclusters/3"}}],
        "users": [{"name": "u", "user": {"token": "vck_secret"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    }
    renamed = kubeconfig.renamed(portal, "vcp_alpha_web")
    with_exec = kubeconfig.with_exec_credential(renamed, "alpha", "web")
    assert with_exec["users"] == [{"name": "vcp_alpha_web", "user": {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1", "command": "vcp", "args": ["token", "web", "--team", "alpha"],
        "interactiveMode": "Never", "provideClusterInfo": False}}}]
    assert "vck_secret" not in yaml.safe_dump(with_exec)
    assert with_exec["clusters"] == renamed["clusters"]


def credential(expires: datetime) -> dict:
    return {"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
            "status": {"token": "vck_t", "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}}


def test_exec_credentials_are_kept_privately_until_shortly_before_they_expire(tmp_path):
    cache = credentials.Cache(tmp_path / "credentials", "https://portal")
    assert cache.get("alpha", "web") is None
    fresh = credential(datetime.now(UTC) + timedelta(hours=1))
    cache.put("alpha", "web", fresh)
    assert cache.get("alpha", "web") == fresh
    assert cache.get("beta", "web") is None
    assert credentials.Cache(tmp_path / "credentials", "https://elsewhere").get("alpha", "web") is None
    (path,) = (tmp_path / "credentials").iterdir()
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    cache.put("alpha", "web", credential(datetime.now(UTC) + timedelta(minutes=2)))
    assert cache.get("alpha", "web") is None
    path.write_text("not json")
    assert cache.get("alpha", "web") is None


@given(content=st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(str.encode),
    st.fixed_dictionaries({"url": st.one_of(st.text(max_size=40), st.integers(), st.none(),
                                            st.sampled_from(["http://portal", "https://[::1", "ftp://x", "http://"])),
                           "token": st.one_of(st.text(max_size=40), st.integers(), st.none(), st.just("ok-token"))})
    .map(lambda d: yaml.safe_dump(d).encode()),
    # Past Python's recursion limit, not far past it: PyYAML takes ~0.8 s on 20,000 (the
    # CLI test below tries 10,000), and the deep examples were most of this test's minute.
    st.integers(1, 1_500).map(lambda depth: b"[" * depth),
))
@settings(max_examples=300, derandomize=True, deadline=None, database=None)
def test_any_config_file_is_loaded_or_refused_with_its_path(content):
    """A config edited by hand, truncated or binary: a Config vcp can use, or a VcpError
    naming the file, never another exception (which the CLI would show as a traceback)."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "config.yaml"
        path.write_bytes(content)
        try:
            loaded = config.load(path)
        except VcpError as error:
            assert str(path) in str(error)
            return
        assert loaded.url.startswith(("http://", "https://")) and config.TOKEN.fullmatch(loaded.token)


@pytest.mark.parametrize("content, words", [
    (b"\xff\xfe\x00garbage", "Cannot read"),
    (b"[" * 10_000, "nested too deeply"),
    (b"url: ftp://portal\ntoken: abc\n", "no http:// or https:// URL"),
    (b"url: http://portal\ntoken: \"two words\"\n", "no usable token"),
    ("url: http://portal\ntoken: t\u00f6ken\n".encode(), "no usable token"),
])
def test_the_cli_says_what_is_wrong_with_its_config_and_shows_no_traceback(vcp, content, words):
    vcp.config.parent.mkdir(parents=True, exist_ok=True)
    vcp.config.write_bytes(content)
    result = vcp("whoami", code=OTHER)
    assert words in result.stderr and str(vcp.config) in result.stderr
    assert "Traceback" not in result.stderr
