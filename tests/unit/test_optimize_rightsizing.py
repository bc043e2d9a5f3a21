"""Right-sizing (krr's simple strategy), the change threshold and leak detection (pure)."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import pytest
from rpops.platform.base import Resources
from rpops.rightsizing import (
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


def test_cpu_is_p95_pooled_over_pods_without_a_limit_and_memory_is_peak_plus_15() -> None:
    # two pods, 4 h at one point a minute: 240 points each
    cpu_a = [0.10] * 200 + [0.30] * 40  # 40/480 = 8.3% of the points above 0.1 ...
    cpu_b = [0.12] * 240
    mem_a = [150 * MI] * 239 + [200 * MI]
    mem_b = [180 * MI] * 240
    rec = recommend(
        [series("a", cpu_a), series("b", cpu_b)],
        [series("a", mem_a), series("b", mem_b)],
        Resources(cpu_request="1", memory_request="1Gi", memory_limit="1Gi"),
    )
    # ... so the pooled P95 falls among the 0.3s
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
