"""Observe: every target probed concurrently (one pooled prober), the PromQL queries alongside, and
with an alert its evidence; results are typed values."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from rpops.alerting import evidence as ev
from rpops.clients.probe import Prober, ProbeResult
from rpops.clients.prometheus import AsyncPrometheus, Outcome, QueryResult
from rpops.core.errors import Unreachable, UsageError
from rpops.core.io import progress
from rpops.steps.health.decide import Target, TargetProbe
from rpops.steps.health.settings import Plan

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Observation:
    probes: tuple[TargetProbe, ...]
    prometheus: dict[str, QueryResult] | None
    started_at: float  # unix time
    duration_ms: float


async def health_chain(prober: Prober, target: Target,
                       samples: int) -> tuple[ProbeResult, list[ProbeResult]]:
    """GET /health, then `samples` sequential GET /health on the same kept-alive connection.

    Sequential so that the samples measure the service, not the prober's own concurrency.
    """
    health = await prober.get(f"{target.url}/health")
    taken: list[ProbeResult] = []
    if health.answered:  # an unreachable or timed-out target would only repeat its failure
        for _ in range(samples):
            sample = await prober.get(f"{target.url}/health")
            taken.append(sample)
            if not sample.answered:
                break
    return health, taken


async def side_chain(prober: Prober, target: Target,
                     status_path: str) -> tuple[ProbeResult, ProbeResult | None]:
    """GET /ready, then the status endpoint (alongside the health chain, on a second connection)."""
    ready = await prober.get(f"{target.url}/ready")
    if not status_path or not ready.answered:
        return ready, None
    return ready, await prober.get(f"{target.url}{status_path}")


async def observe_targets(prober: Prober, targets: tuple[Target, ...], samples: int,
                          status_path: str) -> list[TargetProbe]:
    """Every target at once. The long health chains all start before the short side chains, so
    the burst of first connections delays the critical path as little as possible."""
    health_tasks = [asyncio.ensure_future(health_chain(prober, t, samples)) for t in targets]
    side_tasks = [asyncio.ensure_future(side_chain(prober, t, status_path)) for t in targets]
    done = 0

    async def one(target: Target, health_task: asyncio.Future[Any],
                  side_task: asyncio.Future[Any]) -> TargetProbe:
        nonlocal done
        (health, taken), (ready, status) = await health_task, await side_task
        done += 1
        progress(done, len(targets))
        return TargetProbe(target=target, health=health, ready=ready if ready.answered else None,
                           status=status, samples=tuple(taken))

    return list(await asyncio.gather(*(one(t, h, s) for t, h, s in zip(targets, health_tasks, side_tasks,
                                                                        strict=True))))


async def observe_prometheus(url: str, queries: dict[str, str], timeout: float,
                             retries: int) -> dict[str, QueryResult]:
    async with AsyncPrometheus(url, timeout=timeout, retries=retries) as prom:
        names = list(queries)
        results = await asyncio.gather(*(prom.query(queries[n]) for n in names))
    return dict(zip(names, results, strict=True))


async def observe(p: Plan) -> Observation:
    s = p.settings
    started, clock = time.time(), time.perf_counter()
    concurrency = max(64, 2 * len(p.targets))  # two chains per target
    async with Prober(timeout=s.timeout, retries=s.retries, max_concurrency=concurrency) as prober:
        targets = observe_targets(prober, p.targets, s.samples, s.status_path)
        if p.prometheus:
            probes, prom = await asyncio.gather(
                targets, observe_prometheus(p.prometheus, p.queries, s.prometheus_timeout, s.retries))
        else:
            probes, prom = await targets, None
    return Observation(probes=tuple(probes), prometheus=prom, started_at=started,
                       duration_ms=(time.perf_counter() - clock) * 1000)


def prometheus_values(p: Plan, results: dict[str, QueryResult] | None) -> dict[str, float | None] | None:
    """Each query's value, or None; exit 3 if Prometheus stayed unreachable, 2 if it refused a query."""
    if results is None:
        return None
    values: dict[str, float | None] = {}
    for name, result in results.items():
        if result.outcome is Outcome.UNREACHABLE:
            raise Unreachable(f"--prometheus {p.prometheus}: unreachable after {result.attempts} attempts "
                              f"({result.error}); check the URL and that Prometheus runs")
        if result.outcome is Outcome.ERROR and result.error_type == "bad_data":
            raise UsageError(f"{p.query_sources[name]}: Prometheus refused the query {result.query!r}: "
                             f"{result.error}; fix the PromQL")
        if not result.ok:
            log.warning("prometheus %s: %s %s", name, result.outcome.value, result.error)
        values[name] = result.max_value()
    return values


async def read_evidence(p: Plan) -> ev.Evidence:
    """The alert's evidence through this step's own prober (onset, or latest until it clears)."""
    s = p.settings
    assert p.prometheus is not None
    async with Prober(timeout=s.prometheus_timeout, retries=s.retries) as prober:
        if s.alert_reading == ev.ONSET:
            return await ev.measure_async(prober, p.prometheus, p.alert, p.alert_labels, ev.ONSET)
        return await ev.wait_cleared_async(prober, p.prometheus, p.alert, p.alert_labels, s.alert_settle)
