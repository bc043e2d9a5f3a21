"""Forecast a request rate: trend + daily + weekly seasonality, fit robustly (pure Python).

The model is multiplicative (additive in log space, where the relative noise of traffic is
even), on a regular grid of `step` seconds:

    log(1 + y(t)) = a + b * t + D[time of day] + W[day of week] + level + noise

fit by backfitting (each part re-estimated on what the others leave, a few rounds):
- D: the median, per time-of-day slot, over the days of history, lightly smoothed over
  neighbouring slots and centred;
- W: the median per weekday (only with a week of history: one week gives one day per weekday,
  and a trend is told apart from a weekly pattern only over two weeks or more);
- a + b t: a Huber-weighted least-squares line (only with at least two days: with less, a
  daily shape is indistinguishable from a trend);
- level: the median residual over the last hour, so a recent shift of the whole curve is
  followed while a spike of a few minutes is not.
Medians and Huber weights keep one-off spikes in the history from bending the forecast.

Why not a library: statsmodels' Holt-Winters / MSTL need numpy, scipy, pandas and patsy
(405 MB installed here, about 1.7 s to import), for a model of about a hundred lines that fits
a week of 5-minute points in a few milliseconds. See docs/scale.md.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

DAY = 86400.0
WEEK = 7 * DAY
HUBER_K = 1.345
LEVEL_WINDOW = 3600.0


@dataclass(frozen=True)
class SeasonalModel:
    step: float
    t_ref: float  # time the trend is measured from (the last point)
    intercept: float
    slope: float  # log growth per second
    daily: tuple[float, ...]  # one value per time-of-day slot
    weekly: tuple[float, ...]  # seven values (empty: no weekly part)
    level: float
    span_s: float  # history covered
    points: int
    residual_mad: float  # scale of the relative noise (median absolute deviation of log residuals)
    parts: tuple[str, ...]  # which parts were fit: trend, daily, weekly, level

    def _slot(self, t: float) -> int:
        return int((t % DAY) // self.step) % len(self.daily)

    def predict(self, t: float) -> float:
        value = self.intercept + self.slope * (t - self.t_ref) + self.daily[self._slot(t)] + self.level
        if self.weekly:
            value += self.weekly[_weekday(t)]
        return max(0.0, math.expm1(value))

    def forecast(self, start: float, horizon_s: float) -> list[tuple[float, float]]:
        """Predictions at start + k*step for k = 1.. up to `horizon_s` ahead."""
        count = max(1, math.ceil(horizon_s / self.step - 1e-9))
        return [(start + k * self.step, self.predict(start + k * self.step)) for k in range(1, count + 1)]

    def describe(self) -> dict[str, object]:
        return {
            "model": "additive trend + daily + weekly seasonality, robust backfitting",
            "parts": list(self.parts),
            "step_s": self.step,
            "points": self.points,
            "history_hours": round(self.span_s / 3600, 2),
            "growth_per_day": round(math.expm1(self.slope * DAY), 6),
            "level": round(self.level, 6),
            "residual_mad": round(self.residual_mad, 6),
        }


class NotEnoughHistory(ValueError):
    """Fewer points or a shorter span than the model needs."""


def _weekday(t: float) -> int:
    return int(t // DAY) % 7


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def regularise(points: Iterable[tuple[float, float]], step: float) -> list[tuple[float, float]]:
    """Finite points only, one per grid cell of `step` seconds (the mean of a cell), in time order."""
    cells: dict[int, list[float]] = {}
    for t, v in points:
        if math.isfinite(t) and math.isfinite(v):
            cells.setdefault(round(t / step), []).append(v)
    return [(k * step, sum(vs) / len(vs)) for k, vs in sorted(cells.items())]


def _smooth_circular(values: list[float | None]) -> list[float]:
    """Fill empty slots from their nearest filled neighbours, then a [1, 2, 1]/4 circular filter."""
    n = len(values)
    known = [i for i, v in enumerate(values) if v is not None]
    if not known:
        return [0.0] * n
    filled: list[float] = []
    for i in range(n):
        v = values[i]
        if v is not None:
            filled.append(v)
            continue
        # nearest known on each side, circularly
        left = next(values[(i - d) % n] for d in range(1, n + 1) if values[(i - d) % n] is not None)
        right = next(values[(i + d) % n] for d in range(1, n + 1) if values[(i + d) % n] is not None)
        filled.append(((left or 0.0) + (right or 0.0)) / 2)
    if n < 3:
        return filled
    return [(filled[i - 1] + 2 * filled[i] + filled[(i + 1) % n]) / 4 for i in range(n)]


def _centre(values: list[float]) -> list[float]:
    mean = sum(values) / len(values) if values else 0.0
    return [v - mean for v in values]


def _huber_line(ts: Sequence[float], ys: Sequence[float], rounds: int = 4) -> tuple[float, float]:
    """Robust (intercept at t=0, slope) by iteratively reweighted least squares with Huber weights."""
    weights = [1.0] * len(ts)
    intercept, slope = _median(ys), 0.0
    for _ in range(rounds):
        sw = sum(weights)
        mt = sum(w * t for w, t in zip(weights, ts, strict=True)) / sw
        my = sum(w * y for w, y in zip(weights, ys, strict=True)) / sw
        sxx = sum(w * (t - mt) ** 2 for w, t in zip(weights, ts, strict=True))
        if sxx <= 0:
            return my, 0.0
        slope = sum(w * (t - mt) * (y - my) for w, t, y in zip(weights, ts, ys, strict=True)) / sxx
        intercept = my - slope * mt
        residuals = [y - (intercept + slope * t) for t, y in zip(ts, ys, strict=True)]
        scale = 1.4826 * _median([abs(r) for r in residuals]) or 1e-12
        weights = [1.0 if abs(r) <= HUBER_K * scale else HUBER_K * scale / abs(r) for r in residuals]
    return intercept, slope


def fit(
    points: Iterable[tuple[float, float]],
    step: float,
    *,
    min_span_s: float = DAY,
    min_points: int = 12,
    rounds: int = 3,
) -> SeasonalModel:
    """Fit the model to (unix time, value) points; NotEnoughHistory when too little is given."""
    if step <= 0 or step > 3600:
        raise ValueError("step must be in (0, 3600] seconds")
    grid = regularise(points, step)
    if len(grid) < min_points:
        raise NotEnoughHistory(f"{len(grid)} points, at least {min_points} needed")
    span = grid[-1][0] - grid[0][0]
    if span < min_span_s:
        raise NotEnoughHistory(f"{span / 3600:.1f} h of history, at least {min_span_s / 3600:g} h needed")
    ts = [t for t, _ in grid]
    ys = [math.log1p(max(0.0, v)) for _, v in grid]
    t_ref = ts[-1]
    rel = [t - t_ref for t in ts]
    n_slots = max(1, math.ceil(DAY / step - 1e-9))
    slots = [int((t % DAY) // step) % n_slots for t in ts]
    days = [_weekday(t) for t in ts]
    use_trend = span >= 2 * DAY
    use_weekly = span >= WEEK - step

    daily = [0.0] * n_slots
    weekly = [0.0] * 7
    intercept, slope = _median(ys), 0.0
    for _ in range(rounds):
        # daily, on what trend and weekly leave
        by_slot: list[list[float]] = [[] for _ in range(n_slots)]
        for i, y in enumerate(ys):
            by_slot[slots[i]].append(y - intercept - slope * rel[i] - weekly[days[i]])
        daily = _centre(_smooth_circular([_median(v) if v else None for v in by_slot]))
        if use_weekly:
            by_day: list[list[float]] = [[] for _ in range(7)]
            for i, y in enumerate(ys):
                by_day[days[i]].append(y - intercept - slope * rel[i] - daily[slots[i]])
            present = [_median(v) for v in by_day if v]
            centre = sum(present) / len(present) if present else 0.0
            weekly = [(_median(v) - centre) if v else 0.0 for v in by_day]
        rest = [y - daily[slots[i]] - weekly[days[i]] for i, y in enumerate(ys)]
        if use_trend:
            intercept, slope = _huber_line(rel, rest)
        else:
            intercept, slope = _median(rest), 0.0

    def base(i: int) -> float:
        return intercept + slope * rel[i] + daily[slots[i]] + weekly[days[i]]

    residuals = [y - base(i) for i, y in enumerate(ys)]
    recent = [r for t, r in zip(ts, residuals, strict=True) if t > t_ref - LEVEL_WINDOW]
    level = _median(recent)
    middle = _median(residuals)
    mad = _median([abs(r - middle) for r in residuals])
    parts = tuple(
        p for p, on in (("trend", use_trend), ("daily", True), ("weekly", use_weekly), ("level", True)) if on
    )
    return SeasonalModel(
        step=step,
        t_ref=t_ref,
        intercept=intercept,
        slope=slope,
        daily=tuple(daily),
        weekly=tuple(weekly) if use_weekly else (),
        level=level,
        span_s=span,
        points=len(grid),
        residual_mad=mad,
        parts=parts,
    )


def mape(actual: Sequence[float], predicted: Sequence[float]) -> float:
    """Mean absolute percentage error over the points whose actual value is not 0."""
    pairs = [(a, p) for a, p in zip(actual, predicted, strict=True) if a != 0]
    if not pairs:
        return math.nan
    return sum(abs(a - p) / abs(a) for a, p in pairs) / len(pairs)
