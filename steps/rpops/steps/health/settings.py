"""What `rpops health-check` is told: the targets, the probing, Prometheus, the rules, the alert.

`plan(settings)` checks every input and returns the `Plan` the run follows: a bad flag, target
or rules file exits 2 having probed nothing. The rules file and the decide module are loaded
inside `plan`, so `--help` stays cheap.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rpops.core.errors import UsageError
from rpops.core.parsers import http_url
from rpops.core.settings import setting

if TYPE_CHECKING:
    from rpops.steps.health.decide import RuleSet, Target

_TARGET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class HealthSettings:
    target: tuple[str, ...] = setting(
        help="Targets as comma-separated NAME=URL pairs, URL being the service's base URL, e.g. "
             "us-east=http://10.0.0.1:8000,eu-west=http://10.0.1.1:8000; on the command line, --target may "
             "also be repeated",
        repeat=True, parameter="targets")
    samples: int = setting(5, help="Latency samples (GET /health, one after another) per target; the "
                                   "latency percentiles come from these", parameter=True)
    timeout: float = setting(2.0, help="Seconds allowed for each request, connect to last byte",
                             parameter=True)
    retries: int = setting(2, help="Retries of a request that could not connect (exponential backoff); "
                                   "HTTP errors and timeouts are never retried")
    prometheus: str | None = setting(None, help="Prometheus base URL to read p95 latency, error rate, CPU "
                                                "and memory from; empty: none. Exit 3 when it stays "
                                                "unreachable", parameter=True)
    rules: str | None = setting(None, help="YAML rules file: ordered rules and a default, or only thresholds/"
                                           "queries to merge over the built-in rules")
    region: str = setting("", help="Region the targets run in, recorded in the report (visible to rules as "
                                   "`region`) and as the region label of the template's health gauge; empty "
                                   "when not region-specific", parameter=True)
    window: str | None = setting(None, help="Range of rate() in the PromQL queries ($window); default from "
                                            "the rules (5m)")
    query_p95_ms: str | None = setting(None, help="PromQL for p95 latency in ms (overrides the rules file)")
    query_error_rate: str | None = setting(None, help="PromQL for the error rate, 0..1")
    query_cpu_percent: str | None = setting(None, help="PromQL for CPU percent")
    query_memory_mb: str | None = setting(None, help="PromQL for resident memory in MB")
    query_memory_limit_mb: str | None = setting(None, help="PromQL for the memory limit in MB")
    status_path: str = setting("/api/performance/status",
                               help="Path of each target's JSON status with cpu_percent and memory_mb; "
                                    "'' to skip")
    prometheus_timeout: float = setting(5.0, help="Seconds allowed for each Prometheus query")
    alert: str = setting("", help="Name of the alert that started this check (an alert-driven recovery): "
                                  "the status comes from the alert's own rule, read from Prometheus over "
                                  "the rule's own window; empty: the health rules decide", parameter=True)
    alert_labels: str = setting("{}", help="The alert's labels as a JSON object: the series of the alert's "
                                           "expression that carry them are the evidence; {} without an "
                                           "alert", parameter=True)
    alert_reading: str = setting("onset", choices=("onset", "latest"),
                                 help="With an alert: onset reads the alert's value averaged over its `for` "
                                      "window (does it need remediating?); latest reads its latest "
                                      "evaluation (did the remediation clear it?)", parameter=True)
    alert_settle: float = setting(60.0, help="With alert-reading latest: seconds to wait for the alert's "
                                             "condition to clear before reporting that it still holds",
                                  parameter=True)


_QUERY_FLAGS = {
    "p95_ms": "query_p95_ms", "error_rate": "query_error_rate", "cpu_percent": "query_cpu_percent",
    "memory_mb": "query_memory_mb", "memory_limit_mb": "query_memory_limit_mb",
}


@dataclass(frozen=True)
class Plan:
    """Everything the run needs, validated."""

    settings: HealthSettings
    targets: tuple[Target, ...]
    ruleset: RuleSet
    prometheus: str | None
    queries: dict[str, str]  # name -> PromQL with $window substituted; empty when no Prometheus
    query_sources: dict[str, str]  # name -> where the query came from (a flag or the rules)
    alert: str = ""  # alert-driven: the alert's name, its labels and its catalogued status
    alert_labels: dict[str, str] = field(default_factory=dict)
    alert_status: str = ""


def parse_targets(values: tuple[str, ...] | list[str]) -> list[Target]:
    """Parse repeated `--target` values (each may hold comma-separated NAME=URL pairs)."""
    from rpops.steps.health.decide import Target

    targets: list[Target] = []
    seen: set[str] = set()
    for value in values:
        for pair in value.split(","):
            pair = pair.strip()
            name, sep, url = pair.partition("=")
            name, url = name.strip(), url.strip()
            if not sep or not name or not url:
                raise UsageError(f"--target {value!r}: {pair!r} is not NAME=URL; "
                                 "write e.g. --target us-east=http://10.0.0.1:8000")
            if not _TARGET_NAME.match(name):
                raise UsageError(f"--target {value!r}: name {name!r} must be 1-64 letters, digits, '.', '_' "
                                 "or '-', starting with a letter or digit")
            if name in seen:
                raise UsageError(f"--target {value!r}: name {name!r} is given twice; give each target "
                                 "its own name")
            seen.add(name)
            targets.append(Target(name=name, url=http_url(url, f"--target {value!r}")))
    if not targets:
        raise UsageError("--target: no target given; add --target NAME=URL")
    return targets


def _check_number(value: float, low: float, high: float, flag: str) -> None:
    if math.isnan(value) or not low <= value <= high:
        raise UsageError(f"{flag} {value:g}: must be between {low:g} and {high:g}")


def plan(s: HealthSettings) -> Plan:
    """Check every input; raise UsageError before anything is probed."""
    from rpops.steps.health.rulefile import check_window, load_rules

    targets = tuple(parse_targets(s.target))
    _check_number(s.samples, 1, 1000, "--samples")
    _check_number(s.timeout, 0.001, 600, "--timeout")
    _check_number(s.retries, 0, 10, "--retries")
    _check_number(s.prometheus_timeout, 0.001, 600, "--prometheus-timeout")
    if len(s.region) > 128:
        raise UsageError("--region: at most 128 characters")
    if s.status_path and not s.status_path.startswith("/"):
        raise UsageError(f"--status-path {s.status_path!r}: must start with '/' (or be '' to skip)")
    prometheus = http_url(s.prometheus, "--prometheus") if s.prometheus else None
    ruleset = load_rules(s.rules)
    window = s.window if s.window is not None else ruleset.window
    check_window(window, "--window")
    queries, sources = _queries(s, ruleset, window) if prometheus else ({}, {})
    alert, labels, status = _alert_inputs(s, prometheus)
    return Plan(settings=s, targets=targets, ruleset=ruleset, prometheus=prometheus, queries=queries,
                query_sources=sources, alert=alert, alert_labels=labels, alert_status=status)


def _queries(s: HealthSettings, ruleset: RuleSet, window: str) -> tuple[dict[str, str], dict[str, str]]:
    """Each signal's PromQL (a --query-* flag, else the rules') with $window substituted, and its source."""
    from rpops.steps.health.decide import QUERY_NAMES

    queries: dict[str, str] = {}
    sources: dict[str, str] = {}
    for name in QUERY_NAMES:
        flag_value = getattr(s, _QUERY_FLAGS[name])
        if flag_value is not None:
            query, source = flag_value.strip(), "--" + _QUERY_FLAGS[name].replace("_", "-")
        else:
            query, source = ruleset.queries.get(name, ""), f"{ruleset.source} queries.{name}"
        if query:
            queries[name] = query.replace("$window", window)
            sources[name] = source
    return queries, sources


def _alert_inputs(s: HealthSettings, prometheus: str | None) -> tuple[str, dict[str, str], str]:
    from rpops.alerting.evidence import parse_labels
    from rpops.alerting.verdict import alert_status

    alert = s.alert.strip()
    labels = parse_labels(s.alert_labels)
    if not alert:
        return "", labels, ""
    if not prometheus:
        raise UsageError(f"--alert {alert}: needs --prometheus URL, where the alert's rule and its "
                         "evidence are read")
    try:
        status = alert_status(alert)
    except ValueError as exc:
        raise UsageError(f"--alert: {exc}") from None
    _check_number(s.alert_settle, 0, 3600, "--alert-settle")
    return alert, labels, status
