#!/usr/bin/env python
"""Load test: concurrent users of several teams against a running `make run` stack.

    .venv/bin/python benchmarks/load.py [--database sqlite|postgres|both] [--clients 20] [--seconds 60]

Starts its own stack with scripts/run.sh (what `make run` runs: uvicorn for pages and API,
uvicorn over TLS for the gateway, a Celery worker with beat, Redis, the embedded host
cluster with its real node when run as root) in a fresh var directory on free ports, so
it neither needs nor disturbs a `make run` already serving; with `postgres` the stack's
DATABASE_URL is a throwaway database (vcportal_load) on the project's PostgreSQL.

Each team gets a quota of two vclusters, one of which (`load`) is created first with a
busybox pod in it. Then every client, a different user (per team one admin, the rest
members), runs a closed loop with a short think time for `--seconds`: list and get
vclusters, download its personal kubeconfig, create vclusters (the second fits the quota,
more are refused) and delete its own, team membership changes (admins), and kubectl
traffic through the gateway: get, a watch, and `kubectl exec`. Meanwhile a monitor
counts each team's vclusters against its quota. Afterwards every vcluster must leave
its in-progress phase, and deleting all of them must end Deleted.

Reports requests per second, p50/p95/p99 per endpoint, and every answer that is neither
2xx nor 4xx (5xx, dropped connections, timeouts). Targets (issue 20): 0 5xx, no quota
overshoot, nothing stuck in progress, p95 of reads <= 100 ms at 20 clients. Exits 1 when
a correctness target fails; a missed latency target is printed, with the figures.
"""

import argparse
import base64
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import requests
import urllib3
import yaml

ROOT = Path(__file__).resolve().parents[1]
TEAMS = 4
MAX_VCLUSTERS = 2
QUOTA = {"max_vclusters": MAX_VCLUSTERS, "cpu": "16", "memory": "32Gi", "storage": "200Gi", "pods": "500"}
READS = ("list vclusters", "get vcluster", "gateway get pods")
READ_TARGET_MS = 100.0
LOAD_DATABASE = "vcportal_load"
# What the stack must not inherit from a test shell: it reads its own from its var directory.
STACK_OWNS = ("DJANGO_SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "REDIS_URL", "DATABASE_URL", "VCPORTAL_GATEWAY_URL",
              "VCPORTAL_GATEWAY_CA_FILE", "VCPORTAL_HOSTCLUSTER_DIR", "DJANGO_SETTINGS_MODULE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_url() -> str:
    """A fresh, empty database on the project's PostgreSQL (started if it is not)."""
    base = subprocess.run(["scripts/services.sh", "postgres"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip().splitlines()[-1]
    server = base.rsplit("/", 1)[0]
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {LOAD_DATABASE} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {LOAD_DATABASE}")
    return f"{server}/{LOAD_DATABASE}"


class Stack:
    """scripts/run.sh in its own var directory and ports, stopped by its process group."""

    def __init__(self, database: str):
        self.var = Path(tempfile.mkdtemp(prefix="vcportal-load-"))
        self.port, self.gateway_port = free_port(), free_port()
        self.env = {k: v for k, v in os.environ.items() if k not in STACK_OWNS}
        self.env.update(VCPORTAL_VAR_DIR=str(self.var), VCPORTAL_PORT=str(self.port),
                        VCPORTAL_GATEWAY_PORT=str(self.gateway_port), VCPORTAL_REDIS_PORT=str(free_port()),
                        VCPORTAL_WORKER_METRICS_PORT=str(free_port()))
        if database == "postgres":
            self.env["DATABASE_URL"] = postgres_url()
        self.log = self.var.parent / f"{self.var.name}.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 2400) -> None:
        """Up when run.sh says so; a fresh machine first builds binaries and images."""
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(["scripts/run.sh"], cwd=ROOT, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while "vcportal is up" not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the stack did not come up; its output:\n{self.log.read_text()[-3000:]}")
            time.sleep(1)

    def stop(self) -> None:
        if not self.process or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)  # run.sh's trap stops what it started
        try:
            self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:  # e.g. a worker waiting on its tasks: stop what run.sh would
            os.killpg(self.process.pid, signal.SIGKILL)
            subprocess.run([sys.executable, "manage.py", "hostcluster", "stop"], cwd=ROOT, env=self.env, timeout=120)

    def remove(self) -> None:
        """Its var directory (the host cluster's state, about 600 MB with the real node's
        images); the log stays."""
        shutil.rmtree(self.var, ignore_errors=True)

    def django(self) -> None:
        """This process reads the stack's database and settings (its var directory's files)."""
        for name in STACK_OWNS:
            os.environ.pop(name, None)
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("VCPORTAL_") or k == "DATABASE_URL"})
        os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()


@dataclass
class Member:
    username: str
    team: str
    admin: bool
    token: str
    kubeconfig: Path | None = None


def seed(clients: int) -> list[Member]:
    """Teams with quotas, one user per client, their API tokens: through the services."""
    from django.contrib.auth import get_user_model

    from accounts.audit import Actor
    from accounts.models import Team
    from accounts.services import add_member, create_team, create_token, update_quota

    User = get_user_model()
    platform = Actor(User.objects.get(username="admin"))
    teams: list[Team] = []
    for t in range(TEAMS):
        teams.append(update_quota(platform, create_team(platform, name=f"Load {t}", slug=f"load-{t}"), QUOTA))
        User.objects.create_user(f"extra-{t}")
    members = []
    for i in range(clients):
        team, admin = teams[i % TEAMS], i < TEAMS
        user = User.objects.create_user(f"user-{i}")
        add_member(platform, team, username=user.username, role="admin" if admin else "member")
        members.append(Member(user.username, team.slug, admin, create_token(Actor(user), name="load")[1]))
    return members


class Api:
    def __init__(self, url: str, token: str):
        self.url, self.session = url, requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def __call__(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.session.request(method, self.url + path, timeout=60, **kwargs)


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(1)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


def kubectl(kubeconfig: Path, *args: str, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    from localkube.binaries import bin_dir

    return subprocess.run([str(bin_dir() / "kubectl"), f"--kubeconfig={kubeconfig}", *args], capture_output=True,
                          text=True, timeout=timeout, **kwargs)


BUSYBOX_POD = """apiVersion: v1
kind: Pod
metadata: {name: app}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: %s
    command: [sh, -c, "sleep 86400"]
    resources: {requests: {cpu: 10m, memory: 16Mi}, limits: {cpu: 100m, memory: 64Mi}}
"""


def prepare_team_vclusters(url: str, members: list[Member], workdir: Path) -> dict[str, int]:
    """Each team's `load` vcluster, Ready, with a running pod; every member's kubeconfig for it."""
    from controlplane.images import reference

    admins = {m.team: m for m in members if m.admin}
    ids = {}
    for team, admin in admins.items():
        response = Api(url, admin.token)("POST", "/api/v1/vclusters/", json={"team": team, "name": "load"})
        response.raise_for_status()
        ids[team] = response.json()["id"]
    for team, pk in ids.items():
        api = Api(url, admins[team].token)
        wait_for(lambda: api("GET", f"/api/v1/vclusters/{pk}/").json()["phase"] == "Ready", 600, f"{team}/load Ready")
    for member in members:
        response = Api(url, member.token)("GET", f"/api/v1/vclusters/{ids[member.team]}/kubeconfig/")
        response.raise_for_status()
        member.kubeconfig = workdir / f"{member.username}.kubeconfig"
        member.kubeconfig.write_text(response.text)
    for admin in admins.values():
        created = kubectl(admin.kubeconfig, "apply", "-f", "-", input=BUSYBOX_POD % reference("busybox"))
        assert created.returncode == 0, created.stderr
    for admin in admins.values():
        ready = kubectl(admin.kubeconfig, "wait", "--for=condition=Ready", "pod/app", "--timeout=300s", timeout=320)
        assert ready.returncode == 0, ready.stderr
    return ids


@dataclass
class Results:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)  # neither 2xx nor 4xx
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, endpoint: str, seconds: float, status: int | str) -> None:
        with self.lock:
            self.latencies[endpoint].append(seconds)
            self.statuses[status] += 1
            if not (isinstance(status, int) and 200 <= status < 500):
                self.failures.append(f"{endpoint}: {status}")


class Client(threading.Thread):
    """One user's closed loop: pick an action, time it, think, again."""

    def __init__(self, url: str, member: Member, load_id: int, seed: int, results: Results, stop: threading.Event,
                 think: float, reads_only: bool):
        super().__init__(daemon=True)
        self.actions = {a: w for a, w in self.ACTIONS.items() if a in READS or not reads_only}
        self.api, self.member, self.load_id = Api(url, member.token), member, load_id
        self.rng, self.results, self.stop, self.think = random.Random(seed), results, stop, think
        config = yaml.safe_load(member.kubeconfig.read_text())
        cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
        self.gateway = requests.Session()
        self.gateway.headers["Authorization"] = f"Bearer {user['token']}"
        ca = member.kubeconfig.with_suffix(".ca")
        ca.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
        self.ca = str(ca)  # per request: a session's `verify` loses to REQUESTS_CA_BUNDLE
        self.kube = cluster["server"]
        self.mine: list[int] = []
        self.n = 0

    ACTIONS = {"list vclusters": 20, "get vcluster": 20, "download kubeconfig": 5, "create vcluster": 4,
               "delete vcluster": 3, "change membership": 3, "gateway get pods": 20, "gateway watch pods": 3,
               "kubectl exec": 2}

    def run(self) -> None:
        names, weights = zip(*self.actions.items())
        while not self.stop.is_set():
            action = self.rng.choices(names, weights)[0]
            started = time.perf_counter()
            try:
                status = getattr(self, action.replace(" ", "_"))()
            except (requests.RequestException, subprocess.TimeoutExpired) as exc:
                status = f"{type(exc).__name__}: {str(exc)[:120]}"
            if status is not None:
                self.results.add(action, time.perf_counter() - started, status)
            time.sleep(self.rng.uniform(0, 2 * self.think))

    def list_vclusters(self):
        return self.api("GET", f"/api/v1/vclusters/?team={self.member.team}").status_code

    def get_vcluster(self):
        return self.api("GET", f"/api/v1/vclusters/{self.rng.choice([self.load_id, *self.mine])}/").status_code

    def download_kubeconfig(self):
        return self.api("GET", f"/api/v1/vclusters/{self.load_id}/kubeconfig/").status_code

    def create_vcluster(self):
        self.n += 1
        response = self.api("POST", "/api/v1/vclusters/",
                            json={"team": self.member.team, "name": f"{self.member.username}-{self.n}"})
        if response.status_code == 201:
            self.mine.append(response.json()["id"])
        return response.status_code

    def delete_vcluster(self):
        if not self.mine:
            return None
        return self.api("DELETE", f"/api/v1/vclusters/{self.mine.pop(0)}/").status_code

    def change_membership(self):
        if not self.member.admin:
            return self.api("GET", f"/api/v1/teams/{self.member.team}/members/").status_code
        extra = f"extra-{self.member.team.rsplit('-', 1)[1]}"
        if self.rng.random() < 0.5:
            return self.api("POST", f"/api/v1/teams/{self.member.team}/members/",
                            json={"username": extra, "role": "viewer"}).status_code
        return self.api("DELETE", f"/api/v1/teams/{self.member.team}/members/{extra}/").status_code

    def gateway_get_pods(self):
        return self.gateway.get(f"{self.kube}/api/v1/namespaces/default/pods", verify=self.ca, timeout=60).status_code

    def gateway_watch_pods(self):
        with self.gateway.get(f"{self.kube}/api/v1/namespaces/default/pods?watch=1&timeoutSeconds=1", stream=True,
                              verify=self.ca, timeout=60) as response:
            for _ in response.iter_content(chunk_size=None):
                pass
            return response.status_code

    def kubectl_exec(self):
        result = kubectl(self.member.kubeconfig, "exec", "app", "--", "true")
        return 200 if result.returncode == 0 else f"kubectl exit {result.returncode}: {result.stderr.strip()[:200]}"


class QuotaMonitor(threading.Thread):
    """The most vclusters each team held against its quota at any moment."""

    def __init__(self, stop: threading.Event):
        super().__init__(daemon=True)
        self.stop, self.peak = stop, Counter()

    def run(self) -> None:
        from django.db import connection
        from django.db.models import Count

        from vclusters.lifecycle import COUNTS_AGAINST_QUOTA
        from vclusters.models import VCluster

        while not self.stop.is_set():
            counts = VCluster.objects.filter(phase__in=COUNTS_AGAINST_QUOTA).values("team__slug").annotate(n=Count("id"))
            for row in counts:
                self.peak[row["team__slug"]] = max(self.peak[row["team__slug"]], row["n"])
            time.sleep(0.5)
        connection.close()


def settle(timeout: float) -> list[str]:
    """Wait until no vcluster is in progress; the ones still in progress after `timeout`."""
    from vclusters.lifecycle import IN_PROGRESS
    from vclusters.models import VCluster

    deadline = time.monotonic() + timeout
    while True:
        busy = [f"{v.team.slug}/{v.name} {v.phase}" for v in
                VCluster.objects.filter(phase__in=IN_PROGRESS).select_related("team")]
        if not busy or time.monotonic() > deadline:
            return busy
        time.sleep(2)


def delete_everything(url: str, members: list[Member], timeout: float) -> list[str]:
    """Every team admin deletes its team's vclusters; those not Deleted after `timeout`."""
    from vclusters.models import VCluster

    admins = {m.team: Api(url, m.token) for m in members if m.admin}
    for vcluster in VCluster.objects.exclude(phase__in=["Deleted", "Deleting"]).select_related("team"):
        if vcluster.team.slug in admins:
            admins[vcluster.team.slug]("DELETE", f"/api/v1/vclusters/{vcluster.pk}/")
    deadline = time.monotonic() + timeout
    while True:
        left = [f"{v.team.slug}/{v.name} {v.phase}" for v in
                VCluster.objects.exclude(phase="Deleted").filter(team__slug__in=admins).select_related("team")]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(2)


def percentile_ms(values: list[float], pct: int) -> float:
    if len(values) < 2:
        return values[0] * 1000 if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1] * 1000


def report(results: Results, seconds: float, clients: int, database: str) -> bool:
    total = sum(len(v) for v in results.latencies.values())
    print(f"\n{database}: {clients} clients, {seconds:.0f} s, {total} requests, {total / seconds:.1f} requests/s")
    print(f"  {'endpoint':<22} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for endpoint in Client.ACTIONS:
        values = results.latencies.get(endpoint, [])
        if values:
            print(f"  {endpoint:<22} {len(values):>6} {percentile_ms(values, 50):>8.1f} {percentile_ms(values, 95):>8.1f}"
                  f" {percentile_ms(values, 99):>8.1f} {max(values) * 1000:>8.1f}")
    print(f"  answers: {dict(sorted(results.statuses.items(), key=str))}")
    reads_ok = True
    for endpoint in READS:
        p95 = percentile_ms(results.latencies.get(endpoint, []), 95)
        met = p95 <= READ_TARGET_MS
        reads_ok &= met
        print(f"  target p95 of {endpoint} <= {READ_TARGET_MS:.0f} ms: {p95:.1f} ms, {'met' if met else 'MISSED'}")
    return reads_ok


def run_one(database: str, clients: int, seconds: float, think: float, reads_only: bool) -> int:
    stack = Stack(database)
    print(f"{database}: starting the stack in {stack.var} (log: {stack.log})", flush=True)
    started = time.monotonic()
    stack.start()
    try:
        stack.django()
        print(f"{database}: up in {time.monotonic() - started:.0f} s; preparing teams and vclusters", flush=True)
        members = seed(clients)
        ids = prepare_team_vclusters(stack.url, members, stack.var)
        results, stop = Results(), threading.Event()
        monitor = QuotaMonitor(stop)
        threads = [Client(stack.url, m, ids[m.team], i, results, stop, think, reads_only)
                   for i, m in enumerate(members)]
        monitor.start()
        print(f"{database}: {clients} clients for {seconds:.0f} s", flush=True)
        began = time.monotonic()
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
        elapsed = time.monotonic() - began
        load_average = os.getloadavg()[0]
        monitor.join(timeout=10)
        report(results, elapsed, clients, database)
        print(f"  machine: {os.cpu_count()} CPUs, load average {load_average:.1f} at the end of the load")
        stuck = settle(timeout=300)
        overshoot = {team: n for team, n in monitor.peak.items() if n > MAX_VCLUSTERS}
        left = delete_everything(stack.url, members, timeout=600)
        server_errors = [f for f in results.failures if re.search(r": 5\d\d$", f)]
        print(f"  answers neither 2xx nor 4xx: {len(results.failures)}"
              f"{' ' + str(Counter(results.failures).most_common(10)) if results.failures else ''}")
        print(f"  5xx: {len(server_errors)}; peak vclusters per team against a quota of {MAX_VCLUSTERS}: "
              f"{dict(sorted(monitor.peak.items()))}; stuck in progress 300 s later: {stuck or 'none'}; "
              f"not Deleted after deleting everything: {left or 'none'}")
        return 1 if results.failures or overshoot or stuck or left else 0
    finally:
        stack.stop()
        stack.remove()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--think", type=float, default=0.1, help="mean think time between a client's requests (s)")
    parser.add_argument("--reads-only", action="store_true",
                        help="only list, get and gateway get: the portal's reads without the churn of control planes")
    args = parser.parse_args()
    if args.clients < TEAMS:
        parser.error(f"--clients: at least {TEAMS} (one admin per team)")
    urllib3.disable_warnings()
    if args.database != "both":
        return run_one(args.database, args.clients, args.seconds, args.think, args.reads_only)
    argv = [sys.executable, __file__, "--clients", str(args.clients), "--seconds", str(args.seconds),
            "--think", str(args.think), *(["--reads-only"] if args.reads_only else [])]
    codes = [subprocess.run([*argv, "--database", database]).returncode for database in ("sqlite", "postgres")]
    return max(codes)


if __name__ == "__main__":
    sys.exit(main())
