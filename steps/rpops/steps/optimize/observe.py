"""Observe: the workload's current requests/limits (platform driver), and per-pod CPU and memory
series over the history window (Prometheus range queries; cAdvisor metrics on Kubernetes, the
processes' own metrics on the local platform). Each query must return one series per pod."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from rpops.clients.prometheus import Prometheus, QueryResult
from rpops.clients.promql import check_result, instances_regex, render
from rpops.platform import resolve_workload
from rpops.platform.base import Instance, PlatformDriver, Workload
from rpops.steps.optimize.decide import PodSeries
from rpops.steps.optimize.settings import Plan


@dataclass(frozen=True)
class Observation:
    version: str
    workload: Workload
    instances: tuple[Instance, ...]
    cpu: tuple[PodSeries, ...]
    memory: tuple[PodSeries, ...]
    queries: dict[str, Any]


def pod_series(result: QueryResult) -> tuple[PodSeries, ...]:
    """One PodSeries per series (named by its pod or instance label), finite points only."""
    out = []
    for series in result.series:
        labels = dict(series.labels)
        name = labels.get("pod") or labels.get("instance") or json.dumps(labels, sort_keys=True)
        points = tuple((t, v) for t, v in series.points if math.isfinite(v))
        if points:
            out.append(PodSeries(name, points))
    return tuple(out)


def observe(p: Plan, driver: PlatformDriver) -> Observation:
    version, workload = resolve_workload(driver, p.service, p.version)
    instances = tuple(driver.instances(p.service, version))
    start = p.now - p.settings.history_hours * 3600
    found: dict[str, tuple[PodSeries, ...]] = {}
    summaries: dict[str, Any] = {}
    with Prometheus(p.prometheus, timeout=p.settings.prometheus_timeout) as prom:
        for key in ("cpu", "memory"):
            label = f"{p.query_sources[key]} {key} query"
            query = render(
                p.queries[key],
                label=label,
                selector=p.selector,
                window=p.settings.rate_window,
                service=p.service,
                version=version,
                namespace=str(getattr(driver, "namespace", "") or ""),
                instances=instances_regex([i.url for i in instances]),
                step=f"{p.step_s:g}s",
            )
            result = prom.query_range(query, start=start, end=p.now, step=p.step_s)
            check_result(result, p.prometheus, label)
            found[key] = pod_series(result)
            summaries[key] = {**result.summary(), "source": p.query_sources[key]}
    return Observation(
        version=version,
        workload=workload,
        instances=instances,
        cpu=found["cpu"],
        memory=found["memory"],
        queries=summaries,
    )
