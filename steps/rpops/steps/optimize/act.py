"""Act: with --apply, driver.set_resources for what moved past the threshold; with
--restart-leaking, a rolling restart (driver.restart) when memory looks leaked. Outputs
`recommendation` (JSON), `applied`, `leak`, `reason`, report.json and one line on stdout."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict
from typing import Any

from rpops.core.io import write_output, write_report
from rpops.core.times import iso
from rpops.platform.base import PlatformDriver
from rpops.steps.optimize.decide import Recommendation
from rpops.steps.optimize.observe import Observation
from rpops.steps.optimize.settings import Plan

log = logging.getLogger(__name__)

HPA_NOTE = (
    "an HPA scales this version on utilisation of its requests: new requests move the point where it scales"
)


def apply(p: Plan, driver: PlatformDriver, obs: Observation, rec: Recommendation) -> list[str]:
    """Apply the recommendation and restart a leaking version, as asked; returns what was done."""
    done: list[str] = []
    if p.apply and rec.resources is not None:
        driver.set_resources(p.service, obs.version, rec.resources)
        done.append(
            f"set resources of {p.service}/{obs.version}: "
            + ", ".join(f"{k}={v}" for k, v in asdict(rec.resources).items() if v is not None)
        )
    if p.restart_leaking and rec.leak:
        driver.restart(p.service, obs.version)
        done.append(f"rolling restart of {p.service}/{obs.version} (memory leak)")
    return done


def _advice(a: Any) -> dict[str, Any]:
    out = asdict(a)
    if out["change"] is not None and math.isinf(out["change"]):
        out["change"] = "unset before"
    return out


def build_report(
    p: Plan, obs: Observation, rec: Recommendation, done: list[str], platform: str, elapsed_ms: float
) -> dict[str, Any]:
    return {
        "step": "optimize",
        "service": p.service,
        "version": obs.version,
        "platform": platform,
        "now": iso(p.now),
        "inputs": {
            "settings": asdict(p.settings),
            "apply": p.apply,
            "restart_leaking": p.restart_leaking,
            "step_seconds": p.step_s,
            "rightsizing": asdict(p.rightsizing),
            "queries": p.queries,
        },
        "strategy": "krr simple: cpu request = max over pods of each pod's "
        f"P{p.rightsizing.cpu_percentile:g}, no cpu limit; memory request = limit = max over pods of "
        "each pod's peak + "
        f"{p.rightsizing.memory_buffer * 100:g}%; floors 10m / 100Mi",
        "current": asdict(obs.workload.resources),
        "recommendation": rec.summary(),
        "cpu": _advice(rec.cpu),
        "memory": _advice(rec.memory),
        "to_apply": asdict(rec.resources) if rec.resources else None,
        "applied": any(d.startswith("set resources") for d in done),
        "leak": rec.leak,
        "leaks": [asdict(f) for f in rec.leaks],
        "hpa": asdict(obs.workload.autoscaling) if obs.workload.autoscaling else None,
        "notes": [HPA_NOTE] if obs.workload.autoscaling else [],
        "reason": rec.reason,
        "done": done,
        "queries": obs.queries,
        "series": {"cpu": len(obs.cpu), "memory": len(obs.memory)},
        "duration_ms": round(elapsed_ms, 3),
    }


def record(p: Plan, obs: Observation, rec: Recommendation, report: dict[str, Any]) -> None:
    """The leak warnings, the outputs, report.json and the line on stdout."""
    for finding in rec.leaks:
        if finding.leak:
            log.warning("memory leak suspected in %s: %s", finding.pod, finding.reason)
    write_output("recommendation", rec.summary())
    write_output("applied", "true" if report["applied"] else "false")
    write_output("leak", "true" if rec.leak else "false")
    write_output("reason", rec.reason)
    write_report(report)
    verb = "applied" if report["applied"] else ("recommend" if rec.resources else "no change")
    print(f"{verb} {p.service}/{obs.version}: {rec.reason}" + ("; memory leak suspected" if rec.leak else ""))
