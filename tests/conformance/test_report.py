"""The conformance report (scripts/conformance.py) read from ginkgo's JSON reports: by
SIG, and for each test that passes on the host but not in the vcluster, whether the
tenant policy refused it on purpose (the syncer's HostRefused event or its pod webhook's
answer) or it is a gap."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import conformance  # noqa: E402

DEPLOYMENT = "[sig-apps] Deployment should run the lifecycle of a Deployment [Conformance]"
HOST_PORT = "[sig-network] HostPort validates that there is no conflict between pods [Conformance]"
DNS = "[sig-network] DNS should provide DNS for the cluster [Conformance]"
JOB = "[sig-apps] Job should allow to use a pod failure policy to ignore failure [Conformance]"
SECRETS = "[sig-storage] Secrets should be consumable from pods in volume [NodeConformance] [Conformance]"


def ginkgo_report(path: Path, specs: dict[str, tuple[str, str, str]]) -> Path:
    """A report as ginkgo --json-report writes it: name -> (state, failure message, captured output)."""
    reports = []
    for name, (state, message, output) in specs.items():
        sig, container, leaf = name.split(" ", 2)
        reports.append({"ContainerHierarchyTexts": [sig, container], "LeafNodeType": "It", "LeafNodeText": leaf,
                        "State": state, "RunTime": 2_500_000_000, "Failure": {"Message": message} if message else {},
                        "CapturedGinkgoWriterOutput": output, "NumAttempts": 1})
    reports.append({"ContainerHierarchyTexts": None, "LeafNodeType": "SynchronizedBeforeSuite", "LeafNodeText": "",
                    "State": "passed", "RunTime": 1, "NumAttempts": 1})
    reports.append({"ContainerHierarchyTexts": ["[sig-storage] CSI"], "LeafNodeType": "It", "LeafNodeText": "mounts",
                    "State": "skipped", "RunTime": 0, "NumAttempts": 0})  # left out by the focus
    path.write_text(json.dumps([{"SuitePath": "/e2e", "SpecReports": reports}]))
    return path


def test_outcomes_name_each_test_with_its_state_time_and_failure(tmp_path):
    report = ginkgo_report(tmp_path / "r.json", {DEPLOYMENT: ("failed", "timed out waiting\nfor the pod", "log")})
    assert conformance.outcomes(report) == {
        "[sig-apps] Deployment should run the lifecycle of a Deployment [Conformance]": {
            "state": "failed", "seconds": 2.5, "message": "timed out waiting\nfor the pod", "output": "log"}}


def test_a_vcluster_failure_is_explained_by_the_host_a_refusal_or_named_a_gap(tmp_path):
    host = conformance.outcomes(ginkgo_report(tmp_path / "host.json", {
        DEPLOYMENT: ("passed", "", ""), HOST_PORT: ("passed", "", ""), DNS: ("failed", "no answer", ""),
        SECRETS: ("passed", "", ""), JOB: ("passed", "", "")}))
    refused = ("I1206 event for pod-1: {vcluster-syncer } Warning HostRefused: the host cluster refused the Pod: "
               "hostPort 54323 is not allowed on this host cluster\nmore output")
    webhook = ('E1207 FailedCreate: Error creating: admission webhook "tenant-policy.pods.vcportal.io" denied the '
               "request: this host cluster's tenant policy refuses the Pod: volume 'data': hostPath volumes are not "
               "allowed\nmore output")
    vcluster = conformance.outcomes(ginkgo_report(tmp_path / "vc.json", {
        DEPLOYMENT: ("failed", "Deployment never became available\nstack", ""),
        HOST_PORT: ("failed", "timed out", refused),
        DNS: ("failed", "no answer", ""), SECRETS: ("skipped", "", ""), JOB: ("failed", "timed out", webhook)}))

    text = conformance.write_report({"host": host, "vcluster": vcluster}, tmp_path, {"host": 3, "vcluster": 4})

    assert "| apps | 2 / 0 / 0 | 0 / 2 / 0 |" in text
    assert "| network | 1 / 1 / 0 | 0 / 2 / 0 |" in text
    assert "| storage | 1 / 0 / 0 | 0 / 0 / 1 |" in text
    assert "host 4 of 5 passed; vcluster 0 of 5 passed" in text
    assert f"- {DEPLOYMENT}: gap: Deployment never became available" in text
    assert f"- {HOST_PORT}: refused on purpose: the Pod (hostPort 54323 is not allowed on this host cluster)" in text
    assert f"- {JOB}: refused on purpose: the Pod (volume 'data': hostPath volumes are not allowed)" in text
    assert f"- {DNS}: fails on the host too" in text
    assert SECRETS not in text.split("## Not passing")[1]
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["vcluster"][HOST_PORT]["state"] == "failed" and "output" not in saved["vcluster"][HOST_PORT]


def test_the_stacks_logs_are_kept_beside_the_report(tmp_path):
    from types import SimpleNamespace

    var = tmp_path / "vcportal-load-x"
    (var / "vclusters" / "7").mkdir(parents=True)
    (var / "vclusters" / "7" / "syncer.log").write_text("synced")
    (var / "vclusters" / "7" / "state.db").write_text("not a log")
    (tmp_path / "vcportal-load-x.log").write_text("up")
    out = tmp_path / "out"

    conformance.keep_logs(SimpleNamespace(var=var, log=tmp_path / "vcportal-load-x.log"), out)

    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        "stack/vclusters/7/syncer.log", "stack/vcportal-load-x.log"]
