"""Right-sizing (pure): requests and limits from usage history, and memory-leak detection.

The calculation is robusta-dev/krr's "simple" strategy (robusta_krr/strategies/simple.py):
- CPU request = the 95th percentile of each pod's CPU usage (cores) over the window, then the
  maximum over the pods (krr: `quantile_over_time` per pod, `max` of the results), so a busy
  pod among idle ones is sized for its own load; no CPU limit is recommended (an existing one
  is kept, raised to the request if it would fall below it);
- memory request = memory limit = (the maximum over pods of each pod's peak) + 15%;
- rounded up to 1m and 1Mi, with floors of 10m CPU and 100Mi memory (krr's runner);
- a resource needs at least 3 h of history (the overall range, first point of any pod to the
  last) and 100 points (summed over pods), else it gets "not enough data" and is left alone.
A recommendation is applied only when it moves a value by more than the change threshold
(10% by default) and the caller asked for it.

A leak is memory that only grows: over one pod's series, a positive trend with a high R^2 and
Spearman rank correlation, no drop larger than a small share of the rise (a garbage collector
or cache eviction would show drops), still growing in the last third of the window, and a
rise of at least 10% of where it started.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from rpops.platform.base import Resources, cpu_cores, memory_bytes

MI = 2**20


@dataclass(frozen=True)
class RightsizingSettings:
    cpu_percentile: float = 95.0
    memory_buffer: float = 0.15
    cpu_floor_cores: float = 0.010
    memory_floor_bytes: int = 100 * MI
    min_history_s: float = 3 * 3600.0
    min_points: int = 100
    change_threshold: float = 0.10
    # leak detection
    leak_min_points: int = 10
    leak_min_r2: float = 0.8
    leak_min_spearman: float = 0.9
    leak_min_growth: float = 0.10
    leak_max_drop: float = 0.10  # largest drop / total rise
    leak_recent_slope: float = 0.5  # last-third slope / whole slope


@dataclass(frozen=True)
class PodSeries:
    name: str  # pod (or instance) name
    points: tuple[tuple[float, float], ...]  # (unix time, value), finite values only


@dataclass(frozen=True)
class ResourceAdvice:
    resource: str  # cpu | memory
    request: str | None  # recommended quantity; None: no recommendation
    limit: str | None
    value: float | None  # cores or bytes behind the quantity
    current_request: str | None
    current_limit: str | None
    change: float | None  # relative change of the most changed value; inf when it was unset
    points: int
    history_s: float
    info: str  # how it was computed, or why there is none
    apply: bool = False  # past the change threshold


@dataclass(frozen=True)
class LeakFinding:
    pod: str
    points: int
    slope_bytes_per_hour: float
    r2: float
    spearman: float
    growth: float  # rise over the window / first value
    largest_drop: float  # largest fall between consecutive points / total rise
    recent_slope_ratio: float
    leak: bool
    reason: str
    hours_to_limit: float | None = None


@dataclass(frozen=True)
class Recommendation:
    cpu: ResourceAdvice
    memory: ResourceAdvice
    resources: Resources | None  # what to apply (None: nothing past the threshold)
    reason: str
    leaks: tuple[LeakFinding, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def leak(self) -> bool:
        return any(f.leak for f in self.leaks)

    def summary(self) -> dict[str, object]:
        """The `recommendation` output: recommended quantities (None where there is none)."""
        return {
            "cpu_request": self.cpu.request,
            "cpu_limit": self.cpu.limit,
            "memory_request": self.memory.request,
            "memory_limit": self.memory.limit,
        }


def percentile(values: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), p in [0, 100]."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    pos = (len(ordered) - 1) * p / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def cpu_quantity(cores: float) -> str:
    return f"{math.ceil(round(cores * 1000, 6))}m"


def memory_quantity(nbytes: float) -> str:
    return f"{math.ceil(round(nbytes / MI, 6))}Mi"


def _span(series: Sequence[PodSeries]) -> tuple[int, float]:
    times = [t for s in series for t, _ in s.points]
    return len(times), (max(times) - min(times)) if times else 0.0


def _relative(new: float, old: str | None, parse: object) -> float:
    if old is None:
        return math.inf
    assert callable(parse)
    before = float(parse(old))
    return math.inf if before <= 0 else abs(new - before) / before


def _enough(
    resource: str, series: Sequence[PodSeries], s: RightsizingSettings
) -> tuple[bool, int, float, str]:
    points, span = _span(series)
    if points < s.min_points or span < s.min_history_s:
        return (
            False,
            points,
            span,
            (
                f"not enough data: {points} points over {span / 3600:.2f} h; {resource} "
                f"needs at least {s.min_points} points over {s.min_history_s / 3600:g} h"
            ),
        )
    return True, points, span, ""


def advise_cpu(series: Sequence[PodSeries], current: Resources, s: RightsizingSettings) -> ResourceAdvice:
    ok, points, span, why = _enough("cpu", series, s)
    if not ok:
        return ResourceAdvice(
            "cpu", None, None, None, current.cpu_request, current.cpu_limit, None, points, span, why
        )
    # krr: quantile_over_time per pod, then max over the pods (never one pooled percentile)
    pods = [one for one in series if one.points]
    per_pod = [(percentile([v for _, v in one.points], s.cpu_percentile), one.name) for one in pods]
    p, busiest = max(per_pod)
    cores = max(p, s.cpu_floor_cores)
    request = cpu_quantity(cores)
    info = (
        f"P{s.cpu_percentile:g} per pod, maximum over {len(per_pod)} pod(s) = {p:.4f} cores "
        f"({busiest}; {points} points)"
    )
    if cores != p:
        info += f", raised to the floor of {cpu_quantity(s.cpu_floor_cores)}"
    limit = None
    if current.cpu_limit and cpu_cores(current.cpu_limit) < cpu_cores(request):
        limit = request  # the kept limit must not fall below the request
        info += f"; the current limit {current.cpu_limit} is below it, so the limit is raised to {request}"
    change = _relative(cpu_cores(request), current.cpu_request, cpu_cores)
    return ResourceAdvice(
        "cpu",
        request,
        limit,
        cpu_cores(request),
        current.cpu_request,
        current.cpu_limit,
        change,
        points,
        span,
        info,
        apply=change > s.change_threshold,
    )


def advise_memory(series: Sequence[PodSeries], current: Resources, s: RightsizingSettings) -> ResourceAdvice:
    ok, points, span, why = _enough("memory", series, s)
    if not ok:
        return ResourceAdvice(
            "memory", None, None, None, current.memory_request, current.memory_limit, None, points, span, why
        )
    pods = [one for one in series if one.points]
    peak, highest = max((max(v for _, v in one.points), one.name) for one in pods)
    wanted = max(peak * (1 + s.memory_buffer), float(s.memory_floor_bytes))
    quantity = memory_quantity(wanted)
    info = (
        f"peak per pod, maximum over {len(pods)} pod(s) = {peak / MI:.1f}Mi ({highest}; "
        f"{points} points) + {s.memory_buffer * 100:g}%"
    )
    if wanted == s.memory_floor_bytes:
        info += f", raised to the floor of {memory_quantity(s.memory_floor_bytes)}"
    value = float(memory_bytes(quantity))
    change = max(
        _relative(value, current.memory_request, memory_bytes),
        _relative(value, current.memory_limit, memory_bytes),
    )
    return ResourceAdvice(
        "memory",
        quantity,
        quantity,
        value,
        current.memory_request,
        current.memory_limit,
        change,
        points,
        span,
        info,
        apply=change > s.change_threshold,
    )


def _ranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _pearson(xs: Sequence[float], ys: Sequence[float]) -> float:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    return 0.0 if sxx <= 0 or syy <= 0 else sxy / math.sqrt(sxx * syy)


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return 0.0 if sxx <= 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def leak_finding(series: PodSeries, s: RightsizingSettings, limit_bytes: float | None = None) -> LeakFinding:
    points = sorted(series.points)
    n = len(points)
    if n < s.leak_min_points:
        return LeakFinding(
            series.name,
            n,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            False,
            f"{n} points; at least {s.leak_min_points} needed to judge a trend",
        )
    ts = [t for t, _ in points]
    vs = [v for _, v in points]
    slope = _slope(ts, vs)
    r = _pearson(ts, vs)
    rho = _pearson(_ranks(ts), _ranks(vs))
    rise = max(vs) - min(vs)
    drops = [vs[i - 1] - vs[i] for i in range(1, n)]
    largest_drop = (max(0.0, max(drops)) / rise) if rise > 0 else 0.0
    growth = (slope * (ts[-1] - ts[0]) / vs[0]) if vs[0] > 0 else 0.0
    third = max(3, n // 3)
    recent = _slope(ts[-third:], vs[-third:])
    recent_ratio = recent / slope if slope > 0 else 0.0
    checks = [
        (slope > 0, "memory does not grow"),
        (r * r >= s.leak_min_r2, f"R^2 {r * r:.2f} < {s.leak_min_r2:g}"),
        (rho >= s.leak_min_spearman, f"Spearman {rho:.2f} < {s.leak_min_spearman:g}"),
        (growth >= s.leak_min_growth, f"growth {growth:.1%} < {s.leak_min_growth:.0%}"),
        (largest_drop <= s.leak_max_drop, f"drops of {largest_drop:.0%} of the rise (memory is given back)"),
        (
            recent_ratio >= s.leak_recent_slope,
            f"growth slowed to {recent_ratio:.0%} of its trend in the last third",
        ),
    ]
    failed = [why for ok, why in checks if not ok]
    leak = not failed
    hours = None
    if leak and limit_bytes and slope > 0:
        hours = max(0.0, (limit_bytes - vs[-1]) / slope / 3600)
    reason = (
        (f"grows {slope * 3600 / MI:.2f} MiB/h, R^2 {r * r:.2f}, Spearman {rho:.2f}, +{growth:.0%}, no drops")
        if leak
        else "; ".join(failed)
    )
    if hours is not None:
        reason += f"; reaches the limit in about {hours:.1f} h"
    return LeakFinding(
        series.name, n, slope * 3600, r * r, rho, growth, largest_drop, recent_ratio, leak, reason, hours
    )


def recommend(
    cpu: Sequence[PodSeries],
    memory: Sequence[PodSeries],
    current: Resources,
    s: RightsizingSettings | None = None,
) -> Recommendation:
    """The whole recommendation (pure)."""
    s = s or RightsizingSettings()
    cpu_advice = advise_cpu(cpu, current, s)
    memory_advice = advise_memory(memory, current, s)
    limit = None
    if current.memory_limit:
        limit = float(memory_bytes(current.memory_limit))
    leaks = tuple(leak_finding(series, s, limit) for series in memory)
    apply_cpu = cpu_advice.apply and cpu_advice.request is not None
    apply_memory = memory_advice.apply and memory_advice.request is not None
    resources = None
    if apply_cpu or apply_memory:
        resources = Resources(
            cpu_request=cpu_advice.request if apply_cpu else None,
            cpu_limit=cpu_advice.limit if apply_cpu else None,
            memory_request=memory_advice.request if apply_memory else None,
            memory_limit=memory_advice.limit if apply_memory else None,
        )
    parts = []
    for advice in (cpu_advice, memory_advice):
        if advice.request is None:
            parts.append(f"{advice.resource}: {advice.info}")
        elif advice.apply:
            before = advice.current_request or "unset"
            parts.append(f"{advice.resource}: {before} -> {advice.request} ({_pct(advice.change)})")
        else:
            parts.append(
                f"{advice.resource}: keep {advice.current_request} (recommended {advice.request}, "
                f"{_pct(advice.change)} <= {s.change_threshold:.0%})"
            )
    return Recommendation(
        cpu=cpu_advice, memory=memory_advice, resources=resources, reason="; ".join(parts), leaks=leaks
    )


def _pct(change: float | None) -> str:
    if change is None:
        return "n/a"
    return "was unset" if math.isinf(change) else f"{change:.0%} change"
