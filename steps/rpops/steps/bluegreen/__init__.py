"""`rpops bluegreen <command>`: blue-green promotion of a service in idempotent phases, with
analysis before and after the switch and automatic rollback.

    rpops bluegreen promote  --service S --version V [--analysis FILE --prometheus URL]
    rpops bluegreen deploy | wait-ready | analyze | switch | verify | finalize --service S [--version V]
    rpops bluegreen rollback --service S --reason "why"
    rpops bluegreen status   --service S [--output json]

settings  the flags, checked into a Plan before the platform is touched (settings.py)
observe   routes, versions and the promotion state (annotations on the service) through the
          platform driver; green over HTTP and Prometheus during an analysis (observe.py, with
          measure.py running an analysis and probes.py its probe rounds)
decide    what to do from one observation (decide.py, pure); the analysis' judgement as Argo
          Rollouts' AnalysisTemplates (analysis.py, pure but for reading the analysis file); the
          state and its annotations (model.py)
act       the phases, each a reconcile step: observe, decide, act through the driver and record,
          idempotently (phases.py, under the promotion lock of lock.py); the outputs, report.json
          and what is printed (act.py)
"""

from __future__ import annotations

import time

from rpops.core.errors import RpopsError
from rpops.core.step import Output, Step
from rpops.steps.bluegreen.settings import BlueGreenSettings


def run(settings: BlueGreenSettings) -> int:
    from rpops.platform import get_driver  # the step's work is loaded when it runs, not for --help
    from rpops.steps.bluegreen import act
    from rpops.steps.bluegreen.phases import Promoter
    from rpops.steps.bluegreen.settings import build_plan

    plan = build_plan(settings.command, settings)
    started = time.time()
    driver = get_driver(namespace=settings.namespace)
    promoter = Promoter(driver, plan)
    if plan.command == "status":  # a read: it writes no outputs
        outcome = promoter.run()
        act.print_status(outcome, driver.versions(plan.service), plan.output)
        return 0
    try:
        outcome = promoter.run()
    except RpopsError as exc:
        if exc.exit_code != 2:
            act.write_outputs(promoter.outcome("failed"), started, str(exc))
        raise
    act.write_outputs(outcome, started, None)
    act.print_result(outcome)
    return 0


STEP = Step(
    name="bluegreen",
    summary="Blue-green promotion phases with analysis and automatic rollback.",
    settings=BlueGreenSettings,
    outputs=(
        Output(
            "phase",
            "none",
            "Promotion state on the service: complete, aborted, rolled-back, ...; none if unrun.",
        ),
        Output("active_version", "", "Version the service's active route selects after the step."),
        Output(
            "previous_version", "", "Version the active route left at the switch (the fast-rollback target)."
        ),
        Output("rolled_back", "false", "true when the promotion was aborted or rolled back."),
        Output("reason", "the step did not run", "Why the promotion ended as it did, in one line."),
        Output(
            "result",
            "not-run",
            "promoted, no-op, in-progress, aborted, rolled-back, skipped or failed; not-run when the step "
            "did not run.",
        ),
    ),
    run=run,
    epilog="Phases: deploy (green at blue's replica count, HPA-aware; preview route to it), wait-ready "
    "(every replica, within --progress-deadline-seconds), analyze (probes through the preview route and to "
    "every instance: health, validation checks, error rate, p95; plus the --analysis metrics), switch (one "
    "atomic change of the active route, only when green is fully available), verify (analysis on live "
    "traffic for --verify-seconds; on failure traffic goes back to blue at once), finalize (after "
    "--scale-down-delay-seconds blue goes to 0 replicas, kept for a fast rollback; older versions are "
    "removed). promote runs them in order and skips what is done, so a rerun after a crash converges; the "
    "phases after deploy default to the recorded version, and a held lock is refused at once unless "
    "--lock-wait is given. "
    "Outputs: phase, active_version, previous_version, rolled_back, reason, result, report.json (status "
    "writes none). Exit 0 done, 1 gate failed (aborted or rolled back) or service busy, 2 bad input, "
    "3 unreachable.",
)
