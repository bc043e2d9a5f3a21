"""Safety and speed targets of `rpops bluegreen` on the local platform, beside the baseline script
(benchmarks/bluegreen_baseline.py, the bash procedure it replaces).

    .venv/bin/python benchmarks/bench_bluegreen.py [--rounds 3]

- switch_failed_requests: requests that failed through the service during a good promotion under
  steady load (keep-alive clients, as fast as they go), out of at least 5,000 sent during it.
  Target: 0 failed of >= 5,000.
- detection_to_route_back: from the moment verify decides green failed to traffic back on blue
  (rpops' own measurement, in report.json), median of --rounds. Target <= 1 s. Beside it, what
  users see: from the fault's injection to the last failed request; the baseline notices only
  after its `sleep 10` and one curl.
- promotion_overhead: wall time of a whole `rpops bluegreen promote` (process start to exit)
  beyond its configured waits (analysis intervals, verify window, scale-down delay), median of
  --rounds. Target <= 2 s. Includes green's start-up (2 workload processes).

Exits 1 when a target is missed. Each figure is printed with the share of the CPUs other work
took while it was measured; the timings are not judged when that share is over half
(benchmarks/common.py); failed requests are judged whatever the load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from rpops.platform.local.driver import LocalDriver  # noqa: E402

from benchmarks.bluegreen_baseline import Baseline  # noqa: E402
from benchmarks.common import LoadMonitor, report  # noqa: E402

SERVICE = "rp"
MIN_REQUESTS = 5000
ROLLBACK_TARGET_S = 1.0
OVERHEAD_TARGET_S = 2.0


class Load:
    """`threads` keep-alive clients sending GET /health back to back; every answer time-stamped."""

    def __init__(self, url: str, threads: int = 4, pace: float = 0.0) -> None:
        self.url = url + "/health"
        self.pace = pace
        self.samples: list[tuple[float, bool, str | None]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(threads)]

    def _loop(self) -> None:
        with httpx.Client(timeout=5.0, trust_env=False) as client:
            while not self._stop.is_set():
                try:
                    r = client.get(self.url)
                    version = r.json().get("version") if r.status_code == 200 else None
                    self.samples.append((time.monotonic(), r.status_code == 200, version))
                except (httpx.HTTPError, ValueError):
                    self.samples.append((time.monotonic(), False, None))
                if self.pace:
                    time.sleep(self.pace)

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)

    def window(self, start: float, end: float) -> tuple[int, int]:
        inside = [ok for at, ok, _ in list(self.samples) if start <= at <= end]
        return len(inside), sum(1 for ok in inside if not ok)


def cli(root: Path, out: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    environ = {**os.environ, "RPOPS_PLATFORM": "local", "RPOPS_PLATFORM_DIR": str(root),
               "RPOPS_OUTPUTS": str(out), **env}  # fmt: skip
    return subprocess.Popen([sys.executable, "-m", "rpops", "bluegreen", *args], env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def set_faults(driver: LocalDriver, version: str, **faults: object) -> None:
    token = driver.admin_token(SERVICE)
    with httpx.Client(timeout=5.0, trust_env=False) as client:
        for inst in driver.instances(SERVICE, version):
            client.post(f"{inst.url}/admin/faults", json=faults, headers={"Authorization": f"Bearer {token}"})


MONITOR = LoadMonitor()


def bench_switch(driver: LocalDriver, root: Path, tmp: Path, version: str) -> bool:
    # the baseline script first, under the load rpops gets next (it deletes its blue when done)
    script = Baseline(driver, SERVICE, curl_sleep=0.1, settle=3.0)
    blue = driver.routes(SERVICE).active or "v1"
    with Load(driver.service_url(SERVICE)) as load:
        time.sleep(0.5)
        start = time.monotonic()
        script.run(blue, "vbase")
        end = time.monotonic()
        base_sent, base_failed = load.window(start, end)
    script.close()
    fast = ["--analysis-interval", "0.5", "--analysis-count", "3", "--verify-seconds", "5",
            "--verify-interval", "0.25", "--scale-down-delay-seconds", "0"]  # fmt: skip
    with Load(driver.service_url(SERVICE)) as load:
        time.sleep(0.5)
        start = time.monotonic()
        proc = cli(root, tmp / "switch", "promote", "--service", SERVICE, "--version", version, *fast)
        _, err = proc.communicate(timeout=300)
        end = time.monotonic()
        if proc.returncode != 0:
            print(err, file=sys.stderr)
        sent, failed = load.window(start, end)
    ok = proc.returncode == 0 and failed == 0 and sent >= MIN_REQUESTS
    return report("bench_bluegreen", "switch_failed_requests", figure=failed, unit="failed",
                  baseline="the bash procedure (bluegreen_baseline.py)", baseline_value=base_failed,
                  target=f"0 failed of >= {MIN_REQUESTS}", ok=ok, load=MONITOR.load(), load_sensitive=False,
                  note=f"{failed} failed of {sent} sent (baseline {base_failed} of {base_sent})")


def bench_rollback(driver: LocalDriver, root: Path, tmp: Path, rounds: int, first: int) -> bool:
    detections: list[float] = []
    exposures: list[float] = []
    fast = ["--analysis-interval", "0.2", "--analysis-count", "2", "--verify-seconds", "30",
            "--verify-interval", "0.25", "--scale-down-delay-seconds", "0"]  # fmt: skip
    for i in range(rounds):
        version = f"v{first + i}"
        out = tmp / f"rollback-{i}"
        with Load(driver.service_url(SERVICE), threads=1, pace=0.005) as load:
            proc = cli(root, out, "promote", "--service", SERVICE, "--version", version, *fast)
            while driver.routes(SERVICE).active != version:
                if proc.poll() is not None:
                    raise SystemExit(
                        f"promotion of {version} ended early: {proc.stderr.read() if proc.stderr else ''}"
                    )
                time.sleep(0.02)
            injected = time.monotonic()
            set_faults(driver, version, error_rate=1.0)
            proc.communicate(timeout=120)
            time.sleep(0.3)
            failures = [at for at, ok, _ in list(load.samples) if not ok and at >= injected]
        promoted = json.loads((out / "report.json").read_text())
        back = promoted["verify"].get("detection_to_route_back_s")
        if back is None:
            raise SystemExit(f"no rollback measured in round {i}: {promoted.get('reason')}")
        detections.append(float(back))
        exposures.append((max(failures) - injected) if failures else 0.0)
    # the baseline: a green that fails from the switch on is noticed after `sleep 10` and one curl
    script = Baseline(driver, SERVICE, curl_sleep=0.1, settle=10.0,
                      hooks={"patch": lambda: set_faults(driver, "vbase", error_rate=1.0)})  # fmt: skip
    run = script.run(driver.routes(SERVICE).active or "v1", "vbase")
    script.close()
    driver.remove(SERVICE, "vbase")
    baseline_s = (run.patched_back_at or time.monotonic()) - (run.switched_at or time.monotonic())
    median = statistics.median(detections)
    ok = report("bench_bluegreen", "detection_to_route_back", figure=median, unit="s",
                baseline="the bash procedure, switch to patch-back", baseline_value=baseline_s,
                target=f"<= {ROLLBACK_TARGET_S:g} s (max of rounds)", ok=max(detections) <= ROLLBACK_TARGET_S,
                load=MONITOR.load(), note=f"max {max(detections):.3f} s of {len(detections)} rounds")
    exposure = statistics.median(exposures)
    print(f"user_exposure_after_fault: measured {exposure:.3f} s median (injection to last failed request) "
          f"vs baseline {baseline_s:.1f} s (info)", flush=True)  # fmt: skip
    return ok


def bench_overhead(driver: LocalDriver, root: Path, tmp: Path, rounds: int, first: int) -> bool:
    interval, count, verify, delay = 0.5, 3, 2.0, 1.0
    configured = (count - 1) * interval + verify + max(0.0, delay - verify)
    args = ["--analysis-interval", str(interval), "--analysis-count", str(count),
            "--verify-seconds", str(verify), "--scale-down-delay-seconds", str(delay),
            "--verify-interval", "0.5"]  # fmt: skip
    overheads = []
    for i in range(rounds):
        start = time.monotonic()
        proc = cli(
            root, tmp / f"overhead-{i}", "promote", "--service", SERVICE, "--version", f"v{first + i}", *args
        )
        _, err = proc.communicate(timeout=300)
        if proc.returncode != 0:
            raise SystemExit(f"promotion failed: {err}")
        overheads.append(time.monotonic() - start - configured)
    settle = 2.0
    script = Baseline(driver, SERVICE, curl_sleep=0.1, settle=settle)
    start = time.monotonic()
    script.run(driver.routes(SERVICE).active or "v1", "vbase2")
    baseline = time.monotonic() - start - settle
    script.close()
    median = statistics.median(overheads)
    return report("bench_bluegreen", "promotion_overhead", figure=median, unit="s",
                  baseline=f"the bash procedure beyond its {settle:g} s sleep", baseline_value=baseline,
                  target=f"<= {OVERHEAD_TARGET_S:g} s beyond the configured waits",
                  ok=median <= OVERHEAD_TARGET_S, load=MONITOR.load(),
                  note=f"beyond {configured:g} s of waits; rounds "
                       f"{', '.join(f'{o:.2f}' for o in overheads)} s")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rpops-bench-bluegreen-") as tmpdir:
        tmp = Path(tmpdir)
        root = tmp / "platform"
        driver = LocalDriver(root=root, ready_interval=0.2, drain_timeout=5.0)
        try:
            MONITOR.__enter__()
            driver.up(SERVICE, "v1", replicas=2, port=0)
            results = [
                bench_switch(driver, root, tmp, "v2"),
                bench_rollback(driver, root, tmp, args.rounds, first=10),
                bench_overhead(driver, root, tmp, args.rounds, first=20),
            ]
        finally:
            driver.down()
            MONITOR.__exit__(None, None, None)
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
