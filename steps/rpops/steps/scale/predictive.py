"""Predictive scaling decisions (pure): pre-scale ahead of a forecast peak, never scale in.

    needed = ceil(forecast peak over the look-ahead / per-replica capacity)

The per-replica capacity is given (--replica-capacity-rps), or measured now as

    capacity = (current rps / current replicas) x min over cpu, memory of (scale_up / utilisation)

i.e. the request rate one replica serves when its most loaded resource reaches its target.
A forecast only ever raises replicas (or the HPA's minReplicas); giving them back is the
reactive mode's job, with its stabilisation window. Without `apply` the decision is reported
and nothing changes (forecast-only, the default).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rpops.core.times import iso
from rpops.platform.base import AutoscalingBounds
from rpops.steps.scale.reactive import (
    HOLD,
    NONE,
    SCALE,
    SCALE_UP,
    SET_MIN,
    Bounds,
    Decision,
    ResourceResult,
    effective_bounds,
    no_decision,
)
from rpops.steps.scale.state import ScaleState

MIN_UTILISATION_TO_MEASURE = 0.05  # below this, extrapolating capacity is guesswork


@dataclass(frozen=True)
class Capacity:
    rps: float | None  # per replica at the target utilisation; None: unknown
    source: str


@dataclass(frozen=True)
class ForecastSummary:
    peak: float
    peak_at: float
    points: tuple[tuple[float, float], ...]
    model: dict[str, Any]


def measure_capacity(current_rps: float | None, replicas: int, results: Sequence[ResourceResult]) -> Capacity:
    """Per-replica capacity from the current rate and the current utilisation (pure)."""
    if current_rps is None or not math.isfinite(current_rps) or current_rps <= 0:
        return Capacity(None, "no current request rate to measure from")
    if replicas <= 0:
        return Capacity(None, "no replicas to measure from")
    factors = [
        (r.scale_up / r.utilisation, r.resource)
        for r in results
        if r.resource != "tasks" and r.utilisation is not None and r.utilisation >= MIN_UTILISATION_TO_MEASURE
    ]
    if not factors:
        return Capacity(
            None,
            f"no CPU or memory utilisation of at least {MIN_UTILISATION_TO_MEASURE:g} to extrapolate from",
        )
    factor, resource = min(factors)
    per_replica = current_rps / replicas
    return Capacity(
        per_replica * factor,
        f"measured: {current_rps:g} rps / {replicas} replicas x {factor:.3f} "
        f"({resource} target / utilisation)",
    )


def decide_predictive(
    *,
    current: int,
    hpa: AutoscalingBounds | None,
    bounds: Bounds,
    state: ScaleState,
    forecast: ForecastSummary | None,
    no_forecast_reason: str,
    capacity: Capacity,
    apply: bool,
    now: float,
) -> Decision:
    mode = "predictive"
    details: dict[str, Any] = {"capacity_rps": capacity.rps, "capacity_source": capacity.source}
    if forecast is not None:
        details.update(
            forecast_peak_rps=round(forecast.peak, 3),
            forecast_peak_at=iso(forecast.peak_at),
            model=forecast.model,
        )
    if forecast is None:
        return no_decision(mode, current, no_forecast_reason, hpa=hpa, details=details)
    if capacity.rps is None or capacity.rps <= 0:
        return no_decision(
            mode,
            current,
            f"per-replica capacity unknown ({capacity.source}); pass --replica-capacity-rps",
            hpa=hpa,
            details=details,
        )
    needed = max(1, math.ceil(round(forecast.peak / capacity.rps, 9)))
    limits = effective_bounds(bounds, hpa)
    target = limits.clamp(needed)
    formula = (
        f"ceil(forecast peak {forecast.peak:.2f} rps / {capacity.rps:.2f} rps per replica) = {needed}"
        + (
            f", bounded to {target} by [{limits.min_replicas}, {limits.max_replicas}]"
            if target != needed
            else ""
        )
    )
    floor_now = max(current, hpa.min_replicas) if hpa else current
    peak_at = iso(forecast.peak_at)
    common: dict[str, Any] = dict(
        mode=mode,
        current=current,
        recommendation=target,
        formula=formula,
        resource="tasks",
        hpa=hpa,
        details=details,
    )
    if target <= floor_now:
        return Decision(
            decision=HOLD,
            action=NONE,
            target=None,
            reason=f"the forecast peak of {forecast.peak:.1f} rps at {peak_at} fits in {floor_now} "
            f"replicas ({capacity.rps:.1f} rps each); a forecast never scales in",
            **common,
        )
    why = (
        f"forecast peak {forecast.peak:.1f} rps at {peak_at} needs {target} replicas "
        f"at {capacity.rps:.1f} rps each"
    )
    return _pre_scale(target, why, apply, hpa, state, common)


def _pre_scale(
    target: int,
    why: str,
    apply: bool,
    hpa: AutoscalingBounds | None,
    state: ScaleState,
    common: dict[str, Any],
) -> Decision:
    """Scaling up ahead of the forecast: reported only, the replicas set, or (with an HPA) its
    minReplicas raised, remembering the HPA's own minimum to return to."""
    if not apply:
        return Decision(
            decision=SCALE_UP,
            action=NONE,
            target=target,
            reason=f"forecast only (pass --apply-forecast to pre-scale): {why}",
            **common,
        )
    if hpa is None:
        return Decision(
            decision=SCALE_UP, action=SCALE, target=target, reason=f"pre-scale to {target}: {why}", **common
        )
    base = state.hpa_base_min if state.hpa_base_min is not None else hpa.min_replicas
    return Decision(
        decision=SCALE_UP,
        action=SET_MIN,
        target=target,
        reason=f"pre-scale: raise the HPA's minReplicas {hpa.min_replicas} -> {target}: {why}",
        new_hpa=AutoscalingBounds(target, hpa.max_replicas),
        hpa_base_min=base,
        **common,
    )


def summarise_forecast(points: Sequence[tuple[float, float]], model: dict[str, Any]) -> ForecastSummary:
    peak_at, peak = max(points, key=lambda p: p[1])
    return ForecastSummary(peak=peak, peak_at=peak_at, points=tuple(points), model=model)


__all__ = [
    "Capacity",
    "ForecastSummary",
    "decide_predictive",
    "measure_capacity",
    "summarise_forecast",
    "HOLD",
    "SCALE_UP",
]
