"""A real reference workload in a subprocess, for tests, benchmarks and demos.

    with start_workload(version="v2", latency_ms=50) as workload:
        httpx.get(f"{workload.url}/health")
        workload.set_faults(error_rate=0.5)
        workload.clear_faults()

The process is `python -m rpops.core.cli workload serve` on 127.0.0.1 with a free port; it is stopped
by PID (SIGTERM, then SIGKILL) when the block exits, on `stop()`, or at interpreter exit.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from rpops.workload.cli import ADMIN_TOKEN_ENV
from rpops.workload.faults import Faults, merge_faults

# Strong references: a workload nobody holds any more is still stopped at interpreter exit.
_running: set[RunningWorkload] = set()


class WorkloadError(RuntimeError):
    """The workload did not start, or refused an admin request."""


def _flag_value(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else repr(float(value))


class RunningWorkload:
    """A started workload process. Use as a context manager, or call `stop()`."""

    def __init__(self, process: subprocess.Popen[bytes], workdir: Path, version: str,
                 admin_token: str | None, host: str) -> None:
        self.process = process
        self.pid = process.pid
        self.version = version
        self.admin_token = admin_token
        self.host = host
        self.port = 0
        self.url = ""
        self._workdir = workdir
        self._log_path = workdir / "workload.log"
        self._final_log: str | None = None
        self._client = httpx.Client(timeout=10.0, trust_env=False)  # no proxy for 127.0.0.1

    # --- lifecycle -------------------------------------------------------------------------

    def _wait_started(self, faults: Faults, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        port_file = self._workdir / "port"
        while not port_file.exists():
            self._check_alive()
            if time.monotonic() > deadline:
                raise WorkloadError(f"workload did not bind a port within {timeout:g}s\n{self.logs()}")
            time.sleep(0.01)
        self.port = int(port_file.read_text().strip())
        self.url = f"http://{self.host}:{self.port}"
        # Ready means: the server answers, and /ready says what the faults ask it to say.
        while True:
            self._check_alive()
            try:
                wait_s = max(1.0, faults.latency_ms / 1000 + 1)
                response = self._client.get(f"{self.url}/ready", timeout=wait_s)
            except httpx.TransportError:
                response = None
            if response is not None and (
                response.status_code == 200
                or (faults.not_ready and response.status_code == 503)
                or response.headers.get("x-fault") == "error_rate"
            ):
                return
            if time.monotonic() > deadline:
                raise WorkloadError(f"workload did not become ready within {timeout:g}s\n{self.logs()}")
            time.sleep(0.01)

    def _check_alive(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise WorkloadError(f"workload exited with code {code} during start\n{self.logs()}")

    def stop(self, timeout: float = 5.0) -> int | None:
        """Stop the process (SIGTERM, then SIGKILL after `timeout`); return its exit code."""
        if self.process.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait(timeout=timeout)
            except ProcessLookupError:
                pass
        if self._final_log is None:
            self._final_log = self._read_log()
            shutil.rmtree(self._workdir, ignore_errors=True)
        self._client.close()
        _running.discard(self)
        return self.process.returncode

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def _read_log(self) -> str:
        try:
            return self._log_path.read_text(errors="replace")
        except OSError:
            return ""

    def logs(self) -> str:
        """The process's stdout and stderr so far (kept after stop)."""
        return self._final_log if self._final_log is not None else self._read_log()

    def __enter__(self) -> RunningWorkload:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # --- admin -----------------------------------------------------------------------------

    def _admin(self, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        if self.admin_token is None:
            raise WorkloadError("this workload was started without an admin token")
        response = self._client.request(method, f"{self.url}/admin/faults", json=body,
                                        headers={"Authorization": f"Bearer {self.admin_token}"})
        if response.status_code != 200:
            raise WorkloadError(f"{method} /admin/faults answered {response.status_code}: {response.text}")
        faults: dict[str, Any] = response.json()["faults"]
        return faults

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Merge faults into the current set; return the set now in force."""
        return self._admin("POST", faults)

    def clear_faults(self) -> dict[str, Any]:
        return self._admin("DELETE")

    def faults(self) -> dict[str, Any]:
        return self._admin("GET")


def start_workload(version: str = "v1", admin_token: str | None = "t",  # noqa: S107 - a test token
                   *, host: str = "127.0.0.1",
                   timeout: float = 15.0, **faults: Any) -> RunningWorkload:
    """Start `rpops workload serve` on a free port and wait until it answers /ready.

    Keyword arguments other than these are initial faults (latency_ms, error_rate, unhealthy,
    not_ready, cpu_burn, memory_growth_mb_per_s). With not_ready, it waits until /ready says 503.
    """
    initial = merge_faults(Faults(), faults)  # refuses bad faults before a process starts
    workdir = Path(tempfile.mkdtemp(prefix="rpops-workload-"))
    argv = [sys.executable, "-m", "rpops", "workload", "serve", "--host", host, "--port", "0",
            "--port-file", str(workdir / "port"), "--version", version]
    for name, value in faults.items():
        argv += ["--fault", f"{name}={_flag_value(value)}"]
    env = dict(os.environ)
    env.pop(ADMIN_TOKEN_ENV, None)
    if admin_token is not None:
        env[ADMIN_TOKEN_ENV] = admin_token  # not in argv, where `ps` would show it
    with open(workdir / "workload.log", "wb") as log_file:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                                   env=env)
    workload = RunningWorkload(process, workdir, version, admin_token, host)
    _running.add(workload)
    try:
        workload._wait_started(initial, timeout)
    except BaseException:
        workload.stop()
        raise
    return workload


@atexit.register
def _stop_leftovers() -> None:
    for workload in list(_running):
        workload.stop(timeout=2.0)
