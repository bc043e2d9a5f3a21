"""What `rpops scale` is told, and the plan checked from it before anything is read or changed.

`plan(settings)` raises UsageError naming the flag (exit 2, nothing changed): the service and
version names, the Prometheus URL, the policy file, the replica bounds, the predictive windows,
the alert, and the platform ($RPOPS_PLATFORM).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rpops.core.errors import UsageError
from rpops.core.settings import setting
from rpops.platform import namespace_setting

if TYPE_CHECKING:
    from rpops.steps.scale.policy import Policy
    from rpops.steps.scale.reactive import Bounds

MAX_RANGE_POINTS = 11000  # Prometheus refuses range queries of more points per series


@dataclass(frozen=True)
class ScaleSettings:
    service: str = setting(help="Service to scale (Deployments <service>-<version> on Kubernetes), "
                                "e.g. research-platform", parameter=True)
    version: str = setting("", help="Version to scale; empty: the version the service's active route selects",
                           parameter=True)
    mode: str = setting(
        "reactive",
        help="reactive: from current utilisation (the HPA formula); predictive: pre-scale ahead of a "
        "request-rate forecast (needs the Prometheus URL)",
        choices=("reactive", "predictive"),
        parameter=True,
    )
    prometheus: str = setting(
        "",
        help="Base URL of the Prometheus to read utilisation (and the request-rate history) from; empty: "
        "read each replica's /api/performance/status instead (reactive mode only)",
        parameter=True,
    )
    policy: str = setting(
        "", help="YAML policy file merged over the built-in policy (rpops/steps/scale/scaling-policy.yaml)"
    )
    min_replicas: int | None = setting(
        None, help="Lowest replica count; empty: the scaling policy's min_replicas (built in: 1)",
        parameter=True,
    )
    max_replicas: int | None = setting(
        None, help="Highest replica count; empty: the scaling policy's max_replicas (built in: 10)",
        parameter=True,
    )
    dry_run: bool = setting(
        False, help="true: report the decision and change nothing (no scaling, no annotations)",
        parameter=True,
    )
    apply_forecast: bool = setting(
        False, help="Predictive mode: true pre-scales to the forecast; false only reports it", parameter=True
    )
    selector: str = setting(
        "",
        help="PromQL label matchers of the version's series ($selector in queries); empty: the "
        'platform\'s: local instance=~"$instances", kubernetes namespace="$namespace",'
        'pod=~"$service-$version-.*"',
    )
    look_ahead_minutes: float | None = setting(
        None, help="Predictive: minutes ahead to cover; empty: the policy's (built in: 30)"
    )
    history_days: float | None = setting(
        None, help="Predictive: days of request-rate history to fit; empty: the policy's (built in: 7)"
    )
    min_history_hours: float | None = setting(
        None, help="Predictive: least history to decide on, hours; empty: the policy's (built in: 24)"
    )
    step_seconds: float | None = setting(
        None, help="Predictive: resolution of the history, seconds; empty: the policy's (built in: 300)"
    )
    replica_capacity_rps: float | None = setting(
        None,
        help="Requests per second one replica serves at its target; empty: measured from the current "
        "rate and utilisation",
    )
    now: str = setting("", help="Decide as of this ISO 8601 time (tests, replays); empty: the clock")
    prometheus_timeout: float = setting(5.0, help="Seconds allowed for each Prometheus query")
    status_timeout: float = setting(2.0, help="Seconds allowed for each instance's status request")
    alert: str = setting(
        "",
        help="Name of the alert that started this run (HighCPU, HighMemory; set by "
        "research-platform-recovery): its resource is read from the alert's own rule in Prometheus, "
        "over its own window, as the recovery's health check read it; exit 1 when the alert holds and "
        "nothing can be done. Empty: the policy's queries",
        parameter=True,
    )
    alert_labels: str = setting("{}", help="The alert's labels as a JSON object; {} without an alert",
                                parameter=True)
    namespace: str | None = namespace_setting()


@dataclass(frozen=True)
class Plan:
    """The settings checked, with every default resolved (policy, platform, clock)."""

    settings: ScaleSettings
    service: str
    version: str | None
    policy: Policy
    bounds: Bounds
    prometheus: str | None
    now: float
    platform: str  # the driver's name
    selector: str  # PromQL label matchers of the version's series
    look_ahead_s: float
    history_s: float
    min_history_s: float
    step_s: float
    replica_capacity_rps: float | None
    alert: str = ""
    alert_labels: dict[str, str] = field(default_factory=dict)

    @property
    def dry_run(self) -> bool:
        return self.settings.dry_run

    @property
    def apply_forecast(self) -> bool:
        return self.settings.apply_forecast


@dataclass(frozen=True)
class Windows:
    """The predictive mode's spans, in seconds."""

    look_ahead_s: float
    history_s: float
    min_history_s: float
    step_s: float


def plan(s: ScaleSettings) -> Plan:
    """Check every input; raise UsageError before anything is read or changed."""
    from rpops.core.parsers import http_url
    from rpops.core.times import parse_now
    from rpops.platform import driver_class
    from rpops.platform.base import check_service, check_version
    from rpops.steps.scale.policy import load_policy

    service = check_service(s.service.strip())
    version = check_version(service, s.version.strip()) if s.version.strip() else None
    prometheus = http_url(s.prometheus.strip(), "--prometheus") if s.prometheus.strip() else None
    policy = load_policy(s.policy.strip() or None)
    bounds = replica_bounds(s, policy)
    if s.mode == "predictive" and prometheus is None:
        raise UsageError(
            "--mode predictive needs --prometheus URL: the forecast is fit to the request-rate "
            "history Prometheus keeps"
        )
    timeouts = ((s.prometheus_timeout, "--prometheus-timeout"), (s.status_timeout, "--status-timeout"))
    for value, flag in timeouts:
        if math.isnan(value) or not 0 < value <= 600:
            raise UsageError(f"{flag} {value:g} is out of range: use seconds in (0, 600]")
    windows = predictive_windows(s, policy)
    capacity = _positive(s.replica_capacity_rps, "--replica-capacity-rps", 1e9)
    alert, alert_labels = alert_inputs(s, prometheus, policy)
    driver = driver_class()  # an unknown $RPOPS_PLATFORM is bad input too
    return Plan(
        settings=s,
        service=service,
        version=version,
        policy=policy,
        bounds=bounds,
        prometheus=prometheus,
        now=parse_now(s.now),
        platform=driver.name,
        selector=s.selector.strip() or driver.series.selector,
        look_ahead_s=windows.look_ahead_s,
        history_s=windows.history_s,
        min_history_s=windows.min_history_s,
        step_s=windows.step_s,
        replica_capacity_rps=capacity,
        alert=alert,
        alert_labels=alert_labels,
    )


def _positive(value: float | None, flag: str, high: float) -> float | None:
    """None (not given), or a number in (0, high]."""
    if value is None:
        return None
    if math.isnan(value) or not 0 < value <= high:
        raise UsageError(
            f"{flag} '{value:g}' is out of range: use a number greater than 0 and at most {high:g}"
        )
    return float(value)


def _replicas(value: int | None, flag: str) -> int | None:
    from rpops.steps.scale.policy import MAX_REPLICAS_LIMIT

    if value is None:
        return None
    if value < 1:
        raise UsageError(f"{flag} {value} is too low: use at least 1 (scaling to zero is not supported)")
    if value > MAX_REPLICAS_LIMIT:
        raise UsageError(f"{flag} {value} is above the maximum of {MAX_REPLICAS_LIMIT} replicas")
    return value


def replica_bounds(s: ScaleSettings, policy: Policy) -> Bounds:
    """--min-replicas/--max-replicas, each defaulting to the policy's; the minimum at most the maximum."""
    from rpops.steps.scale.reactive import Bounds

    min_r = _replicas(s.min_replicas, "--min-replicas")
    max_r = _replicas(s.max_replicas, "--max-replicas")
    low = min_r if min_r is not None else policy.min_replicas
    high = max_r if max_r is not None else policy.max_replicas
    if low > high:
        low_src = "--min-replicas" if min_r is not None else f"the policy's min_replicas ({policy.source})"
        high_src = "--max-replicas" if max_r is not None else f"the policy's max_replicas ({policy.source})"
        raise UsageError(
            f"min replicas {low} ({low_src}) is greater than max replicas {high} ({high_src}); "
            "make the minimum at most the maximum"
        )
    return Bounds(low, high)


def predictive_windows(s: ScaleSettings, policy: Policy) -> Windows:
    """The look-ahead, history, least history and resolution: the flags' or the policy's."""
    pp = policy.predictive
    look_ahead = _positive(s.look_ahead_minutes, "--look-ahead-minutes", 24 * 60) or pp.look_ahead_minutes
    history_days = _positive(s.history_days, "--history-days", 60) or pp.history_days
    min_hours = _positive(s.min_history_hours, "--min-history-hours", 24 * 60)
    min_hours = pp.min_history_hours if min_hours is None else min_hours
    step = _positive(s.step_seconds, "--step-seconds", 3600) or pp.step_seconds
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
    return Windows(look_ahead * 60, history_days * 86400, min_hours * 3600, step)


def alert_inputs(s: ScaleSettings, prometheus: str | None, policy: Policy) -> tuple[str, dict[str, str]]:
    """--alert (an alert on a resource the policy scales, read from Prometheus) and its labels."""
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
