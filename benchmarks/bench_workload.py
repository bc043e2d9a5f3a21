"""Speed targets of the reference workload.

    .venv/bin/python benchmarks/bench_workload.py [--duration 5] [--connections 32]

- health_throughput: GET /health requests/s from one uvicorn worker, driven by a keep-alive
  load generator in a second process (this script re-run with --load), vs 2,000 req/s.
- status_throughput: the same for GET /api/performance/status (cached psutil figures).
- start_workload: seconds from `start_workload()` to ready, vs 2.0 s.

Exits 1 when a target is missed. Numbers are noisy while other work runs on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from urllib.parse import urlsplit

HEALTH_TARGET_RPS = 2000.0
START_TARGET_S = 2.0


# --- the load generator (runs in its own process) ------------------------------------------

async def _connection(host: str, port: int, request: bytes, stop_at: float,
                      latencies: list[float], statuses: dict[int, int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
                    break
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def _load(url: str, connections: int, duration: float, warmup: float) -> dict[str, object]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    # Warm up (connections, caches), then measure on fresh counters.
    await asyncio.gather(*(_connection(host, port, request, time.perf_counter() + warmup, [], {})
                           for _ in range(connections)))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    start = time.perf_counter()
    await asyncio.gather(*(_connection(host, port, request, start + duration, latencies, statuses)
                           for _ in range(connections)))
    elapsed = time.perf_counter() - start
    ordered = sorted(latencies)
    return {
        "requests": len(latencies),
        "elapsed_s": elapsed,
        "rps": len(latencies) / elapsed,
        "statuses": statuses,
        "p50_ms": statistics.median(ordered) * 1000 if ordered else 0.0,
        "p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000 if ordered else 0.0,
    }


def _load_main(args: argparse.Namespace) -> int:
    try:
        import uvloop
        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        result = runner.run(_load(args.load, args.connections, args.duration, args.warmup))
    print(json.dumps(result))
    return 0


# --- the benchmark ---------------------------------------------------------------------------

def _drive(url: str, connections: int, duration: float) -> dict[str, object]:
    """Run the load generator in a second process and return its result."""
    completed = subprocess.run(
        [sys.executable, __file__, "--load", url, "--connections", str(connections),
         "--duration", str(duration)],
        capture_output=True, text=True, timeout=duration + 60, check=True)
    result: dict[str, object] = json.loads(completed.stdout)
    return result


def _line(name: str, measured: float, baseline: float, unit: str, higher_is_better: bool) -> bool:
    ratio = measured / baseline
    passed = ratio >= 1.0 if higher_is_better else ratio <= 1.0
    target = ">= 1.0" if higher_is_better else "<= 1.0"
    print(f"{name}: measured {measured:.2f} {unit} vs baseline {baseline:g} {unit} -> ratio {ratio:.2f} "
          f"(target {target}) {'PASS' if passed else 'FAIL'}")
    return passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of measured load per route")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of unmeasured load first")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections")
    parser.add_argument("--load", metavar="URL", help=argparse.SUPPRESS)  # load-generator mode
    args = parser.parse_args()
    if args.load:
        return _load_main(args)

    from rpops.workload.testing import start_workload

    starts = []
    for _ in range(3):
        began = time.perf_counter()
        with start_workload(version="bench"):
            starts.append(time.perf_counter() - began)
    ok = _line("start_workload", statistics.median(starts), START_TARGET_S, "s", higher_is_better=False)

    with start_workload(version="bench") as workload:
        routes = (("health_throughput", "/health"), ("status_throughput", "/api/performance/status"))
        for name, path in routes:
            result = _drive(workload.url + path, args.connections, args.duration)
            statuses = result["statuses"]
            print(f"  {path}: {result['requests']} requests in {result['elapsed_s']:.2f}s, "
                  f"statuses {statuses}, p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms")
            all_ok = isinstance(statuses, dict) and set(statuses) == {"200"}  # JSON keys are strings
            if not all_ok:
                print(f"  {path}: non-200 answers under load: FAIL")
            rps = result["rps"]
            assert isinstance(rps, float)
            ok = _line(name, rps, HEALTH_TARGET_RPS, "req/s", higher_is_better=True) and all_ok and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
