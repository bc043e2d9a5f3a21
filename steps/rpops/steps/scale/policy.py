"""The scaling policy: typed values, the built-in default, and loading a policy file.

A policy file is YAML merged over the built-in `rpops/steps/scale/scaling-policy.yaml` (whose header
documents the fields and how thresholds combine). Every problem is a UsageError that names the
file, the field and the fix; nothing is changed before the policy has loaded.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rpops.clients.promql import check_duration
from rpops.core.errors import UsageError

DEFAULT_POLICY_PATH = Path(__file__).resolve().parent / "scaling-policy.yaml"
RESOURCES = ("cpu", "memory", "tasks")
MAX_REPLICAS_LIMIT = 1000  # the drivers refuse more (rpops.platform.base.check_replicas)
STATUS_FIELDS = ("cpu_percent", "memory_mb", "request_rate")

_TOP_KEYS = {
    "version",
    "min_replicas",
    "max_replicas",
    "tolerance",
    "scale_down_stabilization_seconds",
    "rate_window",
    "resources",
    "predictive",
}
_RESOURCE_KEYS = {
    "description",
    "query",
    "status_field",
    "capacity",
    "scale_up",
    "scale_down",
    "cooldown_seconds",
    "min_replicas",
    "max_replicas",
}
_PREDICTIVE_KEYS = {
    "query",
    "rate_window",
    "history_days",
    "min_history_hours",
    "step_seconds",
    "look_ahead_minutes",
}


@dataclass(frozen=True)
class ResourcePolicy:
    name: str
    description: str
    query: str  # PromQL with placeholders; "" reads this resource from the instances only
    status_field: str  # key of GET /api/performance/status
    capacity: float  # the per-replica value meaning 100% utilisation (when the workload gives none)
    scale_up: float  # utilisation above which to scale up; also the target utilisation
    scale_down: float  # utilisation below which to scale down
    cooldown_seconds: float
    min_replicas: int
    max_replicas: int


@dataclass(frozen=True)
class PredictivePolicy:
    query: str
    rate_window: str
    history_days: float
    min_history_hours: float
    step_seconds: float
    look_ahead_minutes: float


@dataclass(frozen=True)
class Policy:
    source: str
    min_replicas: int
    max_replicas: int
    tolerance: float
    scale_down_stabilization_seconds: float
    rate_window: str
    resources: tuple[ResourcePolicy, ...]
    predictive: PredictivePolicy

    def resource(self, name: str) -> ResourcePolicy:
        return next(r for r in self.resources if r.name == name)

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def _read_yaml(path: Path, label: str) -> Any:
    from rpops.core.parsers import load_yaml_file

    return load_yaml_file(path, label, "the policy file")  # capped size, regular files only, bounded nesting


def load_policy(path: str | None = None) -> Policy:
    """The built-in policy, or a policy file merged over it. Raises UsageError."""
    base = _read_yaml(DEFAULT_POLICY_PATH, "the built-in scaling policy")
    if path is None:
        return parse_policy(base, "built-in policy")
    doc = _read_yaml(Path(path), f"--policy {path}")
    return parse_policy(merge(base, doc, f"--policy {path}"), f"--policy {path}")


def merge(base: Mapping[str, Any], doc: Any, source: str) -> dict[str, Any]:
    """`doc` over `base`: top-level keys replace, `resources.<name>` and `predictive` merge key by key."""
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise UsageError(
            f"{source}: the policy must be a YAML mapping (e.g. 'max_replicas: 20' or "
            "'resources: {cpu: {scale_up: 0.6}}')"
        )
    out = dict(base)
    for key, value in doc.items():
        if key == "resources" and isinstance(value, dict):
            resources = dict(base.get("resources") or {})
            for name, fields in value.items():
                if isinstance(fields, dict) and isinstance(resources.get(name), dict):
                    resources[name] = {**resources[name], **fields}
                else:
                    resources[name] = fields
            out["resources"] = resources
        elif key == "predictive" and isinstance(value, dict):
            out["predictive"] = {**(base.get("predictive") or {}), **value}
        else:
            out[key] = value
    return out


def _number(
    value: Any,
    where: str,
    fail: Callable[[str], UsageError],
    *,
    low: float,
    high: float,
    low_open: bool = False,
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise fail(f"{where} must be a number, got {value!r}")
    if value < low or value > high or (low_open and value == low):
        bracket = "(" if low_open else "["
        raise fail(f"{where} is {value!r}; use a number in {bracket}{low:g}, {high:g}]")
    return float(value)


def _replicas(value: Any, where: str, fail: Callable[[str], UsageError]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_REPLICAS_LIMIT:
        raise fail(f"{where} is {value!r}; use a whole number from 1 to {MAX_REPLICAS_LIMIT}")
    return value


def _text(value: Any, where: str, fail: Callable[[str], UsageError]) -> str:
    if not isinstance(value, str):
        raise fail(f"{where} must be a string, got {value!r}")
    return value.strip()


def parse_policy(doc: Any, source: str) -> Policy:
    def fail(what: str) -> UsageError:
        return UsageError(f"{source}: {what}")

    if not isinstance(doc, dict):
        raise fail("the policy must be a YAML mapping")
    unknown = set(doc) - _TOP_KEYS
    if unknown:
        raise fail(
            f"unknown key(s) {', '.join(sorted(map(str, unknown)))}; allowed: {', '.join(sorted(_TOP_KEYS))}"
        )
    if doc.get("version", 1) != 1:
        raise fail(f"version {doc.get('version')!r} is not supported; use 'version: 1'")
    min_r = _replicas(doc.get("min_replicas"), "min_replicas", fail)
    max_r = _replicas(doc.get("max_replicas"), "max_replicas", fail)
    if min_r > max_r:
        raise fail(
            f"min_replicas {min_r} is greater than max_replicas {max_r}; lower min_replicas or raise "
            "max_replicas"
        )
    tolerance = _number(doc.get("tolerance"), "tolerance", fail, low=0.0, high=0.99)
    window = _number(
        doc.get("scale_down_stabilization_seconds"),
        "scale_down_stabilization_seconds",
        fail,
        low=0.0,
        high=86400.0,
    )
    rate_window = check_duration(doc.get("rate_window"), f"{source}: rate_window")
    raw_resources = doc.get("resources")
    if not isinstance(raw_resources, dict):
        raise fail("resources must be a mapping of cpu/memory/tasks to their settings")
    unknown = set(raw_resources) - set(RESOURCES)
    if unknown:
        raise fail(
            f"unknown resource(s) {', '.join(sorted(map(str, unknown)))}; known: {', '.join(RESOURCES)}"
        )
    resources = tuple(
        _resource(name, raw_resources[name], fail) for name in RESOURCES if name in raw_resources
    )
    if not resources:
        raise fail("no resource is configured; keep at least one of cpu, memory, tasks")
    return Policy(
        source=source,
        min_replicas=min_r,
        max_replicas=max_r,
        tolerance=tolerance,
        scale_down_stabilization_seconds=window,
        rate_window=rate_window,
        resources=resources,
        predictive=_predictive(doc.get("predictive"), fail, source),
    )


def _resource(name: str, raw: Any, fail: Callable[[str], UsageError]) -> ResourcePolicy:
    where = f"resources.{name}"
    if not isinstance(raw, dict):
        raise fail(f"{where} must be a mapping of its settings")
    unknown = set(raw) - _RESOURCE_KEYS
    if unknown:
        raise fail(
            f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
            f"allowed: {', '.join(sorted(_RESOURCE_KEYS))}"
        )
    status_field = _text(raw.get("status_field", ""), f"{where}.status_field", fail)
    if status_field and status_field not in STATUS_FIELDS:
        raise fail(
            f"{where}.status_field {status_field!r} is not in /api/performance/status; use one of "
            f"{', '.join(STATUS_FIELDS)} (or '' to read it from Prometheus only)"
        )
    up = _number(raw.get("scale_up"), f"{where}.scale_up", fail, low=0.0, high=10.0, low_open=True)
    down = _number(raw.get("scale_down"), f"{where}.scale_down", fail, low=0.0, high=10.0)
    if down >= up:
        raise fail(
            f"{where}.scale_down {down:g} must be below scale_up {up:g}; e.g. scale_up 0.7, scale_down 0.3"
        )
    min_r = _replicas(raw.get("min_replicas", 1), f"{where}.min_replicas", fail)
    max_r = _replicas(raw.get("max_replicas", MAX_REPLICAS_LIMIT), f"{where}.max_replicas", fail)
    if min_r > max_r:
        raise fail(f"{where}.min_replicas {min_r} is greater than its max_replicas {max_r}")
    return ResourcePolicy(
        name=name,
        description=_text(raw.get("description", ""), f"{where}.description", fail),
        query=_text(raw.get("query", ""), f"{where}.query", fail),
        status_field=status_field,
        capacity=_number(raw.get("capacity"), f"{where}.capacity", fail, low=0.0, high=1e12, low_open=True),
        scale_up=up,
        scale_down=down,
        cooldown_seconds=_number(
            raw.get("cooldown_seconds", 0), f"{where}.cooldown_seconds", fail, low=0.0, high=86400.0
        ),
        min_replicas=min_r,
        max_replicas=max_r,
    )


def _predictive(raw: Any, fail: Callable[[str], UsageError], source: str) -> PredictivePolicy:
    if not isinstance(raw, dict):
        raise fail("predictive must be a mapping (query, history_days, min_history_hours, ...)")
    unknown = set(raw) - _PREDICTIVE_KEYS
    if unknown:
        raise fail(
            f"predictive: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
            f"allowed: {', '.join(sorted(_PREDICTIVE_KEYS))}"
        )
    query = _text(raw.get("query", ""), "predictive.query", fail)
    if not query:
        raise fail("predictive.query is empty; give the PromQL of the service's total request rate")
    history_days = _number(
        raw.get("history_days"), "predictive.history_days", fail, low=0.0, high=60.0, low_open=True
    )
    min_hours = _number(
        raw.get("min_history_hours"), "predictive.min_history_hours", fail, low=0.0, high=24 * 60.0
    )
    if min_hours > history_days * 24:
        raise fail(
            f"predictive.min_history_hours {min_hours:g} exceeds history_days x 24 "
            f"({history_days * 24:g}); lower it or query more history"
        )
    return PredictivePolicy(
        query=query,
        rate_window=check_duration(raw.get("rate_window"), f"{source}: predictive.rate_window"),
        history_days=history_days,
        min_history_hours=min_hours,
        step_seconds=_number(raw.get("step_seconds"), "predictive.step_seconds", fail, low=1.0, high=3600.0),
        look_ahead_minutes=_number(
            raw.get("look_ahead_minutes"),
            "predictive.look_ahead_minutes",
            fail,
            low=0.0,
            high=24 * 60.0,
            low_open=True,
        ),
    )
