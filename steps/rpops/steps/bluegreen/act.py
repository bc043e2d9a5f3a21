"""Act, towards the caller: the output parameters, report.json and what is printed.

The changes to the platform (deploy, route, scale, annotate) are the phases' (phases.py); this
module says what a command did. `status` is a read: it prints and writes no outputs.
"""

from __future__ import annotations

import json
import time
from typing import Any

from rpops.core.io import write_output, write_report
from rpops.core.times import iso
from rpops.platform.base import Workload
from rpops.steps.bluegreen.model import Outcome, State


def write_outputs(outcome: Outcome, started: float, error: str | None) -> None:
    """The outputs (phase, active_version, previous_version, rolled_back, reason, result) and
    report.json; `error` is why the command failed, when it did."""
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
            "started_at": iso(started),
            "seconds": round(time.time() - started, 3),
        }
    )


def print_result(outcome: Outcome) -> None:
    print(f"{outcome.result}: {outcome.detail}" if outcome.detail else outcome.result)


def render_status(outcome: Outcome, versions: list[Workload]) -> str:
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


def status_json(outcome: Outcome, versions: list[Workload]) -> dict[str, Any]:
    return {
        "service": outcome.routes.service,
        "routes": {"active": outcome.routes.active, "preview": outcome.routes.preview},
        "state": outcome.record.summary(),
        "versions": [
            {"version": w.version, "replicas": w.replicas, "ready": w.ready_replicas, "image": w.image}
            for w in versions
        ],
    }


def print_status(outcome: Outcome, versions: list[Workload], output: str) -> None:
    if output == "json":
        print(json.dumps(status_json(outcome, versions), indent=2))
    else:
        print(render_status(outcome, versions))
