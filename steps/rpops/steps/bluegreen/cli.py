"""`rpops bluegreen <phase>`: blue-green promotion, phase by phase or all at once.

    rpops bluegreen promote  --service S --version V [--analysis FILE --prometheus URL]
    rpops bluegreen deploy | wait-ready | analyze | switch | verify | finalize --service S [--version V]
    rpops bluegreen rollback --service S --reason "why"
    rpops bluegreen status   --service S [--output json]

observe: routes, versions and the promotion state (annotations on the service) through the
         platform driver; green over HTTP (probes, validation checks, its request counters);
         Prometheus for the analysis file's queries.
decide:  rpops.steps.bluegreen.decide and rpops.steps.bluegreen.analysis (pure).
act:     deploy, route, scale, annotate through the driver, idempotently (rpops.steps.bluegreen.phases).

Outputs: phase, active_version, previous_version, rolled_back (true|false), reason, result,
report.json (the state, the timeline, the analysis). Exit 0 when the command did its job, 1 when
a gate failed (the promotion was aborted or rolled back) or the service is busy, 2 on bad input
(nothing changed), 3 when the platform stayed unreachable.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from typing import Any

from rpops.core.errors import RpopsError
from rpops.core.settings import add_arguments, from_args
from rpops.steps.bluegreen.settings import BlueGreenSettings, add_phase_argument, build_plan

log = logging.getLogger(__name__)

EPILOG = """Phases: deploy (green at blue's replica count, HPA-aware; preview route to it), wait-ready
(every replica, within --progress-deadline-seconds), analyze (probes through the preview route and
to every instance: health, validation checks, error rate, p95; plus the --analysis metrics), switch
(one atomic change of the active route, only when green is fully available), verify (analysis on
live traffic for --verify-seconds; on failure traffic goes back to blue at once), finalize (after
--scale-down-delay-seconds blue goes to 0 replicas, kept for a fast rollback; older versions are
removed). promote runs them in order and skips what is done, so a rerun after a crash converges.
Outputs: phase, active_version, previous_version, rolled_back, reason, result, report.json.
Exit 0 done, 1 gate failed (aborted or rolled back) or service busy, 2 bad input, 3 unreachable."""


def configure(parser: argparse.ArgumentParser) -> None:
    from rpops.platform import add_namespace_argument

    add_phase_argument(parser)
    add_arguments(parser, BlueGreenSettings)
    add_namespace_argument(parser)  # the driver's namespace
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG


def _outputs(outcome: Any, started: float, error: str | None) -> None:
    from rpops.core.io import write_output, write_report
    from rpops.steps.bluegreen.model import State

    record = outcome.record
    rolled_back = record.phase in (State.ABORTED, State.ROLLED_BACK)
    reason = error or (record.reason if rolled_back else "") or outcome.detail
    write_output("phase", record.phase.value if record.phase else "none")
    write_output("active_version", outcome.routes.active or "")
    write_output("previous_version", record.previous or "")
    write_output("rolled_back", "true" if rolled_back else "false")
    write_output("reason", reason)
    write_output("result", outcome.result)
    write_report(
        {
            "step": "bluegreen",
            "command": outcome.command,
            "service": outcome.routes.service,
            "result": outcome.result,
            "reason": reason,
            "routes": {"active": outcome.routes.active, "preview": outcome.routes.preview},
            "state": record.summary(),
            "timeline": [e.to_json() for e in record.timeline],
            "analysis": outcome.analysis,
            "verify": outcome.verify,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "seconds": round(time.time() - started, 3),
        }
    )


def render_status(outcome: Any, versions: list[Any]) -> str:
    record = outcome.record
    lines = [
        f"service   {outcome.routes.service}",
        f"active    {outcome.routes.active or '-'}    preview {outcome.routes.preview or '-'}",
        f"phase     {record.phase.value if record.phase else 'none'}"
        + (f"    (promoting {record.preview} by {record.owner})" if record.in_progress else ""),
        f"stable    {record.stable or '-'}    previous {record.previous or '-'}",
    ]
    if record.reason:
        lines.append(f"reason    {record.reason}")
    if record.lock is not None:
        left = record.lock.expires - time.time()
        expiry = f"expires in {left:.0f}s" if left > 0 else "expired"
        lines.append(f"lock      {record.lock.owner} ({expiry})")
    lines.append(
        "versions  " + ", ".join(f"{w.version} {w.ready_replicas}/{w.replicas} ready" for w in versions)
    )
    if record.timeline:
        lines.append("timeline")
        for e in record.timeline:
            start = time.strftime("%H:%M:%S", time.gmtime(e.start))
            took = f"{e.end - e.start:7.2f}s" if e.end is not None else "    ...  "
            lines.append(f"  {start} {e.phase:<10} {e.result:<11} {took}  {e.detail}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from rpops.platform import get_driver
    from rpops.steps.bluegreen.phases import Promoter

    plan = build_plan(args.command, from_args(BlueGreenSettings, args))
    started = time.time()
    driver = get_driver(namespace=args.namespace)
    promoter = Promoter(driver, plan)
    read_only = plan.command == "status"  # a read writes no outputs
    try:
        outcome = promoter.run()
    except RpopsError as exc:
        if exc.exit_code != 2 and not read_only:
            _outputs(promoter.outcome("failed"), started, str(exc))
        raise
    if not read_only:
        _outputs(outcome, started, None)
    if plan.command == "status":
        versions = driver.versions(plan.service)
        if plan.output == "json":
            doc = {
                "service": plan.service,
                "routes": {"active": outcome.routes.active, "preview": outcome.routes.preview},
                "state": outcome.record.summary(),
                "versions": [
                    {
                        "version": w.version,
                        "replicas": w.replicas,
                        "ready": w.ready_replicas,
                        "image": w.image,
                    }
                    for w in versions
                ],
            }
            print(json.dumps(doc, indent=2))
        else:
            print(render_status(outcome, versions))
        return 0
    print(f"{outcome.result}: {outcome.detail}" if outcome.detail else outcome.result)
    return 0
