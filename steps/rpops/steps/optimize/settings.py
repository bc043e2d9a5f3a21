"""What `rpops optimize` is told, and the plan checked from it before anything is read or changed.

`plan(settings)` raises UsageError naming the flag (exit 2, nothing changed): the service and
version names, the Prometheus URL, the ranges of the numbers, the rate window, the history's
resolution, the queries (the platform driver's by default, `--queries`/`--cpu-query`/
`--memory-query` over them) and the platform ($RPOPS_PLATFORM).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rpops.clients.promql import check_duration
from rpops.core.errors import UsageError
from rpops.core.settings import setting
from rpops.platform import namespace_setting
from rpops.steps.optimize.decide import RightsizingSettings

KRR = RightsizingSettings()  # the decision's defaults (krr's simple strategy) are the flags' defaults

if TYPE_CHECKING:
    from rpops.platform.base import PlatformDriver

MAX_RANGE_POINTS = 11000  # Prometheus refuses range queries of more points per series


@dataclass(frozen=True, kw_only=True)
class OptimizeSettings:
    service: str = setting(help="Service to right-size, e.g. research-platform", parameter=True)
    version: str = setting(
        "", help="Version to right-size; empty: the version the service's active route selects",
        parameter=True,
    )
    prometheus: str = setting(
        help="Base URL of the Prometheus holding the usage history (on Kubernetes the pods' cAdvisor "
        "series container_cpu_usage_seconds_total and container_memory_working_set_bytes)",
        parameter=True,
    )
    history_hours: float = setting(
        168.0, help="Hours of usage history to read (no fewer than min-history-hours, 3 by default)",
        parameter=True,
    )
    apply: bool = setting(
        False,
        help="true: patch the Deployment's requests/limits where they move past the change threshold; "
        "false: recommend only",
        parameter=True,
    )
    change_threshold: float = setting(
        KRR.change_threshold,
        help="Apply only changes larger than this share of the current value (0.1: ten percent)",
        parameter=True,
    )
    restart_leaking: bool = setting(
        False,
        help="true: rolling-restart the version when its memory looks leaked (only grows over the window)",
        parameter=True,
    )
    min_history_hours: float = setting(
        KRR.min_history_s / 3600,
        help="Least history to recommend from, in hours (krr's simple strategy: 3)",
        parameter=True,
    )
    min_points: int = setting(
        KRR.min_points, help="Least data points, summed over pods, to recommend from", parameter=True
    )
    step_seconds: float = setting(
        0.0,
        help="Resolution of the history in seconds; 0: 60, or coarser so that a series stays under "
        f"{MAX_RANGE_POINTS} points",
        parameter=True,
    )
    rate_window: str = setting("5m", help="Range of rate() in the CPU query ($window), a PromQL duration",
                               parameter=True)
    queries: str = setting(
        "",
        help="YAML file with `cpu:` and/or `memory:` PromQL (cores and bytes per pod); "
        "placeholders $selector, $window, $service, $version, $namespace, $instances",
    )
    cpu_query: str = setting("", help="PromQL of CPU cores per pod (overrides --queries and the platform's)")
    memory_query: str = setting(
        "", help="PromQL of memory bytes per pod (overrides --queries and the platform's)"
    )
    selector: str = setting(
        "",
        help="PromQL label matchers of the version's series ($selector); empty: the platform's: "
        'local instance=~"$instances", kubernetes namespace="$namespace",pod=~"$service-$version-.*"',
    )
    cpu_percentile: float = setting(
        KRR.cpu_percentile,
        help="Percentile of each pod's CPU usage; the CPU request is the highest over the pods",
    )
    memory_buffer_percent: float = setting(
        KRR.memory_buffer * 100, help="Headroom over the peak memory, percent"
    )
    now: str = setting("", help="Read history up to this ISO 8601 time (tests, replays); empty: the clock")
    prometheus_timeout: float = setting(30.0, help="Seconds allowed for each Prometheus query")
    namespace: str | None = namespace_setting()


@dataclass(frozen=True)
class Plan:
    """The settings checked, with every default resolved (queries, platform, clock, resolution)."""

    settings: OptimizeSettings
    service: str
    version: str | None
    prometheus: str
    platform: str  # the driver's name
    selector: str  # PromQL label matchers of the version's series
    queries: dict[str, str]  # templates: cpu, memory
    query_sources: dict[str, str]
    now: float
    step_s: float
    rightsizing: RightsizingSettings

    @property
    def apply(self) -> bool:
        return self.settings.apply

    @property
    def restart_leaking(self) -> bool:
        return self.settings.restart_leaking


def plan(s: OptimizeSettings) -> Plan:
    """Check every input; raise UsageError before anything is read or changed."""
    from rpops.core.parsers import http_url
    from rpops.core.times import parse_now
    from rpops.platform import driver_class
    from rpops.platform.base import check_service, check_version
    from rpops.steps.optimize.decide import RightsizingSettings

    service = check_service(s.service.strip())
    version = check_version(service, s.version.strip()) if s.version.strip() else None
    if not s.prometheus.strip():
        raise UsageError(
            "--prometheus is empty: right-sizing reads usage history from Prometheus; pass its URL"
        )
    prometheus = http_url(s.prometheus.strip(), "--prometheus")
    check_ranges(s)
    check_duration(s.rate_window, "--rate-window")
    step = history_step(s)
    driver = driver_class()  # an unknown $RPOPS_PLATFORM is bad input too
    queries, sources = usage_queries(s, driver)
    return Plan(
        settings=s,
        service=service,
        version=version,
        prometheus=prometheus,
        platform=driver.name,
        selector=s.selector.strip() or driver.series.selector,
        queries=queries,
        query_sources=sources,
        now=parse_now(s.now),
        step_s=step,
        rightsizing=RightsizingSettings(
            cpu_percentile=s.cpu_percentile,
            memory_buffer=s.memory_buffer_percent / 100,
            min_history_s=s.min_history_hours * 3600,
            min_points=int(s.min_points),
            change_threshold=s.change_threshold,
        ),
    )


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


def check_ranges(s: OptimizeSettings) -> None:
    """Each number within its range; the least history no more than the history read."""
    history_h = _check(s.history_hours, "--history-hours", 0, 24 * 90, low_open=True)
    _check(s.change_threshold, "--change-threshold", 0, 10)
    min_h = _check(s.min_history_hours, "--min-history-hours", 0, 24 * 90)
    _check(s.min_points, "--min-points", 1, 10**7)
    _check(s.cpu_percentile, "--cpu-percentile", 0, 100, low_open=True)
    _check(s.memory_buffer_percent, "--memory-buffer-percent", 0, 1000)
    _check(s.prometheus_timeout, "--prometheus-timeout", 0, 600, low_open=True)
    _check(s.step_seconds, "--step-seconds", 0, 86400)
    if min_h > history_h:
        raise UsageError(
            f"--min-history-hours {min_h:g} is more than --history-hours {history_h:g}: no window "
            "could ever be enough; lower it or read more history"
        )


def history_step(s: OptimizeSettings) -> float:
    """The range queries' resolution: --step-seconds, else 60 s or coarser, under MAX_RANGE_POINTS."""
    history_s = s.history_hours * 3600
    step = s.step_seconds or max(60.0, math.ceil(history_s / MAX_RANGE_POINTS))
    if history_s / step > MAX_RANGE_POINTS:
        raise UsageError(
            f"--history-hours {s.history_hours:g} at --step-seconds {step:g} is more than "
            f"{MAX_RANGE_POINTS} points per series; raise --step-seconds to at least "
            f"{math.ceil(history_s / MAX_RANGE_POINTS)}"
        )
    return float(step)


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


def usage_queries(s: OptimizeSettings, driver: type[PlatformDriver]) -> tuple[dict[str, str], dict[str, str]]:
    """The CPU and memory query templates and where each came from: the platform driver's, then
    --queries, then --cpu-query/--memory-query."""
    queries = {"cpu": driver.series.cpu_usage, "memory": driver.series.memory_usage}
    sources = {k: f"default ({driver.name})" for k in queries}
    if s.queries.strip():
        for key, value in load_queries(s.queries.strip()).items():
            queries[key], sources[key] = value, f"--queries {s.queries.strip()}"
    for key, flag_value in (("cpu", s.cpu_query), ("memory", s.memory_query)):
        if flag_value.strip():
            queries[key], sources[key] = flag_value.strip(), f"--{key}-query"
    return queries, sources
