"""`rpops scale`: scale a service's version reactively, or ahead of a forecast, within bounds.

settings  the flags, and the plan checked from them before the first platform call (settings.py)
observe   the workload through the platform driver; per-resource readings from Prometheus or
          every instance's /api/performance/status; the request-rate history (observe.py)
decide    reactive or predictive, pure, `now` passed in (decide.py; the formulas in reactive.py,
          predictive.py and forecast.py, the policy in policy.py and scaling-policy.yaml, the
          state kept in annotations in state.py)
act       driver.scale or the HPA's minReplicas, annotations, outputs, report.json (act.py)
Bad input exits 2 having changed nothing; "no decision" (no metrics, not enough history) exits 0
with the reason; with --alert, exit 1 when the alert holds and nothing can be done.
"""

from __future__ import annotations

import logging
import time

from rpops.core.step import Output, Step
from rpops.steps.scale.settings import ScaleSettings

log = logging.getLogger(__name__)


def run(settings: ScaleSettings) -> int:
    # the step's work is loaded when it runs, not for --help
    from rpops.platform import get_driver
    from rpops.steps.scale import act, decide, observe
    from rpops.steps.scale.settings import plan

    started = time.perf_counter()
    p = plan(settings)
    driver = get_driver(p.platform, namespace=settings.namespace)
    obs = observe.observe(p, driver)
    decision = decide.decide(p, obs)
    for problem in obs.state.problems:
        log.warning("%s", problem)
    done = act.apply(p, driver, obs, decision)
    stuck = not p.dry_run and decide.alert_stuck(obs, act.scaled(decision, done))
    if stuck:
        decision = decide.explain_stuck(obs, decision)
    report = act.build_report(p, obs, decision, done, driver.name, (time.perf_counter() - started) * 1000)
    act.record(p, obs, decision, report, stuck)
    return 1 if stuck else 0


STEP = Step(
    name="scale",
    summary="Scale a service, reactively or ahead of a forecast, within bounds and cooldowns.",
    settings=ScaleSettings,
    outputs=(
        Output("scaled", "false",
               "true when this run changed replicas or the HPA's minReplicas, else false."),
        Output("replicas", "-1", "Replica count after the run; -1 when the step did not run."),
        Output("decision", "not-run",
               "scale-up, scale-down, hold or no-decision; not-run when the step did not run."),
        Output("direction", "none", "up or down when the run scaled; none otherwise."),
        Output("reason", "the scale step did not run", "Why, in one line, with the formula's figures."),
    ),
    run=run,
    epilog="Outputs: scaled (true|false), replicas, decision (scale-up|scale-down|hold|no-decision), "
    "direction (up|down|none), reason, report.json. Exit 0 with a decision or 'no decision'; "
    "with --alert, 1 when the alert's condition holds and the step can do nothing about it "
    "(at max replicas, in cooldown); a promotion in progress holds with exit 0; "
    "2 on bad input (nothing changed); 3 when Prometheus or the platform stays unreachable.",
)
