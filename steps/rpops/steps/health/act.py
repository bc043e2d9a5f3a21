"""Act: the output parameters `status`, `reason`, `p95_ms` and `outcome`, report.json, the status on
stdout."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from rpops.alerting.evidence import Evidence
from rpops.alerting.verdict import Verdict
from rpops.core.io import write_output, write_report
from rpops.steps.health.decide import Decision, assess_target, json_names
from rpops.steps.health.observe import Observation
from rpops.steps.health.settings import Plan

log = logging.getLogger(__name__)


def build_report(p: Plan, obs: Observation, signals: dict[str, Any], decision: Decision) -> dict[str, Any]:
    targets = []
    for probe in obs.probes:
        entry = assess_target(probe).summary()
        entry["probes"] = {
            "health": probe.health.summary(),
            "ready": probe.ready.summary() if probe.ready else None,
            "status": probe.status.summary() if probe.status else None,
            "samples": [sample.summary() for sample in probe.samples],
        }
        targets.append(entry)
    prom = None
    if obs.prometheus is not None:
        queries = {n: {**r.summary(), "source": p.query_sources[n]} for n, r in obs.prometheus.items()}
        prom = {"url": p.prometheus, "queries": queries}
    return {
        "step": "health-check",
        "status": decision.status,
        "reason": decision.reason,
        "region": p.settings.region,
        "rule": {"name": decision.rule, "when": decision.when,
                 "evidence": json_names(dict(decision.evidence))},
        "rules_evaluated": [{"name": n, "matched": m} for n, m in decision.evaluated],
        "rules_source": p.ruleset.source,
        "signals": json_names(signals),
        "thresholds": dict(p.ruleset.thresholds),
        "targets": targets,
        "prometheus": prom,
        "settings": {"samples": p.settings.samples, "timeout": p.settings.timeout,
                     "retries": p.settings.retries, "status_path": p.settings.status_path},
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(obs.started_at)),
        "duration_ms": round(obs.duration_ms, 3),
    }


def act(decision: Decision, signals: dict[str, Any], report: dict[str, Any], outcome: str = "") -> None:
    p95 = signals.get("p95_ms", math.nan)
    write_output("status", decision.status)
    write_output("reason", decision.reason)
    write_output("outcome", outcome or "classified")
    write_output("p95_ms", "" if math.isnan(p95) else f"{p95:.1f}")  # empty: no latency measured
    write_report(report)
    log.info("%s (rule %s): %s", decision.status, decision.rule, decision.reason)
    print(decision.status)


def act_on_alert(p: Plan, obs: Observation, signals: dict[str, Any], by_rules: Decision, decision: Decision,
                 found: Evidence, verdict: Verdict) -> None:
    """The alert's decision, with its evidence and the rules' reading beside it in the report."""
    report = build_report(p, obs, signals, decision)
    report["alert"] = {"name": p.alert, "labels": p.alert_labels, "evidence": found.to_json(),
                       "outcome": verdict.outcome, "rules_said": {"status": by_rules.status,
                                                                  "reason": by_rules.reason}}
    act(decision, signals, report, verdict.outcome)
    if verdict.exit_code:
        log.error("%s", verdict.reason)
