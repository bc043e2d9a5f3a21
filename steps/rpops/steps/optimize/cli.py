"""`rpops optimize`: right-size a version's CPU and memory from its usage history.

observe: the workload's current requests/limits (platform driver) and per-pod CPU and memory
         series over the history window (Prometheus range queries; cAdvisor metrics on
         Kubernetes, the processes' own metrics on the local platform).
decide:  `rpops.steps.optimize.decide.recommend` (pure): krr's simple strategy (CPU percentile per pod,
         then the maximum over pods; memory peak per pod, maximum over pods, plus the buffer),
         the change threshold and leak detection. Each query must return one series per pod.
act:     with --apply, driver.set_resources for what moved past the threshold; with
         --restart-leaking, a rolling restart (driver.restart) when memory looks leaked.
         Outputs `recommendation` (JSON), `applied`, `leak`, `reason` and report.json.

"Not enough data" (under 3 h of history or 100 points) exits 0 with the reason and changes
nothing. Bad input exits 2 before any change; an unreachable Prometheus exits 3.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from rpops.core.errors import UsageError
from rpops.core.settings import add_arguments, from_args, setting

if TYPE_CHECKING:
    from rpops.platform.base import Instance, PlatformDriver, Workload
    from rpops.steps.optimize.decide import PodSeries, Recommendation, RightsizingSettings

log = logging.getLogger(__name__)

MAX_RANGE_POINTS = 11000

# Default queries per platform: CPU in cores per pod, memory in bytes per pod.
_CONTAINERS = 'container!="",container!="POD"'  # cAdvisor: the pod's containers, not the pause one
DEFAULT_QUERIES: dict[str, dict[str, str]] = {
    "kubernetes": {
        "cpu": "sum by (pod) (rate(container_cpu_usage_seconds_total{$selector,"
        + _CONTAINERS
        + "}[$window]))",
        "memory": "max by (pod) (max_over_time(container_memory_working_set_bytes{$selector,"
        + _CONTAINERS
        + "}[$step]))",
    },
    "local": {
        "cpu": "sum by (instance) (rate(process_cpu_seconds_total{$selector}[$window]))",
        "memory": "max by (instance) (max_over_time(process_resident_memory_bytes{$selector}[$step]))",
    },
}


@dataclass(frozen=True)
class OptimizeSettings:
    service: str = setting(help="Service to right-size, e.g. research-platform")
    prometheus: str = setting(help="Prometheus base URL holding the usage history")
    version: str = setting("", help="Version to right-size; empty: the version the active route selects")
    history_hours: float = setting(168.0, help="Hours of usage history to read")
    change_threshold: float = setting(
        0.10, help="Apply only changes larger than this share of the current value (0.10 = 10%%)"
    )
    queries: str = setting(
        "",
        help="YAML file with `cpu:` and/or `memory:` PromQL (cores and bytes per pod); "
        "placeholders $selector, $window, $service, $version, $namespace, $instances",
    )
    cpu_query: str = setting("", help="PromQL of CPU cores per pod (overrides --queries and the default)")
    memory_query: str = setting(
        "", help="PromQL of memory bytes per pod (overrides --queries and the default)"
    )
    selector: str = setting(
        "",
        help="PromQL label matchers of the version's series ($selector); default by "
        'platform: local instance=~"$instances", kubernetes '
        'namespace="$namespace",pod=~"$service-$version-.*"',
    )
    rate_window: str = setting("5m", help="Range of rate() in the CPU query ($window)")
    step_seconds: float = setting(
        0.0,
        help="Resolution of the history in seconds; 0: 60, or coarser so a "
        f"series stays under {MAX_RANGE_POINTS} points",
    )
    min_history_hours: float = setting(3.0, help="Least history to recommend from")
    min_points: int = setting(100, help="Least data points (summed over pods) to recommend from")
    cpu_percentile: float = setting(
        95.0, help="Percentile of each pod's CPU usage; the CPU request is the highest over the pods"
    )
    memory_buffer_percent: float = setting(15.0, help="Headroom over the peak memory, percent")
    now: str = setting("", help="Read history up to this ISO 8601 time (tests, replays); empty: the clock")
    prometheus_timeout: float = setting(30.0, help="Seconds allowed for each Prometheus query")


SWITCHES = {
    "apply": "Apply the recommendation (only values that move past --change-threshold)",
    "restart_leaking": "Rolling-restart the version when its memory looks leaked",
}


def configure(parser: argparse.ArgumentParser) -> None:
    from rpops.core.switches import add_switch
    from rpops.platform import add_namespace_argument

    add_arguments(parser, OptimizeSettings)
    add_namespace_argument(parser)  # the driver's namespace
    for name, help_text in SWITCHES.items():
        add_switch(parser, name, help_text)
    parser.epilog = (
        "Outputs: recommendation (JSON), applied (true|false), leak (true|false), reason, report.json. "
        "Exit 0 (also on 'not enough data'); 2 on bad input; 3 when Prometheus or the platform "
        "stays unreachable."
    )


# --- input -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    settings: OptimizeSettings
    service: str
    version: str | None
    prometheus: str
    platform: str
    queries: dict[str, str]  # templates
    query_sources: dict[str, str]
    now: float
    step_s: float
    rightsizing: RightsizingSettings
    apply: bool
    restart_leaking: bool


def _check(value: float, flag: str, low: float, high: float, *, low_open: bool = False) -> float:
    if (
        isinstance(value, float)
        and math.isnan(value)
        or value < low
        or value > high
        or (low_open and value == low)
    ):
        raise UsageError(
            f"{flag} {value:g} is out of range: use a value {'above' if low_open else 'from'} "
            f"{low:g} {'and at most' if low_open else 'to'} {high:g}"
        )
    return float(value)


def load_queries(path: str) -> dict[str, str]:
    from rpops.core.parsers import load_yaml_file

    doc = load_yaml_file(path, f"--queries {path}")  # capped size, regular files only, bounded nesting
    if not isinstance(doc, dict) or not doc or set(doc) - {"cpu", "memory"}:
        raise UsageError(f"--queries {path}: must be a mapping with `cpu:` and/or `memory:` PromQL strings")
    out = {}
    for key, value in doc.items():
        if not isinstance(value, str) or not value.strip():
            raise UsageError(f"--queries {path}: {key} must be a non-empty PromQL string")
        out[key] = value.strip()
    return out


def plan(s: OptimizeSettings, *, apply: bool = False, restart_leaking: bool = False) -> Plan:
    from rpops.platform import DRIVERS
    from rpops.platform.base import check_service, check_version
    from rpops.steps.health.cli import check_url
    from rpops.steps.optimize.decide import RightsizingSettings
    from rpops.steps.scale.cli import parse_now
    from rpops.steps.scale.policy import check_duration

    service = check_service(s.service.strip())
    version = check_version(service, s.version.strip()) if s.version.strip() else None
    if not s.prometheus.strip():
        raise UsageError(
            "--prometheus is empty: right-sizing reads usage history from Prometheus; pass its URL"
        )
    prometheus = check_url(s.prometheus.strip(), "--prometheus")
    history_h = _check(s.history_hours, "--history-hours", 0, 24 * 90, low_open=True)
    _check(s.change_threshold, "--change-threshold", 0, 10)
    min_h = _check(s.min_history_hours, "--min-history-hours", 0, 24 * 90)
    _check(s.min_points, "--min-points", 1, 10**7)
    _check(s.cpu_percentile, "--cpu-percentile", 0, 100, low_open=True)
    _check(s.memory_buffer_percent, "--memory-buffer-percent", 0, 1000)
    _check(s.prometheus_timeout, "--prometheus-timeout", 0, 600, low_open=True)
    _check(s.step_seconds, "--step-seconds", 0, 86400)
    check_duration(s.rate_window, "--rate-window")
    if min_h > history_h:
        raise UsageError(
            f"--min-history-hours {min_h:g} is more than --history-hours {history_h:g}: no window "
            "could ever be enough; lower it or read more history"
        )
    history_s = history_h * 3600
    step = s.step_seconds or max(60.0, math.ceil(history_s / MAX_RANGE_POINTS))
    if history_s / step > MAX_RANGE_POINTS:
        raise UsageError(
            f"--history-hours {history_h:g} at --step-seconds {step:g} is more than "
            f"{MAX_RANGE_POINTS} points per series; raise --step-seconds to at least "
            f"{math.ceil(history_s / MAX_RANGE_POINTS)}"
        )
    platform = (os.environ.get("RPOPS_PLATFORM") or "local").strip().lower()
    if platform not in DRIVERS:
        raise UsageError(
            f"platform {platform!r} is unknown: set RPOPS_PLATFORM to one of {', '.join(DRIVERS)}"
        )
    queries = dict(DEFAULT_QUERIES[platform])
    sources = {k: f"default ({platform})" for k in queries}
    if s.queries.strip():
        for key, value in load_queries(s.queries.strip()).items():
            queries[key], sources[key] = value, f"--queries {s.queries.strip()}"
    for key, flag_value in (("cpu", s.cpu_query), ("memory", s.memory_query)):
        if flag_value.strip():
            queries[key], sources[key] = flag_value.strip(), f"--{key}-query"
    settings = RightsizingSettings(
        cpu_percentile=s.cpu_percentile,
        memory_buffer=s.memory_buffer_percent / 100,
        min_history_s=min_h * 3600,
        min_points=int(s.min_points),
        change_threshold=s.change_threshold,
    )
    return Plan(
        settings=s,
        service=service,
        version=version,
        prometheus=prometheus,
        platform=platform,
        queries=queries,
        query_sources=sources,
        now=parse_now(s.now),
        step_s=float(step),
        rightsizing=settings,
        apply=apply,
        restart_leaking=restart_leaking,
    )


# --- observe ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Observation:
    version: str
    workload: Workload
    instances: tuple[Instance, ...]
    cpu: tuple[PodSeries, ...]
    memory: tuple[PodSeries, ...]
    queries: dict[str, Any]


def _series(result: Any) -> tuple[PodSeries, ...]:
    from rpops.steps.optimize.decide import PodSeries

    out = []
    for series in result.series:
        labels = dict(series.labels)
        name = labels.get("pod") or labels.get("instance") or json.dumps(labels, sort_keys=True)
        points = tuple((t, v) for t, v in series.points if math.isfinite(v))
        if points:
            out.append(PodSeries(name, points))
    return tuple(out)


def observe(p: Plan, driver: PlatformDriver) -> Observation:
    from rpops.clients.prometheus import Prometheus
    from rpops.clients.promql import check_result, instances_regex, render
    from rpops.platform import driver_class
    from rpops.steps.scale.cli import resolve_workload

    version, workload = resolve_workload(driver, p.service, p.version)
    instances = tuple(driver.instances(p.service, version))
    selector = p.settings.selector.strip() or driver_class(p.platform).series.selector
    start = p.now - p.settings.history_hours * 3600
    found: dict[str, tuple[PodSeries, ...]] = {}
    summaries: dict[str, Any] = {}
    with Prometheus(p.prometheus, timeout=p.settings.prometheus_timeout) as prom:
        for key in ("cpu", "memory"):
            label = f"{p.query_sources[key]} {key} query"
            query = render(
                p.queries[key],
                label=label,
                selector=selector,
                window=p.settings.rate_window,
                service=p.service,
                version=version,
                namespace=str(getattr(driver, "namespace", "") or ""),
                instances=instances_regex([i.url for i in instances]),
                step=f"{p.step_s:g}s",
            )
            result = prom.query_range(query, start=start, end=p.now, step=p.step_s)
            check_result(result, p.prometheus, label)
            found[key] = _series(result)
            summaries[key] = {**result.summary(), "source": p.query_sources[key]}
    return Observation(
        version=version,
        workload=workload,
        instances=instances,
        cpu=found["cpu"],
        memory=found["memory"],
        queries=summaries,
    )


# --- act -------------------------------------------------------------------------------------


def act(p: Plan, driver: PlatformDriver, obs: Observation, rec: Recommendation) -> list[str]:
    done: list[str] = []
    if p.apply and rec.resources is not None:
        driver.set_resources(p.service, obs.version, rec.resources)
        done.append(
            f"set resources of {p.service}/{obs.version}: "
            + ", ".join(f"{k}={v}" for k, v in asdict(rec.resources).items() if v is not None)
        )
    if p.restart_leaking and rec.leak:
        driver.restart(p.service, obs.version)
        done.append(f"rolling restart of {p.service}/{obs.version} (memory leak)")
    return done


def build_report(
    p: Plan, obs: Observation, rec: Recommendation, done: list[str], platform: str, elapsed_ms: float
) -> dict[str, Any]:
    from rpops.steps.scale.state import iso

    def advice(a: Any) -> dict[str, Any]:
        out = asdict(a)
        if out["change"] is not None and math.isinf(out["change"]):
            out["change"] = "unset before"
        return out

    return {
        "step": "optimize",
        "service": p.service,
        "version": obs.version,
        "platform": platform,
        "now": iso(p.now),
        "inputs": {
            "settings": asdict(p.settings),
            "apply": p.apply,
            "restart_leaking": p.restart_leaking,
            "step_seconds": p.step_s,
            "rightsizing": asdict(p.rightsizing),
            "queries": p.queries,
        },
        "strategy": "krr simple: cpu request = max over pods of each pod's "
        f"P{p.rightsizing.cpu_percentile:g}, no cpu limit; memory request = limit = max over pods of "
        "each pod's peak + "
        f"{p.rightsizing.memory_buffer * 100:g}%; floors 10m / 100Mi",
        "current": asdict(obs.workload.resources),
        "recommendation": rec.summary(),
        "cpu": advice(rec.cpu),
        "memory": advice(rec.memory),
        "to_apply": asdict(rec.resources) if rec.resources else None,
        "applied": any(d.startswith("set resources") for d in done),
        "leak": rec.leak,
        "leaks": [asdict(f) for f in rec.leaks],
        "hpa": asdict(obs.workload.autoscaling) if obs.workload.autoscaling else None,
        "notes": (
            [
                "an HPA scales this version on utilisation of its requests: new requests move the point "
                "where it scales"
            ]
            if obs.workload.autoscaling
            else []
        ),
        "reason": rec.reason,
        "done": done,
        "queries": obs.queries,
        "series": {"cpu": len(obs.cpu), "memory": len(obs.memory)},
        "duration_ms": round(elapsed_ms, 3),
    }


def run(args: argparse.Namespace) -> int:
    from rpops.core.io import write_output, write_report
    from rpops.platform import get_driver
    from rpops.steps.optimize.decide import recommend

    started = time.perf_counter()
    p = plan(
        from_args(OptimizeSettings, args), apply=bool(args.apply), restart_leaking=bool(args.restart_leaking)
    )
    driver = get_driver(p.platform, namespace=args.namespace)
    obs = observe(p, driver)
    rec = recommend(obs.cpu, obs.memory, obs.workload.resources, p.rightsizing)
    done = act(p, driver, obs, rec)
    report = build_report(p, obs, rec, done, driver.name, (time.perf_counter() - started) * 1000)
    for finding in rec.leaks:
        if finding.leak:
            log.warning("memory leak suspected in %s: %s", finding.pod, finding.reason)
    write_output("recommendation", rec.summary())
    write_output("applied", "true" if report["applied"] else "false")
    write_output("leak", "true" if rec.leak else "false")
    write_output("reason", rec.reason)
    write_report(report)
    verb = "applied" if report["applied"] else ("recommend" if rec.resources else "no change")
    print(f"{verb} {p.service}/{obs.version}: {rec.reason}" + ("; memory leak suspected" if rec.leak else ""))
    return 0
