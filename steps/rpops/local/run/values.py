"""What a finished node contributes to its siblings' `{{steps.X...}}` / `{{tasks.X...}}`, and loop items."""

from __future__ import annotations

import json
from typing import Any

from rpops.local.load.model import Sequence, Template, scalar_str
from rpops.local.records.nodes import OMITTED, SKIPPED, Node, timestamp


def node_values(prefix: str, node: Node, template: Template | None) -> dict[str, str]:
    """`{{prefix.status}}`, `{{prefix.outputs.parameters.x}}`, ... of one node.

    A skipped or omitted node offers its template's output defaults (Argo v4.0.7+: an output
    without a default cannot be read from a skipped step).
    """
    v = {f"{prefix}.id": node.id, f"{prefix}.status": node.phase}
    if node.started_at is not None:
        v[f"{prefix}.startedAt"] = timestamp(node.started_at) or ""
    if node.finished_at is not None:
        v[f"{prefix}.finishedAt"] = timestamp(node.finished_at) or ""
    outs = node.outputs or {}
    if "exitCode" in outs:
        v[f"{prefix}.exitCode"] = v[f"{prefix}.outputs.exitCode"] = str(outs["exitCode"])
    if "result" in outs:
        v[f"{prefix}.outputs.result"] = str(outs["result"])
    params = {p["name"]: p["value"] for p in outs.get("parameters") or () if "value" in p}
    if node.phase in (SKIPPED, OMITTED) and template is not None:
        params = {o.name: o.default for o in template.outputs if o.default is not None}
    for name, value in params.items():
        v[f"{prefix}.outputs.parameters.{name}"] = value
    return v


def aggregate_values(prefix: str, children: list[Node]) -> dict[str, str]:
    """A looped step's outputs as JSON lists, as Argo's processAggregateNodeOutputs builds them."""
    results: list[Any] = []
    param_maps: list[dict[str, str]] = []
    per_name: dict[str, list[str]] = {}
    for child in children:
        if child.type == "Skipped":
            continue
        outs = child.outputs or {}
        if "result" in outs:
            try:
                results.append(json.loads(outs["result"]))
            except ValueError:
                results.append(outs["result"])
        params = {p["name"]: p["value"] for p in outs.get("parameters") or () if "value" in p}
        if params:
            param_maps.append(params)
        for name, value in params.items():
            per_name.setdefault(name, []).append(value)
    v = {
        f"{prefix}.outputs.result": json.dumps(results, separators=(",", ":")),
        f"{prefix}.outputs.parameters": json.dumps(param_maps, separators=(",", ":")),
    }
    for name, values in per_name.items():
        v[f"{prefix}.outputs.parameters.{name}"] = json.dumps(values, separators=(",", ":"))
    return v


def _go(value: Any) -> str:
    """Go's %v for JSON values."""
    if isinstance(value, list):
        return "[" + " ".join(_go(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go(v)}" for k, v in sorted(value.items())) + "]"
    if value is None:
        return "<nil>"
    return scalar_str(value)


def item_label(index: int, item: Any) -> str:
    """The `(i:item)` suffix of a looped node's name."""
    if isinstance(item, dict):
        return f"({index}:" + ",".join(sorted(f"{k}:{_go(v)}" for k, v in item.items())) + ")"
    return f"({index}:{_go(item)})"


def item_values(item: Any) -> dict[str, str]:
    """`{{item}}` and `{{item.key}}`."""
    if isinstance(item, dict):
        v = {"item": json.dumps(item, separators=(",", ":"), sort_keys=True)}
        for k, val in item.items():
            v[f"item.{k}"] = (
                json.dumps(val, separators=(",", ":"), sort_keys=True)
                if isinstance(val, (dict, list))
                else _go(val)
            )
        return v
    if isinstance(item, list):
        return {"item": json.dumps(item, separators=(",", ":"))}
    return {"item": _go(item)}


def parse_with_param(text: str) -> list[Any]:
    try:
        items = json.loads(text)
    except ValueError as exc:
        raise ValueError(
            f"withParam value could not be parsed as a JSON list: {text.strip()[:200]}: {exc}"
        ) from None
    if not isinstance(items, list):
        raise ValueError(f"withParam value could not be parsed as a JSON list: {text.strip()[:200]}")
    return items


def expand_sequence(seq: Sequence) -> list[str]:
    def num(value: str | None, what: str) -> int | None:
        if value is None or value == "":
            return None
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"withSequence.{what} must be an integer, got {value!r}") from None

    start = num(seq.start, "start") or 0
    count, end = num(seq.count, "count"), num(seq.end, "end")
    if count is not None:
        numbers = list(range(start, start + count))
    elif end is not None:
        numbers = list(range(start, end + 1)) if end >= start else list(range(start, end - 1, -1))
    else:
        raise ValueError("withSequence needs count or end")
    if len(numbers) > 10000:
        raise ValueError("withSequence expands to more than 10000 items")
    fmt = seq.format or "%d"
    return [fmt % n for n in numbers]
