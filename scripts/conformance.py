#!/usr/bin/env python
"""`make conformance`: the upstream Kubernetes conformance suite against the embedded host
and against a vcluster through the gateway, with a report by SIG (docs/conformance.md).

    .venv/bin/python scripts/conformance.py [--targets host,vcluster] [--focus REGEX] [--nodes 4]

Builds e2e.test, ginkgo and the suite's test images from the pinned Kubernetes module
(tools/kube/build.sh conformance, tools/images/build.sh conformance), starts the product
with scripts/run.sh in a fresh var directory on free ports (as benchmarks/load.py does),
creates team `conformance` and its vcluster `e2e` through the same services and API as a
user, and runs the `[Conformance]` tests that are neither `[Serial]` nor `[Disruptive]`
with the host's admin kubeconfig and with the user's personal kubeconfig, whose server
is the gateway. The report (report.md and report.json in the output directory) lists
by SIG what passed, failed and was skipped on each, and for each test that passes on the
host but not in the vcluster whether the tenant policy refused it on purpose (the
syncer's HostRefused event or its pod webhook's answer, with the reason) or it is a gap.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from load import Api, Stack, wait_for  # noqa: E402

FOCUS = r"\[Conformance\]"
SKIP = r"\[Serial\]|\[Disruptive\]"
# The syncer's Warning event when the host copy of a tenant's object cannot be made safe,
# or its pod webhook's answer to a create (syncer.admission).
REFUSAL = re.compile(r"(?:HostRefused[^\n]*?refused|tenant policy refuses) the (\w+): ([^\n]+)")
QUOTA = {"max_vclusters": 1, "cpu": "64", "memory": "128Gi", "storage": "500Gi", "pods": "1000"}
VCLUSTER = {"team": "conformance", "name": "e2e", "cpu": "32", "memory": "64Gi", "storage": "200Gi", "pods": "500"}


def last_line(command: list[str]) -> str:
    done = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


def build() -> tuple[Path, Path]:
    """The suite's binaries and images (both reused once built); returns the binaries'
    directory and the repo list naming the local registry."""
    binaries = Path(last_line(["tools/kube/build.sh", "conformance"]))
    subprocess.run(["tools/images/build.sh", "conformance"], cwd=ROOT, stdout=subprocess.DEVNULL, check=True)
    from controlplane.images import refs_file

    return binaries, refs_file().with_name("e2e-repo-list.yaml")


def tenant_kubeconfig(stack: Stack, out: Path) -> Path:
    """Team `conformance`, its admin `conformance`, and vcluster `e2e`, Ready: the
    user's personal kubeconfig, through the gateway."""
    from django.contrib.auth import get_user_model

    from accounts.audit import Actor
    from accounts.services import add_member, create_team, create_token, update_quota

    platform = Actor(get_user_model().objects.get(username="admin"))
    team = update_quota(platform, create_team(platform, name="Conformance", slug="conformance"), QUOTA)
    user = get_user_model().objects.create_user("conformance")
    add_member(platform, team, username=user.username, role="admin")
    api = Api(stack.url, create_token(Actor(user), name="conformance")[1])
    created = api("POST", "/api/v1/vclusters/", json=VCLUSTER)
    created.raise_for_status()
    pk = created.json()["id"]
    wait_for(lambda: api("GET", f"/api/v1/vclusters/{pk}/").json()["phase"] == "Ready", 900, "vcluster e2e Ready")
    kubeconfig = out / "vcluster.kubeconfig"
    answer = api("GET", f"/api/v1/vclusters/{pk}/kubeconfig/")
    answer.raise_for_status()
    kubeconfig.write_text(answer.text)
    kubeconfig.chmod(0o600)
    return kubeconfig


def host_kubeconfig() -> Path:
    """The embedded host's admin kubeconfig: the suite as the host's cluster-admin."""
    from django.conf import settings

    from localkube import LocalCluster

    return LocalCluster(settings.HOSTCLUSTER_STATE_DIR).admin_kubeconfig


def run_suite(binaries: Path, repo_list: Path, kubeconfig: Path, out: Path, args) -> Path:
    """ginkgo running e2e.test in `args.nodes` processes; returns its JSON report."""
    from localkube.binaries import bin_dir
    from localkube.nodes import FAKE_NODE_TAINT

    out.mkdir(parents=True, exist_ok=True)
    command = [
        str(binaries / "ginkgo"), f"--nodes={args.nodes}", f"--focus={args.focus}", f"--skip={SKIP}",
        f"--timeout={args.timeout}", "--no-color", "--silence-skips", f"--output-dir={out}",
        "--json-report=report.json", str(binaries / "e2e.test"), "--",
        f"--kubeconfig={kubeconfig}", f"--kubectl-path={bin_dir() / 'kubectl'}", "--provider=skeleton",
        # kwok's nodes carry this taint so that only pods that tolerate it land there.
        f"--non-blocking-taints={FAKE_NODE_TAINT.key},node-role.kubernetes.io/control-plane",
    ]
    env = {**os.environ, "KUBE_TEST_REPO_LIST": str(repo_list)}
    with open(out / "e2e.log", "wb") as log:
        subprocess.run(command, cwd=out, env=env, stdout=log, stderr=subprocess.STDOUT)  # its exit: tests failed
    return out / "report.json"


def outcomes(report: Path) -> dict[str, dict]:
    """Test name -> {state, seconds, message, output} from ginkgo's JSON report."""
    results = {}
    for suite in json.loads(report.read_text()):
        for spec in suite.get("SpecReports") or []:
            if spec.get("LeafNodeType") != "It" or not spec.get("NumAttempts"):
                continue  # a suite node, or a test the focus left out
            name = " ".join([*(spec.get("ContainerHierarchyTexts") or []), spec["LeafNodeText"]])
            failure = spec.get("Failure") or {}
            results[name] = {"state": spec["State"], "seconds": round(spec.get("RunTime", 0) / 1e9, 1),
                             "message": (failure.get("Message") or "").strip(),
                             "output": spec.get("CapturedGinkgoWriterOutput") or ""}
    return results


def keep_logs(stack: Stack, out: Path) -> None:
    """The stack's logs (the portal's, the worker's, the host's components, each
    vcluster's control plane and syncer) into `out`/stack: the stack's directory goes, and
    a failure the suite's output does not explain is read there."""
    kept = out / "stack"
    for log in [*stack.var.rglob("*.log"), stack.log]:
        target = kept / (log.relative_to(stack.var) if log.is_relative_to(stack.var) else log.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(log, target)


def sig_of(name: str) -> str:
    found = re.search(r"\[sig-([\w-]+)\]", name)
    return found.group(1) if found else "other"


def verdict(host: dict | None, vcluster: dict) -> str:
    """Why a test that did not pass in the vcluster did not."""
    if host and host["state"] != "passed":
        return "fails on the host too"
    refused = REFUSAL.search(vcluster["output"] + vcluster["message"])
    if refused:
        return f"refused on purpose: the {refused.group(1)} ({refused.group(2).strip()})"
    return "gap: " + (vcluster["message"].splitlines() or ["(no message)"])[0][:300]


def write_report(results: dict[str, dict[str, dict]], out: Path, minutes: dict[str, float]) -> str:
    from localkube.binaries import kube_version

    targets = list(results)
    names = sorted(set().union(*(r.keys() for r in results.values())))
    by_sig: dict[str, Counter] = defaultdict(Counter)
    took = "".join(f"; {t}: {minutes[t]:.0f} min" for t in targets if t in minutes)
    lines = [f"# Conformance, {datetime.date.today().isoformat()}", "", f"Kubernetes {kube_version()}{took}", ""]
    for name in names:
        for target in targets:
            state = results[target].get(name, {}).get("state", "not run")
            by_sig[sig_of(name)][(target, state)] += 1
    lines += ["| SIG | " + " | ".join(f"{t} passed / failed / skipped" for t in targets) + " |",
              "|---|" + "---|" * len(targets)]
    for sig in sorted(by_sig):
        counts = by_sig[sig]
        lines.append(f"| {sig} | " + " | ".join(
            f"{counts[(t, 'passed')]} / {counts[(t, 'failed')] + counts[(t, 'timedout')] + counts[(t, 'panicked')]}"
            f" / {counts[(t, 'skipped')]}" for t in targets) + " |")
    totals = {t: Counter(r["state"] for r in results[t].values()) for t in targets}
    lines += ["", "Totals: " + "; ".join(f"{t} {c['passed']} of {sum(c.values())} passed" for t, c in totals.items())]
    if "vcluster" in results:
        host = results.get("host", {})
        lines += ["", "## Not passing in the vcluster", ""]
        for name in names:
            mine = results["vcluster"].get(name)
            if mine and mine["state"] not in ("passed", "skipped"):
                lines.append(f"- {name}: {verdict(host.get(name), mine)}")
    text = "\n".join(lines) + "\n"
    (out / "report.md").write_text(text)
    (out / "report.json").write_text(json.dumps(
        {t: {n: {k: v for k, v in r.items() if k != "output"} for n, r in res.items()} for t, res in results.items()},
        indent=1))
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", default="host,vcluster", help="host, vcluster or both (comma-separated)")
    parser.add_argument("--focus", default=FOCUS, help="regular expression of the tests to run (default: %(default)s)")
    parser.add_argument("--nodes", type=int, default=4, help="parallel ginkgo processes")
    parser.add_argument("--timeout", default="4h", help="ginkgo's limit for each target")
    # Absolute, since ginkgo runs in the target's directory and reads the kubeconfig from there.
    parser.add_argument("--out", type=lambda given: Path(given).resolve(), default=ROOT / "var" / "conformance" / datetime.date.today().isoformat())
    parser.add_argument("--report-only", action="store_true",
                        help="only write the report again from the targets' ginkgo reports in --out")
    args = parser.parse_args()
    targets = [t for t in args.targets.split(",") if t]
    if args.report_only:
        reports = {t: args.out / t / "report.json" for t in targets if (args.out / t / "report.json").exists()}
        print(write_report({t: outcomes(r) for t, r in reports.items()}, args.out, {}))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    # A TERM (a `timeout`, a CI limit) stops the stack too, as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    binaries, repo_list = build()
    stack = Stack("sqlite")
    print(f"conformance: starting the stack in {stack.var} (log: {stack.log})", flush=True)
    stack.start()
    stack.django()
    results, minutes = {}, {}
    try:
        kubeconfigs = {"host": host_kubeconfig()} if "host" in targets else {}
        if "vcluster" in targets:
            kubeconfigs["vcluster"] = tenant_kubeconfig(stack, args.out)
        for target in targets:
            print(f"conformance: running the suite against the {target} (log: {args.out / target / 'e2e.log'})",
                  flush=True)
            started = datetime.datetime.now()
            report = run_suite(binaries, repo_list, kubeconfigs[target], args.out / target, args)
            minutes[target] = (datetime.datetime.now() - started).total_seconds() / 60
            results[target] = outcomes(report) if report.exists() else {}
            write_report(results, args.out, minutes)  # a report after each target, in case the next is stopped
    finally:
        stack.stop()
        keep_logs(stack, args.out)
        stack.remove()
    print(write_report(results, args.out, minutes))
    print(f"conformance: report in {args.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
