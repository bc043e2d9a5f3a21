"""health-check over 30 targets probes them concurrently.

    .venv/bin/python benchmarks/bench_health.py [--regions 3] [--per-region 10] [--latency-ms 100]

Starts 3 regions x 10 reference-workload processes on 127.0.0.1, each with 100 ms of injected
latency, then measures (in-process, the same code `rpops health-check` runs):
- the time to probe each target alone; the slowest is the baseline;
- the time to probe all 30 together (median of 3) -> target <= 1.3x that baseline;
- for reference, a plain script probing the same endpoints one after another with httpx.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from rpops.health import HealthSettings, observe, plan
from rpops.probe import run_async
from rpops.workload.testing import RunningWorkload, start_workload

TARGET_RATIO = 1.3
SAMPLES = 5


def probe_all(targets: list[str]) -> float:
    p = plan(HealthSettings(target=tuple(targets), samples=SAMPLES, timeout=5.0))
    started = time.perf_counter()
    obs = run_async(observe(p))
    elapsed = time.perf_counter() - started
    bad = [probe.target.name for probe in obs.probes if not probe.health.ok or len(probe.samples) != SAMPLES]
    if bad:
        raise SystemExit(f"probes failed for {bad}")
    return elapsed


def sequential_script(urls: list[str]) -> float:
    """What a plain loop does: every request of every target, one after another."""
    started = time.perf_counter()
    with httpx.Client(timeout=5.0, trust_env=False) as client:
        for url in urls:
            for path in ("/health", "/ready", "/api/performance/status"):
                client.get(url + path)
            for _ in range(SAMPLES):
                client.get(url + "/health")
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--regions", type=int, default=3)
    parser.add_argument("--per-region", type=int, default=10)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    args = parser.parse_args()
    count = args.regions * args.per_region

    names = [f"r{r}-p{i}" for r in range(args.regions) for i in range(args.per_region)]
    print(f"starting {count} workload processes with {args.latency_ms:g} ms latency...", file=sys.stderr)
    workloads: list[RunningWorkload] = []
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = [pool.submit(start_workload, version="v1", admin_token=None, timeout=120.0,
                                   latency_ms=args.latency_ms) for _ in names]
            for future in futures:
                workloads.append(future.result())
        targets = [f"{name}={w.url}" for name, w in zip(names, workloads, strict=True)]

        probe_all(targets[:1])  # warm-up: imports, rules compiled, first connections
        singles = [probe_all([t]) for t in targets]
        slowest_single = max(singles)
        together = statistics.median(probe_all(targets) for _ in range(3))
        sequential = sequential_script([w.url for w in workloads])
    finally:
        for w in workloads:
            w.stop()

    ratio = together / slowest_single
    ok = ratio <= TARGET_RATIO
    print(f"health-check {count} targets: measured {together * 1000:.0f} ms vs baseline slowest single "
          f"target alone {slowest_single * 1000:.0f} ms -> ratio {ratio:.2f} (target <= {TARGET_RATIO}) "
          f"{'PASS' if ok else 'FAIL'}")
    print(f"health-check {count} targets: measured {together * 1000:.0f} ms vs baseline sequential plain "
          f"script {sequential * 1000:.0f} ms -> ratio {together / sequential:.3f} (reference, no target)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
