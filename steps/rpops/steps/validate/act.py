"""Act: the output parameters `passed` and `failed`, report.json, a table (or JSON) on stdout."""

from __future__ import annotations

import json
import time
from dataclasses import asdict

from rpops.core.io import write_output, write_report
from rpops.steps.validate.decide import CheckResult, Observation
from rpops.steps.validate.settings import ValidateSettings


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
