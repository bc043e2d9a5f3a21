"""health-check, decide: from observations to healthy / degraded / overloaded / unhealthy.

Everything here is pure (no I/O but `load_rules`, which reads the rules file):
- `assess_target` turns one target's raw probes into a `TargetState`;
- `signal_names` turns every observation into the flat names the rules see;
- `classify` evaluates the ordered rules (first match wins, then the default).

Rules are expressions run by `rpops.rules` (never Python's eval). A rules file is checked in
full when loaded: structure, statuses, every expression compiled and dry-run against the known
names, so a typo fails the step before anything is probed.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rpops.core.errors import UsageError

if TYPE_CHECKING:
    from rpops.clients.probe import ProbeResult
    from rpops.rules import CompiledRule

STATUSES = ("healthy", "degraded", "overloaded", "unhealthy")
DEFAULT_RULES_PATH = Path(__file__).parent / "health-rules.yaml"

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
_TUPLE_NAMES = ("unhealthy_names", "unreachable_names", "failing_names", "not_ready_names")
_INT_NAMES = ("total_targets", "healthy_targets", "unhealthy_targets", "unreachable_targets",
              "timeout_targets", "failing_targets", "not_ready_targets", "samples", "prometheus_missing")

_RULE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_WINDOW = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


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
    from rpops.clients.probe import percentile

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
    from rpops.clients.probe import percentile

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


# --- the rules file --------------------------------------------------------------------------

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


def load_rules(path: str | None) -> RuleSet:
    """The built-in rules, or a rules file merged with them (see the file's header). Raises UsageError."""
    default_doc = _read_yaml(DEFAULT_RULES_PATH, "the built-in rules")
    if path is None:
        return parse_rules(default_doc, "built-in")
    doc = _read_yaml(Path(path), f"--rules {path}")
    return parse_rules(doc, f"--rules {path}", base=default_doc)


def _read_yaml(path: Path, label: str) -> Any:
    from rpops.core.parsers import load_yaml_file

    return load_yaml_file(path, label, "the rules file")  # capped size, regular files only, bounded nesting


_TOP_KEYS = {"version", "thresholds", "queries", "window", "rules", "default"}
_RULE_KEYS = {"name", "when", "status", "reason"}


def parse_rules(doc: Any, source: str, base: Mapping[str, Any] | None = None) -> RuleSet:
    """Validate a rules document (merged over `base`), compile and dry-run every rule."""
    def fail(what: str) -> UsageError:
        return UsageError(f"{source}: {what}")

    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise fail("the rules file must be a YAML mapping with 'rules:' and 'default:' (or 'thresholds:')")
    unknown = set(doc) - _TOP_KEYS
    if unknown:
        raise fail(f"unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                   f"allowed: {', '.join(sorted(_TOP_KEYS))}")
    if doc.get("version", 1) != 1:
        raise fail(f"version {doc.get('version')!r} is not supported; use 'version: 1'")
    base = base or {}

    thresholds = dict(_thresholds(base.get("thresholds") or {}, fail))
    thresholds.update(_thresholds(doc.get("thresholds") or {}, fail))
    queries = dict(_queries(base.get("queries") or {}, fail))
    queries.update(_queries(doc.get("queries") or {}, fail))
    window = doc.get("window", base.get("window", "5m"))
    check_window(window, f"{source}: window")

    if "rules" in doc:
        if "default" not in doc:
            raise fail("a file with 'rules:' needs a final 'default:' with 'status' and 'reason', "
                       "e.g. default: {status: healthy, reason: all good}")
        raw_rules, raw_default = doc["rules"], doc["default"]
    elif "default" in doc:
        raise fail("'default:' without 'rules:'; add the rules, or drop 'default:' to keep the built-in ones")
    else:
        raw_rules, raw_default = base.get("rules"), base.get("default")

    known = set(NAME_DOCS) | set(thresholds)
    if not isinstance(raw_rules, list) or not raw_rules:
        raise fail("'rules' must be a non-empty list of {name, when, status, reason}")
    rules = tuple(_rule(i, raw, known, fail) for i, raw in enumerate(raw_rules))
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            raise fail(f"rule name {rule.name!r} is used twice; names must be unique")
        seen.add(rule.name)
    default_status, default_reason = _default(raw_default, known, fail)
    ruleset = RuleSet(source=source, rules=rules, default_status=default_status,
                      default_reason=default_reason, thresholds=thresholds, queries=queries, window=window)
    dry_run(ruleset)
    return ruleset


def check_window(window: Any, label: str) -> None:
    if not isinstance(window, str) or not _WINDOW.match(window):
        raise UsageError(f"{label}: {window!r} is not a Prometheus duration; use e.g. 30s, 5m or 1h")


def _thresholds(raw: Any, fail: Any) -> dict[str, float]:
    if not isinstance(raw, dict):
        raise fail("'thresholds' must be a mapping of name: number")
    out: dict[str, float] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not _IDENT.match(name):
            raise fail(f"threshold name {name!r} must be an identifier (letters, digits, _)")
        if name in NAME_DOCS:
            raise fail(f"threshold {name!r} would hide the signal of that name; rename it")
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise fail(f"threshold {name!r} must be a number, got {value!r}")
        out[name] = value
    return out


def _queries(raw: Any, fail: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise fail("'queries' must be a mapping of signal: PromQL")
    out: dict[str, str] = {}
    for name, value in raw.items():
        if name not in QUERY_NAMES:
            raise fail(f"unknown query {name!r}; queries exist for: {', '.join(QUERY_NAMES)}")
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise fail(f"query {name!r} must be a PromQL string ('' to skip it), got {value!r}")
        out[name] = value.strip()
    return out


def _rule(index: int, raw: Any, known: set[str], fail: Any) -> Rule:
    label = f"rule #{index + 1}"
    if not isinstance(raw, dict):
        raise fail(f"{label} must be a mapping with name, when, status and reason")
    if isinstance(raw.get("name"), str):
        label = f"rule #{index + 1} ({raw['name']!r})"
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        raise fail(f"{label}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                   f"allowed: {', '.join(sorted(_RULE_KEYS))}")
    missing = [k for k in ("name", "when", "status") if k not in raw]
    if missing:
        raise fail(f"{label}: missing {', '.join(missing)}")
    name, when, status, reason = raw["name"], raw["when"], raw["status"], raw.get("reason", "")
    if not isinstance(name, str) or not _RULE_NAME.match(name):
        raise fail(f"{label}: name must be 1-64 letters, digits, '.', '_' or '-', got {name!r}")
    if not isinstance(when, str) or not when.strip():
        raise fail(f"{label}: 'when' must be a non-empty expression string, got {when!r}")
    if status not in STATUSES:
        raise fail(f"{label}: status {status!r} is not one of {', '.join(STATUSES)}")
    reason = _reason(reason, known, lambda msg: fail(f"{label}: {msg}"))
    compiled = _compile(when, lambda msg: fail(f"{label}: {msg}"))
    return Rule(name=name, when=when, status=status, reason=reason or f"rule {name}: {when}",
                uses=_names_in(when, known), compiled=compiled)


def _default(raw: Any, known: set[str], fail: Any) -> tuple[str, str]:
    if not isinstance(raw, dict) or set(raw) - {"status", "reason"} or "status" not in raw:
        raise fail("'default' must be a mapping with 'status' (and optionally 'reason')")
    if raw["status"] not in STATUSES:
        raise fail(f"default: status {raw['status']!r} is not one of {', '.join(STATUSES)}")
    reason = _reason(raw.get("reason", ""), known, lambda msg: fail(f"default: {msg}"))
    return raw["status"], reason or "no rule matched"


def _reason(reason: Any, known: set[str], fail: Any) -> str:
    if not isinstance(reason, str):
        raise fail(f"'reason' must be a string, got {reason!r}")
    unknown = sorted({m for m in _PLACEHOLDER.findall(reason) if m not in known})
    if unknown:
        raise fail(f"reason uses unknown name(s) {', '.join(unknown)}; see the names in docs/health-check.md")
    return reason


def _compile(when: str, fail: Any) -> CompiledRule:
    from rpops.rules import RuleError, compile_rule

    try:
        return compile_rule(when)
    except RuleError as exc:
        raise fail(f"'when' was refused: {exc}") from None


def _names_in(expression: str, known: set[str]) -> tuple[str, ...]:
    # Parsing only (no evaluation): which known names does the expression read?
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError:
        return ()
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in known and node.id not in found:
            found.append(node.id)
    return tuple(found)


def _placeholder_values(thresholds: Mapping[str, float], numbers: float) -> dict[str, Any]:
    names: dict[str, Any] = {}
    for name in NAME_DOCS:
        if name in _TUPLE_NAMES:
            names[name] = ("a",)
        elif name in _INT_NAMES:
            names[name] = 1
        elif name == "prometheus":
            names[name] = True
        elif name == "region":
            names[name] = "r"
        else:
            names[name] = numbers
    names.update(thresholds)
    return names


def dry_run(ruleset: RuleSet) -> None:
    """Evaluate every rule once with signals present and once with them unknown (NaN).

    Catches names that do not exist and expressions that cannot run, before any probe.
    """
    from rpops.rules import RuleError

    for numbers in (1.0, math.nan):
        names = _placeholder_values(ruleset.thresholds, numbers)
        for rule in ruleset.rules:
            try:
                rule.compiled.evaluate(names)
            except RuleError as exc:
                raise UsageError(f"{ruleset.source}: rule {rule.name!r}: 'when: {rule.when}' cannot be "
                                 f"evaluated: {exc}. Known names: the signals in docs/health-check.md and "
                                 f"the thresholds ({', '.join(sorted(ruleset.thresholds)) or 'none'})"
                                 ) from None


# --- decide ----------------------------------------------------------------------------------

def classify(signals: Mapping[str, Any], ruleset: RuleSet) -> Decision:
    """First rule whose expression is true decides; else the default. Pure."""
    from rpops.rules import RuleError

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
    return _PLACEHOLDER.sub(lambda m: format_value(names[m.group(1)]) if m.group(1) in names else m.group(0),
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


def known_names(thresholds: Iterable[str] = ()) -> list[str]:
    return sorted(set(NAME_DOCS) | set(thresholds))
