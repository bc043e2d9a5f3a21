"""What the workload measures about itself: request metrics and cached process figures.

psutil calls cost tens of microseconds; the hot path never makes one. A monitor thread
samples the process every `interval_s` and publishes an immutable `SystemSample` that request
handlers read for free.

CPU is what the process asks of the CPU: the time its threads ran plus the time they were
runnable but waited for a core (Linux schedstat), over the last CPU_WINDOW_S seconds, as
Prometheus reads a counter with `rate(...[3s])`. On a cluster a replica's CPU is reserved and
waiting is rare, so this is its usage; on a shared machine it is the usage the replica would
have with its core reserved. Either way a replica that needs a full core reads as a full
core, whatever else the machine runs, and the status endpoint, the gauge (and therefore the
alert) and the health check all read this one figure. Without schedstat (not Linux) it is the
CPU time alone.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import psutil
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, ProcessCollector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Recent latencies kept per route for the JSON summary (p50/p95/p99).
LATENCY_WINDOW = 2048
CPU_WINDOW_S = 3.0  # the CPU figure's window


# Probes, scrapes, status reads and fault injection: the platform's own traffic, not the load the
# service carries. request_rate (what `rpops scale` reads as concurrent tasks) leaves them out;
# the Prometheus counters count everything, by route.
OPERATIONS_ROUTES = frozenset(
    {"/ready", "/metrics", "/performance/metrics", "/api/performance/status", "/admin/faults"}
)

def cpu_demand_seconds(task_dir: str = "/proc/self/task") -> dict[int, float]:
    """Thread id -> seconds on a core plus seconds runnable waiting for one (Linux schedstat:
    `<ns on cpu> <ns waiting on a runqueue> <timeslices>`); {} where schedstat is missing."""
    out: dict[int, float] = {}
    try:
        tids = os.listdir(task_dir)
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"{task_dir}/{tid}/schedstat", encoding="ascii") as f:
                ran, waited, _ = f.read().split()
            out[int(tid)] = (int(ran) + int(waited)) / 1e9
        except (OSError, ValueError):
            continue  # a thread that just ended
    return out


@dataclass(frozen=True)
class SystemSample:
    at: float  # time.monotonic() of the sample
    cpu_percent: float  # this process, all threads, over CPU_WINDOW_S; may exceed 100 on several cores
    memory_mb: float  # resident set size
    request_rate: float  # requests per second since the previous sample, OPERATIONS_ROUTES left out
    requests_total: int  # of the same requests


class Monitor:
    """Samples this process's CPU and memory on a background thread."""

    def __init__(self, metrics: RequestMetrics, interval_s: float = 0.5) -> None:
        self.interval_s = interval_s
        self._metrics = metrics
        self._process = psutil.Process()
        self._stop_event = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="monitor", daemon=True)
        self._cpu_marks: deque[tuple[float, dict[int, float]]] = deque()
        self._cpu_marks.append((time.monotonic(), self._cpu_seconds()))
        self.sample = SystemSample(time.monotonic(), 0.0, self._rss_mb(), 0.0, 0)
        # The gauges read the latest sample when scraped: never older than the JSON figures.
        metrics.memory_mb.set_function(lambda: self.sample.memory_mb)
        metrics.cpu_percent.set_function(lambda: self.sample.cpu_percent)

    def _rss_mb(self) -> float:
        return float(self._process.memory_info().rss) / 2**20

    def _cpu_seconds(self) -> dict[int, float]:
        """Per thread: seconds run plus seconds waited for a core (or CPU time, see module doc)."""
        return cpu_demand_seconds() or {0: self._cpu_time()}

    def _cpu_time(self) -> float:
        times = self._process.cpu_times()
        return float(times.user + times.system)

    def _cpu_percent(self, now: float, cpu_s: dict[int, float]) -> float:
        """Percent of one core over the last CPU_WINDOW_S (less right after start)."""
        marks = self._cpu_marks
        marks.append((now, cpu_s))
        while len(marks) > 2 and now - marks[1][0] >= CPU_WINDOW_S:
            marks.popleft()
        wall = now - marks[0][0]
        before = marks[0][1]
        # A thread started inside the window counts whole; one that ended is no longer counted.
        spent = sum(max(0.0, total - before.get(tid, 0.0)) for tid, total in cpu_s.items())
        return spent / wall * 100 if wall > 0 else 0.0

    def start(self) -> None:
        # A fresh sample before serving, so /health is healthy from the first request.
        self.refresh()
        self._thread.start()

    def stop(self) -> None:
        self._stop_event.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)

    @property
    def active(self) -> bool:
        """True while the thread runs and its last sample is fresh."""
        fresh = time.monotonic() - self.sample.at < max(3 * self.interval_s, 2.0)
        return self._thread.is_alive() and fresh

    def _loop(self) -> None:
        while not self._stop_event.wait(self.interval_s):
            try:
                self.refresh()
            except psutil.Error:
                continue  # keep the last sample; `active` turns false if this persists

    def refresh(self) -> SystemSample:
        previous = self.sample
        now = time.monotonic()
        with self._process.oneshot():
            cpu = self._cpu_percent(now, self._cpu_seconds())
            memory_mb = self._rss_mb()
        total = self._metrics.served_total
        elapsed = now - previous.at
        rate = (total - previous.requests_total) / elapsed if elapsed > 0 else 0.0
        sample = SystemSample(now, cpu, memory_mb, rate, total)
        self.sample = sample  # one reference swap: readers see the old or the new sample, whole
        return sample


@dataclass(frozen=True)
class RouteSummary:
    count: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


def _percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending, non-empty list."""
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def summarise(count: int, latencies_s: list[float]) -> RouteSummary:
    if not latencies_s:
        return RouteSummary(count, 0.0, 0.0, 0.0, 0.0, 0.0)
    ordered = sorted(latencies_s)
    ms = 1000.0
    return RouteSummary(
        count=count,
        mean_ms=round(sum(ordered) / len(ordered) * ms, 3),
        p50_ms=round(_percentile(ordered, 0.50) * ms, 3),
        p95_ms=round(_percentile(ordered, 0.95) * ms, 3),
        p99_ms=round(_percentile(ordered, 0.99) * ms, 3),
        max_ms=round(ordered[-1] * ms, 3),
    )


class RequestMetrics:
    """Prometheus metrics in a registry of their own, plus a per-route latency window."""

    def __init__(self, version: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("research_platform_requests", "HTTP requests answered.",
                                ("route", "method", "status"), registry=r)
        self.duration = Histogram("research_platform_request_duration_seconds",
                                  "Time from request to the end of the response.", ("route",),
                                  buckets=LATENCY_BUCKETS, registry=r)
        self.memory_mb = Gauge("research_platform_memory_usage_mb", "Resident memory of the workload (MB).",
                               registry=r)
        self.cpu_percent = Gauge("research_platform_cpu_usage_percent",
                                 "CPU the workload process asks for, running or waiting for a core, "
                                 "over 3 s (percent of one core).", registry=r)
        self.blocked = Counter("research_platform_security_blocked_operations",
                               "Expressions refused by the safe evaluator.", registry=r)
        Info("research_platform", "The workload's version.", registry=r).info({"version": version})
        ProcessCollector(registry=r)
        self.requests_total = 0
        self.served_total = 0  # requests_total less OPERATIONS_ROUTES: the load request_rate reports
        self.blocked_total = 0
        # Label children cached: .labels() takes a lock and builds a key on every call.
        self._request_children: dict[tuple[str, str, int], Any] = {}
        self._duration_children: dict[str, Any] = {}
        self._windows: dict[str, deque[float]] = {}
        self._counts: dict[str, int] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests_total += 1
        if route not in OPERATIONS_ROUTES:
            self.served_total += 1
        key = (route, method, status)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(route, method, str(status))
        child.inc()
        hist = self._duration_children.get(route)
        if hist is None:
            hist = self._duration_children[route] = self.duration.labels(route)
            self._windows[route] = deque(maxlen=LATENCY_WINDOW)
            self._counts[route] = 0
        hist.observe(seconds)
        self._windows[route].append(seconds)
        self._counts[route] += 1

    def route_summaries(self) -> dict[str, RouteSummary]:
        return {route: summarise(self._counts[route], list(window))
                for route, window in sorted(self._windows.items())}

    def record_blocked(self) -> None:
        self.blocked_total += 1
        self.blocked.inc()
