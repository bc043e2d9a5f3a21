"""health-check, decide (pure): from observations to healthy / degraded / overloaded / unhealthy.

- `assess_target` turns one target's raw probes into a `TargetState`;
- `signal_names` turns every observation into the flat names the rules see;
- `classify` evaluates the ordered rules (first match wins, then the default);
- `alert_decision`: with an alert, its own evidence decides instead (rpops.alerting.verdict).

The rules come from `rpops.steps.health.rulefile` (the rules file, checked in full when loaded).
Rules are expressions run by `rpops.rules` (never Python's eval).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from rpops.alerting import evidence as ev
from rpops.alerting import verdict as vd
from rpops.clients.probe import ProbeResult, percentile
from rpops.core.errors import UsageError
from rpops.rules import CompiledRule, RuleError

# The statuses, mildest first: their index is the value of the health gauge (0..3).
STATUSES = ("healthy", "degraded", "overloaded", "unhealthy")

# Signals Prometheus can provide: the keys of `queries:` and of the --query-* flags.
QUERY_NAMES = ("p95_ms", "error_rate", "cpu_percent", "memory_mb", "memory_limit_mb")

# Every name a rule can use besides the thresholds, with what it means (docs/health-check.md and --help).
NAME_DOCS: dict[str, str] = {
    "total_targets": "number of targets probed",
    "healthy_targets": "targets whose /health answered 200 with status healthy and every check true",
    "unhealthy_targets": "targets that answered /health but not healthy (non-200, malformed JSON, "
                         "status not healthy, a check false)",
    "unreachable_targets": "targets with no answer from /health (connection failed or timed out)",
    "timeout_targets": "unreachable targets that timed out (a subset of unreachable_targets)",
    "failing_targets": "unhealthy_targets + unreachable_targets",
    "not_ready_targets": "answering targets whose /ready was not 200",
    "unhealthy_names": "names of the unhealthy targets (tuple of str)",
    "unreachable_names": "names of the unreachable targets (tuple of str)",
    "failing_names": "names of the failing targets (tuple of str)",
    "not_ready_names": "names of the targets not ready (tuple of str)",
    "samples": "latency samples taken over all targets",
    "p50_ms": "the slowest target's median latency (probe samples)",
    "p95_ms": "the worst p95 latency: the slowest target's p95, or Prometheus' p95 when higher",
    "error_rate": "the worst error rate (0..1): failed probe samples, or Prometheus' when higher",
    "cpu_percent": "the busiest process's CPU (percent of one core): targets' status endpoint or Prometheus",
    "memory_mb": "the largest resident memory (MB): targets' status endpoint or Prometheus",
    "memory_limit_mb": "the memory limit (MB), from Prometheus",
    "memory_ratio": "memory_mb / memory_limit_mb",
    "probe_p50_ms": "median over every probe sample of every target",
    "probe_p95_ms": "p95 over every probe sample of every target",
    "worst_target_p95_ms": "the slowest target's p95 (probe samples)",
    "probe_error_rate": "share of probe samples not answered 2xx",
    "target_cpu_percent": "highest cpu_percent reported by the targets' status endpoint",
    "target_memory_mb": "highest memory_mb reported by the targets' status endpoint",
    "prom_p95_ms": "p95 latency from Prometheus",
    "prom_error_rate": "error rate from Prometheus",
    "prom_cpu_percent": "CPU percent from Prometheus",
    "prom_memory_mb": "memory MB from Prometheus",
    "prom_memory_limit_mb": "memory limit MB from Prometheus",
    "prometheus": "true when --prometheus was given",
    "prometheus_missing": "Prometheus queries that returned no value (empty, NaN or error)",
    "region": "the --region value (str)",
}
TUPLE_NAMES = ("unhealthy_names", "unreachable_names", "failing_names", "not_ready_names")
INT_NAMES = ("total_targets", "healthy_targets", "unhealthy_targets", "unreachable_targets",
             "timeout_targets", "failing_targets", "not_ready_targets", "samples", "prometheus_missing")

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")  # {name} in a reason


# --- observations ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    name: str
    url: str  # base URL without a trailing slash


@dataclass(frozen=True)
class TargetProbe:
    """What was observed of one target (raw probe results)."""

    target: Target
    health: ProbeResult
    ready: ProbeResult | None = None
    status: ProbeResult | None = None  # the performance status endpoint, when probed
    samples: tuple[ProbeResult, ...] = ()


TargetCondition = Literal["healthy", "unhealthy", "unreachable"]


@dataclass(frozen=True)
class TargetState:
    """One target, assessed."""

    name: str
    url: str
    condition: TargetCondition
    reason: str
    timed_out: bool = False
    ready: bool | None = None
    version: str | None = None
    checks: Mapping[str, bool] = field(default_factory=dict)
    latencies_ms: tuple[float, ...] = ()  # answered samples only
    sample_errors: int = 0  # samples not answered 2xx (including those with no answer)
    sample_errors_unanswered: int = 0  # samples with no answer at all: counted, no latency
    p50_ms: float = math.nan
    p95_ms: float = math.nan
    cpu_percent: float = math.nan
    memory_mb: float = math.nan

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name, "url": self.url, "condition": self.condition, "reason": self.reason,
            "timed_out": self.timed_out, "ready": self.ready, "version": self.version,
            "checks": dict(self.checks), "samples": len(self.latencies_ms) + self.sample_errors_unanswered,
            "latencies_ms": [round(v, 3) for v in self.latencies_ms], "sample_errors": self.sample_errors,
            "p50_ms": _json_float(self.p50_ms), "p95_ms": _json_float(self.p95_ms),
            "cpu_percent": _json_float(self.cpu_percent), "memory_mb": _json_float(self.memory_mb),
        }


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 3)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


def assess_target(probe: TargetProbe) -> TargetState:
    """Classify one target's raw probes: healthy, unhealthy (answered, not healthy) or unreachable."""
    target, health = probe.target, probe.health
    answered = [s for s in probe.samples if s.answered]
    latencies = tuple(s.elapsed_ms for s in answered)
    common: dict[str, Any] = {
        "name": target.name, "url": target.url,
        "latencies_ms": latencies,
        "sample_errors": sum(1 for s in probe.samples if not s.ok),
        "sample_errors_unanswered": len(probe.samples) - len(answered),
        "p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95),
    }
    if not health.answered:
        return TargetState(condition="unreachable", reason=f"/health {health.describe()}",
                           timed_out=health.error == "timeout", **common)
    common["ready"] = probe.ready.status == 200 if probe.ready is not None else None
    common.update(_status_figures(probe.status))
    body, json_error = health.parse_json()
    if isinstance(body, dict):
        common["version"] = str(body["version"]) if "version" in body else None
        checks = body.get("checks")
        if isinstance(checks, dict):
            common["checks"] = {str(k): v is True for k, v in checks.items()}
    if health.status != 200:
        detail = f"; status {body.get('status')!r}" if isinstance(body, dict) and "status" in body else ""
        return TargetState(condition="unhealthy", reason=f"/health HTTP {health.status}{detail}", **common)
    problem = _health_problem(body, json_error, common.get("checks", {}))
    if problem:
        return TargetState(condition="unhealthy", reason=f"/health {problem}", **common)
    return TargetState(condition="healthy", reason="/health 200 healthy", **common)


def _health_problem(body: Any, json_error: str | None, checks: Mapping[str, bool]) -> str:
    """Why a 200 answer of /health is not healthy ('' when it is)."""
    if json_error is not None:
        return json_error
    if not isinstance(body, dict):
        return "answered JSON that is not an object"
    if body.get("status") != "healthy":
        return f"status {body.get('status')!r}"
    failing = sorted(name for name, ok in checks.items() if not ok)
    return f"checks failing: {', '.join(failing)}" if failing else ""


def _status_figures(status: ProbeResult | None) -> dict[str, float]:
    if status is None or not status.ok:
        return {}
    body, error = status.parse_json()
    if error is not None or not isinstance(body, dict):
        return {}
    return {"cpu_percent": _number(body.get("cpu_percent")), "memory_mb": _number(body.get("memory_mb"))}


# --- names the rules see ---------------------------------------------------------------------

def _worst(*values: float) -> float:
    present = [v for v in values if not math.isnan(v)]
    return max(present) if present else math.nan


def signal_names(states: Sequence[TargetState], prom: Mapping[str, float | None] | None,
                 region: str = "") -> dict[str, Any]:
    """Flatten target states and Prometheus values into the names documented in NAME_DOCS.

    `prom` maps QUERY_NAMES to a value (None: queried, no value); None when Prometheus was not
    asked. Unknown numbers are NaN, so any comparison with them is false.
    """
    def names(condition: str) -> tuple[str, ...]:
        return tuple(s.name for s in states if s.condition == condition)

    unhealthy, unreachable = names("unhealthy"), names("unreachable")
    answering = [s for s in states if s.condition != "unreachable"]
    not_ready = tuple(s.name for s in answering if s.ready is False)
    pooled = [v for s in states for v in s.latencies_ms]
    taken = sum(len(s.latencies_ms) + s.sample_errors_unanswered for s in states)
    failed = sum(s.sample_errors for s in states)
    prom_values = {k: (math.nan if v is None else float(v)) for k, v in (prom or {}).items()}

    def from_prom(key: str) -> float:
        return prom_values.get(key, math.nan)

    out: dict[str, Any] = {
        "total_targets": len(states),
        "healthy_targets": sum(1 for s in states if s.condition == "healthy"),
        "unhealthy_targets": len(unhealthy),
        "unreachable_targets": len(unreachable),
        "timeout_targets": sum(1 for s in states if s.timed_out),
        "failing_targets": len(unhealthy) + len(unreachable),
        "not_ready_targets": len(not_ready),
        "unhealthy_names": unhealthy,
        "unreachable_names": unreachable,
        "failing_names": unhealthy + unreachable,
        "not_ready_names": not_ready,
        "samples": taken,
        "probe_p50_ms": percentile(pooled, 50),
        "probe_p95_ms": percentile(pooled, 95),
        "worst_target_p95_ms": _worst(*(s.p95_ms for s in states)),
        "probe_error_rate": failed / taken if taken else math.nan,
        "target_cpu_percent": _worst(*(s.cpu_percent for s in states)),
        "target_memory_mb": _worst(*(s.memory_mb for s in states)),
        "prom_p95_ms": from_prom("p95_ms"),
        "prom_error_rate": from_prom("error_rate"),
        "prom_cpu_percent": from_prom("cpu_percent"),
        "prom_memory_mb": from_prom("memory_mb"),
        "prom_memory_limit_mb": from_prom("memory_limit_mb"),
        "prometheus": prom is not None,
        "prometheus_missing": sum(1 for v in (prom or {}).values() if v is None),
        "region": region,
    }
    out["p50_ms"] = _worst(*(s.p50_ms for s in states))
    out["p95_ms"] = _worst(out["worst_target_p95_ms"], out["prom_p95_ms"])
    out["error_rate"] = _worst(out["probe_error_rate"], out["prom_error_rate"])
    out["cpu_percent"] = _worst(out["target_cpu_percent"], out["prom_cpu_percent"])
    out["memory_mb"] = _worst(out["target_memory_mb"], out["prom_memory_mb"])
    out["memory_limit_mb"] = out["prom_memory_limit_mb"]
    limit = out["memory_limit_mb"]
    out["memory_ratio"] = out["memory_mb"] / limit if limit > 0 else math.nan  # NaN > 0 is False
    return out


# --- the rules and the decision --------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    name: str
    when: str
    status: str
    reason: str
    uses: tuple[str, ...]  # names the expression reads: the evidence shown in the report
    compiled: CompiledRule = field(repr=False, compare=False)


@dataclass(frozen=True)
class RuleSet:
    source: str  # the file, or "built-in"
    rules: tuple[Rule, ...]
    default_status: str
    default_reason: str
    thresholds: Mapping[str, float]
    queries: Mapping[str, str]
    window: str


@dataclass(frozen=True)
class Decision:
    status: str
    reason: str
    rule: str  # the matching rule's name, or "default"
    when: str | None  # its expression
    evidence: Mapping[str, Any]  # the values of the names that expression reads
    evaluated: tuple[tuple[str, bool], ...]  # every rule evaluated, in order, and its result


def classify(signals: Mapping[str, Any], ruleset: RuleSet) -> Decision:
    """First rule whose expression is true decides; else the default. Pure."""
    names = {**signals, **ruleset.thresholds}
    evaluated: list[tuple[str, bool]] = []
    for rule in ruleset.rules:
        try:
            matched = bool(rule.compiled.evaluate(names))
        except RuleError as exc:
            raise UsageError(f"{ruleset.source}: rule {rule.name!r} failed on the observed values: {exc}; "
                             "fix its 'when'") from None
        evaluated.append((rule.name, matched))
        if matched:
            evidence = {n: names[n] for n in rule.uses}
            return Decision(status=rule.status, reason=render_reason(rule.reason, names), rule=rule.name,
                            when=rule.when, evidence=evidence, evaluated=tuple(evaluated))
    return Decision(status=ruleset.default_status, reason=render_reason(ruleset.default_reason, names),
                    rule="default", when=None, evidence={}, evaluated=tuple(evaluated))


def format_value(value: Any) -> str:
    """How a name's value reads in a reason: 1234.6 -> '1235', 93.27 -> '93.3', NaN -> 'n/a'."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if math.isinf(value) or value == int(value):
            return f"{value:.0f}" if not math.isinf(value) else str(value)
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 1:
            return f"{value:.1f}"
        return f"{value:.3g}"
    if isinstance(value, tuple | list):
        return ", ".join(format_value(v) for v in value) or "none"
    return str(value)


def render_reason(template: str, names: Mapping[str, Any]) -> str:
    """Replace `{name}` with the name's formatted value. Plain names only: no attribute access."""
    return PLACEHOLDER.sub(lambda m: format_value(names[m.group(1)]) if m.group(1) in names else m.group(0),
                           template)


def json_names(names: Mapping[str, Any]) -> dict[str, Any]:
    """Names as JSON values: NaN -> null, tuples -> lists."""
    out: dict[str, Any] = {}
    for key, value in names.items():
        if isinstance(value, float):
            out[key] = None if math.isnan(value) else round(value, 6)
        elif isinstance(value, tuple):
            out[key] = list(value)
        else:
            out[key] = value
    return out


def alert_decision(by_rules: Decision, found: ev.Evidence, alert: str, status: str, reading: str,
                   settle_s: float) -> tuple[Decision, vd.Verdict]:
    """With an alert, its own evidence decides: onset (does it need remediating?) or latest (did
    the remediation clear it?). The decision keeps the rules' evaluation beside the alert's reading."""
    if reading == ev.ONSET:
        verdict = vd.check(found, status)
    else:
        verdict = vd.verify(found, status, settle_s)
    decision = replace(by_rules, status=verdict.status, reason=verdict.reason, rule=f"alert:{alert}",
                       when=found.query, evidence=found.to_json())
    return decision, verdict
