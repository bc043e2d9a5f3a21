"""Decide (pure): the four checks of a validation, from the observed responses.

  health         GET /health answers 200 with status "healthy"
  secure_eval    POST /api/secure-eval {"expression": "1 + 1"} answers {"result": 2}
  monitoring     GET /api/performance/status has monitoring_active: true
  response_time  every request above answered within --max-response-ms
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rpops.clients.probe import ProbeResult

EXPRESSION = "1 + 1"  # what secure-eval is asked
EXPECTED = 2  # its answer


@dataclass(frozen=True)
class Observation:
    health: ProbeResult
    secure_eval: ProbeResult
    monitoring: ProbeResult

    def probes(self) -> list[ProbeResult]:
        return [self.health, self.secure_eval, self.monitoring]


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    elapsed_ms: float
    detail: str


def _json_object(probe: ProbeResult) -> tuple[dict[str, Any] | None, str]:
    """The body as a JSON object, or None and why not."""
    if not probe.answered:
        return None, probe.describe()
    body, error = probe.parse_json()
    if error is not None:
        return None, f"HTTP {probe.status}, {error}"
    if not isinstance(body, dict):
        return None, f"HTTP {probe.status}, JSON is not an object"
    return body, ""


def check_health(probe: ProbeResult) -> CheckResult:
    body, why = _json_object(probe)
    status = body.get("status") if body is not None else None
    passed = probe.status == 200 and status == "healthy"
    if passed:
        detail = "200, status healthy"
    elif body is None:
        detail = why
    else:
        detail = f"HTTP {probe.status}, status {status!r}"
        if body.get("reason"):
            detail += f" ({body['reason']})"
    return CheckResult("health", passed, probe.elapsed_ms, detail)


def check_secure_eval(probe: ProbeResult) -> CheckResult:
    body, why = _json_object(probe)
    if body is None:
        return CheckResult("secure_eval", False, probe.elapsed_ms, why)
    result = body.get("result")
    # bool is an int in Python; True must not pass for 2 (nor 2.0 for a type mismatch of intent).
    passed = probe.status == 200 and type(result) is int and result == EXPECTED
    if passed:
        detail = f"{EXPRESSION} = {result}"
    elif probe.status != 200:
        detail = f"HTTP {probe.status}" + (f": {body['error']}" if body.get("error") else "")
    else:
        detail = f"{EXPRESSION} gave {result!r}, expected {EXPECTED}"
    return CheckResult("secure_eval", passed, probe.elapsed_ms, detail)


def check_monitoring(probe: ProbeResult) -> CheckResult:
    body, why = _json_object(probe)
    if body is None:
        return CheckResult("monitoring", False, probe.elapsed_ms, why)
    active = body.get("monitoring_active")
    passed = probe.status == 200 and active is True
    detail = "monitoring_active true" if passed else f"HTTP {probe.status}, monitoring_active {active!r}"
    return CheckResult("monitoring", passed, probe.elapsed_ms, detail)


def check_response_time(probes: list[ProbeResult], max_ms: float) -> CheckResult:
    unanswered = [p for p in probes if not p.answered]
    slowest = max(probes, key=lambda p: p.elapsed_ms)
    if unanswered:
        first = unanswered[0]
        return CheckResult("response_time", False, slowest.elapsed_ms,
                           f"{first.method} {_path(first.url)}: {first.describe()}")
    passed = slowest.elapsed_ms <= max_ms
    relation = "<=" if passed else ">"
    return CheckResult("response_time", passed, slowest.elapsed_ms,
                       f"slowest {_path(slowest.url)} {slowest.elapsed_ms:.0f} ms {relation} {max_ms:g} ms")


def _path(url: str) -> str:
    return "/" + url.split("//", 1)[-1].partition("/")[2]


def decide(obs: Observation, max_response_ms: float) -> list[CheckResult]:
    """The four checks, in a fixed order. Pure."""
    return [
        check_health(obs.health),
        check_secure_eval(obs.secure_eval),
        check_monitoring(obs.monitoring),
        check_response_time(obs.probes(), max_response_ms),
    ]
