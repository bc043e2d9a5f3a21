"""`rpops validate`: post-deployment validation of one service.

Checks, each pass/fail with its elapsed time:
  health         GET /health answers 200 with status "healthy"
  secure_eval    POST /api/secure-eval {"expression": "1 + 1"} answers {"result": 2}
  monitoring     GET /api/performance/status has monitoring_active: true
  response_time  every request above answered within --max-response-ms

observe: the three requests, concurrently, through one `rpops.probe.Prober`.
decide:  `decide()` (pure) turns the responses into check results.
act:     output parameters `passed` and `failed`, report.json, a table (or JSON) on stdout.
Exit 1 (GateFailed) when a check fails; 3 when the service stays unreachable; 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from rpops.errors import GateFailed, Unreachable, UsageError
from rpops.settings import add_arguments, from_args, setting

if TYPE_CHECKING:
    from rpops.probe import ProbeResult

EXPRESSION = "1 + 1"
EXPECTED = 2


@dataclass(frozen=True)
class ValidateSettings:
    url: str = setting(help="Base URL of the service to validate, e.g. http://127.0.0.1:8000")
    max_response_ms: float = setting(1000.0, help="Slowest acceptable response, in milliseconds")
    timeout: float = setting(5.0, help="Seconds allowed for each request, connect to last byte")
    retries: int = setting(2, help="Retries of a request that could not connect (exponential backoff)")
    output: str = setting("table", help="Result format on stdout", choices=("table", "json"))


def configure(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser, ValidateSettings)
    parser.epilog = ("Outputs: passed (true|false), failed (comma-separated check names), report.json. "
                     "Exit 1 when a check fails, 3 when the service stays unreachable, 2 on bad input.")


@dataclass(frozen=True)
class Observation:
    health: ProbeResult
    secure_eval: ProbeResult
    monitoring: ProbeResult


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    elapsed_ms: float
    detail: str


# --- observe ---------------------------------------------------------------------------------

async def observe(url: str, timeout: float, retries: int) -> Observation:
    import asyncio

    from rpops.probe import Prober

    async with Prober(timeout=timeout, retries=retries) as prober:
        health, secure_eval, monitoring = await asyncio.gather(
            prober.get(f"{url}/health"),
            prober.post_json(f"{url}/api/secure-eval", {"expression": EXPRESSION}),
            prober.get(f"{url}/api/performance/status"),
        )
    return Observation(health=health, secure_eval=secure_eval, monitoring=monitoring)


# --- decide ----------------------------------------------------------------------------------

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
        check_response_time([obs.health, obs.secure_eval, obs.monitoring], max_response_ms),
    ]


# --- act -------------------------------------------------------------------------------------

def render_table(checks: list[CheckResult]) -> str:
    width = max(len("CHECK"), *(len(c.name) for c in checks))
    lines = [f"{'CHECK':<{width}}  RESULT  {'ELAPSED':>9}  DETAIL"]
    for c in checks:
        result = "pass" if c.passed else "FAIL"
        lines.append(f"{c.name:<{width}}  {result:<6}  {c.elapsed_ms:>6.1f} ms  {c.detail}")
    passed = sum(c.passed for c in checks)
    lines.append(f"{passed}/{len(checks)} checks passed")
    return "\n".join(lines)


def render_json(url: str, checks: list[CheckResult]) -> str:
    failed = [c.name for c in checks if not c.passed]
    doc = {"url": url, "passed": not failed, "failed": failed,
           "checks": [{**asdict(c), "elapsed_ms": round(c.elapsed_ms, 3)} for c in checks]}
    return json.dumps(doc, indent=2)


def act(s: ValidateSettings, obs: Observation, checks: list[CheckResult], started_at: float) -> list[str]:
    from rpops.io import write_output, write_report

    failed = [c.name for c in checks if not c.passed]
    write_output("passed", "false" if failed else "true")
    write_output("failed", ",".join(failed))
    write_report({
        "step": "validate",
        "url": s.url,
        "passed": not failed,
        "failed": failed,
        "max_response_ms": s.max_response_ms,
        "checks": [{**asdict(c), "elapsed_ms": round(c.elapsed_ms, 3)} for c in checks],
        "requests": {"health": obs.health.summary(), "secure_eval": obs.secure_eval.summary(),
                     "monitoring": obs.monitoring.summary()},
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started_at)),
    })
    print(render_json(s.url, checks) if s.output == "json" else render_table(checks))
    return failed


def _settings(args: argparse.Namespace) -> ValidateSettings:
    from rpops.health import check_url

    s = from_args(ValidateSettings, args)
    url = check_url(s.url, "--url")
    if math.isnan(s.max_response_ms) or s.max_response_ms <= 0:
        raise UsageError(f"--max-response-ms {s.max_response_ms:g}: must be a positive number of "
                         "milliseconds")
    if math.isnan(s.timeout) or not 0 < s.timeout <= 600:
        raise UsageError(f"--timeout {s.timeout:g}: must be between 0 and 600 seconds")
    if not 0 <= s.retries <= 10:
        raise UsageError(f"--retries {s.retries}: must be between 0 and 10")
    return ValidateSettings(url=url, max_response_ms=s.max_response_ms, timeout=s.timeout, retries=s.retries,
                            output=s.output)


def run(args: argparse.Namespace) -> int:
    from rpops.probe import run_async

    s = _settings(args)
    started_at = time.time()
    obs = run_async(observe(s.url, s.timeout, s.retries))
    checks = decide(obs, s.max_response_ms)
    failed = act(s, obs, checks, started_at)
    unreachable = [p for p in (obs.health, obs.secure_eval, obs.monitoring) if p.error == "unreachable"]
    if unreachable:
        raise Unreachable(f"--url {s.url}: unreachable after {unreachable[0].attempts} attempts "
                          f"({unreachable[0].detail}); check the URL and that the service runs")
    if failed:
        raise GateFailed(f"validation of {s.url} failed: {', '.join(failed)}")
    return 0
