"""Analysis as in Argo Rollouts' AnalysisTemplates: metrics measured every `interval`, `count`
times, each measurement judged by a success and a failure condition, the metric judged by
`failureLimit`, `inconclusiveLimit` and `consecutiveErrorLimit`.

An analysis file (`--analysis FILE`, YAML, read with yaml.safe_load) lists metrics:

    metrics:
      - name: error-rate
        query: |                       # PromQL; or provider: {prometheus: {address, query}}
          sum(rate(research_platform_requests_total{status=~"5..",$green}[1m]))
          / sum(rate(research_platform_requests_total{$green}[1m]))
        successCondition: result[0] <= 0.01
        failureCondition: result[0] > 0.05
        interval: 10s                  # Argo durations: 30, 30s, 1m, 500ms
        count: 3                       # measurements; unset with an interval: until the window ends
        failureLimit: 0                # failed measurements tolerated
        inconclusiveLimit: 0
        consecutiveErrorLimit: 4       # query errors in a row tolerated
        noDataPolicy: fail             # fail | inconclusive | pass | evaluate (conditions see [])
        allowEmpty: false              # true is noDataPolicy: pass
        when: both                     # pre (before the switch) | post (verify) | both

A whole Argo `AnalysisTemplate` document is read too (its `spec.metrics`). Conditions are rules
(`rpops.rules`) over `result`: a vector is a list of values (`result[0]`), a scalar a number.
Query placeholders: $service, $version (green), $stable (blue), $namespace, $instances (a regex
of green's instances' host:port) and $green (label matchers of green's series, by platform).

Judging one measurement (Argo's rules): both conditions given: failure wins, then success, else
inconclusive; only a success condition: false is a failure; only a failure condition: false is
a success. No data (an empty or all-NaN result) is a failure unless the metric allows it. A query
that errors is an error measurement. Everything here except `load_file` is pure.

settings.py reads this module, so `rpops --help` does too: the rule engine, YAML and the
Prometheus client are imported where they are used.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rpops.core.durations import parse_duration
from rpops.core.errors import UsageError
from rpops.core.parsers import check_depth, read_text_file

NO_DATA = ("fail", "inconclusive", "pass", "evaluate")
WHEN = ("pre", "post", "both")
PLACEHOLDERS = ("$service", "$version", "$stable", "$namespace", "$instances", "$green")
_PLACEHOLDER = re.compile(r"\$[A-Za-z_][A-Za-z0-9_]*")
_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
DEFAULT_CONSECUTIVE_ERRORS = 4
MAX_METRICS = 50
MAX_COUNT = 10_000


class Phase(enum.StrEnum):
    SUCCESSFUL = "Successful"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"
    ERROR = "Error"
    RUNNING = "Running"


# Argo's order: a run is as bad as its worst metric.
_SEVERITY = {Phase.RUNNING: 0, Phase.SUCCESSFUL: 1, Phase.INCONCLUSIVE: 2, Phase.ERROR: 3, Phase.FAILED: 4}


@dataclass(frozen=True)
class MetricSpec:
    name: str
    query: str | None  # None: a built-in metric computed from probes
    address: str | None = None  # Prometheus base URL (else --prometheus)
    success: str | None = None
    failure: str | None = None
    interval: float = 0.0
    count: int | None = 1
    failure_limit: int = 0
    inconclusive_limit: int = 0
    consecutive_error_limit: int = DEFAULT_CONSECUTIVE_ERRORS
    no_data: str = "fail"
    when: str = "both"
    initial_delay: float = 0.0

    def applies(self, stage: str) -> bool:
        return self.when in ("both", stage)


@dataclass(frozen=True)
class Measurement:
    phase: Phase
    value: Any = None
    message: str = ""
    at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        value = self.value
        if isinstance(value, float) and not math.isfinite(value):
            value = str(value)
        return {"phase": self.phase.value, "value": value, "message": self.message, "at": round(self.at, 3)}


@dataclass(frozen=True)
class MetricResult:
    name: str
    measurements: tuple[Measurement, ...] = ()
    phase: Phase = Phase.RUNNING

    def count(self, phase: Phase) -> int:
        return sum(1 for m in self.measurements if m.phase is phase)

    @property
    def consecutive_errors(self) -> int:
        n = 0
        for m in reversed(self.measurements):
            if m.phase is not Phase.ERROR:
                break
            n += 1
        return n

    def message(self) -> str:
        last = self.measurements[-1] if self.measurements else None
        return last.message if last else ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "phase": self.phase.value,
            "successful": self.count(Phase.SUCCESSFUL),
            "failed": self.count(Phase.FAILED),
            "inconclusive": self.count(Phase.INCONCLUSIVE),
            "error": self.count(Phase.ERROR),
            "measurements": [m.to_json() for m in self.measurements[-20:]],
        }


# --- judging ---------------------------------------------------------------------------------


def judge(spec: MetricSpec, value: Any, at: float = 0.0) -> Measurement:
    """One measurement's phase from its conditions (Argo's evaluate rules)."""
    from rpops.rules import RuleError, compile_rule

    def holds(source: str) -> bool:
        return bool(compile_rule(source).evaluate({"result": value}))

    try:
        ok = holds(spec.success) if spec.success else None
        bad = holds(spec.failure) if spec.failure else None
    except RuleError as exc:
        return Measurement(Phase.ERROR, value, f"condition failed: {exc}", at)
    shown = _show(value)
    if bad:
        return Measurement(
            Phase.FAILED, value, f"result {shown}: failureCondition `{spec.failure}` holds", at
        )
    if ok is None and bad is None:
        return Measurement(Phase.SUCCESSFUL, value, f"result {shown}", at)
    if ok is None:
        return Measurement(Phase.SUCCESSFUL, value, f"result {shown}: failureCondition does not hold", at)
    if ok:
        return Measurement(Phase.SUCCESSFUL, value, f"result {shown}: successCondition holds", at)
    if bad is None:
        return Measurement(
            Phase.FAILED, value, f"result {shown}: successCondition `{spec.success}` does not hold", at
        )
    return Measurement(Phase.INCONCLUSIVE, value, f"result {shown}: neither condition holds", at)


def no_data(spec: MetricSpec, why: str, at: float = 0.0) -> Measurement:
    """A measurement that found no data, by the metric's noDataPolicy."""
    if spec.no_data == "evaluate":
        return judge(spec, [], at)
    phase = {"fail": Phase.FAILED, "inconclusive": Phase.INCONCLUSIVE, "pass": Phase.SUCCESSFUL}[spec.no_data]
    return Measurement(phase, None, f"no data ({why}); noDataPolicy {spec.no_data}", at)


def error(message: str, at: float = 0.0) -> Measurement:
    return Measurement(Phase.ERROR, None, message, at)


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list) and len(value) > 5:
        return "[" + ", ".join(_show(v) for v in value[:5]) + f", ... ({len(value)} values)]"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return repr(value)


def measure_query(spec: MetricSpec, result: Any, at: float = 0.0) -> Measurement:
    """A Prometheus QueryResult (rpops.clients.prometheus) as one measurement of `spec`."""
    from rpops.clients.prometheus import Outcome

    outcome = result.outcome
    if outcome in (Outcome.EMPTY, Outcome.NAN):
        return no_data(spec, "empty result" if outcome is Outcome.EMPTY else "every value is NaN", at)
    if outcome is not Outcome.OK:
        detail = result.error or outcome.value
        return error(f"query {outcome.value}: {detail}"[:300], at)
    if result.result_type == "scalar":
        value: Any = result.samples[0].value
    elif result.result_type == "vector":
        value = [s.value for s in result.samples]
    else:
        return error(f"query gave a {result.result_type}, not a vector or scalar: use an instant query", at)
    return judge(spec, value, at)


def assess(spec: MetricSpec, result: MetricResult, terminating: bool) -> Phase:
    """The metric's phase after its measurements (Argo's assessMetricStatus)."""
    if not result.measurements:
        return Phase.SUCCESSFUL if terminating else Phase.RUNNING
    if result.count(Phase.FAILED) > spec.failure_limit:
        return Phase.FAILED
    if result.count(Phase.INCONCLUSIVE) > spec.inconclusive_limit:
        return Phase.INCONCLUSIVE
    if result.consecutive_errors > spec.consecutive_error_limit:
        return Phase.ERROR
    if spec.count is not None and len(result.measurements) >= spec.count:
        return Phase.SUCCESSFUL
    return Phase.SUCCESSFUL if terminating else Phase.RUNNING


def worst(phases: Sequence[Phase]) -> Phase:
    """The run's phase: Running while any metric runs, else its worst metric."""
    if not phases or any(p is Phase.RUNNING for p in phases):
        return Phase.RUNNING
    return max(phases, key=lambda p: _SEVERITY[p])


def failed(phase: Phase) -> bool:
    """Whether a completed metric (or run) blocks a promotion: anything but Successful.

    Argo Rollouts pauses on Inconclusive for a human; here an unattended run must decide, and an
    undecided analysis does not promote.
    """
    return phase in (Phase.FAILED, Phase.INCONCLUSIVE, Phase.ERROR)


@dataclass
class Tracker:
    """Measurements of a set of metrics as they come in, with their schedule. Pure bookkeeping:
    the caller passes `now` and does the measuring."""

    specs: Sequence[MetricSpec]
    started: float
    results: dict[str, MetricResult] = field(default_factory=dict)
    next_due: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for spec in self.specs:
            self.results[spec.name] = MetricResult(spec.name)
            self.next_due[spec.name] = self.started + spec.initial_delay

    def due(self, now: float) -> list[MetricSpec]:
        return [
            s
            for s in self.specs
            if self.results[s.name].phase is Phase.RUNNING and self.next_due[s.name] <= now
        ]

    def record(self, spec: MetricSpec, measurement: Measurement, now: float) -> Phase:
        old = self.results[spec.name]
        new = MetricResult(spec.name, (*old.measurements, measurement)[-200:])
        phase = assess(spec, new, terminating=False)
        self.results[spec.name] = MetricResult(spec.name, new.measurements, phase)
        # `now` is when the measurement started: measurements start every `interval` seconds. (Argo
        # counts the interval from a measurement's end, and retries an errored one after 10 s.)
        self.next_due[spec.name] = now + max(spec.interval, 0.0)
        return phase

    def terminate(self) -> None:
        """The window ended: metrics still running are judged on what they measured."""
        for spec in self.specs:
            result = self.results[spec.name]
            if result.phase is Phase.RUNNING:
                self.results[spec.name] = MetricResult(
                    spec.name, result.measurements, assess(spec, result, True)
                )

    def next_time(self) -> float | None:
        running = [self.next_due[s.name] for s in self.specs if self.results[s.name].phase is Phase.RUNNING]
        return min(running) if running else None

    def phase(self) -> Phase:
        return worst([r.phase for r in self.results.values()])

    def failures(self) -> list[MetricResult]:
        return [r for r in self.results.values() if failed(r.phase)]

    def summary(self) -> list[dict[str, Any]]:
        return [self.results[s.name].to_json() for s in self.specs]


# --- reading the analysis file ---------------------------------------------------------------


def _duration(raw: Any, where: str) -> float:
    if isinstance(raw, bool):
        raise UsageError(f"{where}: {raw!r} is not a duration; write e.g. 30s, 1m or 500ms")
    if isinstance(raw, int | float):
        value = float(raw)
    else:
        try:
            value = parse_duration(str(raw))
        except ValueError as exc:
            raise UsageError(f"{where}: {exc}") from None
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"{where}: {raw!r} must be a duration >= 0")
    return value


def _int(raw: Any, where: str, low: int, high: int) -> int:
    if isinstance(raw, bool):
        raise UsageError(f"{where}: {raw!r} is not a whole number")
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise UsageError(f"{where}: {raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise UsageError(f"{where}: {value} must be between {low} and {high}")
    return value


def _condition(raw: Any, where: str) -> str | None:
    from rpops.rules import RuleError, compile_rule

    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise UsageError(f"{where}: must be a rule over `result` as a string, e.g. 'result[0] <= 0.01'")
    try:
        rule = compile_rule(raw)
    except RuleError as exc:
        raise UsageError(f"{where} does not compile: {exc}") from None
    unknown = sorted(set(rule.names) - {"result"})
    if unknown:
        raise UsageError(
            f"{where} does not compile: it uses {', '.join(unknown)}, but a condition sees only `result`"
        )
    return raw


_KNOWN = {
    "name",
    "query",
    "provider",
    "successCondition",
    "failureCondition",
    "interval",
    "count",
    "failureLimit",
    "inconclusiveLimit",
    "consecutiveErrorLimit",
    "noDataPolicy",
    "allowEmpty",
    "when",
    "initialDelay",
}


def _query(raw: Mapping[str, Any], where: str) -> tuple[str, str | None]:
    """The metric's PromQL and its Prometheus address (None: --prometheus), placeholders checked."""
    query, address = raw.get("query"), None
    provider = raw.get("provider")
    if provider is not None:
        prom = provider.get("prometheus") if isinstance(provider, Mapping) else None
        if not isinstance(prom, Mapping) or set(provider) != {"prometheus"}:
            raise UsageError(f"{where}.provider: only `prometheus: {{address, query}}` is supported")
        query = query or prom.get("query")
        address = prom.get("address")
        if address is not None and not isinstance(address, str):
            raise UsageError(f"{where}.provider.prometheus.address must be a URL string")
    if not isinstance(query, str) or not query.strip():
        raise UsageError(f"{where} has no query: add `query: <PromQL>` (or provider.prometheus.query)")
    unknown = sorted(set(_PLACEHOLDER.findall(query)) - set(PLACEHOLDERS))
    if unknown:
        raise UsageError(
            f"{where}.query uses unknown placeholder(s) {', '.join(unknown)}; "
            f"known: {', '.join(PLACEHOLDERS)}"
        )
    return query.strip(), address


def _count(raw: Mapping[str, Any], interval: float, where: str) -> int | None:
    if "count" in raw and raw["count"] is not None:
        count: int | None = _int(raw["count"], f"{where}.count", 1, MAX_COUNT)
    else:
        count = None if interval > 0 else 1  # Argo: an interval without a count repeats until the end
    if count is not None and count > 1 and interval <= 0:
        raise UsageError(f"{where}: count {count} needs an interval between measurements")
    return count


def _no_data_policy(raw: Mapping[str, Any], where: str) -> str:
    policy = raw.get("noDataPolicy")
    allow_empty = raw.get("allowEmpty")
    if allow_empty is not None and not isinstance(allow_empty, bool):
        raise UsageError(f"{where}.allowEmpty must be true or false")
    if policy is None:
        return "pass" if allow_empty else "fail"
    if policy not in NO_DATA:
        raise UsageError(f"{where}.noDataPolicy {policy!r}: use one of {', '.join(NO_DATA)}")
    return str(policy)


def _metric_name(raw: Any, where: str) -> str:
    if not isinstance(raw, Mapping):
        raise UsageError(f"{where} must be a mapping with name, query and conditions")
    unknown = sorted(set(raw) - _KNOWN)
    if unknown:
        raise UsageError(
            f"{where} has unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(_KNOWN))}"
        )
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise UsageError(f"{where}.name {name!r} must be letters, digits, '-', '_' or '.'")
    return name


def parse_metric(raw: Any, index: int, source: str) -> MetricSpec:
    name = _metric_name(raw, f"{source}: metrics[{index}]")
    where = f"{source}: metric {name!r}"
    query, address = _query(raw, where)
    success = _condition(raw.get("successCondition"), f"{where}.successCondition")
    failure = _condition(raw.get("failureCondition"), f"{where}.failureCondition")
    if success is None and failure is None:
        raise UsageError(f"{where} needs a successCondition or a failureCondition (over `result`)")
    interval = _duration(raw.get("interval", 0), f"{where}.interval")
    count = _count(raw, interval, where)
    no_data_policy = _no_data_policy(raw, where)
    when = raw.get("when", "both")
    if when not in WHEN:
        raise UsageError(f"{where}.when {when!r}: use pre, post or both")
    return MetricSpec(
        name=name,
        query=query,
        address=address,
        success=success,
        failure=failure,
        interval=interval,
        count=count,
        failure_limit=_int(raw.get("failureLimit", 0), f"{where}.failureLimit", 0, MAX_COUNT),
        inconclusive_limit=_int(raw.get("inconclusiveLimit", 0), f"{where}.inconclusiveLimit", 0, MAX_COUNT),
        consecutive_error_limit=_int(
            raw.get("consecutiveErrorLimit", DEFAULT_CONSECUTIVE_ERRORS),
            f"{where}.consecutiveErrorLimit",
            0,
            MAX_COUNT,
        ),
        no_data=no_data_policy,
        when=when,
        initial_delay=_duration(raw.get("initialDelay", 0), f"{where}.initialDelay"),
    )


def parse_analysis(text: str, source: str) -> list[MetricSpec]:
    import yaml  # loaded when an analysis is given, not for --help

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UsageError(f"{source} is not valid YAML: {exc}") from None
    except RecursionError:
        raise UsageError(f"{source} is nested too deeply; flatten it") from None
    check_depth(doc, source)
    if isinstance(doc, Mapping) and doc.get("kind") == "AnalysisTemplate":
        doc = doc.get("spec") or {}
    if not isinstance(doc, Mapping) or not isinstance(doc.get("metrics"), list) or not doc["metrics"]:
        raise UsageError(f"{source} must hold `metrics:`, a non-empty list (see `rpops bluegreen --help`)")
    unknown = sorted(set(doc) - {"metrics", "args"})
    if unknown:
        raise UsageError(f"{source} has unknown top-level field(s) {', '.join(unknown)}; use `metrics:`")
    if len(doc["metrics"]) > MAX_METRICS:
        raise UsageError(f"{source} lists {len(doc['metrics'])} metrics; at most {MAX_METRICS}")
    specs = [parse_metric(raw, i, source) for i, raw in enumerate(doc["metrics"])]
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UsageError(f"{source}: metric name(s) {', '.join(dupes)} appear more than once")
    return specs


def load_file(path: str) -> list[MetricSpec]:
    if not Path(path).exists():
        raise UsageError(f"--analysis {path}: no such file")
    text = read_text_file(path, f"--analysis {path}")  # capped size, regular files only
    return parse_analysis(text, path)


def render_query(query: str, values: Mapping[str, str]) -> str:
    """Substitute the placeholders ($green first: it holds placeholders itself)."""
    text = query.replace("$green", values.get("$green", ""))
    for name in sorted(values, key=len, reverse=True):
        text = text.replace(name, values[name])
    return text


# --- the built-in analysis (no Prometheus needed) --------------------------------------------


def builtin_specs(
    *, max_error_rate: float, max_p95_ms: float, interval: float, count: int | None, stage: str
) -> list[MetricSpec]:
    """Metrics judged from probes: error rate, p95 latency, the version that answered, the
    validation checks (before the switch) and the error rate green served to everyone (after)."""
    common: dict[str, Any] = {"query": None, "interval": interval, "count": count}
    specs = [
        MetricSpec(name="error-rate", success=f"result <= {max_error_rate!r}", **common),
        MetricSpec(name="latency-p95", success=f"result <= {max_p95_ms!r}", **common),
        MetricSpec(name="version", success="result == 0", **common),
    ]
    if stage == "pre":
        specs.append(MetricSpec(name="checks", success="len(result) == 0", **common))
    else:
        # No traffic in an interval is no evidence against green.
        specs.append(
            MetricSpec(
                name="served-error-rate", success=f"result <= {max_error_rate!r}", no_data="pass", **common
            )
        )
    return specs
