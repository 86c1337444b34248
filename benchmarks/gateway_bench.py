#!/usr/bin/env python
"""Gateway benchmark: what going through /kube/ costs, against the API server directly.

    DATABASE_URL=postgres://… DJANGO_SECRET_KEY=… FIELD_ENCRYPTION_KEYS=… \\
        .venv/bin/python benchmarks/gateway_bench.py [--requests 500] [--seconds 10] [--watches 500]

Starts a bare vcluster control plane (localkube) and the portal's ASGI application
under uvicorn as its own process (as in production), on a throwaway database
(vcportal_gwbench). In the same run, with the same aiohttp client:
  - p50/p95 latency of GET on a small ConfigMap, one request at a time, direct and
    through the gateway alternately (direct: the stored admin certificate over TLS;
    gateway: a member's personal token over plain HTTP on loopback, then TLS upstream
    with impersonation);
  - throughput with --clients (50) concurrent clients for --seconds each way;
  - --watches (500) watches open through the gateway at once: all receive one event,
    and the gateway's RSS before, with them open, and after they close.
Targets: overhead <= 3 ms at p50; throughput >= 0.7x direct; memory bounded with the watches.
"""

import argparse
import asyncio
import os
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
STATE = Path(tempfile.mkdtemp(prefix="gwbench-"))

import django  # noqa: E402

django.setup()

import aiohttp  # noqa: E402
import yaml  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from localkube import LocalCluster  # noqa: E402
from localkube.ports import allocate  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from controlplane_bench import memory_mib, percentile  # noqa: E402

OBJECT = "/api/v1/namespaces/default/configmaps/bench"


def setup_world(kubeconfig: str) -> tuple[int, str]:
    """A team, a member and a Ready vcluster on the control plane; the member's token."""
    from accounts.audit import Actor
    from accounts.models import Membership, Role, Team
    from django.contrib.auth import get_user_model
    from provisioning.rbac import ensure_access_bindings
    from gateway.services import issue_kubeconfig
    from vclusters.models import Phase, VCluster

    team = Team.objects.create(name="Bench", slug="bench")
    user = get_user_model().objects.create_user("alice", password="x")
    Membership.objects.create(team=team, user=user, role=Role.MEMBER)
    vcluster = VCluster.objects.create(team=team, name="bench", kubernetes_version="v1.37.2", cpu_millicores=1000,
                                       memory_bytes=2**31, storage_bytes=2**33, pods=50, phase=Phase.READY,
                                       kubeconfig=kubeconfig)
    ensure_access_bindings(kubeconfig)
    personal = yaml.safe_load(issue_kubeconfig(Actor(user), vcluster, "http://unused"))
    return vcluster.pk, personal["users"][0]["user"]["token"]


def direct_ssl(kubeconfig: str) -> ssl.SSLContext:
    from gateway.upstream import ssl_context

    doc = yaml.safe_load(kubeconfig)
    return ssl_context(doc["clusters"][0]["cluster"], doc["users"][0]["user"])


def start_gateway(port: int, workers: int) -> subprocess.Popen:
    db = connection.settings_dict
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "portal.asgi:application", "--host", "127.0.0.1", "--port", str(port),
         "--lifespan", "on", "--ws", "websockets", "--no-access-log", "--log-level", "warning", "--workers", str(workers)],
        cwd=ROOT, env=env, stdout=open(STATE / "gateway.log", "wb"), stderr=subprocess.STDOUT,
    )
    return proc


class Target:
    def __init__(self, name: str, base: str, headers: dict, ssl_context, limit: int):
        self.name, self.base, self.headers = name, base, headers
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl_context or False, limit=limit))

    async def get(self, path: str = OBJECT) -> float:
        started = time.perf_counter()
        async with self.session.get(self.base + path, headers=self.headers) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"{self.name}: {response.status} {await response.text()}")
        return time.perf_counter() - started


async def latency(targets: list[Target], requests: int) -> dict[str, list[float]]:
    times = {t.name: [] for t in targets}
    for _ in range(20):  # warm connections and caches
        for t in targets:
            await t.get()
    for _ in range(requests):
        for t in targets:
            times[t.name].append(await t.get() * 1000)
    return times


async def throughput(target: Target, clients: int, seconds: float, pids: dict[str, list[int]]) -> tuple[float, dict]:
    """Requests per second, and CPU milliseconds per request of each group of `pids` meanwhile."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def client():
        nonlocal done
        while time.perf_counter() < deadline:
            await target.get()
            done += 1

    started, cpu = time.perf_counter(), {name: cpu_seconds(group) for name, group in pids.items()}
    await asyncio.gather(*(client() for _ in range(clients)))
    rate = done / (time.perf_counter() - started)
    return rate, {name: (cpu_seconds(group) - cpu[name]) * 1000 / done for name, group in pids.items()}


def gateway_pids(pid: int) -> list[int]:
    """uvicorn's worker processes (the process itself with one worker)."""
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()] or [pid]


def gateway_rss(pid: int) -> float:
    return sum(memory_mib(p)["VmRSS"] for p in gateway_pids(pid))


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    return total


async def watches(base: str, token: str, count: int, create, gateway_pid: int) -> dict[str, float]:
    before = gateway_rss(gateway_pid)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=count + 10),
                                    timeout=aiohttp.ClientTimeout(total=120))
    path = "/api/v1/namespaces/default/configmaps?watch=true&fieldSelector=metadata.name%3Dwatched"
    responses = await asyncio.gather(*(session.get(base + path, headers={"Authorization": f"Bearer {token}"})
                                       for _ in range(count)))
    assert all(r.status == 200 for r in responses), {r.status for r in responses}
    await asyncio.sleep(2)
    open_rss = gateway_rss(gateway_pid)
    await create()
    events = await asyncio.gather(*(asyncio.wait_for(r.content.readline(), 60) for r in responses))
    received = sum(b'"watched"' in line for line in events)
    for r in responses:
        r.close()
    await session.close()
    await asyncio.sleep(3)
    return {"before": before, "open": open_rss, "after": gateway_rss(gateway_pid), "received": received}


async def run(args, kubeconfig: str, server: str, gateway: str, vcluster_id: int, token: str, pid: int,
              apiserver_pid: int) -> None:
    context = direct_ssl(kubeconfig)
    gateway_base = f"{gateway}/kube/vclusters/{vcluster_id}"
    direct = Target("direct", server, {}, context, args.clients)
    through = Target("gateway", gateway_base, {"Authorization": f"Bearer {token}"}, None, args.clients)
    await direct.session.post(server + "/api/v1/namespaces/default/configmaps",
                              json={"metadata": {"name": "bench"}, "data": {"k": "v"}})
    times = await latency([direct, through], args.requests)
    rates, cpu = {}, {}
    pids = {"apiserver": [apiserver_pid], "gateway": gateway_pids(pid)}
    for target in (direct, through):
        rates[target.name], cpu[target.name] = await throughput(target, args.clients, args.seconds, pids)

    async def create_watched():
        async with direct.session.post(server + "/api/v1/namespaces/default/configmaps",
                                       json={"metadata": {"name": "watched"}}) as r:
            assert r.status == 201, await r.text()

    memory = await watches(gateway_base, token, args.watches, create_watched, pid)
    await direct.session.close()
    await through.session.close()
    report(args, times, rates, cpu, memory)


def report(args, times, rates, cpu, memory) -> None:
    d50, d95 = percentile(times["direct"], 50), percentile(times["direct"], 95)
    g50, g95 = percentile(times["gateway"], 50), percentile(times["gateway"], 95)
    print(f"\ngateway ({args.workers} uvicorn workers): {args.requests} sequential GETs each way, {args.clients} "
          f"clients for {args.seconds:.0f} s each way, {args.watches} watches; load average {os.getloadavg()[0]:.1f}\n")
    print(f"{'measure':<46}{'direct':>10}{'gateway':>10}{'target':>14}")
    print(f"{'GET small object, p50 (ms)':<46}{d50:>10.2f}{g50:>10.2f}")
    print(f"{'GET small object, p95 (ms)':<46}{d95:>10.2f}{g95:>10.2f}")
    print(f"{'overhead at p50 (ms)':<46}{'':>10}{g50 - d50:>10.2f}{'<= 3':>14}")
    print(f"{f'throughput, {args.clients} clients (requests/s)':<46}{rates['direct']:>10.0f}{rates['gateway']:>10.0f}")
    print(f"{'throughput ratio':<46}{'':>10}{rates['gateway'] / rates['direct']:>10.2f}{'>= 0.7':>14}")
    print(f"{'API server CPU per request (ms)':<46}{cpu['direct']['apiserver']:>10.2f}"
          f"{cpu['gateway']['apiserver']:>10.2f}")
    print(f"{'gateway CPU per request (ms)':<46}{'':>10}{cpu['gateway']['gateway']:>10.2f}")
    per_watch = (memory["open"] - memory["before"]) * 1024 / args.watches
    print(f"{'gateway RSS before watches (MiB)':<46}{'':>10}{memory['before']:>10.0f}")
    print(f"{f'gateway RSS with {args.watches} watches open (MiB)':<46}{'':>10}{memory['open']:>10.0f}")
    print(f"{'  per watch (KiB)':<46}{'':>10}{per_watch:>10.0f}")
    print(f"{'gateway RSS after they closed (MiB)':<46}{'':>10}{memory['after']:>10.0f}")
    print(f"{'watches that received the event':<46}{'':>10}{memory['received']:>10}{args.watches:>14}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--watches", type=int, default=500)
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="uvicorn worker processes (cores)")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("set DATABASE_URL to PostgreSQL: the gateway process and this script share the database")
    setup_test_environment()
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    connection.settings_dict["TEST"]["NAME"] = "vcportal_gwbench"
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    cluster, gateway = LocalCluster(STATE / "vcluster"), None
    try:
        cluster.init(name="gwbench")
        cluster.start()
        kubeconfig = cluster.admin_kubeconfig.read_text()
        vcluster_id, token = setup_world(kubeconfig)
        connection.close()  # the gateway process has the database to itself during the run
        port = allocate(["gateway"])["gateway"]
        gateway = start_gateway(port, args.workers)
        wait_listening(port, gateway)
        asyncio.run(run(args, kubeconfig, cluster.server, f"http://127.0.0.1:{port}", vcluster_id, token,
                        gateway.pid, cluster.pids()["kube-apiserver"]))
    finally:
        if gateway:
            gateway.terminate()
            gateway.wait(timeout=30)
        cluster.stop()
        connection.creation.destroy_test_db(old_name, verbosity=0)
    return 0


def wait_listening(port: int, proc: subprocess.Popen) -> None:
    import socket

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the gateway exited; see {STATE / 'gateway.log'}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    sys.exit("the gateway did not listen in time")


if __name__ == "__main__":
    sys.exit(main())
