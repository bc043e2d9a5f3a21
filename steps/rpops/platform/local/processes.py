"""Process plumbing for the local driver: start detached, check liveness, stop by PID, probe.

A process is identified by (pid, create_time): a PID alone may be reused by an unrelated
process after ours died, and the driver must never signal a stranger.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

from rpops.platform.base import PlatformError


def spawn(argv: Sequence[str], env: Mapping[str, str], log_path: Path) -> tuple[int, float]:
    """Start a process in its own session (it outlives the CLI); stdout and stderr go to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,
            close_fds=True,
        )
    try:
        created = psutil.Process(process.pid).create_time()
    except psutil.NoSuchProcess:
        created = 0.0
    # Popen would warn at exit about a child still running; the process is deliberately detached.
    process.returncode = 0
    return process.pid, created


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def alive(pid: int | None, create_time: float | None) -> bool:
    """Whether the process we started as `pid` (at `create_time`) still runs (zombies count as dead)."""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if create_time and abs(proc.create_time() - create_time) > 0.05:
            return False  # the PID now belongs to someone else
        if proc.status() == psutil.STATUS_ZOMBIE:
            _reap(pid)
            return False
        return True
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def send_term(pid: int | None, create_time: float | None) -> None:
    """SIGTERM once: a graceful stop (uvicorn treats a second signal as "exit now")."""
    if pid and alive(pid, create_time):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def terminate(
    pid: int | None, create_time: float | None, timeout: float = 10.0, *, signalled: bool = False
) -> None:
    """SIGTERM (unless `signalled` already), wait up to `timeout` seconds, then SIGKILL."""
    if not alive(pid, create_time):
        return
    assert pid is not None
    if not signalled:
        send_term(pid, create_time)
    deadline = time.monotonic() + timeout
    while alive(pid, create_time):
        if time.monotonic() >= deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            kill_deadline = time.monotonic() + 5.0
            while alive(pid, create_time) and time.monotonic() < kill_deadline:
                time.sleep(0.01)
            return
        time.sleep(0.01)


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def wait_file(path: Path, pid: int, create_time: float, deadline: float, log_path: Path) -> str:
    """Wait for `path` to appear (written atomically by the process) and return its text."""
    while True:
        with contextlib.suppress(OSError):
            text = path.read_text()
            if text.strip():
                return text
        if not alive(pid, create_time):
            raise PlatformError(
                f"process {pid} exited during start; last log lines of {log_path}:\n{log_tail(log_path)}"
            )
        if time.monotonic() >= deadline:
            raise PlatformError(
                f"process {pid} did not start in time; last log lines of {log_path}:\n{log_tail(log_path)}"
            )
        time.sleep(0.01)


def http_request(
    port: int, method: str, path: str, *, timeout: float = 1.0, body: Any = None, token: str | None = None
) -> tuple[int, bytes]:
    """One HTTP/1.1 request to 127.0.0.1:port; (status, body). OSError when nothing answers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Connection": "close"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    except (http.client.HTTPException, TimeoutError) as exc:
        raise OSError(f"127.0.0.1:{port} {method} {path}: {exc}") from exc
    finally:
        conn.close()


def probe_ready(port: int, timeout: float = 0.5) -> bool:
    try:
        status, _ = http_request(port, "GET", "/ready", timeout=timeout)
    except OSError:
        return False
    return status == 200


def port_free(port: int) -> bool:
    """Whether 127.0.0.1:port can be bound right now."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class ProxyControl:
    """Client of the proxy's control API (see rpops.platform.local.proxy)."""

    def __init__(self, port: int, token: str, timeout: float = 2.0) -> None:
        self.port = port
        self.token = token
        self.timeout = timeout

    def _call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        status, data = http_request(
            self.port, method, path, timeout=self.timeout, body=body, token=self.token
        )
        if status != 200:
            raise PlatformError(f"proxy control {method} {path} answered {status}: {data[:200]!r}")
        result: dict[str, Any] = json.loads(data)
        return result

    def set_backends(self, active: list[str], preview: list[str]) -> dict[str, Any]:
        return self._call("PUT", "/backends", {"active": active, "preview": preview})

    def status(self) -> dict[str, Any]:
        return self._call("GET", "/status")
