"""The vcp commands. Each one is a few REST calls; see `vcp --help`.

A vcluster is named by NAME, unique within its team. Without --team, vcp looks the
name up among every vcluster you can see and asks for --team only when several teams
have one of that name; `create` needs --team only when you may create in several teams.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console

from . import config, credentials, kubeconfig, progress
from .api import Api
from .errors import AUTH, NOT_FOUND, OTHER, QUOTA, USAGE, VcpError

EXIT_CODES = f"""Exit codes: 0 success; {OTHER} any other error (API, network, a vcluster that
failed); {USAGE} bad usage or input (also when the API refuses input as invalid); {AUTH} not
logged in, token refused, or not allowed; {NOT_FOUND} not found; {QUOTA} refused by the team's quota."""

app = typer.Typer(
    help=f"vcp: create, connect to and delete vclusters on a vcportal.\n\n{EXIT_CODES}",
    no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
)
create_app = typer.Typer(help="Create a vcluster.", no_args_is_help=True)
list_app = typer.Typer(help="List vclusters.", no_args_is_help=True)
get_app = typer.Typer(help="Show one vcluster.", no_args_is_help=True)
delete_app = typer.Typer(help="Delete a vcluster.", no_args_is_help=True)
retry_app = typer.Typer(help="Retry a Failed or DeleteFailed vcluster.", no_args_is_help=True)
quota_app = typer.Typer(help="A team's quota (setting it is for platform admins).", no_args_is_help=True)
for sub_app, name in [(create_app, "create"), (list_app, "list"), (get_app, "get"), (delete_app, "delete"),
                      (retry_app, "retry"), (quota_app, "quota")]:
    app.add_typer(sub_app, name=name)

# Plain text: names and the API's messages are printed as they are, never as markup.
out = Console(highlight=False, soft_wrap=True, markup=False, emoji=False)


class Output(str, Enum):
    table = "table"
    json = "json"
    yaml = "yaml"


TeamOption = Annotated[str | None, typer.Option("--team", "-t", help="The team's slug.")]
OutputOption = Annotated[Output, typer.Option("--output", "-o", help="Output format.")]
NameArgument = Annotated[str, typer.Argument(metavar="NAME", help="The vcluster's name.")]


def main() -> None:
    try:
        app(prog_name="vcp")
    except VcpError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)


def connected() -> tuple[Api, config.Config]:
    settings = config.load(config.config_path())
    return Api(settings), settings


# Login ------------------------------------------------------------------------

@app.command()
def login(
    url: Annotated[str, typer.Argument(help="The portal, e.g. http://127.0.0.1:8000")],
    token_stdin: Annotated[bool, typer.Option("--token-stdin", help="Read the token from standard input.")] = False,
):
    """Log in with an API token (made on the portal's API tokens page), checked before it is kept."""
    if config.url_problem(url):
        raise VcpError(f"{url!r} is not a portal URL: use http://… or https://….", USAGE)
    if token_stdin:
        token = sys.stdin.readline().strip()
    else:
        token = typer.prompt("API token", hide_input=True).strip()
    if not token:
        raise VcpError("No token given.", USAGE)
    if config.token_problem(token):
        raise VcpError("That is not an API token: tokens are printable ASCII without spaces.", USAGE)
    settings = config.Config(url=url.rstrip("/"), token=token)
    me = Api(settings).get("me/")
    path = config.config_path()
    config.save(path, settings)
    out.print(f"Logged in to {settings.url} as {me['username']} (kept in {path}).")


@app.command()
def logout():
    """Forget the portal and token. The token itself stays valid until revoked on the portal."""
    if config.remove(config.config_path()):
        out.print("Logged out.")
    else:
        out.print("Not logged in.")


@app.command()
def whoami():
    """Who you are on which portal, and your teams."""
    api, settings = connected()
    me = api.get("me/")
    admin = " (platform admin)" if me["is_platform_admin"] else ""
    out.print(f"{me['username']}{admin} on {settings.url}")
    for team in api.all_pages("teams/"):
        out.print(f"  {team['slug']}: {team['my_role']}")


# Vclusters --------------------------------------------------------------------

def find_vcluster(api: Api, name: str, team: str | None) -> dict:
    """The one live vcluster called `name` (in `team`, if given) among those you can see."""
    found = [v for v in api.all_pages("vclusters/", **({"team": team} if team else {})) if v["name"] == name]
    if not found:
        where = f" in team {team}" if team else ""
        raise VcpError(f"No vcluster {name!r}{where} among yours.", NOT_FOUND)
    if len(found) > 1:
        teams = ", ".join(sorted(v["team"] for v in found))
        raise VcpError(f"Several teams have a vcluster {name!r} ({teams}): pass --team.", USAGE)
    return found[0]


CREATING_ROLES = {"admin", "member", "platform-admin"}  # viewers may not create


def team_to_create_in(api: Api, team: str | None) -> str:
    if team:
        return team
    mine = [t["slug"] for t in api.all_pages("teams/") if t["my_role"] in CREATING_ROLES]
    if len(mine) == 1:
        return mine[0]
    if not mine:
        raise VcpError("You may create vclusters in no team: ask a team admin to make you a member.", AUTH)
    raise VcpError(f"You may create vclusters in several teams ({', '.join(mine)}): pass --team.", USAGE)


@create_app.command("vcluster")
def create_vcluster(
    name: NameArgument,
    team: TeamOption = None,
    version: Annotated[str | None, typer.Option("--version", help="Kubernetes version, e.g. v1.37.2.")] = None,
    cpu: Annotated[str | None, typer.Option(help='CPU, e.g. "2" or "500m".')] = None,
    memory: Annotated[str | None, typer.Option(help='Memory, e.g. "4Gi".')] = None,
    storage: Annotated[str | None, typer.Option(help='Storage, e.g. "10Gi".')] = None,
    pods: Annotated[str | None, typer.Option(help="Maximum number of pods.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the provisioning steps until Ready.")] = False,
    connect_to_it: Annotated[bool, typer.Option("--connect", help="Once Ready, add it to your kubeconfig "
                                                "and switch to it (implies --wait).")] = False,
):
    """Create a vcluster within your team's quota; the portal's defaults fill what you leave out."""
    api, _ = connected()
    started = time.monotonic()
    body = {"team": team_to_create_in(api, team), "name": name, "kubernetes_version": version,
            "cpu": cpu, "memory": memory, "storage": storage, "pods": pods}
    vcluster = api.post("vclusters/", {key: value for key, value in body.items() if value is not None})
    out.print(f"vcluster {vcluster['name']} created in team {vcluster['team']}: {vcluster['phase']}")
    if not (wait or connect_to_it):
        return
    vcluster = follow(api, vcluster, started)
    if vcluster["phase"] != "Ready":
        raise VcpError(settled_elsewhere(vcluster))
    out.print(f"Ready in {time.monotonic() - started:.1f}s.")
    if connect_to_it:
        switch_to(api, vcluster, kubeconfig.default_path())


def follow(api: Api, vcluster: dict, started: float) -> dict:
    """Show the vcluster's steps until its work is done (the portal says when: in_progress)."""
    return progress.follow(lambda: api.get(f"vclusters/{vcluster['id']}/"), vcluster, out, started)


def settled_elsewhere(vcluster: dict) -> str:
    """Why the work followed ended in another phase than the one asked for."""
    name, team = vcluster["name"], vcluster["team"]
    if vcluster["retryable"]:
        return (f"vcluster {name} is {vcluster['phase']}: {vcluster['message'] or 'no message'}\n"
                f"Fix the cause, then `vcp retry vcluster {name} --team {team}`.")
    return f"vcluster {name} is {vcluster['phase']}: {vcluster['message'] or 'no message'}"


@list_app.command("vclusters")
def list_vclusters(team: TeamOption = None, output: OutputOption = Output.table):
    """Your vclusters (all teams', for platform admins), except Deleted ones."""
    api, _ = connected()
    vclusters = list(api.all_pages("vclusters/", **({"team": team} if team else {})))
    if output is not Output.table:
        return show_data(vclusters, output)
    show_table(["NAME", "TEAM", "PHASE", "VERSION", "CPU", "MEMORY", "STORAGE", "PODS", "CREATED"],
               [[v["name"], v["team"], v["phase"], v["kubernetes_version"], v["cpu"], v["memory"], v["storage"],
                 str(v["pods"]), v["created_at"][:19].replace("T", " ")] for v in vclusters])


@get_app.command("vcluster")
def get_vcluster(name: NameArgument, team: TeamOption = None, output: OutputOption = Output.table):
    """A vcluster with its spec, phase, placement and provisioning steps."""
    api, _ = connected()
    vcluster = api.get(f"vclusters/{find_vcluster(api, name, team)['id']}/")
    if output is not Output.table:
        return show_data(vcluster, output)
    placement = vcluster["placement"] or {}
    show_table(["FIELD", "VALUE"], [
        ["name", vcluster["name"]], ["team", vcluster["team"]], ["phase", vcluster["phase"]],
        ["message", vcluster["message"] or "-"], ["version", vcluster["kubernetes_version"]],
        ["resources", f"cpu {vcluster['cpu']}, memory {vcluster['memory']}, storage {vcluster['storage']}, "
                      f"pods {vcluster['pods']}"],
        ["host", f"{placement.get('host_cluster') or '-'} / {placement.get('host_namespace') or '-'}"],
        ["created", f"{vcluster['created_at']} by {vcluster['created_by'] or '-'}"],
    ])
    for step in vcluster["steps"]:
        out.print(progress.step_line(step))


@delete_app.command("vcluster")
def delete_vcluster(
    name: NameArgument,
    team: TeamOption = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until it is torn down.")] = False,
):
    """Delete a vcluster: its control plane, host namespace and everything in it."""
    api, _ = connected()
    started = time.monotonic()
    vcluster = api.delete(f"vclusters/{find_vcluster(api, name, team)['id']}/")
    out.print(f"vcluster {name} in team {vcluster['team']}: {vcluster['phase']}")
    if wait:
        vcluster = follow(api, vcluster, started)
        if vcluster["phase"] != "Deleted":
            raise VcpError(settled_elsewhere(vcluster))
        out.print(f"Deleted in {time.monotonic() - started:.1f}s.")


@retry_app.command("vcluster")
def retry_vcluster(name: NameArgument, team: TeamOption = None):
    """Retry a Failed or DeleteFailed vcluster: provisioning or teardown resumes at the step that failed."""
    api, _ = connected()
    vcluster = api.post(f"vclusters/{find_vcluster(api, name, team)['id']}/retry/")
    out.print(f"vcluster {name} in team {vcluster['team']}: {vcluster['phase']}")


# Connecting -------------------------------------------------------------------

@app.command()
def connect(
    name: NameArgument,
    command: Annotated[list[str] | None, typer.Argument(metavar="[-- COMMAND...]", help="A command to run with a temporary "
                                                       "kubeconfig for the vcluster, e.g. -- kubectl get ns.")] = None,
    team: TeamOption = None,
    kubeconfig_file: Annotated[Path | None, typer.Option("--kubeconfig", help="The kubeconfig to add the context "
                                                         "to [default: first of $KUBECONFIG, else ~/.kube/config].")]
    = None,
    print_only: Annotated[bool, typer.Option("--print", help="Print the kubeconfig instead of writing it.")] = False,
    use_exec: Annotated[bool, typer.Option("--exec", help="Authenticate with `vcp token` (renewed as it expires) "
                                           "instead of the kubeconfig's fixed token (valid 12 h by default).")]
    = False,
):
    """Add a vcluster's context (vcp_TEAM_NAME) to your kubeconfig and switch to it, keeping every other
    context; or, with a command after `--`, run just that command against the vcluster. The kubeconfig is
    your personal one, through the portal's gateway: what you may do inside follows your role in the team."""
    api, _ = connected()
    vcluster = find_vcluster(api, name, team)
    if command:
        sys.exit(run_in(api, vcluster, command))
    if print_only:
        print(kubeconfig.dump(kubeconfig_for(api, vcluster, use_exec)), end="")
        return
    switch_to(api, vcluster, kubeconfig_file or kubeconfig.default_path(), use_exec)


def kubeconfig_for(api: Api, vcluster: dict, use_exec: bool = False) -> dict:
    """The personal kubeconfig the portal issues, renamed; with use_exec, its fixed token
    (issued all the same) replaced by `vcp token`."""
    downloaded = yaml.safe_load(api.text(f"vclusters/{vcluster['id']}/kubeconfig/"))
    renamed = kubeconfig.renamed(downloaded, kubeconfig.context_name(vcluster["team"], vcluster["name"]))
    return kubeconfig.with_exec_credential(renamed, vcluster["team"], vcluster["name"]) if use_exec else renamed


def switch_to(api: Api, vcluster: dict, path: Path, use_exec: bool = False) -> None:
    addition = kubeconfig_for(api, vcluster, use_exec)
    try:
        existing = kubeconfig.read(path)
    except (ValueError, yaml.YAMLError) as exc:
        raise VcpError(f"Cannot merge into {path}: {exc}") from None
    kubeconfig.write(path, kubeconfig.merged(existing, addition))
    out.print(f"Switched to context {addition['current-context']} in {path}.")


def run_in(api: Api, vcluster: dict, command: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="vcp-") as directory:
        path = Path(directory) / "kubeconfig"
        kubeconfig.write(path, kubeconfig_for(api, vcluster))
        try:
            return subprocess.run(command, env={**os.environ, "KUBECONFIG": str(path)}).returncode
        except FileNotFoundError:
            raise VcpError(f"{command[0]}: command not found") from None


@app.command()
def token(name: NameArgument, team: TeamOption = None):
    """Print a fresh gateway token for the vcluster as a kubectl ExecCredential: the credential plugin
    `vcp connect --exec` puts into your kubeconfig. A token still valid for a while is reused."""
    _, settings = connected()
    cache = credentials.Cache(config.config_path().parent / "credentials", settings.url)
    credential = cache.get(team, name)
    if credential is None:
        api = Api(settings)
        vcluster = find_vcluster(api, name, team)
        credential = api.post(f"vclusters/{vcluster['id']}/credentials/")
        cache.put(team, name, credential)
    print(json.dumps(credential))


# Teams and quotas -------------------------------------------------------------

@app.command()
def teams():
    """The teams you belong to (every team, for platform admins), with your role."""
    api, _ = connected()
    show_table(["TEAM", "NAME", "ROLE"], [[t["slug"], t["name"], t["my_role"] or "-"] for t in api.all_pages("teams/")])


@quota_app.command("get")
def quota_get(team: Annotated[str, typer.Argument(help="The team's slug.")], output: OutputOption = Output.table):
    """A team's quota, what its vclusters use, and what is left."""
    api, _ = connected()
    quota = api.get(f"teams/{team}/quota/")
    if output is not Output.table:
        return show_data(quota, output)
    fields = ["max_vclusters", "cpu", "memory", "storage", "pods"]
    show_table(["", "LIMIT", "USED", "LEFT"],
               [[f, str(quota[f]), str(quota["usage"][f]), str(quota["headroom"][f])] for f in fields])


@quota_app.command("set")
def quota_set(
    team: Annotated[str, typer.Argument(help="The team's slug.")],
    max_vclusters: Annotated[str | None, typer.Option(help="Number of vclusters; 0 freezes the team.")] = None,
    cpu: Annotated[str | None, typer.Option(help='CPU, e.g. "8".')] = None,
    memory: Annotated[str | None, typer.Option(help='Memory, e.g. "16Gi".')] = None,
    storage: Annotated[str | None, typer.Option(help='Storage, e.g. "200Gi".')] = None,
    pods: Annotated[str | None, typer.Option(help="Number of pods.")] = None,
):
    """Change the limits given; the others stay (platform admins)."""
    body = {"max_vclusters": max_vclusters, "cpu": cpu, "memory": memory, "storage": storage, "pods": pods}
    body = {key: value for key, value in body.items() if value is not None}
    if not body:
        raise VcpError("Give at least one of --max-vclusters, --cpu, --memory, --storage, --pods.", USAGE)
    api, _ = connected()
    api.patch(f"teams/{team}/quota/", body)
    quota_get(team, Output.table)


# Output -----------------------------------------------------------------------

def show_data(data, output: Output) -> None:
    if output is Output.json:
        print(json.dumps(data, indent=2))
    else:
        print(yaml.safe_dump(data, sort_keys=False), end="")


def show_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows)]
    for row in [headers, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
