"""One container or script attempt as a local process, in its own process group (and, where
the OS allows, its own PID namespace: see `isolation`).

stdout goes to the node's log and becomes `outputs.result` (trimmed, first 256 KiB, as Argo
caps it); stderr goes to the log. A kill (deadline, stop) terminates the whole group, then
kills it after a grace period; when the main process exits, what is left of its group is
killed too, as a container's teardown would.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

RESULT_CAP = 256 * 1024


def resolve_command(argv0: str, path_env: str) -> str:
    """`rpops` is this interpreter's console script; `python` is this interpreter."""
    if argv0 == "rpops":
        beside = Path(sys.executable).parent / "rpops"
        if beside.exists():
            return str(beside)
    if argv0 in ("python", "python3"):
        return sys.executable
    if "/" not in argv0:
        return shutil.which(argv0, path=path_env) or argv0
    return argv0


@dataclass
class Outcome:
    exit_code: int | None
    stdout: str
    killed: str | None = None  # why the group was killed (e.g. "Step exceeded its deadline")
    start_error: str | None = None


class LocalProcess:
    def __init__(
        self,
        argv: list[str],
        env: dict[str, str],
        cwd: str | None,
        log_path: Path,
        kill_grace_s: float = 3.0,
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        self.argv, self.env, self.cwd, self.log_path = argv, env, cwd, log_path
        self.pass_fds = pass_fds
        self.kill_grace_s = kill_grace_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.killed: str | None = None
        self._lock = threading.Lock()
        self._out = bytearray()
        self._reader: threading.Thread | None = None

    def start(self) -> str | None:
        """Start the process; return an error message when it cannot start."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            with self._lock:
                if self.killed:
                    return None
                self.proc = subprocess.Popen(  # noqa: S603 - argv from the template, never a shell
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    cwd=self.cwd,
                    env=self.env,
                    start_new_session=True,
                    close_fds=True,
                    pass_fds=self.pass_fds,
                )
        except OSError as exc:
            os.write(log, f"failed to start {self.argv[0]}: {exc.strerror or exc}\n".encode())
            os.close(log)
            return f"failed to start {self.argv[0]!r}: {exc.strerror or exc}"
        self._reader = threading.Thread(target=self._read, args=(log,), daemon=True, name="rpops-stdout")
        self._reader.start()
        return None

    def _read(self, log: int) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        try:
            while chunk := os.read(fd, 65536):
                os.write(log, chunk)
                if len(self._out) < RESULT_CAP:
                    self._out += chunk[: RESULT_CAP - len(self._out)]
        finally:
            os.close(log)

    def wait(
        self, deadline: float | None = None, deadline_message: str = "Step exceeded its deadline"
    ) -> Outcome:
        """Wait for the exit; `deadline` is a time.monotonic() value after which the group is killed."""
        proc = self.proc
        if proc is None:
            return Outcome(None, "", killed=self.killed)
        while True:
            try:
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                code = proc.wait(timeout=timeout)
                break
            except subprocess.TimeoutExpired:
                self.kill(deadline_message)
                deadline = None
        self._signal(signal.SIGKILL)  # the container is gone: so is anything it left running
        if self._reader is not None:
            self._reader.join(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()
        exit_code = code if code >= 0 else 128 - code
        return Outcome(exit_code, self._out.decode("utf-8", "replace").strip(), killed=self.killed)

    def kill(self, reason: str) -> None:
        """Terminate the process group, then kill it after the grace period (any thread)."""
        with self._lock:
            if self.killed is None:
                self.killed = reason
            proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        self._signal(signal.SIGTERM)
        timer = threading.Timer(self.kill_grace_s, self._kill_if_running)
        timer.daemon = True
        timer.start()

    def _kill_if_running(self) -> None:
        # Once reaped, the group was already killed by wait(); its ID may belong to someone else now.
        if self.proc is not None and self.proc.returncode is None:
            self._signal(signal.SIGKILL)

    def _signal(self, sig: int) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
