"""What every benchmark shares: the machine's load while it measures, and one way to report a figure.

A figure is only worth its conditions. `LoadMonitor` samples /proc/stat twice a second and
subtracts the CPU time of the benchmark's own process tree, so it knows how much of the machine
*other* work took while the benchmark ran (the load average alone cannot tell the benchmark's own
processes from someone else's). `report()` prints the canonical line

    name: measured X unit vs baseline NAME Y unit -> ratio R (target T) PASS|FAIL|NOT JUDGED (load ...)

and, when `$RPOPS_BENCH_RESULTS` names a file (`python -m benchmarks` sets it), appends the
figure, its baseline, target, verdict, load and date to it as one JSON line. A wall-time figure
measured while other work held more than `MAX_OTHERS_SHARE` of the CPUs is printed but "not
judged": it would pass or fail by luck, so it neither passes nor fails the run.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Other work using more than this share of all CPUs makes a ratio meaningless (env override).
MAX_OTHERS_SHARE = float(os.environ.get("RPOPS_BENCH_MAX_OTHERS", "0.5"))
RESULTS_ENV = "RPOPS_BENCH_RESULTS"
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_totals() -> tuple[int, int] | None:
    """(busy, total) jiffies over all CPUs since boot; None where /proc/stat is missing."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already inside user/nice
    return total - idle, total


TAG_ENV = "RPOPS_BENCH_TAG"


class _Ours:
    """Which processes are the benchmark's: `root`'s live descendants, and every process whose
    environment carries the benchmark's tag (the platform's instances are started in their own
    session by CLI processes that exit, so they leave the process tree)."""

    def __init__(self, root: int, tag: str) -> None:
        self.root = root
        self.tag = f"{TAG_ENV}={tag}".encode()
        self._tagged: dict[tuple[int, str], bool] = {}

    def _has_tag(self, pid: int, start: str) -> bool:
        key = (pid, start)
        known = self._tagged.get(key)
        if known is None:
            try:
                with open(f"/proc/{pid}/environ", "rb") as fh:
                    known = self.tag in fh.read().split(b"\0")
            except OSError:
                known = False
            self._tagged[key] = known
        return known

    def ticks(self) -> int:
        """CPU jiffies of our processes, with what each reaped from its children."""
        parents: dict[int, int] = {}
        ticks: dict[int, int] = {}
        ours: set[int] = set()
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as fh:
                    raw = fh.read()
            except OSError:
                continue
            rest = raw[raw.rfind(")") + 2 :].split()
            pid = int(entry.name)
            parents[pid] = int(rest[1])
            ticks[pid] = sum(int(v) for v in rest[11:15])  # utime stime cutime cstime
            if self._has_tag(pid, rest[19]):
                ours.add(pid)
        children: dict[int, list[int]] = {}
        for pid, ppid in parents.items():
            children.setdefault(ppid, []).append(pid)
        stack = [self.root, *ours]
        seen: set[int] = set()
        while stack:
            pid = stack.pop()
            if pid in seen:
                continue
            seen.add(pid)
            stack.extend(children.get(pid, []))
        return sum(ticks.get(pid, 0) for pid in seen)


@dataclass
class Load:
    cores: int
    others_share: float | None  # share of all CPUs other work used while measuring (0..1)
    own_share: float | None
    loadavg_start: float
    loadavg_end: float
    seconds: float

    @property
    def too_busy(self) -> bool:
        return self.busier_than(MAX_OTHERS_SHARE)

    def busier_than(self, share: float) -> bool:
        return self.others_share is not None and self.others_share > share

    def describe(self) -> str:
        others = "n/a" if self.others_share is None else f"{self.others_share * 100:.0f}%"
        return (
            f"load: other work {others} of {self.cores} cores, load average "
            f"{self.loadavg_start:.1f}->{self.loadavg_end:.1f}"
        )


class LoadMonitor:
    """`with LoadMonitor() as mon: ...` then `mon.load()`; `root` is the process tree that is ours."""

    def __init__(self, root: int | None = None, interval: float = 0.5) -> None:
        self.root = root or os.getpid()
        # children started from here on carry the tag, wherever they end up in the process tree
        tag = os.environ.setdefault(TAG_ENV, f"{os.getpid()}-{time.time_ns()}")
        self._ours = _Ours(self.root, tag)
        self.interval = interval
        self._busy = self._total = self._own = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: tuple[int, int, int] | None = None
        self._started = 0.0
        self._ended: float | None = None
        self._loadavg_start = 0.0
        self._loadavg_end: float | None = None

    def _sample(self) -> None:
        totals = _cpu_totals()
        if totals is None:
            return
        own = self._ours.ticks()
        if self._last is not None:
            busy, total = totals[0] - self._last[0], totals[1] - self._last[1]
            self._busy += busy
            self._total += total
            self._own += min(max(own - self._last[2], 0), busy)
        self._last = (totals[0], totals[1], own)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> LoadMonitor:
        self._started = time.monotonic()
        self._loadavg_start = os.getloadavg()[0]
        self._sample()
        self._thread = threading.Thread(target=self._run, name="load-monitor", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        self._ended = time.monotonic()
        self._loadavg_end = os.getloadavg()[0]

    def load(self) -> Load:
        """So far (inside the block) or over the whole block (after it)."""
        if self._ended is None:
            self._sample()
        others = own = None
        if self._total > 0:
            others = max(0.0, (self._busy - self._own) / self._total)
            own = self._own / self._total
        end = self._loadavg_end if self._loadavg_end is not None else os.getloadavg()[0]
        return Load(
            cores=os.cpu_count() or 1,
            others_share=others,
            own_share=own,
            loadavg_start=self._loadavg_start,
            loadavg_end=end,
            seconds=(self._ended or time.monotonic()) - self._started,
        )


@dataclass
class Result:
    benchmark: str  # the script, e.g. bench_health
    name: str  # the figure, e.g. health_check_30_targets
    figure: float
    unit: str
    baseline: str  # what it is compared with
    baseline_value: float | None
    target: str  # e.g. "<= 1.3x"
    verdict: str  # PASS | FAIL | NOT JUDGED | INFO
    ratio: float | None = None
    load: dict[str, Any] = field(default_factory=dict)
    date: str = ""
    note: str = ""


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    text = f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return f"{text} {unit}".rstrip()


def report(
    benchmark: str,
    name: str,
    *,
    figure: float,
    unit: str,
    baseline: str,
    baseline_value: float | None,
    target: str,
    ok: bool | None,
    load: Load,
    ratio: float | None = None,
    load_sensitive: bool = True,
    max_others: float | None = None,
    note: str = "",
) -> bool:
    """Print the canonical line and record it; False only for a judged miss.

    `ok` None: a reference figure with no target. `load_sensitive`: a wall-time figure (a ratio of
    two timings, or a timing against a budget) that other work can push either way, so a busy
    machine voids the verdict instead of deciding it; counts, recall and CPU seconds are judged
    whatever the load. `max_others` lowers the share of the CPUs other work may take for this
    figure (e.g. when the two sides of a ratio use different numbers of cores).
    """
    if ok is None:
        verdict = "INFO"
    elif load_sensitive and load.busier_than(MAX_OTHERS_SHARE if max_others is None else max_others):
        verdict = "NOT JUDGED"
    else:
        verdict = "PASS" if ok else "FAIL"
    shown_ratio = f"ratio {ratio:.2f}" if ratio is not None else f"{_fmt(figure, unit)}"
    line = (
        f"{name}: measured {_fmt(figure, unit)} vs baseline {baseline} {_fmt(baseline_value, unit)} "
        f"-> {shown_ratio} (target {target}) {verdict}"
    )
    if verdict == "NOT JUDGED":
        line += f": machine too busy, {load.describe()}"
    else:
        line += f" ({load.describe()})"
    if note:
        line += f"; {note}"
    print(line, flush=True)
    path = os.environ.get(RESULTS_ENV)
    if path:
        record = Result(
            benchmark=benchmark,
            name=name,
            figure=round(figure, 6),
            unit=unit,
            baseline=baseline,
            baseline_value=None if baseline_value is None else round(baseline_value, 6),
            target=target,
            verdict=verdict,
            ratio=None if ratio is None else round(ratio, 4),
            load={
                "others_share": None if load.others_share is None else round(load.others_share, 3),
                "loadavg_start": round(load.loadavg_start, 2),
                "loadavg_end": round(load.loadavg_end, 2),
                "cores": load.cores,
            },
            date=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            note=note,
        )
        with Path(path).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(asdict(record)) + "\n")
    return verdict != "FAIL"
