"""Fault injection: the typed fault set, its validation, and the background effects.

`merge_faults` is pure: it validates a change (from the admin endpoint or `--fault` flags)
against the current faults and returns the new set, naming the field on bad input.
`FaultEffects` turns the set into what the process actually does: a CPU-burning thread
and a memory-growing thread, both stoppable at any time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import mmap
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rpops.core.errors import UsageError

log = logging.getLogger(__name__)

# Memory growth stops here, whatever the rate: the fault must not take the machine down.
MEMORY_CAP_MB = 1024


class FaultError(UsageError):
    """A fault value was refused; the message names the field and the accepted range."""


@dataclass(frozen=True)
class Faults:
    latency_ms: float = 0.0  # added (asyncio.sleep) before each faultable request
    error_rate: float = 0.0  # share of faultable requests answered 500
    unhealthy: bool = False  # /health answers 503 "unhealthy"
    not_ready: bool = False  # /ready answers 503
    cpu_burn: float = 0.0  # share of one core a background thread asks for
    memory_growth_mb_per_s: float = 0.0  # memory allocated and held per second, up to MEMORY_CAP_MB

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def active(self) -> bool:
        return self != Faults()


# name -> (minimum, maximum) for the numeric faults
NUMERIC_LIMITS: dict[str, tuple[float, float]] = {
    "latency_ms": (0.0, 60_000.0),
    "error_rate": (0.0, 1.0),
    "cpu_burn": (0.0, 1.0),
    "memory_growth_mb_per_s": (0.0, float(MEMORY_CAP_MB)),
}
BOOLEAN_FAULTS = ("unhealthy", "not_ready")
FAULT_NAMES = tuple(f.name for f in dataclasses.fields(Faults))


def merge_faults(current: Faults, changes: Mapping[str, Any]) -> Faults:
    """Return `current` with `changes` applied; raise FaultError naming the first bad field."""
    values: dict[str, Any] = {}
    for name, value in changes.items():
        if name not in FAULT_NAMES:
            raise FaultError(f"unknown fault {name!r}; known faults: {', '.join(FAULT_NAMES)}")
        if name in BOOLEAN_FAULTS:
            if not isinstance(value, bool):
                raise FaultError(f"fault {name!r} must be true or false, got {value!r}")
            values[name] = value
            continue
        low, high = NUMERIC_LIMITS[name]
        # bool is an int in Python; `true` is not a number here.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise FaultError(f"fault {name!r} must be a number in [{low:g}, {high:g}], got {value!r}")
        if not low <= value <= high:  # also refuses NaN
            raise FaultError(f"fault {name!r} must be in [{low:g}, {high:g}], got {value!r}")
        values[name] = float(value)
    return dataclasses.replace(current, **values)


def parse_fault_flag(text: str) -> tuple[str, Any]:
    """Parse one `--fault NAME=VALUE` flag into a (name, typed value) pair (not yet range-checked)."""
    name, sep, raw = text.partition("=")
    name, raw = name.strip(), raw.strip()
    if not sep or not name or not raw:
        raise FaultError(f"--fault {text!r}: expected NAME=VALUE, e.g. --fault latency_ms=200")
    if name in BOOLEAN_FAULTS:
        lowered = raw.lower()
        if lowered in ("true", "1", "yes", "on"):
            return name, True
        if lowered in ("false", "0", "no", "off"):
            return name, False
        raise FaultError(f"--fault {text!r}: {name} must be true or false")
    if name in NUMERIC_LIMITS:
        try:
            return name, float(raw)
        except ValueError:
            raise FaultError(f"--fault {text!r}: {name} must be a number") from None
    raise FaultError(f"--fault {text!r}: unknown fault {name!r}; known faults: {', '.join(FAULT_NAMES)}")


class _CpuBurner(threading.Thread):
    """Asks for `fraction` of one core in 100 ms periods until stopped: busy (running, or
    runnable and waiting for a core) for `fraction` of each period, asleep for the rest.

    The work is SHA-256 over 64 KiB blocks: hashlib releases the GIL for large buffers, so the
    burn shows in the process's CPU figure without starving the event loop. On a busy machine
    the thread gets less than it asks for; the workload's CPU figure counts the time it waits
    for a core too (rpops.workload.metrics), so the fault reads the same however busy the
    machine is.
    """

    PERIOD_S = 0.1
    _BLOCK = b"\x5a" * 65536

    def __init__(self, fraction: float) -> None:
        super().__init__(name="fault-cpu-burn", daemon=True)
        self.fraction = fraction
        self._stop_event = threading.Event()

    def run(self) -> None:
        digest = hashlib.sha256()
        while not self._stop_event.is_set():
            start = time.perf_counter()
            busy_until = start + self.fraction * self.PERIOD_S
            while time.perf_counter() < busy_until:
                digest.update(self._BLOCK)
            idle = self.PERIOD_S - (time.perf_counter() - start)
            if idle > 0:
                self._stop_event.wait(idle)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=2.0)


class _MemoryGrower(threading.Thread):
    """Allocates and holds `rate_mb_per_s` of touched anonymous memory, up to MEMORY_CAP_MB.

    Anonymous mmaps (not Python objects) so that releasing them returns the pages to the OS
    at once, whatever the allocator's thresholds.
    """

    TICK_S = 0.1

    def __init__(self, rate_mb_per_s: float) -> None:
        super().__init__(name="fault-memory-growth", daemon=True)
        self.rate_mb_per_s = rate_mb_per_s
        self._stop_event = threading.Event()
        self._lock = threading.Lock()
        self._blocks: list[mmap.mmap] = []
        self._held = 0
        self._owed = 0.0  # fractional bytes carried to the next tick

    @property
    def held_mb(self) -> float:
        return self._held / 2**20

    def run(self) -> None:
        cap = MEMORY_CAP_MB * 2**20
        page = mmap.PAGESIZE
        last = time.monotonic()
        while not self._stop_event.wait(self.TICK_S):
            now = time.monotonic()
            self._owed += self.rate_mb_per_s * 2**20 * (now - last)
            last = now
            size = min(int(self._owed) // page * page, cap - self._held)
            if size <= 0:
                continue
            block = mmap.mmap(-1, size)
            for offset in range(0, size, page):  # touch every page so it counts in RSS
                block[offset] = 1
            with self._lock:
                if self._stop_event.is_set():
                    block.close()
                    return
                self._blocks.append(block)
                self._held += size
            self._owed -= size
            if self._held >= cap:
                self._owed = 0.0

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=2.0)
        with self._lock:
            for block in self._blocks:
                block.close()
            self._blocks.clear()
            self._held = 0


class FaultEffects:
    """Applies a fault set's background effects (CPU burn, memory growth) to this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._burner: _CpuBurner | None = None
        self._grower: _MemoryGrower | None = None

    def apply(self, faults: Faults) -> None:
        with self._lock:
            self._burner = self._adjust_burner(faults.cpu_burn)
            self._grower = self._adjust_grower(faults.memory_growth_mb_per_s)

    def _adjust_burner(self, fraction: float) -> _CpuBurner | None:
        if fraction <= 0:
            if self._burner is not None:
                self._burner.stop()
            return None
        if self._burner is not None:
            self._burner.fraction = fraction
            return self._burner
        burner = _CpuBurner(fraction)
        burner.start()
        log.info("cpu burn started at %.0f%% of one core", fraction * 100)
        return burner

    def _adjust_grower(self, rate: float) -> _MemoryGrower | None:
        # A rate of zero is no fault: the held memory is released.
        if rate <= 0:
            if self._grower is not None:
                self._grower.stop()
                log.info("memory growth stopped; held memory released")
            return None
        if self._grower is not None:
            self._grower.rate_mb_per_s = rate
            return self._grower
        grower = _MemoryGrower(rate)
        grower.start()
        log.info("memory growth started at %g MB/s (cap %d MB)", rate, MEMORY_CAP_MB)
        return grower

    def status(self) -> dict[str, Any]:
        grower = self._grower
        return {
            "cpu_burn_active": self._burner is not None,
            "memory_held_mb": round(grower.held_mb, 1) if grower is not None else 0.0,
            "memory_cap_mb": MEMORY_CAP_MB,
        }

    def close(self) -> None:
        self.apply(Faults())
