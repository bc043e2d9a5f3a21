"""Right-sizing (krr's simple strategy), the change threshold and leak detection (pure)."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence

import pytest
from rpops.platform.base import Resources
from rpops.steps.optimize.decide import (
    MI,
    PodSeries,
    RightsizingSettings,
    cpu_quantity,
    leak_finding,
    memory_quantity,
    percentile,
    recommend,
)

T0 = 1_800_000_000.0
STEP = 60.0
CURRENT = Resources(cpu_request="500m", cpu_limit="2", memory_request="512Mi", memory_limit="512Mi")


def series(name: str, values: Sequence[float], step: float = STEP) -> PodSeries:
    return PodSeries(name, tuple((T0 + i * step, v) for i, v in enumerate(values)))


def steady(n: int, level: float, spread: float, seed: int = 3) -> list[float]:
    rng = random.Random(seed)
    return [level * (1 + rng.uniform(-spread, spread)) for _ in range(n)]


def test_percentile_interpolates_like_numpy() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile(list(range(1, 101)), 95) == pytest.approx(95.05)
    assert percentile([7.0], 95) == 7.0
    assert math.isnan(percentile([], 95))


def test_quantities_round_up() -> None:
    assert cpu_quantity(0.1234) == "124m" and cpu_quantity(0.25) == "250m"
    assert memory_quantity(200 * MI) == "200Mi" and memory_quantity(200 * MI + 1) == "201Mi"


# --- krr's simple strategy, transcribed as an oracle ---------------------------------------
# robusta-dev/krr: strategies/simple.py takes, per pod, `quantile_over_time(round(p/100, 2), ...)`
# (PercentileCPULoader) and recommends `max` of those per-pod values; memory is the per-pod
# `max_over_time` (MaxMemoryLoader), max over pods, times (1 + buffer/100). Its runner rounds
# CPU up to 1m and memory up to 1Mi and applies floors of cpu_min_value=10m and
# memory_min_value=100 (MiB). A resource with fewer than points_required=100 points (summed
# over pods) gets no recommendation; history_range_enough wants >= 3 h of overall range.
# The quantile is Prometheus's (linear interpolation between closest ranks), computed here with
# the standard library, independently of rpops.steps.optimize.decide.percentile.


def krr_quantile(values: Sequence[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def krr_cpu(pods: dict[str, list[float]], percentile_: float = 95) -> str:
    per_pod = [krr_quantile(v, round(percentile_ / 100, 2)) for v in pods.values()]
    cores = max(math.ceil(max(per_pod) * 10**3) / 10**3, 10 / 1000)
    return f"{round(cores * 1000)}m"


def krr_memory(pods: dict[str, list[float]], buffer_percentage: float = 15) -> str:
    value = max(max(v) for v in pods.values()) * (1 + buffer_percentage / 100)
    rounded = max(math.ceil(value / 1024**2) * 1024**2, 1024**2 * 100)
    return f"{rounded // 1024**2}Mi"


def busy_and_idle(pods: int, seed: int = 11, hours: float = 6) -> dict[str, list[float]]:
    """One pod a minute over `hours`: pod 0 busy (0.6-1.5 cores), the others idle (0.05-0.2)."""
    rng = random.Random(seed)
    n = int(hours * 60)
    out = {"busy": [rng.uniform(0.6, 1.5) for _ in range(n)]}
    for i in range(1, pods):
        out[f"idle-{i}"] = [rng.uniform(0.05, 0.2) for _ in range(n)]
    return out


def as_series(pods: dict[str, list[float]]) -> list[PodSeries]:
    return [series(name, values) for name, values in pods.items()]


@pytest.mark.parametrize("pods", [1, 3, 10, 20])
@pytest.mark.parametrize("percentile_", [95, 90, 99])
def test_cpu_matches_krr_per_pod_then_max_on_multi_pod_series(pods: int, percentile_: float) -> None:
    cpu = busy_and_idle(pods)
    memory = {name: [100 * MI + v * 300 * MI for v in values] for name, values in cpu.items()}
    rec = recommend(
        as_series(cpu), as_series(memory), CURRENT, RightsizingSettings(cpu_percentile=percentile_)
    )
    assert rec.cpu.request == krr_cpu(cpu, percentile_), rec.cpu.info
    assert rec.memory.request == rec.memory.limit == krr_memory(memory)
    # the busy pod sets the request however many idle pods sit beside it
    assert rec.cpu.request == krr_cpu({"busy": cpu["busy"]}, percentile_)
    assert "busy" in rec.cpu.info and rec.cpu.limit is None


@pytest.mark.parametrize(
    ("name", "pods"),
    [
        ("one pod", {"a": [0.30] * 190 + [0.9] * 10}),
        # pooled, 40 of 480 points at 0.3 would give 300m; per pod, a's P95 is 0.3 and b's 0.12
        ("two pods, a short burst in one", {"a": [0.10] * 200 + [0.30] * 40, "b": [0.12] * 240}),
        # pooled, the busy pod's 240 points are 1/20 of 4,800: the pooled P95 falls among idle ones
        ("twenty pods, one busy", {"busy": [0.9] * 240, **{f"i{i}": [0.05] * 240 for i in range(19)}}),
        ("below the floor", {"a": [0.001] * 240, "b": [0.004] * 240}),
        ("uneven lengths (a pod replaced midway)", {"old": [0.2] * 240, "new": [0.4] * 190 + [0.5] * 10}),
        ("a rounding edge", {"a": [0.1001] * 240, "b": [0.0999] * 240}),
    ],
)
def test_multi_pod_table_against_krr(name: str, pods: dict[str, list[float]]) -> None:
    memory = {pod: [(150 + 10 * i) * MI + 7 for _ in values] for i, (pod, values) in enumerate(pods.items())}
    rec = recommend(as_series(pods), as_series(memory), CURRENT)
    assert (rec.cpu.request, rec.memory.request) == (krr_cpu(pods), krr_memory(memory)), name


def test_memory_buffer_is_configurable_like_krr() -> None:
    memory = {"a": [300 * MI] * 240, "b": [410 * MI + 5] * 240}
    rec = recommend(
        as_series({"a": [0.1] * 240}), as_series(memory), CURRENT, RightsizingSettings(memory_buffer=0.30)
    )
    assert rec.memory.request == krr_memory(memory, 30) == "534Mi"


def test_history_range_is_overall_and_points_are_summed_over_pods() -> None:
    # two pods of 60 points: 120 points in all (>= 100); the first starts at T0, the second
    # ends 3 h later, though neither pod alone spans 3 h
    early = series("early", [0.2] * 60)
    late = PodSeries("late", tuple((T0 + 3 * 3600 - (59 - i) * STEP, 0.3) for i in range(60)))
    rec = recommend([early, late], [early, late], CURRENT)
    assert rec.cpu.request == "300m" and rec.cpu.points == 120
    assert rec.cpu.history_s == pytest.approx(3 * 3600)


def test_cpu_without_a_limit_and_memory_is_peak_plus_15() -> None:
    cpu_a = [0.10] * 200 + [0.30] * 40
    cpu_b = [0.12] * 240
    mem_a = [150 * MI] * 239 + [200 * MI]
    mem_b = [180 * MI] * 240
    rec = recommend(
        [series("a", cpu_a), series("b", cpu_b)],
        [series("a", mem_a), series("b", mem_b)],
        Resources(cpu_request="1", memory_request="1Gi", memory_limit="1Gi"),
    )
    assert rec.cpu.request == "300m" and rec.cpu.limit is None
    assert rec.memory.request == rec.memory.limit == memory_quantity(200 * MI * 1.15) == "230Mi"
    assert rec.cpu.points == 480 and rec.cpu.history_s == pytest.approx(239 * STEP)
    assert rec.resources == Resources(cpu_request="300m", memory_request="230Mi", memory_limit="230Mi")
    assert rec.summary() == {
        "cpu_request": "300m",
        "cpu_limit": None,
        "memory_request": "230Mi",
        "memory_limit": "230Mi",
    }


def test_floors_of_10m_and_100mi() -> None:
    rec = recommend([series("a", [0.001] * 240)], [series("a", [20 * MI] * 240)], Resources())
    assert (rec.cpu.request, rec.memory.request) == ("10m", "100Mi")
    assert "floor" in rec.cpu.info and "floor" in rec.memory.info
    assert rec.cpu.change == math.inf and rec.resources is not None  # unset before: always past the threshold


@pytest.mark.parametrize(
    ("points", "step", "expected"),
    [
        (99, 200.0, "99 points over 5.44 h"),  # enough time, too few points
        (240, 30.0, "240 points over 1.99 h"),  # enough points, too little time
    ],
)
def test_not_enough_data_changes_nothing(points: int, step: float, expected: str) -> None:
    cpu = [series("a", [0.2] * points, step)]
    mem = [series("a", [300 * MI] * points, step)]
    rec = recommend(cpu, mem, CURRENT)
    assert rec.resources is None and rec.cpu.request is None and rec.memory.request is None
    assert expected in rec.cpu.info and "not enough data" in rec.reason
    assert rec.summary() == {
        "cpu_request": None,
        "cpu_limit": None,
        "memory_request": None,
        "memory_limit": None,
    }


def test_no_series_at_all_is_not_enough_data() -> None:
    rec = recommend([], [], CURRENT)
    assert rec.resources is None and "0 points" in rec.reason and not rec.leak


def test_change_threshold() -> None:
    # 470m vs 500m is a 6% change: kept; memory 300Mi vs 512Mi: applied
    rec = recommend([series("a", [0.47] * 240)], [series("a", [261 * MI] * 240)], CURRENT)
    assert rec.cpu.request == "470m" and not rec.cpu.apply and rec.cpu.change == pytest.approx(0.06)
    assert rec.memory.request == "301Mi" and rec.memory.apply
    assert rec.resources == Resources(memory_request="301Mi", memory_limit="301Mi")
    assert "cpu: keep 500m" in rec.reason and "memory: 512Mi -> 301Mi" in rec.reason
    strict = recommend(
        [series("a", [0.47] * 240)],
        [series("a", [261 * MI] * 240)],
        CURRENT,
        RightsizingSettings(change_threshold=0.05),
    )
    assert strict.cpu.apply and strict.resources is not None and strict.resources.cpu_request == "470m"


def test_a_cpu_limit_below_the_new_request_is_raised() -> None:
    rec = recommend(
        [series("a", [0.8] * 240)],
        [series("a", [300 * MI] * 240)],
        Resources(cpu_request="200m", cpu_limit="500m"),
    )
    assert rec.cpu.request == rec.cpu.limit == "800m" and "limit is raised" in rec.cpu.info
    assert rec.resources is not None and rec.resources.cpu_limit == "800m"


# --- leaks ------------------------------------------------------------------------------------


def leak_of(values: list[float], limit: float | None = None) -> tuple[bool, str]:
    finding = leak_finding(series("p", values), RightsizingSettings(), limit)
    return finding.leak, finding.reason


def test_monotonic_growth_is_a_leak() -> None:
    rng = random.Random(5)
    values = [100 * MI + i * 0.5 * MI + rng.uniform(0, 0.2 * MI) for i in range(180)]
    leak, reason = leak_of(values, limit=512 * MI)
    assert leak, reason
    assert "MiB/h" in reason and "reaches the limit in about" in reason


@pytest.mark.parametrize(
    ("name", "values", "why"),
    [
        ("flat-noisy", steady(180, 200 * MI, 0.05), "R^2"),
        (
            "sawtooth-gc",
            [100 * MI + (i % 30) * 3 * MI + i * 0.1 * MI for i in range(180)],
            "drops",
        ),
        ("saturating-cache", [300 * MI * (1 - math.exp(-i / 20)) + 50 * MI for i in range(180)], "slowed"),
        ("small-growth", [200 * MI + i * 0.05 * MI for i in range(180)], "growth"),
        ("shrinking", [300 * MI - i * MI for i in range(180)], "does not grow"),
        ("too-few-points", [100 * MI + i * MI for i in range(5)], "at least 10 needed"),
    ],
)
def test_not_a_leak(name: str, values: list[float], why: str) -> None:
    leak, reason = leak_of(values)
    assert not leak and why in reason, (name, reason)


def test_leak_flag_is_per_pod() -> None:
    grow = series("leaky", [100 * MI + i * MI for i in range(240)])
    flat = series("fine", steady(240, 150 * MI, 0.02))
    rec = recommend([series("leaky", [0.1] * 240)], [grow, flat], CURRENT)
    assert rec.leak and [f.pod for f in rec.leaks if f.leak] == ["leaky"]
