"""rpops validate, decide part: each check passes or fails for the right reason."""

from __future__ import annotations

import json

import pytest
from rpops.clients.probe import ProbeResult
from rpops.steps.validate.act import render_json, render_table
from rpops.steps.validate.decide import CheckResult, Observation, decide

BASE = "http://127.0.0.1:8000"


def answer(path: str, status: int, body: object, elapsed_ms: float = 5.0, method: str = "GET") -> ProbeResult:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return ProbeResult(method=method, url=f"{BASE}{path}", status=status, elapsed_ms=elapsed_ms, attempts=1,
                       body=raw)


def no_answer(path: str, error: str, detail: str, method: str = "GET") -> ProbeResult:
    return ProbeResult(method=method, url=f"{BASE}{path}", status=None, elapsed_ms=2000.0, attempts=3,
                       error=error, detail=detail)  # type: ignore[arg-type]


HEALTHY = answer("/health", 200, {"status": "healthy", "checks": {"security": True, "performance": True}})
EVAL_OK = answer("/api/secure-eval", 200, {"result": 2}, method="POST")
MONITORING = answer("/api/performance/status", 200, {"monitoring_active": True, "cpu_percent": 3.0})


def checks(health: ProbeResult = HEALTHY, secure_eval: ProbeResult = EVAL_OK,
           monitoring: ProbeResult = MONITORING, max_ms: float = 1000) -> dict[str, CheckResult]:
    return {c.name: c for c in decide(Observation(health, secure_eval, monitoring), max_ms)}


def test_all_pass() -> None:
    result = checks()
    assert list(result) == ["health", "secure_eval", "monitoring", "response_time"]
    assert all(c.passed for c in result.values())
    assert result["secure_eval"].detail == "1 + 1 = 2"
    assert result["health"].elapsed_ms == 5.0


@pytest.mark.parametrize(
    ("health", "detail"),
    [
        (answer("/health", 503, {"status": "unhealthy", "reason": "unhealthy fault injected"}),
         "HTTP 503, status 'unhealthy' (unhealthy fault injected)"),
        (answer("/health", 200, {"status": "degraded"}), "HTTP 200, status 'degraded'"),
        (answer("/health", 500, b"Internal Server Error"), "HTTP 500, malformed JSON"),
        (answer("/health", 200, [1, 2]), "HTTP 200, JSON is not an object"),
    ],
)
def test_health_fails_for_the_reason_seen(health: ProbeResult, detail: str) -> None:
    result = checks(health=health)
    assert not result["health"].passed
    assert result["health"].detail.startswith(detail)
    assert result["secure_eval"].passed and result["monitoring"].passed


@pytest.mark.parametrize(
    ("secure_eval", "detail"),
    [
        (answer("/api/secure-eval", 200, {"result": 3}, method="POST"), "1 + 1 gave 3, expected 2"),
        (answer("/api/secure-eval", 200, {"result": True}, method="POST"), "1 + 1 gave True, expected 2"),
        (answer("/api/secure-eval", 200, {"result": "2"}, method="POST"), "1 + 1 gave '2', expected 2"),
        (answer("/api/secure-eval", 400, {"error": "refused: name"}, method="POST"),
         "HTTP 400: refused: name"),
        (answer("/api/secure-eval", 500, {"error": "injected fault: error_rate"}, method="POST"),
         "HTTP 500: injected fault"),
    ],
)
def test_secure_eval_must_return_two(secure_eval: ProbeResult, detail: str) -> None:
    result = checks(secure_eval=secure_eval)
    assert not result["secure_eval"].passed
    assert result["secure_eval"].detail.startswith(detail)


@pytest.mark.parametrize("body", [{"monitoring_active": False}, {"monitoring_active": "true"}, {}])
def test_monitoring_must_be_active(body: dict[str, object]) -> None:
    result = checks(monitoring=answer("/api/performance/status", 200, body))
    assert not result["monitoring"].passed
    assert "monitoring_active" in result["monitoring"].detail


def test_response_time_is_the_slowest_request() -> None:
    slow_eval = answer("/api/secure-eval", 200, {"result": 2}, elapsed_ms=1500.0, method="POST")
    result = checks(secure_eval=slow_eval, max_ms=1000)
    assert result["secure_eval"].passed
    assert not result["response_time"].passed
    assert result["response_time"].elapsed_ms == 1500.0
    assert result["response_time"].detail == "slowest /api/secure-eval 1500 ms > 1000 ms"
    assert checks(secure_eval=slow_eval, max_ms=1500)["response_time"].passed


def test_a_request_without_answer_fails_every_check_it_touches() -> None:
    timeout = no_answer("/health", "timeout", "no answer within 2s")
    result = checks(health=timeout)
    assert not result["health"].passed and result["health"].detail == "timeout: no answer within 2s"
    assert not result["response_time"].passed
    assert result["response_time"].detail == "GET /health: timeout: no answer within 2s"


def test_table_and_json_rendering() -> None:
    result = decide(Observation(answer("/health", 503, {"status": "unhealthy"}), EVAL_OK, MONITORING), 1000)
    table = render_table(result).splitlines()
    assert table[0].split() == ["CHECK", "RESULT", "ELAPSED", "DETAIL"]
    assert table[1].split()[:2] == ["health", "FAIL"]
    assert table[2].split()[:2] == ["secure_eval", "pass"]
    assert table[-1] == "3/4 checks passed"
    doc = json.loads(render_json(BASE, result))
    assert doc["passed"] is False and doc["failed"] == ["health"]
    assert [c["name"] for c in doc["checks"]] == ["health", "secure_eval", "monitoring", "response_time"]
    assert doc["checks"][0]["passed"] is False and doc["checks"][0]["elapsed_ms"] == 5.0
