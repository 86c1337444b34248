"""Cold start and idle memory of a local control plane (kine + kube-apiserver +
kube-controller-manager), the shape of one vcluster.

    .venv/bin/python benchmarks/controlplane_bench.py [--runs 7] [--idle 15]

Each run starts a control plane on a fresh state directory and times init+start
until /readyz answers; after --idle seconds the resident memory (VmRSS) of each
component is read from /proc. Targets on a 2-core machine: median start <= 5 s,
idle RSS of the three together <= 350 MiB.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from localkube import LocalCluster  # noqa: E402
from localkube.cluster import CONTROL_PLANE  # noqa: E402


def memory_mib(pid: int) -> dict[str, float]:
    """VmRSS, and RssFile: the part of it that is the binary's own pages, which the
    kernel shares between every process running the same binary."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssFile"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def one_run(root: Path, i: int, idle: float) -> tuple[float, float, dict[str, dict[str, float]]]:
    cluster = LocalCluster(root / f"cp-{i}")
    started = time.perf_counter()
    cluster.init(name=f"bench-{i}")
    cluster.start()
    cold = time.perf_counter() - started
    try:
        time.sleep(idle)
        rss = {name: memory_mib(pid) for name, pid in cluster.pids().items()}
    finally:
        cluster.stop()
    started = time.perf_counter()
    cluster.start()
    warm = time.perf_counter() - started
    cluster.stop()
    return cold, warm, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--idle", type=float, default=15.0, help="seconds idle before reading RSS")
    args = parser.parse_args()

    colds, warms, rss_runs = [], [], []
    with tempfile.TemporaryDirectory(prefix="cp-bench-") as tmp:
        for i in range(args.runs):
            cold, warm, rss = one_run(Path(tmp), i, args.idle)
            colds.append(cold)
            warms.append(warm)
            rss_runs.append(rss)
            print(f"run {i + 1}/{args.runs}: cold {cold:.2f} s, restart {warm:.2f} s, "
                  f"RSS {sum(m['VmRSS'] for m in rss.values()):.0f} MiB", file=sys.stderr)

    print(f"\ncontrol plane: {args.runs} runs, idle {args.idle:.0f} s before RSS\n")
    print(f"{'measure':<36}{'median':>10}{'p95':>10}{'target':>12}")
    print(f"{'cold start to /readyz (s)':<36}{statistics.median(colds):>10.2f}{percentile(colds, 95):>10.2f}{'<= 5':>12}")
    print(f"{'restart from state dir (s)':<36}{statistics.median(warms):>10.2f}{percentile(warms, 95):>10.2f}")
    for name in CONTROL_PLANE:
        row(f"idle RSS {name} (MiB)", [r[name]["VmRSS"] for r in rss_runs])
    row("idle RSS, all three (MiB)", [sum(m["VmRSS"] for m in r.values()) for r in rss_runs], "<= 350")
    row("  of which binary pages (MiB)", [sum(m["RssFile"] for m in r.values()) for r in rss_runs])


def row(label: str, values: list[float], target: str = "") -> None:
    print(f"{label:<36}{statistics.median(values):>10.0f}{percentile(values, 95):>10.0f}{target:>12}")


if __name__ == "__main__":
    main()
