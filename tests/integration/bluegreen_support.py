"""Shared pieces of the blue-green tests: the local platform as a fixture, steady load through
a service with every failure time-stamped, fault injection on a version's instances, and the
`rpops bluegreen` command line as a subprocess (real exit codes, outputs and crashes)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
from rpops.platform.local.driver import LocalDriver

SERVICE = "rp"
# Short waits so that a whole promotion takes a few seconds.
FAST = [
    "--analysis-interval", "0.1",
    "--analysis-count", "2",
    "--analysis-requests", "5",
    "--verify-seconds", "1",
    "--verify-interval", "0.1",
    "--scale-down-delay-seconds", "0",
    "--progress-deadline-seconds", "20",
    "--lock-ttl", "30",
]  # fmt: skip


def platform_pids(root: Path) -> list[int]:
    try:
        state = json.loads((root / "state.json").read_text())
    except FileNotFoundError:
        return []
    pids = []
    for svc in state["services"].values():
        if svc.get("proxy"):
            pids.append(svc["proxy"]["pid"])
        for ver in svc["versions"].values():
            pids += [i["pid"] for i in ver["instances"]]
    return pids


def _gone(pid: int) -> bool:
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


@contextlib.contextmanager
def running_platform(root: Path) -> Iterator[LocalDriver]:
    """The local platform with service `rp` at v1 (2 replicas); every process stopped afterwards."""
    driver = LocalDriver(root=root, ready_interval=0.2, drain_timeout=5.0)
    seen: set[int] = set()
    try:
        driver.up(SERVICE, "v1", replicas=2, port=0)
        seen.update(platform_pids(root))
        yield driver
    finally:
        seen.update(platform_pids(root))
        driver.down()
        for pid in seen:
            assert _gone(pid), f"process {pid} survived the platform's teardown"


@dataclass(frozen=True)
class Sample:
    at: float  # time.monotonic()
    ok: bool
    version: str | None
    detail: str


class Load:
    """GET <url>/health at a steady rate from a background thread (one keep-alive httpx client),
    every answer time-stamped: a failure is anything but 200."""

    def __init__(self, url: str, rate: float = 200.0, path: str = "/health") -> None:
        self.url = url + path
        self.period = 1.0 / rate
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        with httpx.Client(timeout=5.0, trust_env=False) as client:
            next_at = time.monotonic()
            while not self._stop.is_set():
                try:
                    response = client.get(self.url)
                    ok = response.status_code == 200
                    try:
                        version = response.json().get("version")
                    except ValueError:
                        version = None
                    self.samples.append(Sample(time.monotonic(), ok, version, f"HTTP {response.status_code}"))
                except httpx.HTTPError as exc:
                    self.samples.append(Sample(time.monotonic(), False, None, f"{type(exc).__name__}: {exc}"))
                next_at += self.period
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:
                    next_at = time.monotonic()  # behind: do not burst to catch up

    def __enter__(self) -> Load:
        self._thread.start()
        deadline = time.monotonic() + 10
        while len(self.samples) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    @property
    def failures(self) -> list[Sample]:
        return [s for s in list(self.samples) if not s.ok]

    def versions_after(self, at: float) -> set[str | None]:
        return {s.version for s in list(self.samples) if s.at >= at and s.ok}


def set_faults(driver: LocalDriver, version: str, service: str = SERVICE, **faults: Any) -> None:
    """Inject faults into every instance of a version through its admin endpoint."""
    token = driver.admin_token(service)
    with httpx.Client(timeout=5.0, trust_env=False) as client:
        for inst in driver.instances(service, version):
            response = client.post(
                f"{inst.url}/admin/faults", json=faults, headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 200, response.text


def cli_env(root: Path, outputs: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RPOPS_BLUEGREEN_CRASH")}
    env.update(
        RPOPS_PLATFORM="local",
        RPOPS_PLATFORM_DIR=str(root),
        RPOPS_OUTPUTS=str(outputs),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def rpops_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "rpops", "bluegreen", *args]


def run_cli(
    root: Path, outputs: Path, *args: str, timeout: float = 120, **env: Any
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        rpops_argv(*args), env=cli_env(root, outputs, **env), capture_output=True, text=True, timeout=timeout
    )


def start_cli(root: Path, outputs: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        rpops_argv(*args),
        env=cli_env(root, outputs, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def outputs_of(outputs: Path) -> dict[str, str]:
    names = ("phase", "active_version", "previous_version", "rolled_back", "reason", "result")
    return {n: (outputs / n).read_text() for n in names if (outputs / n).exists()}


def report_of(outputs: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((outputs / "report.json").read_text())
    return doc


def wait_until(predicate: Any, timeout: float = 20.0, interval: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(interval)
