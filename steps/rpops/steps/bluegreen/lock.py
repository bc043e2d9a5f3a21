"""The promotion lock: an annotation on the service with an owner, a token and an expiry.

The Argo template also holds mutexes; this lock covers everything else (a human running
`rpops bluegreen`, a rerun after a crash, another machine) and survives between the steps of
one workflow, whose steps share the owner (the workflow's name).

Taking it:
- free, expired, or held by a process of this host that is gone: take it;
- held by the same owner: take it over (a rerun of the same promotion), unless the holder is a
  live process on this host (a concurrent run under the same name);
- otherwise wait up to --lock-wait, then refuse naming the holder and its expiry.

The platform offers no compare-and-set on annotations, so taking is write-then-verify (Fischer's
protocol): write our token, wait a settle time longer than a write takes, read it back; only the
last writer finds its own token and goes on, the others wait again. The holder renews the expiry
while it works and checks that the token is still its own before every change (fencing), so a
forced takeover (`rollback --force`) stops the previous holder at its next step.
"""

from __future__ import annotations

import enum
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import psutil

from rpops.core.errors import RpopsError
from rpops.platform.base import PlatformDriver
from rpops.platform.service_lock import LockInfo
from rpops.steps.bluegreen.model import Record, annotations_for, record_from

log = logging.getLogger(__name__)

SETTLE_S = 0.1  # the least wait before reading the lock back; longer when writes are slow


class LockHeld(RpopsError):
    """Another live promotion holds the service (exit 1); the message names it."""


class LockLost(RpopsError):
    """Our lock was taken over while we worked (exit 1): we stop without changing anything."""


@dataclass(frozen=True)
class Holder:
    """Who we are, as written into the lock."""

    owner: str
    host: str
    pid: int
    pid_start: float

    @classmethod
    def current(cls, owner: str) -> Holder:
        pid = os.getpid()
        return cls(
            owner=owner, host=socket.gethostname(), pid=pid, pid_start=psutil.Process(pid).create_time()
        )


class Verdict(enum.Enum):
    TAKE = "take"
    HELD = "held"


def process_alive(pid: int, pid_start: float) -> bool:
    """Whether the process that wrote a lock on this host still runs (a reused PID does not count)."""
    try:
        proc = psutil.Process(pid)
        return abs(proc.create_time() - pid_start) < 0.05 and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def decide(lock: LockInfo | None, me: Holder, now: float, holder_alive: bool | None) -> Verdict:
    """Pure: may `me` take the lock? `holder_alive` is None when the holder is on another host."""
    if lock is None or lock.expires <= now:
        return Verdict.TAKE
    if lock.host == me.host and lock.pid == me.pid and abs(lock.pid_start - me.pid_start) < 0.05:
        return Verdict.TAKE  # already ours (this process)
    same_host = lock.host == me.host
    if same_host and holder_alive is False:
        return Verdict.TAKE  # its process is gone: a crashed run
    if lock.owner == me.owner and not (same_host and holder_alive):
        return Verdict.TAKE  # a rerun of the same promotion (e.g. the workflow's next step)
    return Verdict.HELD


def describe(lock: LockInfo, now: float, record: Record) -> str:
    where = f"{lock.host} pid {lock.pid}" if lock.host else "another machine"
    what = (
        f"promoting {record.preview} (phase {record.phase.value})"
        if record.phase and record.preview
        else "busy"
    )
    return f"{lock.owner} on {where} is {what}; its lock expires in {max(0.0, lock.expires - now):.0f}s"


class PromotionLock:
    """Take, renew, check and release the lock on one service."""

    def __init__(
        self,
        driver: PlatformDriver,
        service: str,
        holder: Holder,
        ttl: float,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        settle: float = SETTLE_S,
    ) -> None:
        self.driver = driver
        self.service = service
        self.holder = holder
        self.ttl = ttl
        self.clock = clock
        self.sleep = sleep
        self.settle = settle
        self.token: str | None = None
        self.renewed_at = 0.0

    def _read(self) -> Record:
        return record_from(self.driver.annotations(self.service))

    def _write(self, old: Record, new: Record) -> None:
        changes = annotations_for(old, new)
        if changes:
            self.driver.annotate(self.service, changes)

    def _mine(self, token: str) -> LockInfo:
        h = self.holder
        return LockInfo(
            owner=h.owner,
            token=token,
            host=h.host,
            pid=h.pid,
            pid_start=h.pid_start,
            expires=self.clock() + self.ttl,
        )

    def acquire(self, wait: float, *, force: bool = False) -> Record:
        """Take the lock (waiting up to `wait` seconds); returns the record read once it is ours."""
        deadline = self.clock() + max(0.0, wait)
        announced = False
        while True:
            record = self._read()
            now = self.clock()
            lock = record.lock
            alive = None
            if lock is not None and lock.host == self.holder.host:
                alive = process_alive(lock.pid, lock.pid_start)
            if force or decide(lock, self.holder, now, alive) is Verdict.TAKE:
                if force and lock is not None and lock.owner != self.holder.owner and lock.expires > now:
                    log.warning(
                        "taking the lock of %s from %s (--force)", self.service, describe(lock, now, record)
                    )
                token = secrets.token_hex(8)
                began = time.monotonic()
                self._write(record, replace(record, lock=self._mine(token)))
                # Fischer: wait longer than a competitor's read-then-write can take (judged by ours).
                self.sleep(max(self.settle, 5 * (time.monotonic() - began)))
                check = self._read()
                if check.lock is not None and check.lock.token == token:
                    self.token = token
                    self.renewed_at = self.clock()
                    return check
                log.info("lost the race for the lock of %s; trying again", self.service)
                continue
            assert lock is not None
            if self.clock() >= deadline:
                hint = (
                    "wait for it to finish, pass --lock-wait SECONDS to wait, or, if that run is gone, "
                    "rerun once its lock expires"
                )
                raise LockHeld(f"service {self.service} is locked: {describe(lock, now, record)}; {hint}")
            if not announced:
                log.info("waiting for the lock of %s: %s", self.service, describe(lock, now, record))
                announced = True
            self.sleep(min(1.0, max(0.05, deadline - self.clock())))

    def check(self, record: Record) -> None:
        """Fencing: raise LockLost unless `record` still carries our token."""
        if self.token is None or record.lock is None or record.lock.token != self.token:
            by = f"{record.lock.owner}" if record.lock else "nobody (it was released)"
            raise LockLost(
                f"the lock of {self.service} was taken over by {by}: stopping without further changes; "
                "see `rpops bluegreen status`"
            )

    def locked_record(self, record: Record) -> Record:
        """`record` with our lock, renewed: merge into every write so the lock never lapses mid-run."""
        assert self.token is not None
        self.renewed_at = self.clock()
        return replace(record, lock=self._mine(self.token))

    def renew_due(self) -> bool:
        return self.token is not None and self.clock() - self.renewed_at >= self.ttl / 3

    def renew(self) -> Record:
        """Read, check it is still ours, push the expiry out; returns the fresh record."""
        record = self._read()
        self.check(record)
        renewed = self.locked_record(record)
        self._write(record, renewed)
        return renewed

    def release(self) -> None:
        """Drop the lock if it is still ours (never someone else's)."""
        if self.token is None:
            return
        record = self._read()
        if record.lock is not None and record.lock.token == self.token:
            self._write(record, replace(record, lock=None))
        self.token = None
