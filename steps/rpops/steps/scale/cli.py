"""`rpops scale`: scale a service's version reactively, or ahead of a forecast, within bounds.

observe: the workload (replicas, resources, HPA bounds, annotations) through the platform
         driver; per-resource figures from Prometheus (instant queries), or from every
         instance's GET /api/performance/status when no Prometheus is given; in predictive
         mode the request-rate history (a range query).
decide:  `rpops.steps.scale.reactive.decide_reactive` / `rpops.steps.scale.predictive.decide_predictive`
         (pure; `now` is passed in, `--now` sets it for tests and replays).
act:     driver.scale, or with an HPA driver.set_autoscaling (minReplicas only, never replicas);
         annotations record the last scaling and the recommendations; outputs `scaled`,
         `replicas`, `decision`, `direction`, `reason` and report.json.

Every input is checked before the first platform call: bad input exits 2 having changed
nothing; "no decision" (no metrics, not enough history) exits 0 with the reason.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from rpops.core.errors import UsageError
from rpops.core.settings import add_arguments, from_args, setting

if TYPE_CHECKING:
    from rpops.alerting.evidence import Evidence
    from rpops.platform.base import Instance, PlatformDriver, Workload
    from rpops.steps.scale.policy import Policy
    from rpops.steps.scale.reactive import Bounds, Decision, Reading
    from rpops.steps.scale.state import ScaleState

log = logging.getLogger(__name__)

MAX_RANGE_POINTS = 11000  # Prometheus refuses range queries of more points per series


@dataclass(frozen=True)
class ScaleSettings:
    service: str = setting(help="Service to scale, e.g. research-platform")
    version: str = setting("", help="Version to scale; empty: the version the service's active route selects")
    mode: str = setting(
        "reactive",
        help="reactive: from current utilisation (the HPA formula); predictive: "
        "pre-scale ahead of a request-rate forecast",
        choices=("reactive", "predictive"),
    )
    prometheus: str = setting(
        "",
        help="Prometheus base URL; empty: read each instance's "
        "/api/performance/status instead (reactive mode only)",
    )
    policy: str = setting(
        "", help="YAML policy file merged over the built-in policy (rpops/steps/scale/scaling-policy.yaml)"
    )
    min_replicas: str = setting("", help="Lowest replica count (overrides the policy's min_replicas)")
    max_replicas: str = setting("", help="Highest replica count (overrides the policy's max_replicas)")
    selector: str = setting(
        "",
        help="PromQL label matchers of the version's series ($selector in queries); "
        'default by platform: local instance=~"$instances", kubernetes '
        'namespace="$namespace",pod=~"$service-$version-.*"',
    )
    look_ahead_minutes: str = setting("", help="Predictive: minutes ahead to cover (policy default 30)")
    history_days: str = setting("", help="Predictive: days of request-rate history to fit (policy default 7)")
    min_history_hours: str = setting("", help="Predictive: least history to decide on (policy default 24)")
    step_seconds: str = setting(
        "", help="Predictive: resolution of the history, seconds (policy default 300)"
    )
    replica_capacity_rps: str = setting(
        "",
        help="Requests per second one replica serves at its target; "
        "empty: measured from the current rate and utilisation",
    )
    now: str = setting("", help="Decide as of this ISO 8601 time (tests, replays); empty: the clock")
    prometheus_timeout: float = setting(5.0, help="Seconds allowed for each Prometheus query")
    status_timeout: float = setting(2.0, help="Seconds allowed for each instance's status request")
    alert: str = setting(
        "",
        help="Name of the alert that started this run (an alert-driven recovery): the resource it "
        "measures is read from the alert's own rule in --prometheus, over its own window, as the "
        "recovery's health check read it; exit 1 when the alert holds and nothing can be done",
    )
    alert_labels: str = setting("{}", help="The alert's labels as a JSON object (with --alert)")


SWITCHES = {
    "dry_run": "Print and report the decision; change nothing (no scaling, no annotations)",
    "apply_forecast": "Predictive: pre-scale to the forecast (default: report the forecast only)",
}


def configure(parser: argparse.ArgumentParser) -> None:
    from rpops.core.switches import add_switch
    from rpops.platform import add_namespace_argument

    add_arguments(parser, ScaleSettings)
    add_namespace_argument(parser)  # the driver's namespace
    for name, help_text in SWITCHES.items():
        add_switch(parser, name, help_text)
    parser.epilog = (
        "Outputs: scaled (true|false), replicas, decision (scale-up|scale-down|hold|no-decision), "
        "direction (up|down|none), reason, report.json. Exit 0 with a decision or 'no decision'; "
        "with --alert, 1 when the alert's condition holds and the step can do nothing about it "
        "(at max replicas, in cooldown); a promotion in progress holds with exit 0; "
        "2 on bad input (nothing changed); 3 when Prometheus or the platform stays unreachable."
    )


# --- input -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    settings: ScaleSettings
    service: str
    version: str | None
    policy: Policy
    bounds: Bounds
    prometheus: str | None
    now: float
    dry_run: bool
    apply_forecast: bool
    platform: str
    look_ahead_s: float
    history_s: float
    min_history_s: float
    step_s: float
    replica_capacity_rps: float | None
    alert: str = ""
    alert_labels: dict[str, str] = field(default_factory=dict)


def _number(text: str, flag: str, low: float, high: float) -> float | None:
    if not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{flag} {text!r} is not a number; e.g. {flag} {low if low > 0 else 1:g}") from None
    if math.isnan(value) or not low <= value <= high or value == 0 and low == 0:
        raise UsageError(f"{flag} {text!r} is out of range: use a number greater than 0 and at most {high:g}")
    return value


def _replicas_flag(text: str, flag: str) -> int | None:
    from rpops.steps.scale.policy import MAX_REPLICAS_LIMIT

    if not text.strip():
        return None
    try:
        value = int(text.strip())
    except ValueError:
        raise UsageError(f"{flag} {text!r} is not a whole number; e.g. {flag} 3") from None
    if value < 1:
        raise UsageError(f"{flag} {value} is too low: use at least 1 (scaling to zero is not supported)")
    if value > MAX_REPLICAS_LIMIT:
        raise UsageError(f"{flag} {value} is above the maximum of {MAX_REPLICAS_LIMIT} replicas")
    return value


def parse_now(text: str) -> float:
    from rpops.steps.scale.state import parse_time

    if not text.strip():
        return time.time()
    try:
        return parse_time(text)
    except ValueError:
        raise UsageError(f"--now {text!r} is not an ISO 8601 time; write e.g. 2026-05-04T09:30:00Z") from None


def plan(s: ScaleSettings, *, dry_run: bool = False, apply_forecast: bool = False) -> Plan:
    """Check every input; raise UsageError before anything is read or changed."""
    from rpops.platform.base import check_service, check_version
    from rpops.steps.health.cli import check_url
    from rpops.steps.scale.policy import load_policy
    from rpops.steps.scale.reactive import Bounds

    service = check_service(s.service.strip())
    version = check_version(service, s.version.strip()) if s.version.strip() else None
    prometheus = check_url(s.prometheus.strip(), "--prometheus") if s.prometheus.strip() else None
    policy = load_policy(s.policy.strip() or None)
    min_r = _replicas_flag(s.min_replicas, "--min-replicas")
    max_r = _replicas_flag(s.max_replicas, "--max-replicas")
    low = min_r if min_r is not None else policy.min_replicas
    high = max_r if max_r is not None else policy.max_replicas
    if low > high:
        low_src = "--min-replicas" if min_r is not None else f"the policy's min_replicas ({policy.source})"
        high_src = "--max-replicas" if max_r is not None else f"the policy's max_replicas ({policy.source})"
        raise UsageError(
            f"min replicas {low} ({low_src}) is greater than max replicas {high} ({high_src}); "
            "make the minimum at most the maximum"
        )
    if s.mode == "predictive" and prometheus is None:
        raise UsageError(
            "--mode predictive needs --prometheus URL: the forecast is fit to the request-rate "
            "history Prometheus keeps"
        )
    for value, flag in (
        (s.prometheus_timeout, "--prometheus-timeout"),
        (s.status_timeout, "--status-timeout"),
    ):
        if math.isnan(value) or not 0 < value <= 600:
            raise UsageError(f"{flag} {value:g} is out of range: use seconds in (0, 600]")
    pp = policy.predictive
    look_ahead = _number(s.look_ahead_minutes, "--look-ahead-minutes", 0, 24 * 60) or pp.look_ahead_minutes
    history_days = _number(s.history_days, "--history-days", 0, 60) or pp.history_days
    min_hours = _number(s.min_history_hours, "--min-history-hours", 0, 24 * 60)
    min_hours = pp.min_history_hours if min_hours is None else min_hours
    step = _number(s.step_seconds, "--step-seconds", 0, 3600) or pp.step_seconds
    if min_hours > history_days * 24:
        raise UsageError(
            f"--min-history-hours {min_hours:g} exceeds the history queried ({history_days:g} days); "
            "lower it or raise --history-days"
        )
    if s.mode == "predictive" and history_days * 86400 / step > MAX_RANGE_POINTS:
        raise UsageError(
            f"{history_days:g} days at a {step:g}s step is more than {MAX_RANGE_POINTS} points per "
            f"series; raise --step-seconds to at least {math.ceil(history_days * 86400 / MAX_RANGE_POINTS)}"
        )
    capacity = _number(s.replica_capacity_rps, "--replica-capacity-rps", 0, 1e9)
    alert, alert_labels = _alert_inputs(s, prometheus, policy)
    from rpops.platform import DRIVERS

    platform = (os.environ.get("RPOPS_PLATFORM") or "local").strip().lower()
    if platform not in DRIVERS:
        raise UsageError(
            f"platform {platform!r} is unknown: set RPOPS_PLATFORM to one of {', '.join(DRIVERS)}"
        )
    return Plan(
        settings=s,
        service=service,
        version=version,
        policy=policy,
        bounds=Bounds(low, high),
        prometheus=prometheus,
        now=parse_now(s.now),
        dry_run=dry_run,
        apply_forecast=apply_forecast,
        platform=platform,
        look_ahead_s=look_ahead * 60,
        history_s=history_days * 86400,
        min_history_s=min_hours * 3600,
        step_s=step,
        replica_capacity_rps=capacity,
        alert=alert,
        alert_labels=alert_labels,
    )


def _alert_inputs(s: ScaleSettings, prometheus: str | None, policy: Policy) -> tuple[str, dict[str, str]]:
    from rpops.alerting import catalog
    from rpops.alerting.evidence import parse_labels

    labels = parse_labels(s.alert_labels)
    alert = s.alert.strip()
    if not alert:
        return "", labels
    entry = catalog.alert(alert)
    if entry is None or entry.resource is None:
        known = ", ".join(a.name for a in catalog.ALERTS if a.resource)
        raise UsageError(f"--alert {alert}: not an alert on a scaling resource; those are: {known}")
    if s.mode != "reactive" or prometheus is None:
        raise UsageError(f"--alert {alert}: needs --mode reactive and --prometheus URL, where the alert's "
                         "rule and its evidence are read")
    if entry.resource not in {rp.name for rp in policy.resources}:
        raise UsageError(f"--alert {alert}: the policy ({policy.source}) has no resource {entry.resource!r}")
    return alert, labels


# --- observe ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Observation:
    version: str
    workload: Workload
    instances: tuple[Instance, ...]
    state: ScaleState
    readings: dict[str, Reading]
    queries: dict[str, Any] = field(default_factory=dict)  # name -> summary of the query run
    history: tuple[tuple[float, float], ...] = ()  # predictive: request-rate history
    current_rps: float | None = None
    evidence: Evidence | None = None  # alert-driven: the alert's own reading
    promotion: str = ""  # a blue-green promotion holding the service, described; "" when none


def resolve_workload(driver: PlatformDriver, service: str, version: str | None) -> tuple[str, Workload]:
    """The version to act on (default: the active route's) and its workload; unknown -> exit 2."""
    from rpops.platform.base import NotFound

    try:
        if version is None:
            version = driver.routes(service).active
            if version is None:
                raise UsageError(
                    f"service {service} has no active route on the {driver.name} platform; pass --version V"
                )
        return version, driver.workload(service, version)
    except NotFound as exc:
        raise UsageError(
            f"{service}/{version or '(active)'} is not a workload on the {driver.name} platform "
            f"({exc}); check --service and --version"
        ) from None


def capacities(plan: Plan, workload: Workload) -> dict[str, float]:
    """Per-replica value meaning 100% utilisation: from the workload's requests/limits when set."""
    from rpops.platform.base import cpu_cores, memory_bytes

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


def instance_readings(
    plan: Plan, instances: tuple[Instance, ...], caps: dict[str, float], names: list[str]
) -> tuple[dict[str, Reading], dict[str, Any]]:
    """Average each resource's status field over the ready instances' /api/performance/status."""
    import httpx

    from rpops.steps.scale.reactive import Reading

    ready = [i for i in instances if i.ready]
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
    from rpops.clients.promql import instances_regex, render
    from rpops.platform import driver_class

    selector = plan.settings.selector.strip() or driver_class(plan.platform).series.selector
    return render(
        template,
        label=label,
        selector=selector,
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
    from rpops.clients.prometheus import Prometheus
    from rpops.clients.promql import check_result
    from rpops.steps.scale.reactive import Reading

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
    from rpops.clients.prometheus import Prometheus
    from rpops.clients.promql import check_result

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


def observe(plan: Plan, driver: PlatformDriver) -> Observation:
    from rpops.steps.scale.state import read_state

    version, workload = resolve_workload(driver, plan.service, plan.version)
    instances = tuple(driver.instances(plan.service, version))
    caps = capacities(plan, workload)
    names = [rp.name for rp in plan.policy.resources]
    queries: dict[str, Any] = {}
    if plan.prometheus:
        readings, queries, leftover = prometheus_readings(plan, driver, version, instances, caps)
    else:
        readings, leftover = {}, names
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


def alert_reading(plan: Plan, caps: dict[str, float]) -> tuple[Evidence, Reading]:
    """The alert's value over its window, as the resource's per-replica reading."""
    from rpops.alerting import catalog
    from rpops.alerting.evidence import ONSET, measure
    from rpops.steps.scale.reactive import Reading

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
    from rpops.steps.bluegreen.model import record_from

    record = record_from(driver.annotations(service))
    lock = record.lock
    if lock is None or lock.expires <= now:
        return ""
    until = time.strftime("%H:%M:%SZ", time.gmtime(lock.expires))
    return f"promotion in progress: {lock.owner} holds {service} until {until}"


# --- decide ----------------------------------------------------------------------------------


def decide(plan: Plan, obs: Observation) -> Decision:
    from rpops.steps.scale.reactive import decide_reactive, evaluate

    w = obs.workload
    if obs.promotion:
        from rpops.steps.scale.reactive import no_decision

        return no_decision("reactive", w.replicas, f"{obs.promotion}; the promotion sets the replicas")
    if plan.settings.mode == "reactive":
        return decide_reactive(
            current=w.replicas,
            readings=obs.readings,
            policy=plan.policy,
            bounds=plan.bounds,
            state=obs.state,
            hpa=w.autoscaling,
            now=plan.now,
        )
    from rpops.steps.scale.forecast import NotEnoughHistory, fit
    from rpops.steps.scale.predictive import Capacity, decide_predictive, measure_capacity, summarise_forecast

    forecast, why = None, ""
    try:
        model = fit(obs.history, plan.step_s, min_span_s=plan.min_history_s)
        forecast = summarise_forecast(model.forecast(plan.now, plan.look_ahead_s), model.describe())
    except NotEnoughHistory as exc:
        why = f"not enough history ({exc}) of the request rate"
    if plan.replica_capacity_rps is not None:
        capacity = Capacity(plan.replica_capacity_rps, "--replica-capacity-rps")
    else:
        results = [
            evaluate(obs.readings.get(rp.name), rp, max(1, w.replicas), plan.policy.tolerance)
            for rp in plan.policy.resources
        ]
        capacity = measure_capacity(obs.current_rps, w.ready_replicas or w.replicas, results)
    return decide_predictive(
        current=w.replicas,
        hpa=w.autoscaling,
        bounds=plan.bounds,
        state=obs.state,
        forecast=forecast,
        no_forecast_reason=why,
        capacity=capacity,
        apply=plan.apply_forecast,
        now=plan.now,
    )


# --- act -------------------------------------------------------------------------------------


def act(plan: Plan, driver: PlatformDriver, obs: Observation, decision: Decision) -> list[str]:
    """Apply the decision (unless --dry-run) and record it; returns what was done."""
    from rpops.steps.scale.reactive import SCALE, SET_MIN
    from rpops.steps.scale.state import history_annotations, scaled_annotations

    done: list[str] = []
    if plan.dry_run:
        return done
    service, version = plan.service, obs.version
    if decision.action == SCALE and decision.target is not None:
        driver.scale(service, version, decision.target)
        done.append(f"scale {service}/{version} to {decision.target}")
    elif decision.action == SET_MIN and decision.new_hpa is not None:
        driver.set_autoscaling(service, decision.new_hpa)
        done.append(
            f"set the HPA of {service} to minReplicas {decision.new_hpa.min_replicas}, "
            f"maxReplicas {decision.new_hpa.max_replicas}"
        )
    if decision.changes:
        driver.annotate(
            service,
            scaled_annotations(
                plan.now,
                decision.reason,
                decision.resource,
                decision.history if decision.record_history else obs.state.recommendations,
                decision.hpa_base_min,
            ),
            version=version,
        )
        done.append("annotate last-scale-time, last-scale-reason, scale-recommendations")
    elif decision.record_history:
        driver.annotate(service, history_annotations(decision.history), version=version)
        done.append("annotate scale-recommendations")
    return done


def build_report(
    plan: Plan, obs: Observation | None, decision: Decision, done: list[str], platform: str, elapsed_ms: float
) -> dict[str, Any]:
    from rpops.steps.scale.state import iso

    s = plan.settings
    report: dict[str, Any] = {
        "step": "scale",
        "mode": s.mode,
        "service": plan.service,
        "version": obs.version if obs else plan.version,
        "platform": platform,
        "now": iso(plan.now),
        "dry_run": plan.dry_run,
        "inputs": {
            "settings": asdict(s),
            "apply_forecast": plan.apply_forecast,
            "bounds": asdict(plan.bounds),
            "policy": plan.policy.to_json(),
        },
        "decision": decision.decision,
        "action": decision.action,
        "scaled": bool(done) and decision.changes,
        "replicas_before": decision.current,
        "replicas_after": decision.replicas_after if done and decision.changes else decision.current,
        "target": decision.target,
        "recommendation": decision.recommendation,
        "driving_resource": decision.resource,
        "reason": decision.reason,
        "formula": decision.formula,
        "resources": [asdict(r) for r in decision.resources],
        "hpa": asdict(decision.hpa) if decision.hpa else None,
        "new_hpa": asdict(decision.new_hpa) if decision.new_hpa else None,
        "details": dict(decision.details),
        "done": done,
        "duration_ms": round(elapsed_ms, 3),
    }
    if obs is not None:
        w = obs.workload
        report["alert"] = obs.evidence.to_json() if obs.evidence else None
        report["promotion"] = obs.promotion or None
        report["observed"] = {
            "workload": {
                "replicas": w.replicas,
                "ready_replicas": w.ready_replicas,
                "available_replicas": w.available_replicas,
                "resources": asdict(w.resources),
                "autoscaling": asdict(w.autoscaling) if w.autoscaling else None,
                "active": w.active,
            },
            "readings": {k: asdict(v) for k, v in obs.readings.items()},
            "queries": obs.queries,
            "state": asdict(obs.state),
            "history_points": len(obs.history),
            "current_rps": obs.current_rps,
        }
    return report


def write_outputs(plan: Plan, decision: Decision, report: dict[str, Any]) -> None:
    from rpops.core.io import write_output, write_report

    scaled = bool(report["scaled"])
    write_output("scaled", "true" if scaled else "false")
    write_output("replicas", str(report["replicas_after"]))
    write_output("decision", decision.decision)
    write_output("direction", decision.direction if scaled else "none")
    write_output("reason", decision.reason)
    write_report(report)


def run(args: argparse.Namespace) -> int:
    from rpops.platform import get_driver

    started = time.perf_counter()
    p = plan(
        from_args(ScaleSettings, args), dry_run=bool(args.dry_run), apply_forecast=bool(args.apply_forecast)
    )
    driver = get_driver(p.platform, namespace=args.namespace)
    obs = observe(p, driver)
    decision = decide(p, obs)
    for problem in obs.state.problems:
        log.warning("%s", problem)
    done = act(p, driver, obs, decision)
    report = build_report(p, obs, decision, done, driver.name, (time.perf_counter() - started) * 1000)
    stuck = not p.dry_run and alert_stuck(obs, bool(report["scaled"]))
    if stuck:
        assert obs.evidence is not None
        why = f"nothing to do while the alert holds ({obs.evidence.summary}): {decision.reason}"
        decision = replace(decision, reason=why)
        report["reason"] = decision.reason
    write_outputs(p, decision, report)
    log.log(logging.ERROR if stuck else logging.INFO, "%s: %s", decision.decision, decision.reason)
    after = report["replicas_after"]
    suffix = " (dry run: nothing changed)" if p.dry_run else ""
    head = f"{decision.decision} {p.service}/{obs.version}: {decision.current} -> {after}{suffix}"
    print(f"{head}: {decision.reason}")
    return 1 if stuck else 0


def alert_stuck(obs: Observation, scaled: bool) -> bool:
    """The alert that started the run still holds and this run changed nothing (pure): exit 1."""
    return obs.evidence is not None and obs.evidence.holds and not scaled and not obs.promotion
