"""Observe: the workload through the platform driver, and its per-resource readings.

Readings come from Prometheus (one instant query per resource of the policy), or from every
ready instance's GET /api/performance/status for the resources without a query or when no
Prometheus is given; with --alert, the alert's own rule over its own window. Predictive mode
adds the request-rate history (a range query). A live blue-green promotion lock on the service
is read too, so that the step leaves the replicas to the promotion.
"""

from __future__ import annotations

import math
import time
from typing import Any

import httpx

from rpops.alerting import catalog
from rpops.alerting.evidence import ONSET, Evidence, measure
from rpops.clients.prometheus import Prometheus
from rpops.clients.promql import check_result, instances_regex, render
from rpops.platform import resolve_workload
from rpops.platform.base import Instance, PlatformDriver, Workload, cpu_cores, memory_bytes
from rpops.platform.service_lock import read_lock
from rpops.steps.scale.decide import Observation
from rpops.steps.scale.reactive import Reading
from rpops.steps.scale.settings import Plan
from rpops.steps.scale.state import read_state


def observe(plan: Plan, driver: PlatformDriver) -> Observation:
    version, workload = resolve_workload(driver, plan.service, plan.version)
    instances = tuple(driver.instances(plan.service, version))
    caps = capacities(plan, workload)
    queries: dict[str, Any] = {}
    if plan.prometheus:
        readings, queries, leftover = prometheus_readings(plan, driver, version, instances, caps)
    else:
        readings, leftover = {}, [rp.name for rp in plan.policy.resources]
    if leftover:
        more, info = instance_readings(plan, instances, caps, leftover)
        readings.update(more)
        queries.update(info)
    evidence = None
    if plan.alert:
        evidence, reading = alert_reading(plan, caps)
        readings[reading.resource] = reading
    history: tuple[tuple[float, float], ...] = ()
    current_rps = None
    if plan.settings.mode == "predictive":
        history, info = rate_history(plan, driver, version, instances)
        queries.update(info)
        recent = [v for t, v in history if t >= plan.now - 2 * plan.step_s]
        current_rps = recent[-1] if recent else None
    return Observation(
        version=version,
        workload=workload,
        instances=instances,
        state=read_state(workload.annotations),
        readings=readings,
        queries=queries,
        history=history,
        current_rps=current_rps,
        evidence=evidence,
        promotion=promotion_in_progress(driver, plan.service, plan.now) if plan.alert else "",
    )


def capacities(plan: Plan, workload: Workload) -> dict[str, float]:
    """Per-replica value meaning 100% utilisation: from the workload's requests/limits when set."""
    out = {rp.name: rp.capacity for rp in plan.policy.resources}
    res = workload.resources
    if res.cpu_request:
        out["cpu"] = cpu_cores(res.cpu_request) * 100
    memory = res.memory_limit or res.memory_request
    if memory:
        out["memory"] = memory_bytes(memory) / 2**20
    if plan.replica_capacity_rps is not None:
        out["tasks"] = plan.replica_capacity_rps
    return out


def _status_answers(
    plan: Plan, ready: list[Instance]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Each ready instance's GET /api/performance/status body, and the instances that gave none."""
    answers: list[dict[str, Any]] = []
    failures: list[str] = []
    with httpx.Client(timeout=plan.settings.status_timeout, trust_env=False) as client:
        for inst in ready:
            try:
                response = client.get(f"{inst.url}/api/performance/status")
                body = response.json() if response.status_code == 200 else None
            except (httpx.HTTPError, ValueError) as exc:
                failures.append(f"{inst.name}: {type(exc).__name__}")
                continue
            if isinstance(body, dict):
                answers.append(body)
            else:
                failures.append(f"{inst.name}: HTTP {response.status_code}")
    return answers, failures


def instance_readings(
    plan: Plan, instances: tuple[Instance, ...], caps: dict[str, float], names: list[str]
) -> tuple[dict[str, Reading], dict[str, Any]]:
    """Average each resource's status field over the ready instances' /api/performance/status."""
    ready = [i for i in instances if i.ready]
    answers, failures = _status_answers(plan, ready)
    readings: dict[str, Reading] = {}
    source = f"instances: GET /api/performance/status ({len(answers)} of {len(ready)} ready answered)"
    for rp in plan.policy.resources:
        if rp.name not in names:
            continue
        values = [
            float(a[rp.status_field])
            for a in answers
            if isinstance(a.get(rp.status_field), int | float)
            and not isinstance(a.get(rp.status_field), bool)
        ]
        if not rp.status_field:
            readings[rp.name] = Reading(rp.name, None, caps[rp.name], source, "no status_field in the policy")
        elif not values:
            note = "no ready instance answered" if not answers else f"no instance reported {rp.status_field}"
            readings[rp.name] = Reading(rp.name, None, caps[rp.name], source, note)
        else:
            readings[rp.name] = Reading(rp.name, sum(values) / len(values), caps[rp.name], source)
    return readings, {"instances": {"ready": len(ready), "answered": len(answers), "failures": failures}}


def render_query(
    plan: Plan,
    template: str,
    label: str,
    window: str,
    driver: PlatformDriver,
    version: str,
    instances: tuple[Instance, ...],
) -> str:
    return render(
        template,
        label=label,
        selector=plan.selector,
        window=window,
        service=plan.service,
        version=version,
        namespace=str(getattr(driver, "namespace", "") or ""),
        instances=instances_regex([i.url for i in instances]),
    )


def prometheus_readings(
    plan: Plan, driver: PlatformDriver, version: str, instances: tuple[Instance, ...], caps: dict[str, float]
) -> tuple[dict[str, Reading], dict[str, Any], list[str]]:
    """Instant queries per resource; resources without a query are left to the instances."""
    assert plan.prometheus is not None
    readings: dict[str, Reading] = {}
    summaries: dict[str, Any] = {}
    leftover: list[str] = []
    with Prometheus(plan.prometheus, timeout=plan.settings.prometheus_timeout) as prom:
        for rp in plan.policy.resources:
            if not rp.query:
                leftover.append(rp.name)
                continue
            label = f"{plan.policy.source} resources.{rp.name}.query"
            query = render_query(plan, rp.query, label, plan.policy.rate_window, driver, version, instances)
            result = prom.query(query, at=plan.now)
            check_result(result, plan.prometheus, label)
            summaries[rp.name] = result.summary()
            values = [s.value for s in result.samples if math.isfinite(s.value)]
            source = f"prometheus: {query}"
            if result.ok and values:
                note = "" if len(values) == 1 else f"mean of {len(values)} series"
                readings[rp.name] = Reading(rp.name, sum(values) / len(values), caps[rp.name], source, note)
            else:
                why = {"empty": "Prometheus returned no series", "nan": "Prometheus returned NaN"}.get(
                    result.outcome.value, f"Prometheus answered {result.outcome.value}"
                )
                readings[rp.name] = Reading(rp.name, None, caps[rp.name], source, f"{why} for {query}")
    return readings, summaries, leftover


def rate_history(
    plan: Plan, driver: PlatformDriver, version: str, instances: tuple[Instance, ...]
) -> tuple[tuple[tuple[float, float], ...], dict[str, Any]]:
    """The request-rate history (summed over series per timestamp)."""
    assert plan.prometheus is not None
    pp = plan.policy.predictive
    label = f"{plan.policy.source} predictive.query"
    query = render_query(plan, pp.query, label, pp.rate_window, driver, version, instances)
    with Prometheus(plan.prometheus, timeout=max(plan.settings.prometheus_timeout, 30.0)) as prom:
        result = prom.query_range(query, start=plan.now - plan.history_s, end=plan.now, step=plan.step_s)
    check_result(result, plan.prometheus, label)
    totals: dict[float, float] = {}
    for series in result.series:
        for t, v in series.points:
            if math.isfinite(v):
                totals[t] = totals.get(t, 0.0) + v
    return tuple(sorted(totals.items())), {"history": result.summary()}


def alert_reading(plan: Plan, caps: dict[str, float]) -> tuple[Evidence, Reading]:
    """The alert's value over its window, as the resource's per-replica reading."""
    assert plan.prometheus is not None
    entry = catalog.alert(plan.alert)
    assert entry is not None and entry.resource is not None
    timeout = plan.settings.prometheus_timeout
    found = measure(plan.prometheus, plan.alert, plan.alert_labels, ONSET, timeout=timeout)
    source = f"alert {plan.alert}: {found.measured} (x {entry.resource_factor:g})"
    capacity = caps[entry.resource]
    if found.value is None:
        return found, Reading(entry.resource, None, capacity, source, f"no series: {found.summary}")
    return found, Reading(entry.resource, found.value * entry.resource_factor, capacity, source)


def promotion_in_progress(driver: PlatformDriver, service: str, now: float) -> str:
    """A live blue-green promotion's lock on the service, described; "" when there is none."""
    lock = read_lock(driver.annotations(service))
    if lock is None or lock.expires <= now:
        return ""
    until = time.strftime("%H:%M:%SZ", time.gmtime(lock.expires))
    return f"promotion in progress: {lock.owner} holds {service} until {until}"
