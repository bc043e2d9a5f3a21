"""Act: apply the decision through the driver (unless --dry-run) and record it.

driver.scale, or with an HPA driver.set_autoscaling (minReplicas only, never replicas); the
workload's annotations record the last scaling and the recommendations (rpops.steps.scale.state).
Outputs `scaled`, `replicas`, `decision`, `direction`, `reason`, report.json, one line on stdout.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from rpops.core.io import write_output, write_report
from rpops.core.times import iso
from rpops.platform.base import PlatformDriver
from rpops.steps.scale.decide import Observation
from rpops.steps.scale.reactive import SCALE, SET_MIN, Decision
from rpops.steps.scale.settings import Plan
from rpops.steps.scale.state import history_annotations, scaled_annotations

log = logging.getLogger(__name__)


def apply(plan: Plan, driver: PlatformDriver, obs: Observation, decision: Decision) -> list[str]:
    """Apply the decision (unless --dry-run) and record it; returns what was done."""
    done: list[str] = []
    if plan.dry_run:
        return done
    service, version = plan.service, obs.version
    if decision.action == SCALE and decision.target is not None:
        driver.scale(service, version, decision.target)
        done.append(f"scale {service}/{version} to {decision.target}")
    elif decision.action == SET_MIN and decision.new_hpa is not None:
        driver.set_autoscaling(service, decision.new_hpa)
        done.append(
            f"set the HPA of {service} to minReplicas {decision.new_hpa.min_replicas}, "
            f"maxReplicas {decision.new_hpa.max_replicas}"
        )
    if decision.changes:
        driver.annotate(
            service,
            scaled_annotations(
                plan.now,
                decision.reason,
                decision.resource,
                decision.history if decision.record_history else obs.state.recommendations,
                decision.hpa_base_min,
            ),
            version=version,
        )
        done.append("annotate last-scale-time, last-scale-reason, scale-recommendations")
    elif decision.record_history:
        driver.annotate(service, history_annotations(decision.history), version=version)
        done.append("annotate scale-recommendations")
    return done


def scaled(decision: Decision, done: list[str]) -> bool:
    """This run changed the replicas or the HPA."""
    return bool(done) and decision.changes


def build_report(
    plan: Plan, obs: Observation, decision: Decision, done: list[str], platform: str, elapsed_ms: float
) -> dict[str, Any]:
    s = plan.settings
    changed = scaled(decision, done)
    return {
        "step": "scale",
        "mode": s.mode,
        "service": plan.service,
        "version": obs.version,
        "platform": platform,
        "now": iso(plan.now),
        "dry_run": plan.dry_run,
        "inputs": {
            "settings": asdict(s),
            "apply_forecast": plan.apply_forecast,
            "bounds": asdict(plan.bounds),
            "policy": plan.policy.to_json(),
        },
        "decision": decision.decision,
        "action": decision.action,
        "scaled": changed,
        "replicas_before": decision.current,
        "replicas_after": decision.replicas_after if changed else decision.current,
        "target": decision.target,
        "recommendation": decision.recommendation,
        "driving_resource": decision.resource,
        "reason": decision.reason,
        "formula": decision.formula,
        "resources": [asdict(r) for r in decision.resources],
        "hpa": asdict(decision.hpa) if decision.hpa else None,
        "new_hpa": asdict(decision.new_hpa) if decision.new_hpa else None,
        "details": dict(decision.details),
        "done": done,
        "duration_ms": round(elapsed_ms, 3),
        "alert": obs.evidence.to_json() if obs.evidence else None,
        "promotion": obs.promotion or None,
        "observed": observed(obs),
    }


def observed(obs: Observation) -> dict[str, Any]:
    """What the run read: the workload, the readings, the queries, the recorded state."""
    w = obs.workload
    return {
        "workload": {
            "replicas": w.replicas,
            "ready_replicas": w.ready_replicas,
            "available_replicas": w.available_replicas,
            "resources": asdict(w.resources),
            "autoscaling": asdict(w.autoscaling) if w.autoscaling else None,
            "active": w.active,
        },
        "readings": {k: asdict(v) for k, v in obs.readings.items()},
        "queries": obs.queries,
        "state": asdict(obs.state),
        "history_points": len(obs.history),
        "current_rps": obs.current_rps,
    }


def record(plan: Plan, obs: Observation, decision: Decision, report: dict[str, Any], stuck: bool) -> None:
    """The outputs, report.json, the log line and the line on stdout."""
    changed = bool(report["scaled"])
    write_output("scaled", "true" if changed else "false")
    write_output("replicas", str(report["replicas_after"]))
    write_output("decision", decision.decision)
    write_output("direction", decision.direction if changed else "none")
    write_output("reason", decision.reason)
    write_report(report)
    log.log(logging.ERROR if stuck else logging.INFO, "%s: %s", decision.decision, decision.reason)
    suffix = " (dry run: nothing changed)" if plan.dry_run else ""
    after = report["replicas_after"]
    head = f"{decision.decision} {plan.service}/{obs.version}: {decision.current} -> {after}"
    print(f"{head}{suffix}: {decision.reason}")
