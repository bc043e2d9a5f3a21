"""Argo mutexes as file locks, so that runs in separate processes exclude each other.

One lock file per mutex name under `.rpops/locks/`; `fcntl.flock` on a fresh open file
description per holder, so two holders in the same process exclude each other too, and the
lock goes away with the process that held it (no stale locks after a crash).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

POLL_S = 0.05


def lock_path(locks_dir: Path, name: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:80]
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return locks_dir / f"{safe}-{digest}.lock"


class Mutex:
    """A held mutex; `release()` (or process exit) frees it."""

    def __init__(self, name: str, fd: int) -> None:
        self.name = name
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)


def holder(locks_dir: Path, name: str) -> str:
    """Who holds `name`, as the holder wrote it (best effort, for messages)."""
    try:
        return lock_path(locks_dir, name).read_text().strip()
    except OSError:
        return ""


def acquire(
    locks_dir: Path,
    name: str,
    owner: str,
    *,
    on_wait: Callable[[str], None] | None = None,
    cancelled: threading.Event | None = None,
) -> Mutex | None:
    """Block until `name` is ours; None when `cancelled` is set first."""
    locks_dir.mkdir(parents=True, exist_ok=True)
    path = lock_path(locks_dir, name)
    waited = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if not waited and on_wait is not None:
                on_wait(holder(locks_dir, name))
            waited = True
            if cancelled is not None and cancelled.wait(POLL_S):
                return None
            if cancelled is None:
                time.sleep(POLL_S)
            continue
        os.ftruncate(fd, 0)
        os.write(fd, f"{owner} pid={os.getpid()}\n".encode())
        return Mutex(name, fd)
