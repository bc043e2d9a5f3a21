"""Running an analysis: probe rounds and Prometheus queries on their schedules, judged as they
come in (analysis.Tracker), stopping at the first failed metric so that a rollback can start at
once. Before the switch the run ends when every metric has its count; after it, when the verify
window closes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from rpops.clients.probe import Prober
from rpops.clients.prometheus import AsyncPrometheus
from rpops.steps.bluegreen.analysis import (
    MetricSpec,
    Phase,
    Tracker,
    failed,
    judge,
    measure_query,
    no_data,
    render_query,
    worst,
)
from rpops.steps.bluegreen.probes import (
    Round,
    Target,
    builtin_values,
    probe_round,
    read_counters,
    served_delta,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnalysisConfig:
    stage: str  # pre | post
    specs: Sequence[MetricSpec]
    targets: Sequence[Target]
    instance_urls: Sequence[str]
    expect_version: str
    per_target: int
    window: float | None  # seconds (post); None: until every metric has its count (pre)
    prometheus: str | None
    placeholders: Mapping[str, str]
    timeout: float = 2.0
    max_response_ms: float = 1000.0


@dataclass
class AnalysisRun:
    phase: Phase
    metrics: list[dict[str, Any]]
    failures: list[str]
    rounds: list[Round] = field(default_factory=list)
    detected_at: float | None = None  # monotonic time the failure was decided
    started: float = 0.0
    ended: float = 0.0
    counters_start: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not failed(self.phase) and self.phase is not Phase.RUNNING

    def served(self) -> tuple[float, float]:
        total = errors = 0.0
        for r in self.rounds:
            if r.served is not None:
                total += r.served[0]
                errors += r.served[1]
        return total, errors

    def to_json(self) -> dict[str, Any]:
        probes = sum(r.requests for r in self.rounds)
        probe_errors = sum(r.errors for r in self.rounds)
        return {
            "phase": self.phase.value,
            "failures": self.failures,
            "metrics": self.metrics,
            "rounds": len(self.rounds),
            "probes": probes,
            "probe_errors": probe_errors,
            "seconds": round(self.ended - self.started, 3),
            "last_round": self.rounds[-1].to_json() if self.rounds else None,
        }


def _why(tracker: Tracker) -> list[str]:
    return [f"{r.name} {r.phase.value.lower()}: {r.message()}" for r in tracker.failures()]


class _Measuring:
    """One analysis run's measuring: a probe round for the built-in metrics (with green's counters
    after the switch), a query for each Prometheus metric, each judged into the tracker."""

    def __init__(self, config: AnalysisConfig, prober: Prober, tracker: Tracker) -> None:
        self.config = config
        self.prober = prober
        self.tracker = tracker
        self.clients: dict[str, AsyncPrometheus] = {}
        self.counters: dict[str, tuple[float, float]] = {}
        self.rounds: list[Round] = []

    def client(self, spec: MetricSpec) -> AsyncPrometheus:
        url = (spec.address or self.config.prometheus or "").rstrip("/")
        if url not in self.clients:
            self.clients[url] = AsyncPrometheus(url, prober=self.prober)
        return self.clients[url]

    async def read_counters(self) -> dict[str, tuple[float, float]]:
        self.counters = await read_counters(self.prober, self.config.instance_urls)
        return dict(self.counters)

    async def measure(self, due: list[MetricSpec], now: float) -> None:
        """Measure the metrics `due` (started at monotonic `now`) and record their measurements."""
        config = self.config
        builtins = [s for s in due if s.query is None]
        queries = [s for s in due if s.query is not None]
        jobs: list[Awaitable[Any]] = []
        if builtins:
            jobs.append(
                probe_round(
                    self.prober,
                    config.targets,
                    expect_version=config.expect_version,
                    per_target=config.per_target,
                    at=time.time(),
                    checks=config.stage == "pre",
                    max_response_ms=config.max_response_ms,
                )
            )
            if config.stage == "post":
                jobs.append(read_counters(self.prober, config.instance_urls))
        for spec in queries:
            jobs.append(self.client(spec).query(render_query(spec.query or "", config.placeholders)))
        results = await asyncio.gather(*jobs) if jobs else []
        at = time.time()
        if builtins:
            self.record_round(builtins, results[0], results[1] if config.stage == "post" else None, now, at)
        for spec, result in zip(queries, results[len(results) - len(queries) :], strict=True):
            self.tracker.record(spec, measure_query(spec, result, at), now)

    def record_round(
        self,
        builtins: list[MetricSpec],
        probe: Round,
        fresh: dict[str, tuple[float, float]] | None,
        now: float,
        at: float,
    ) -> None:
        if fresh is not None:  # after the switch: what green served since the last round
            probe = replace(probe, served=served_delta(self.counters, fresh))
            self.counters = {**self.counters, **fresh}
        self.rounds.append(probe)
        values = builtin_values(probe)
        for spec in builtins:
            value = values.get(spec.name)
            measurement = no_data(spec, "no answers", at) if value is None else judge(spec, value, at)
            self.tracker.record(spec, measurement, now)


async def run(config: AnalysisConfig, heartbeat: Callable[[], Awaitable[None]] | None = None) -> AnalysisRun:
    monotonic = time.monotonic
    start = monotonic()
    tracker = Tracker(config.specs, start)
    end = start + config.window if config.window is not None else None
    detected: float | None = None
    async with Prober(timeout=config.timeout, retries=0, max_concurrency=64) as prober:
        measuring = _Measuring(config, prober, tracker)
        counters_start = await measuring.read_counters() if config.stage == "post" else {}
        while True:
            now = monotonic()  # measurements start every interval: the next is due at now + interval
            await measuring.measure(tracker.due(now), now)
            if tracker.failures():
                detected = monotonic()
                break
            if tracker.phase() is not Phase.RUNNING:
                break
            now = monotonic()
            if end is not None and now >= end:
                tracker.terminate()
                break
            if heartbeat is not None:
                await heartbeat()
            wake = min((t for t in (tracker.next_time(), end) if t is not None), default=now)
            await asyncio.sleep(max(0.0, wake - monotonic()))
    failures = tracker.failures()
    phase = worst([r.phase for r in failures]) if failures else tracker.phase()
    return AnalysisRun(
        phase=phase,
        metrics=tracker.summary(),
        failures=_why(tracker),
        rounds=measuring.rounds,
        detected_at=detected,
        started=start,
        ended=monotonic(),
        counters_start=counters_start,
    )
