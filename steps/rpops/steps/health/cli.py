"""`rpops health-check`: probe targets (and optionally Prometheus), classify, report.

observe: `observe()` probes every target concurrently (one pooled client) and runs the PromQL
         queries alongside; results are typed values.
decide:  `rpops.steps.health.decide` (pure): per-target assessment, the names the rules see, the rules.
act:     `act()` writes the output parameters `status`, `reason`, `p95_ms`, the report and
         prints the status.

Every input is checked before the first request: a bad flag, target or rules file exits 2
having probed nothing. Heavy modules (httpx, asyncio, yaml, the rules engine) are imported
only when the step runs, so `--help` stays cheap.
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rpops.core.errors import Unreachable, UsageError
from rpops.core.settings import add_arguments, from_args, setting

if TYPE_CHECKING:
    from rpops.alerting.evidence import Evidence
    from rpops.clients.probe import Prober, ProbeResult
    from rpops.clients.prometheus import QueryResult
    from rpops.steps.health.decide import Decision, RuleSet, Target, TargetProbe

log = logging.getLogger(__name__)

_TARGET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class HealthSettings:
    target: tuple[str, ...] = setting(
        help="A target as NAME=URL (base URL of the service); repeat the flag, or separate pairs with "
             "commas: --target us-east=http://10.0.0.1:8000,eu-west=http://10.0.1.1:8000", repeat=True)
    samples: int = setting(5, help="Latency samples (GET /health, one after another) per target")
    timeout: float = setting(2.0, help="Seconds allowed for each request, connect to last byte")
    retries: int = setting(2, help="Retries of a request that could not connect (exponential backoff); "
                                   "HTTP errors and timeouts are never retried")
    prometheus: str | None = setting(None, help="Prometheus base URL; adds p95, error rate, CPU and memory "
                                                "signals. Exit 3 when it stays unreachable")
    rules: str | None = setting(None, help="YAML rules file: ordered rules and a default, or only thresholds/"
                                           "queries to merge over the built-in rules")
    region: str = setting("", help="Region name recorded in the report (and visible to rules as `region`)")
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
                                  "the status comes from the alert's own rule, read from --prometheus, "
                                  "over its own window; empty: the rules decide")
    alert_labels: str = setting("{}", help="The alert's labels as a JSON object (with --alert): the series "
                                           "of the alert's expression that carry them are the evidence")
    alert_reading: str = setting("onset", choices=("onset", "latest"),
                                 help="With --alert: onset reads the alert's value averaged over its `for` "
                                      "window (does it need remediating?); latest reads the latest "
                                      "evaluation (did the remediation clear it?)")
    alert_settle: float = setting(60.0, help="With --alert-reading latest: seconds to wait for the alert's "
                                             "condition to clear before reporting it still holds")


_QUERY_FLAGS = {
    "p95_ms": "query_p95_ms", "error_rate": "query_error_rate", "cpu_percent": "query_cpu_percent",
    "memory_mb": "query_memory_mb", "memory_limit_mb": "query_memory_limit_mb",
}


def configure(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser, HealthSettings)
    parser.epilog = ("Outputs: status (healthy|degraded|overloaded|unhealthy), reason, p95_ms, outcome, "
                     "report.json. Exit 0 whatever the status; with --alert, 1 when the alert fires but its "
                     "condition does not hold (nothing to remediate) or still holds after --alert-settle "
                     "(not cleared); 2 on bad input; 3 when --prometheus stays unreachable.")


# --- input -----------------------------------------------------------------------------------

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
            targets.append(Target(name=name, url=check_url(url, f"--target {value!r}")))
    if not targets:
        raise UsageError("--target: no target given; add --target NAME=URL")
    return targets


def check_url(url: str, label: str) -> str:
    """An absolute http(s) URL with a host and no query or fragment; returned without a trailing '/'."""
    from rpops.core.parsers import http_url

    return http_url(url, label)


def _check_number(value: float, low: float, high: float, flag: str) -> None:
    if math.isnan(value) or not low <= value <= high:
        raise UsageError(f"{flag} {value:g}: must be between {low:g} and {high:g}")


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


def plan(s: HealthSettings) -> Plan:
    """Check every input; raise UsageError before anything is probed."""
    from rpops.steps.health.decide import QUERY_NAMES, check_window, load_rules

    targets = tuple(parse_targets(s.target))
    _check_number(s.samples, 1, 1000, "--samples")
    _check_number(s.timeout, 0.001, 600, "--timeout")
    _check_number(s.retries, 0, 10, "--retries")
    _check_number(s.prometheus_timeout, 0.001, 600, "--prometheus-timeout")
    if len(s.region) > 128:
        raise UsageError("--region: at most 128 characters")
    if s.status_path and not s.status_path.startswith("/"):
        raise UsageError(f"--status-path {s.status_path!r}: must start with '/' (or be '' to skip)")
    prometheus = check_url(s.prometheus, "--prometheus") if s.prometheus else None
    ruleset = load_rules(s.rules)
    window = s.window if s.window is not None else ruleset.window
    check_window(window, "--window")
    queries: dict[str, str] = {}
    sources: dict[str, str] = {}
    if prometheus:
        for name in QUERY_NAMES:
            flag_value = getattr(s, _QUERY_FLAGS[name])
            if flag_value is not None:
                query, source = flag_value.strip(), "--" + _QUERY_FLAGS[name].replace("_", "-")
            else:
                query, source = ruleset.queries.get(name, ""), f"{ruleset.source} queries.{name}"
            if query:
                queries[name] = query.replace("$window", window)
                sources[name] = source
    alert, labels, status = _alert_inputs(s, prometheus)
    return Plan(settings=s, targets=targets, ruleset=ruleset, prometheus=prometheus, queries=queries,
                query_sources=sources, alert=alert, alert_labels=labels, alert_status=status)


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


# --- observe ---------------------------------------------------------------------------------

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
    import asyncio

    from rpops.core.io import progress
    from rpops.steps.health.decide import TargetProbe

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
    import asyncio

    from rpops.clients.prometheus import AsyncPrometheus

    async with AsyncPrometheus(url, timeout=timeout, retries=retries) as prom:
        names = list(queries)
        results = await asyncio.gather(*(prom.query(queries[n]) for n in names))
    return dict(zip(names, results, strict=True))


async def observe(p: Plan) -> Observation:
    import asyncio

    from rpops.clients.probe import Prober

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
    from rpops.clients.prometheus import Outcome

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


# --- act -------------------------------------------------------------------------------------

def build_report(p: Plan, obs: Observation, signals: dict[str, Any], decision: Decision) -> dict[str, Any]:
    from rpops.steps.health.decide import assess_target, json_names

    targets = []
    for probe in obs.probes:
        entry = assess_target(probe).summary()
        entry["probes"] = {
            "health": probe.health.summary(),
            "ready": probe.ready.summary() if probe.ready else None,
            "status": probe.status.summary() if probe.status else None,
            "samples": [sample.summary() for sample in probe.samples],
        }
        targets.append(entry)
    prom = None
    if obs.prometheus is not None:
        queries = {n: {**r.summary(), "source": p.query_sources[n]} for n, r in obs.prometheus.items()}
        prom = {"url": p.prometheus, "queries": queries}
    return {
        "step": "health-check",
        "status": decision.status,
        "reason": decision.reason,
        "region": p.settings.region,
        "rule": {"name": decision.rule, "when": decision.when,
                 "evidence": json_names(dict(decision.evidence))},
        "rules_evaluated": [{"name": n, "matched": m} for n, m in decision.evaluated],
        "rules_source": p.ruleset.source,
        "signals": json_names(signals),
        "thresholds": dict(p.ruleset.thresholds),
        "targets": targets,
        "prometheus": prom,
        "settings": {"samples": p.settings.samples, "timeout": p.settings.timeout,
                     "retries": p.settings.retries, "status_path": p.settings.status_path},
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(obs.started_at)),
        "duration_ms": round(obs.duration_ms, 3),
    }


def act(decision: Decision, signals: dict[str, Any], report: dict[str, Any], outcome: str = "") -> None:
    from rpops.core.io import write_output, write_report

    p95 = signals.get("p95_ms", math.nan)
    write_output("status", decision.status)
    write_output("reason", decision.reason)
    write_output("outcome", outcome or "classified")
    write_output("p95_ms", "" if math.isnan(p95) else f"{p95:.1f}")  # empty: no latency measured
    write_report(report)
    log.info("%s (rule %s): %s", decision.status, decision.rule, decision.reason)
    print(decision.status)


def run(args: argparse.Namespace) -> int:
    from rpops.clients.probe import run_async
    from rpops.steps.health.decide import assess_target, classify, signal_names

    p = plan(from_args(HealthSettings, args))
    obs = run_async(observe(p))
    prom = prometheus_values(p, obs.prometheus)
    states = [assess_target(probe) for probe in obs.probes]
    signals = signal_names(states, prom, p.settings.region)
    decision = classify(signals, p.ruleset)
    if not p.alert:
        act(decision, signals, build_report(p, obs, signals, decision))
        return 0
    return alert_driven(p, obs, signals, decision)


async def read_evidence(p: Plan) -> Evidence:
    """The alert's evidence through this step's own prober (onset, or latest until it clears)."""
    from rpops.alerting import evidence as ev
    from rpops.clients.probe import Prober

    s = p.settings
    assert p.prometheus is not None
    async with Prober(timeout=s.prometheus_timeout, retries=s.retries) as prober:
        if s.alert_reading == ev.ONSET:
            return await ev.measure_async(prober, p.prometheus, p.alert, p.alert_labels, ev.ONSET)
        return await ev.wait_cleared_async(prober, p.prometheus, p.alert, p.alert_labels, s.alert_settle)


def alert_driven(p: Plan, obs: Observation, signals: dict[str, Any], by_rules: Decision) -> int:
    """The alert's own evidence decides; the rules' reading stays in the report beside it."""
    from dataclasses import replace

    from rpops.alerting import evidence as ev
    from rpops.alerting import verdict as vd
    from rpops.clients.probe import run_async

    s = p.settings
    assert p.prometheus is not None
    found = run_async(read_evidence(p))
    if s.alert_reading == ev.ONSET:
        verdict = vd.check(found, p.alert_status)
    else:
        verdict = vd.verify(found, p.alert_status, s.alert_settle)
    decision = replace(by_rules, status=verdict.status, reason=verdict.reason, rule=f"alert:{p.alert}",
                       when=found.query, evidence=found.to_json())
    report = build_report(p, obs, signals, decision)
    report["alert"] = {"name": p.alert, "labels": p.alert_labels, "evidence": found.to_json(),
                       "outcome": verdict.outcome, "rules_said": {"status": by_rules.status,
                                                                  "reason": by_rules.reason}}
    act(decision, signals, report, verdict.outcome)
    if verdict.exit_code:
        log.error("%s", verdict.reason)
    return verdict.exit_code
