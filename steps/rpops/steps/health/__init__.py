"""`rpops health-check`: probe targets (and optionally Prometheus), classify, report.

settings  the targets, probing, Prometheus, rules and alert flags; `plan` checks them all
          before the first request (settings.py)
observe   every target probed concurrently, the PromQL queries alongside; with an alert, its
          evidence (observe.py)
decide    per-target assessment, the names the rules see, the rules' classification, or the
          alert's verdict (decide.py, pure); the rules file: rulefile.py and health-rules.yaml
act       outputs, report.json, the status on stdout (act.py)
Exit 0 whatever the status; with an alert, 1 when there is nothing to remediate or it did not
clear; 2 on bad input; 3 when Prometheus stays unreachable.
"""

from __future__ import annotations

from rpops.core.step import Output, Step
from rpops.steps.health.settings import HealthSettings


def run(settings: HealthSettings) -> int:
    from rpops.clients.probe import run_async  # the step's work is loaded when it runs, not for --help
    from rpops.steps.health import act, decide, observe
    from rpops.steps.health.settings import plan

    p = plan(settings)
    s = p.settings
    obs = run_async(observe.observe(p))
    prom = observe.prometheus_values(p, obs.prometheus)
    states = [decide.assess_target(probe) for probe in obs.probes]
    signals = decide.signal_names(states, prom, s.region)
    by_rules = decide.classify(signals, p.ruleset)
    if not p.alert:
        act.act(by_rules, signals, act.build_report(p, obs, signals, by_rules))
        return 0
    found = run_async(observe.read_evidence(p))
    by_alert, verdict = decide.alert_decision(by_rules, found, p.alert, p.alert_status, s.alert_reading,
                                              s.alert_settle)
    act.act_on_alert(p, obs, signals, by_rules, by_alert, found, verdict)
    return verdict.exit_code


STEP = Step(
    name="health-check",
    summary="Probe targets and classify healthy/degraded/overloaded/unhealthy.",
    settings=HealthSettings,
    outputs=(
        Output("status", "unknown",
               "healthy, degraded, overloaded or unhealthy; unknown when the check did not run."),
        Output("reason", "the health check did not run", "Why the status was chosen, in one line."),
        Output("p95_ms", "-1",
               "95th percentile response time over all samples, in milliseconds; -1 when unknown."),
        Output("outcome", "not-run",
               "classified (the rules decided); with an alert: remediate, resolved, not-remediable, cleared "
               "or still-firing; not-run when the check did not run."),
    ),
    run=run,
    epilog="Outputs: status (healthy|degraded|overloaded|unhealthy), reason, p95_ms, outcome, report.json. "
    "Exit 0 whatever the status; with --alert, 1 when the alert fires but its condition does not hold "
    "(nothing to remediate) or still holds after --alert-settle (not cleared); 2 on bad input; 3 when "
    "--prometheus stays unreachable.",
)
