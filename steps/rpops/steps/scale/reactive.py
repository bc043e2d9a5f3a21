"""Reactive scaling decisions (pure): the HPA formula per resource, bounds, tolerance,
scale-down stabilisation and cooldowns. No I/O, no clock: `now` is passed in.

Per resource (see rpops/steps/scale/scaling-policy.yaml for the policy fields):

    utilisation = value / capacity                  (per-replica figures)
    ratio       = utilisation / scale_up            (scale_up is the target utilisation)
    desired     = ceil(current x ratio)   when utilisation > scale_up or < scale_down
                  current                 otherwise (the dead band), or when |ratio - 1| <= tolerance

bounded by the resource's min/max replicas. The highest recommendation over the resources
wins (as the HPA takes the max over its metrics), bounded by the global min/max replicas.
Scale-up acts at once; scale-down goes to the highest recommendation recorded over the
stabilisation window (HPA `behavior.scaleDown.stabilizationWindowSeconds`), and only once
recommendations cover the whole window. A change waits for the driving resource's cooldown
since the last change this step made.

With an HPA the step never sets replicas: it raises the HPA's minReplicas to scale up, and
lowers it (never below the policy minimum or the HPA's own minimum before the step first moved
it) to give back what it raised; the HPA scales down by itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rpops.core.times import iso
from rpops.platform.base import AutoscalingBounds
from rpops.steps.scale.policy import Policy, ResourcePolicy
from rpops.steps.scale.state import ScaleState

# Decisions (the `decision` output).
SCALE_UP = "scale-up"
SCALE_DOWN = "scale-down"
HOLD = "hold"
NO_DECISION = "no-decision"
# Actions: what the act step does.
SCALE = "scale"  # driver.scale(replicas)
SET_MIN = "set-min"  # driver.set_autoscaling(min, max)
NONE = "none"


@dataclass(frozen=True)
class Bounds:
    min_replicas: int
    max_replicas: int

    def clamp(self, replicas: int) -> int:
        return max(self.min_replicas, min(self.max_replicas, replicas))


@dataclass(frozen=True)
class Reading:
    """One resource's per-replica figure, observed (value None: not observed; note says why)."""

    resource: str
    value: float | None
    capacity: float
    source: str
    note: str = ""


@dataclass(frozen=True)
class ResourceResult:
    resource: str
    value: float | None
    capacity: float
    utilisation: float | None
    scale_up: float
    scale_down: float
    raw: int | None  # the formula's replicas, before the resource's bounds
    replicas: int | None  # bounded by the resource's min/max; None without data
    verdict: str  # up | down | hold | tolerance | no data
    formula: str


@dataclass(frozen=True)
class Decision:
    mode: str  # reactive | predictive
    decision: str  # scale-up | scale-down | hold | no-decision
    action: str  # scale | set-min | none
    current: int  # replicas now
    recommendation: int | None  # this run's bounded recommendation
    target: int | None  # replicas after (scale) or the HPA's new minReplicas (set-min)
    reason: str
    formula: str
    resource: str = ""  # the resource that drove the recommendation
    hpa: AutoscalingBounds | None = None
    new_hpa: AutoscalingBounds | None = None
    resources: tuple[ResourceResult, ...] = ()
    history: tuple[tuple[float, int], ...] = ()  # recommendations to record (unchanged when none)
    record_history: bool = False
    hpa_base_min: int | None = None  # to record when the HPA is moved for the first time
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def changes(self) -> bool:
        return self.action != NONE

    @property
    def direction(self) -> str:
        return {SCALE_UP: "up", SCALE_DOWN: "down"}.get(self.decision, "none")

    @property
    def replicas_after(self) -> int:
        """The replica count the platform is asked for (with an HPA: at least the new minimum)."""
        if self.action == SCALE and self.target is not None:
            return self.target
        if self.action == SET_MIN and self.target is not None:
            return max(self.current, self.target)
        return self.current


def _ceil(value: float) -> int:
    # Round away float noise first: 3 x (0.7 / 0.7) must be 3, not 4.
    return math.ceil(round(value, 9))


def evaluate(reading: Reading | None, rp: ResourcePolicy, current: int, tolerance: float) -> ResourceResult:
    """One resource's recommendation (pure)."""

    def empty(note: str) -> ResourceResult:
        return ResourceResult(
            rp.name,
            None if reading is None else reading.value,
            reading.capacity if reading else rp.capacity,
            None,
            rp.scale_up,
            rp.scale_down,
            None,
            None,
            "no data",
            f"{rp.name}: no data ({note})",
        )

    if reading is None:
        return empty("not observed")
    value = reading.value
    if value is None:
        return empty(reading.note or "not observed")
    if not math.isfinite(value):
        return empty(f"value {value} is not a number")
    if value < 0:
        return empty(f"value {value:g} is negative")
    if not math.isfinite(reading.capacity) or reading.capacity <= 0:
        return empty(f"capacity {reading.capacity:g} is not positive")
    utilisation = value / reading.capacity
    ratio = utilisation / rp.scale_up
    if utilisation > rp.scale_up or utilisation < rp.scale_down:
        if abs(ratio - 1) <= tolerance:
            raw, verdict = current, "tolerance"
        else:
            raw, verdict = _ceil(current * ratio), ("up" if utilisation > rp.scale_up else "down")
    else:
        raw, verdict = current, "hold"
    replicas = max(rp.min_replicas, min(rp.max_replicas, raw))
    shown = f"{value:g}/{reading.capacity:g} = {utilisation:.3f}"
    if verdict in ("up", "down"):
        formula = f"{rp.name}: ceil({current} x {utilisation:.3f} / {rp.scale_up:g}) = {raw}"
    elif verdict == "tolerance":
        formula = (
            f"{rp.name}: utilisation {utilisation:.3f}, |{utilisation:.3f}/{rp.scale_up:g} - 1| <= "
            f"{tolerance:g} (tolerance): {current}"
        )
    else:
        formula = (
            f"{rp.name}: utilisation {utilisation:.3f} within [{rp.scale_down:g}, {rp.scale_up:g}]: {current}"
        )
    if replicas != raw:
        formula += f", bounded to {replicas} by {rp.name} min/max [{rp.min_replicas}, {rp.max_replicas}]"
    formula += f" (utilisation {shown})"
    return ResourceResult(
        rp.name,
        value,
        reading.capacity,
        utilisation,
        rp.scale_up,
        rp.scale_down,
        raw,
        replicas,
        verdict,
        formula,
    )


def prune(history: Sequence[tuple[float, int]], now: float, window: float) -> tuple[tuple[float, int], ...]:
    """Entries inside the window, plus the newest one at or before its start (it held at the
    window's start), in time order; at most a bounded number are kept by the encoder."""
    ordered = sorted((t, r) for t, r in history if t <= now)
    start = now - window
    before = [e for e in ordered if e[0] <= start]
    inside = [e for e in ordered if e[0] > start]
    return tuple(before[-1:] + inside)


def stabilised(history: Sequence[tuple[float, int]], now: float, window: float) -> tuple[int | None, float]:
    """(highest recommendation over [now - window, now], seconds covered). None when the history
    does not reach back to the window's start (then a scale-down must wait)."""
    if not history:
        return None, 0.0
    covered = now - min(t for t, _ in history)
    if window > 0 and covered < window:
        return None, covered
    return max(r for _, r in prune(history, now, window)), covered


def no_decision(
    mode: str,
    current: int,
    reason: str,
    *,
    hpa: AutoscalingBounds | None = None,
    resources: tuple[ResourceResult, ...] = (),
    details: Mapping[str, Any] | None = None,
) -> Decision:
    return Decision(
        mode=mode,
        decision=NO_DECISION,
        action=NONE,
        current=current,
        recommendation=None,
        target=None,
        reason=f"no decision: {reason}",
        formula="",
        hpa=hpa,
        resources=resources,
        details=dict(details or {}),
    )


def effective_bounds(bounds: Bounds, hpa: AutoscalingBounds | None) -> Bounds:
    if hpa is None:
        return bounds
    return Bounds(bounds.min_replicas, max(bounds.min_replicas, min(bounds.max_replicas, hpa.max_replicas)))


def decide_reactive(
    *,
    current: int,
    readings: Mapping[str, Reading],
    policy: Policy,
    bounds: Bounds,
    state: ScaleState,
    hpa: AutoscalingBounds | None,
    now: float,
) -> Decision:
    """The reactive decision for one version (pure)."""
    mode = "reactive"
    if current <= 0:
        return no_decision(
            mode,
            current,
            "the version runs 0 replicas, so there is nothing to measure; scale it up first",
            hpa=hpa,
        )
    results = tuple(evaluate(readings.get(rp.name), rp, current, policy.tolerance) for rp in policy.resources)
    valid = [r for r in results if r.replicas is not None]
    if not valid:
        notes = "; ".join(r.formula for r in results)
        return no_decision(mode, current, f"no usable metric ({notes})", hpa=hpa, resources=results)
    top = max(valid, key=lambda r: r.replicas or 0)  # first of equals, in policy order
    limits = effective_bounds(bounds, hpa)
    recommendation = limits.clamp(top.replicas or 0)
    window = policy.scale_down_stabilization_seconds
    history = prune((*state.recommendations, (now, recommendation)), now, window)
    formula = "; ".join(r.formula for r in results)
    formula += f"; max -> {top.replicas}"
    if recommendation != top.replicas:
        formula += f", bounded to {recommendation} by [{limits.min_replicas}, {limits.max_replicas}]"
    common: dict[str, Any] = dict(
        mode=mode,
        current=current,
        recommendation=recommendation,
        formula=formula,
        resource=top.resource,
        hpa=hpa,
        resources=results,
        history=history,
        record_history=True,
    )

    def hold(reason: str) -> Decision:
        return Decision(decision=HOLD, action=NONE, target=None, reason=reason, **common)

    goal = _target(current, recommendation, top, bounds, hpa, history, now, window)
    if isinstance(goal, str):
        return hold(goal)
    target, immediate, why = goal
    if not immediate:
        waiting = _cooldown_left(state, policy.resource(top.resource).cooldown_seconds, top.resource, now)
        if waiting:
            return hold(f"{waiting}; wanted {target}")
    decision = SCALE_UP if target > current else SCALE_DOWN
    if hpa is None:
        return Decision(
            decision=decision, action=SCALE, target=target, reason=f"{decision} to {target}: {why}", **common
        )
    return _via_hpa(decision, target, why, hpa, bounds, state, common)


def _target(
    current: int,
    recommendation: int,
    top: ResourceResult,
    bounds: Bounds,
    hpa: AutoscalingBounds | None,
    history: tuple[tuple[float, int], ...],
    now: float,
    window: float,
) -> tuple[int, bool, str] | str:
    """Where to go before cooldowns: (target, immediate, why), or why to hold. Out-of-bounds counts
    are corrected at once; a scale-down waits until the stabilisation window agrees."""
    if hpa is None and current > bounds.max_replicas:
        return bounds.max_replicas, True, f"{current} replicas is above max-replicas {bounds.max_replicas}"
    if hpa is None and current < bounds.min_replicas:
        return bounds.min_replicas, True, f"{current} replicas is below min-replicas {bounds.min_replicas}"
    if recommendation > current:
        driving = top.formula.split(" (")[0]
        return recommendation, False, (
            f"{top.resource} utilisation {top.utilisation:.2f} > {top.scale_up:g}: {driving}"
        )
    if recommendation < current:
        highest, covered = stabilised(history, now, window)
        if highest is None:
            return (
                f"scale-down to {recommendation} waits for the {window:g}s stabilisation window "
                f"(recommendations seen for {covered:.0f}s)"
            )
        if highest >= current:
            return (
                f"stabilising: the highest recommendation over the last {window:g}s is {highest}, "
                f"not below {current}"
            )
        return highest, False, (
            f"every recommendation over the last {window:g}s is at most {highest} "
            f"(now {recommendation}: {top.resource} utilisation {top.utilisation:.2f})"
        )
    return (
        f"{current} replicas match the recommendation (highest: {top.resource}, utilisation "
        f"{top.utilisation:.2f}, {top.verdict})"
    )


def _cooldown_left(state: ScaleState, cooldown: float, resource: str, now: float) -> str:
    """Why the driving resource's cooldown since the last change still holds; "" when it is over."""
    if state.last_scale_time is None:
        return ""
    elapsed = max(0.0, now - state.last_scale_time)
    if elapsed >= cooldown:
        return ""
    reason = f": {state.last_scale_reason}" if state.last_scale_reason else ""
    last = f"{iso(state.last_scale_time)}{reason}"
    return (
        f"cooldown: {cooldown - elapsed:.0f}s of the {resource} cooldown ({cooldown:g}s) "
        f"left since the last scaling at {last}"
    )


def _via_hpa(
    decision: str,
    target: int,
    why: str,
    hpa: AutoscalingBounds,
    bounds: Bounds,
    state: ScaleState,
    common: dict[str, Any],
) -> Decision:
    """Translate a target into the HPA's minReplicas, never fighting the autoscaler."""
    base = state.hpa_base_min if state.hpa_base_min is not None else hpa.min_replicas
    floor = max(bounds.min_replicas, base)
    new_min = max(floor, min(hpa.max_replicas, target))
    if decision == SCALE_UP and new_min > hpa.min_replicas:
        reason = f"scale-up: raise the HPA's minReplicas {hpa.min_replicas} -> {new_min}: {why}"
    elif decision == SCALE_DOWN and new_min < hpa.min_replicas:
        reason = (
            f"scale-down: lower the HPA's minReplicas {hpa.min_replicas} -> {new_min} (floor {floor}): {why}"
        )
    else:
        what = "already at least" if decision == SCALE_UP else "already at its floor of"
        return Decision(
            decision=HOLD,
            action=NONE,
            target=None,
            reason=f"the HPA scales by itself: its minReplicas {hpa.min_replicas} is {what} "
            f"{new_min}; wanted {target} ({why})",
            **common,
        )
    return Decision(
        decision=decision,
        action=SET_MIN,
        target=new_min,
        reason=reason,
        new_hpa=AutoscalingBounds(new_min, hpa.max_replicas),
        hpa_base_min=base,
        **common,
    )
