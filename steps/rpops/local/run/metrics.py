"""Template `metrics.prometheus`, evaluated when a node ends and recorded in the run's status.

Nothing is exported locally (there is no Argo controller to scrape); the values a cluster
would emit are kept in status.json under `status.metrics` so that they can be checked.
"""

from __future__ import annotations

from typing import Any

from rpops.local.expr.expressions import ExpressionError, evaluate_when
from rpops.local.expr.substitute import Unresolved, render
from rpops.local.load.model import Template
from rpops.local.records.nodes import Node

KINDS = ("gauge", "counter", "histogram")


def node_scope(node: Node, inputs: dict[str, str], globals_: dict[str, str]) -> dict[str, str]:
    """The variables Argo offers to a template's metrics."""
    outs = node.outputs or {}
    v = dict(globals_)
    v.update({f"inputs.parameters.{k}": val for k, val in inputs.items()})
    v.update({f"outputs.parameters.{p['name']}": p["value"] for p in outs.get("parameters") or ()})
    if "result" in outs:
        v["outputs.result"] = outs["result"]
    if "exitCode" in outs:
        v["exitCode"] = str(outs["exitCode"])
    v["status"] = node.phase
    if node.started_at is not None and node.finished_at is not None:
        v["duration"] = f"{node.finished_at - node.started_at:.6f}"
    return v


def evaluate(template: Template, node: Node, values: dict[str, str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for metric in template.metrics:
        kind = next((k for k in KINDS if k in metric), None)
        entry: dict[str, Any] = {
            "name": metric.get("name", ""),
            "help": metric.get("help", ""),
            "type": kind,
            "node": node.name,
        }
        try:
            when = metric.get("when")
            if when and not evaluate_when(render(when, values)):
                continue
            entry["labels"] = {
                lb["key"]: render(str(lb["value"]), values) for lb in metric.get("labels") or ()
            }
            raw = str((metric.get(kind) or {}).get("value", "")) if kind else ""
            text = render(raw, values)
            try:
                entry["value"] = float(text)
            except ValueError:
                entry["error"] = f"value {text!r} is not a number"
        except (Unresolved, ExpressionError) as exc:
            entry["error"] = str(exc)
        out.append(entry)
    return out
