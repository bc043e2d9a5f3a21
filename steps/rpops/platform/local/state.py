"""The local platform's state: typed values, stored as JSON under a file lock.

Layout under the root (default `.rpops/platform/`, or $RPOPS_PLATFORM_DIR):
    state.json      services, versions, instances (PID + create time + port), routes
    state.lock      flock(2) target: one writer at a time across processes
    logs/           one log file per process
    run/            port files written by starting processes

The JSON is written atomically (temporary file + rename), so a crash leaves the old or the new
state, never half of one. It holds the proxies' control tokens and the workloads' admin tokens,
so the directory is private to the user (0700, files 0600).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rpops.platform.base import PlatformError

STATE_VERSION = 1
ROOT_ENV = "RPOPS_PLATFORM_DIR"


@dataclass
class InstanceState:
    name: str
    pid: int
    create_time: float
    port: int
    started_at: float


@dataclass
class VersionState:
    image: str
    replicas: int
    resources: dict[str, str | None] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    instances: list[InstanceState] = field(default_factory=list)
    next_index: int = 0
    restarted_at: float | None = None


@dataclass
class ProxyState:
    pid: int
    create_time: float
    port: int
    preview_port: int
    control_port: int
    token: str


@dataclass
class ServiceState:
    name: str
    admin_token: str
    proxy: ProxyState | None = None
    active: str | None = None
    preview: str | None = None
    autoscaling: dict[str, int] | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    versions: dict[str, VersionState] = field(default_factory=dict)


@dataclass
class PlatformState:
    services: dict[str, ServiceState] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"state_version": STATE_VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlatformState:
        services = {}
        for name, svc in (data.get("services") or {}).items():
            versions = {}
            for vname, ver in (svc.get("versions") or {}).items():
                instances = [InstanceState(**i) for i in ver.get("instances") or []]
                versions[vname] = VersionState(**{**ver, "instances": instances})
            proxy = ProxyState(**svc["proxy"]) if svc.get("proxy") else None
            services[name] = ServiceState(**{**svc, "versions": versions, "proxy": proxy})
        return cls(services=services)


def default_root() -> Path:
    return Path(os.environ.get(ROOT_ENV) or Path.cwd() / ".rpops" / "platform")


class StateStore:
    """Load and save the state under an exclusive lock (re-entrant within one store object)."""

    def __init__(self, root: Path, lock_timeout: float = 120.0) -> None:
        self.root = root
        self.path = root / "state.json"
        self.lock_path = root / "state.lock"
        self.lock_timeout = lock_timeout
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    def ensure_dirs(self) -> None:
        for d in (self.root, self.root / "logs", self.root / "run"):
            d.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(self.root, 0o700)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with self._thread_lock:
            if self._depth == 0:
                self.ensure_dirs()
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
                deadline = time.monotonic() + self.lock_timeout
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            os.close(fd)
                            raise PlatformError(
                                f"the local platform state {self.lock_path} stayed locked for "
                                f"{self.lock_timeout:g}s by another rpops process"
                            ) from None
                        time.sleep(0.05)
                self._fd = fd
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._fd is not None:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
                    os.close(self._fd)
                    self._fd = None

    def load(self) -> PlatformState:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return PlatformState()
        try:
            data = json.loads(text)
            return PlatformState.from_json(data)
        except (ValueError, TypeError, KeyError) as exc:
            raise PlatformError(
                f"the local platform state {self.path} is unreadable ({exc}); stop the "
                f"processes it lists and remove the file to start over"
            ) from exc

    def save(self, state: PlatformState) -> None:
        self.ensure_dirs()
        tmp = self.path.with_name(f".state.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(state.to_json(), fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
