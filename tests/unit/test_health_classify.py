"""health-check, decide part: target assessment, signal names and the default rules, table-driven."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from rpops.clients.probe import ProbeResult
from rpops.steps.health.decide import (
    NAME_DOCS,
    Target,
    TargetProbe,
    TargetState,
    assess_target,
    classify,
    format_value,
    render_reason,
    signal_names,
)
from rpops.steps.health.rulefile import load_rules

RULES = load_rules(None)


def probe(path: str, status: int | None, body: Any = None, elapsed_ms: float = 5.0,
          error: str | None = None) -> ProbeResult:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else b""
    return ProbeResult(method="GET", url=f"http://127.0.0.1:8000{path}", status=status, elapsed_ms=elapsed_ms,
                       attempts=1, error=error, detail="x" if error else "", body=raw)  # type: ignore[arg-type]


HEALTHY_BODY = {"status": "healthy", "version": "v1", "checks": {"security": True, "performance": True}}


def target_probe(health: ProbeResult | None = None, ready: int = 200,
                 latencies: tuple[float, ...] = (5.0,) * 5, cpu: float | None = 10.0,
                 memory: float | None = 60.0, name: str = "t") -> TargetProbe:
    health = health or probe("/health", 200, HEALTHY_BODY)
    samples = tuple(probe("/health", 200, HEALTHY_BODY, elapsed_ms=v) for v in latencies)
    if not health.answered:
        samples = ()
    status = None
    if cpu is not None or memory is not None:
        status = probe("/api/performance/status", 200,
                       {"monitoring_active": True, "cpu_percent": cpu, "memory_mb": memory})
    return TargetProbe(target=Target(name, f"http://{name}:8000"), health=health,
                       ready=probe("/ready", ready, {}) if health.answered else None, status=status,
                       samples=samples)


def state(**kw: Any) -> TargetState:
    return assess_target(target_probe(**kw))


def unreachable(name: str) -> TargetState:
    return state(name=name, health=probe("/health", None, error="unreachable"))


# --- target assessment -----------------------------------------------------------------------

@pytest.mark.parametrize(
    ("health", "condition", "reason"),
    [
        (probe("/health", 200, HEALTHY_BODY), "healthy", "/health 200 healthy"),
        (probe("/health", None, error="unreachable"), "unreachable", "/health unreachable: x"),
        (probe("/health", None, error="timeout"), "unreachable", "/health timeout: x"),
        (probe("/health", 503, {"status": "unhealthy"}), "unhealthy", "/health HTTP 503; status 'unhealthy'"),
        (probe("/health", 500, b"Internal Server Error"), "unhealthy", "/health HTTP 500"),
        (probe("/health", 200, b'{"status": "heal'), "unhealthy", "/health malformed JSON"),
        (probe("/health", 200, ["healthy"]), "unhealthy", "/health answered JSON that is not an object"),
        (probe("/health", 200, {"status": "starting"}), "unhealthy", "/health status 'starting'"),
        (probe("/health", 200, {"status": "healthy", "checks": {"security": False, "performance": True}}),
         "unhealthy", "/health checks failing: security"),
    ],
)
def test_assess_target(health: ProbeResult, condition: str, reason: str) -> None:
    assessed = assess_target(target_probe(health=health))
    assert assessed.condition == condition
    assert assessed.reason.startswith(reason)


def test_assessment_keeps_latency_readiness_and_figures() -> None:
    assessed = state(latencies=(10.0, 20.0, 30.0, 40.0, 50.0), ready=503, cpu=91.5, memory=812.0)
    assert assessed.p50_ms == 30.0
    assert assessed.p95_ms == pytest.approx(48.0)
    assert assessed.ready is False
    assert (assessed.cpu_percent, assessed.memory_mb) == (91.5, 812.0)
    assert assessed.version == "v1"
    assert json.loads(json.dumps(assessed.summary()))["p95_ms"] == 48.0


def test_timeout_is_flagged() -> None:
    assessed = state(health=probe("/health", None, error="timeout"))
    assert assessed.timed_out and assessed.condition == "unreachable"
    assert math.isnan(assessed.p95_ms)


# --- names ------------------------------------------------------------------------------------

def test_every_name_is_documented_and_every_documented_name_exists() -> None:
    names = signal_names([state()], {"p95_ms": 1.0}, "us-east")
    assert set(names) == set(NAME_DOCS)


def test_signals_take_the_worst_source() -> None:
    states = [state(name="a", latencies=(100.0,) * 5, cpu=20.0),
              state(name="b", latencies=(300.0,) * 5, cpu=60.0)]
    names = signal_names(states, {"p95_ms": 250.0, "error_rate": 0.2, "cpu_percent": 95.0, "memory_mb": None,
                                  "memory_limit_mb": 512.0}, "eu")
    assert names["worst_target_p95_ms"] == 300.0
    assert names["p95_ms"] == 300.0  # the slowest target beats Prometheus' 250
    assert names["probe_p50_ms"] == 200.0  # pooled over both targets
    assert names["error_rate"] == 0.2  # Prometheus beats the probes' 0
    assert names["cpu_percent"] == 95.0
    assert names["memory_mb"] == 60.0  # Prometheus had no value: the targets' figure
    assert names["memory_ratio"] == pytest.approx(60.0 / 512.0)
    assert names["prometheus"] is True and names["prometheus_missing"] == 1
    assert names["region"] == "eu"


def test_unknown_signals_are_nan_without_prometheus() -> None:
    names = signal_names([state(cpu=None, memory=None)], None)
    for key in ("cpu_percent", "memory_mb", "memory_limit_mb", "memory_ratio", "prom_p95_ms",
                "prom_error_rate"):
        assert math.isnan(names[key]), key
    assert names["prometheus"] is False and names["prometheus_missing"] == 0


def test_probe_error_rate_counts_failed_samples() -> None:
    t = target_probe()
    failing = TargetProbe(target=t.target, health=t.health, ready=t.ready, status=t.status,
                          samples=(*t.samples[:3], probe("/health", 500, {}),
                                   probe("/health", None, error="timeout")))
    names = signal_names([assess_target(failing)], None)
    assert names["samples"] == 5
    assert names["probe_error_rate"] == pytest.approx(2 / 5)


# --- the default rules, table-driven ----------------------------------------------------------

CASES: list[tuple[str, list[TargetState], dict[str, float | None] | None, str, str, str]] = [
    # (case, targets, prometheus values, status, rule, text in the reason)
    ("all fine", [state(name="a"), state(name="b")], None, "healthy", "default", "2 of 2 targets healthy"),
    ("one unreachable", [state(name="a"), unreachable("b")], None, "unhealthy", "target-unreachable",
     "1 of 2 targets unreachable: b"),
    ("all unreachable", [unreachable("a"), unreachable("b")], None, "unhealthy", "target-unreachable",
     "2 of 2 targets unreachable: a, b"),
    ("one unhealthy", [state(name="a", health=probe("/health", 503, {"status": "unhealthy"}))], None,
     "unhealthy", "target-unhealthy", "1 of 1 targets failing /health: a"),
    ("cpu critical", [state(cpu=95.0)], None, "overloaded", "cpu-critical", "CPU 95% >= critical 90%"),
    ("cpu from prometheus", [state(cpu=None)], {"cpu_percent": 90.0}, "overloaded", "cpu-critical", "CPU 90"),
    ("memory critical", [state(memory=4096.0)], None, "overloaded", "memory-critical", "memory 4096 MB"),
    ("memory near its limit", [state(memory=950.0)], {"memory_limit_mb": 1000.0}, "overloaded",
     "memory-critical", "limit 1000 MB"),
    ("slow and busy", [state(latencies=(2100.0,) * 5, cpu=75.0)], None, "overloaded", "slow-and-busy",
     "p95 2100 ms >= critical 2000 ms with CPU 75%"),
    ("slow, idle cpu", [state(latencies=(2100.0,) * 5, cpu=30.0)], None, "degraded", "slow", "p95 2100 ms"),
    ("slow, cpu unknown", [state(latencies=(2100.0,) * 5, cpu=None)], None, "degraded", "slow",
     "> acceptable"),
    ("p95 over acceptable", [state(latencies=(1200.0,) * 5)], None, "degraded", "slow",
     "p95 1200 ms > acceptable 1000 ms"),
    ("p95 at acceptable", [state(latencies=(1000.0,) * 5)], None, "healthy", "default", "p95 1000 ms"),
    ("prometheus p95", [state()], {"p95_ms": 1500.0}, "degraded", "slow", "p95 1500 ms"),
    ("error rate", [state()], {"error_rate": 0.2}, "degraded", "errors", "error rate 0.2 > 0.05"),
    ("cpu over acceptable", [state(cpu=75.0)], None, "degraded", "cpu-high", "CPU 75% > acceptable 70%"),
    ("cpu at acceptable", [state(cpu=70.0)], None, "healthy", "default", "1 of 1 targets healthy"),
    ("memory over acceptable", [state(memory=3000.0)], None, "degraded", "memory-high",
     "memory 3000 MB > acceptable 2048 MB"),
    ("memory at acceptable", [state(memory=2048.0)], None, "healthy", "default", "healthy"),
    ("not ready", [state(name="a", ready=503), state(name="b")], None, "degraded", "not-ready",
     "1 of 2 targets not ready: a"),
    # order: the first matching rule wins
    ("unreachable beats cpu", [unreachable("a"), state(name="b", cpu=99.0)], None, "unhealthy",
     "target-unreachable", "unreachable"),
    ("overloaded beats slow", [state(latencies=(1500.0,) * 5, cpu=92.0)], None, "overloaded", "cpu-critical",
     "CPU"),
    ("slow beats errors", [state(latencies=(1500.0,) * 5)], {"error_rate": 0.5}, "degraded", "slow", "p95"),
]


@pytest.mark.parametrize(("case", "states", "prom", "status", "rule", "reason"), CASES,
                         ids=[c[0] for c in CASES])
def test_default_rules(case: str, states: list[TargetState], prom: dict[str, float | None] | None,
                       status: str, rule: str, reason: str) -> None:
    decision = classify(signal_names(states, prom), RULES)
    assert (decision.status, decision.rule) == (status, rule)
    assert reason in decision.reason


def test_decision_records_the_evidence_and_rules_evaluated() -> None:
    decision = classify(signal_names([state(latencies=(1500.0,) * 5, cpu=40.0)], None), RULES)
    assert decision.rule == "slow"
    assert decision.when == "p95_ms > response_acceptable_ms"
    assert decision.evidence == {"p95_ms": 1500.0, "response_acceptable_ms": 1000}
    assert [name for name, _ in decision.evaluated] == [
        "target-unreachable", "target-unhealthy", "cpu-critical", "memory-critical", "slow-and-busy", "slow"]
    assert [matched for _, matched in decision.evaluated] == [False] * 5 + [True]


def test_default_decision_evaluated_every_rule() -> None:
    decision = classify(signal_names([state()], None), RULES)
    assert decision.rule == "default" and decision.when is None
    assert len(decision.evaluated) == len(RULES.rules)
    assert not any(matched for _, matched in decision.evaluated)


# --- reasons ------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("value", "text"),
    [(1234.56, "1235"), (93.27, "93.3"), (0.0512, "0.0512"), (2000.0, "2000"), (math.nan, "n/a"),
     (7, "7"), (True, "true"), (("a", "b"), "a, b"), ((), "none"), ("eu", "eu")],
)
def test_format_value(value: Any, text: str) -> None:
    assert format_value(value) == text


def test_render_reason_substitutes_plain_names_only() -> None:
    names = {"region": "eu", "p95_ms": 1500.0}
    assert render_reason("{region}: p95 {p95_ms} ms", names) == "eu: p95 1500 ms"
    # no attribute or index access: such text stays as written
    assert render_reason("{region.__class__} {region[0]} {missing}", names) == \
        "{region.__class__} {region[0]} {missing}"
