"""health-check over 30 targets probes them concurrently.

    .venv/bin/python benchmarks/bench_health.py [--regions 3] [--per-region 10] [--latency-ms 100]

Starts 3 regions x 10 reference-workload processes on 127.0.0.1, each with 100 ms of injected
latency, then measures (in-process, the same code `rpops health-check` runs):
- the time to probe each target alone; the slowest is the baseline;
- the time to probe all 30 together (median of 3) -> target <= 1.3x that baseline;
- for reference, a plain script probing the same endpoints one after another with httpx, and
  the same requests over bare asyncio sockets (the floor set by the machine and its load).
"""

from __future__ import annotations

import argparse
import os
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


def raw_socket_floor(ports: list[int]) -> float:
    """The same requests over bare asyncio streams: what this machine allows, whatever the client."""
    import asyncio

    async def get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> None:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        await reader.readexactly(length)

    async def chain(port: int, paths: list[str]) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for path in paths:
            await get(reader, writer, path)
        writer.close()

    async def everything() -> None:
        health = ["/health"] * (1 + SAMPLES)
        await asyncio.gather(*(chain(p, health) for p in ports),
                             *(chain(p, ["/ready", "/api/performance/status"]) for p in ports))

    started = time.perf_counter()
    run_async(everything())
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
        ports = [w.port for w in workloads]
        floor_single = max(raw_socket_floor([p]) for p in ports[:5])
        floor_all = statistics.median(raw_socket_floor(ports) for _ in range(3))
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
    print(f"raw-socket floor {count} targets: measured {floor_all * 1000:.0f} ms vs baseline single target "
          f"{floor_single * 1000:.0f} ms -> ratio {floor_all / floor_single:.2f} (reference: the machine's "
          f"share of the overhead; load average {os.getloadavg()[0]:.1f})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
