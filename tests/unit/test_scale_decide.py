"""The reactive scaling decision (pure), table-driven: the HPA formula, tolerance, bounds,
cooldowns, scale-down stabilisation, missing and bad data, with and without an HPA."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
from rpops.platform.base import AutoscalingBounds
from rpops.steps.scale.policy import load_policy
from rpops.steps.scale.reactive import (
    Bounds,
    Reading,
    decide_reactive,
    evaluate,
    prune,
    stabilised,
)
from rpops.steps.scale.state import ScaleState

NOW = 1_800_000_000.0
POLICY = load_policy()
CAPACITY = {"cpu": 100.0, "memory": 512.0, "tasks": 50.0}


def readings(**utilisation: float | None) -> dict[str, Reading]:
    """Readings whose value is `utilisation x capacity` (None: not observed)."""
    out = {}
    for name, u in utilisation.items():
        value = None if u is None else u * CAPACITY[name]
        out[name] = Reading(name, value, CAPACITY[name], "test", "" if u is not None else "not scraped")
    return out


LOW = {"cpu": 0.1, "memory": 0.1, "tasks": 0.1}
DEFAULT_BOUNDS = Bounds(1, 10)
EMPTY = ScaleState()
COVERED_LOW = ScaleState(recommendations=((NOW - 400, 1), (NOW - 200, 1)))


def decide(
    current: int,
    reads: dict[str, Reading],
    *,
    bounds: Bounds = DEFAULT_BOUNDS,
    state: ScaleState = EMPTY,
    hpa: AutoscalingBounds | None = None,
    policy: Any = POLICY,
) -> Any:
    return decide_reactive(
        current=current, readings=reads, policy=policy, bounds=bounds, state=state, hpa=hpa, now=NOW
    )


CASES = [
    # id, current, utilisation, kwargs, (decision, action, target), reason fragment
    ("cpu-over-target", 2, {"cpu": 0.9}, {}, ("scale-up", "scale", 3), "ceil(2 x 0.900 / 0.7) = 3"),
    ("within-tolerance", 2, {"cpu": 0.75}, {}, ("hold", "none", None), "tolerance"),
    ("just-past-tolerance", 2, {"cpu": 0.78}, {}, ("scale-up", "scale", 3), "ceil(2 x 0.780 / 0.7) = 3"),
    ("dead-band", 2, {"cpu": 0.5, "memory": 0.5, "tasks": 0.5}, {}, ("hold", "none", None), "match"),
    ("max-over-resources", 2, {"cpu": 0.5, "memory": 0.95}, {}, ("scale-up", "scale", 3), "memory"),
    ("tasks-drive", 2, {"cpu": 0.2, "memory": 0.5, "tasks": 1.6}, {}, ("scale-up", "scale", 4), "tasks"),
    ("bounded-by-max", 9, {"cpu": 0.99}, {}, ("scale-up", "scale", 10), "bounded to 10"),
    ("above-max-at-once", 9, {"cpu": 0.5}, {"bounds": Bounds(1, 5)}, ("scale-down", "scale", 5), "above max"),
    ("below-min-at-once", 1, {"cpu": 0.5}, {"bounds": Bounds(3, 10)}, ("scale-up", "scale", 3), "below min"),
    ("down-waits-window", 4, LOW, {}, ("hold", "none", None), "waits for the 300s stabilisation window"),
    ("down-after-window", 4, LOW, {"state": COVERED_LOW}, ("scale-down", "scale", 1), "at most 1"),
    (
        "down-held-by-recent-high",
        4,
        LOW,
        {"state": ScaleState(recommendations=((NOW - 400, 1), (NOW - 100, 4)))},
        ("hold", "none", None),
        "highest recommendation over the last 300s is 4",
    ),
    (
        "down-to-window-max",
        6,
        LOW,
        {"state": ScaleState(recommendations=((NOW - 400, 3), (NOW - 100, 2)))},
        ("scale-down", "scale", 3),
        "at most 3",
    ),
    (
        "cooldown-holds-up",
        2,
        {"cpu": 0.9},
        {"state": ScaleState(last_scale_time=NOW - 60, last_scale_reason="earlier")},
        ("hold", "none", None),
        "cooldown: 60s of the cpu cooldown (120s)",
    ),
    (
        "cooldown-elapsed",
        2,
        {"cpu": 0.9},
        {"state": ScaleState(last_scale_time=NOW - 130)},
        ("scale-up", "scale", 3),
        "scale-up to 3",
    ),
    (
        "cooldown-of-driving-resource",
        2,
        {"tasks": 1.6},
        {"state": ScaleState(last_scale_time=NOW - 70)},
        ("scale-up", "scale", 4),
        "tasks",
    ),
    (
        "bounds-ignore-cooldown",
        9,
        {"cpu": 0.5},
        {"bounds": Bounds(1, 5), "state": ScaleState(last_scale_time=NOW - 1)},
        ("scale-down", "scale", 5),
        "above max",
    ),
    (
        "no-data",
        3,
        {"cpu": None, "memory": None, "tasks": None},
        {},
        ("no-decision", "none", None),
        "no usable",
    ),
    ("nan-only", 3, {"cpu": math.nan}, {}, ("no-decision", "none", None), "not a number"),
    ("nan-skipped", 2, {"cpu": math.nan, "memory": 0.95}, {}, ("scale-up", "scale", 3), "memory"),
    ("negative-skipped", 3, {"cpu": -0.5}, {}, ("no-decision", "none", None), "negative"),
    ("zero-replicas", 0, {"cpu": 0.9}, {}, ("no-decision", "none", None), "0 replicas"),
    # with an HPA: only minReplicas moves
    (
        "hpa-raise-min",
        2,
        {"cpu": 0.9},
        {"hpa": AutoscalingBounds(2, 6)},
        ("scale-up", "set-min", 3),
        "minReplicas 2 -> 3",
    ),
    (
        "hpa-min-capped-by-its-max",
        5,
        {"cpu": 0.99},
        {"hpa": AutoscalingBounds(2, 6)},
        ("scale-up", "set-min", 6),
        "minReplicas 2 -> 6",
    ),
    (
        "hpa-min-already-high",
        2,
        {"cpu": 0.9},
        {"hpa": AutoscalingBounds(4, 6)},
        ("hold", "none", None),
        "scales by itself",
    ),
    (
        "hpa-lower-min-to-base",
        5,
        LOW,
        {
            "hpa": AutoscalingBounds(5, 8),
            "state": dataclasses.replace(COVERED_LOW, hpa_base_min=2),
        },
        ("scale-down", "set-min", 2),
        "minReplicas 5 -> 2 (floor 2)",
    ),
    (
        "hpa-never-below-policy-min",
        6,
        LOW,
        {
            "hpa": AutoscalingBounds(6, 8),
            "bounds": Bounds(4, 10),
            "state": dataclasses.replace(COVERED_LOW, hpa_base_min=2),
        },
        ("scale-down", "set-min", 4),
        "(floor 4)",
    ),
    (
        "hpa-at-floor-scales-down-itself",
        5,
        LOW,
        {"hpa": AutoscalingBounds(2, 6), "state": COVERED_LOW},
        ("hold", "none", None),
        "scales by itself",
    ),
    (
        "hpa-no-bounds-enforcement",
        9,
        {"cpu": 0.5},
        {"hpa": AutoscalingBounds(2, 12), "bounds": Bounds(1, 5)},
        ("hold", "none", None),
        "stabilisation window",
    ),
]


@pytest.mark.parametrize(
    ("current", "utilisation", "kwargs", "expected", "reason"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_reactive_decision(
    current: int, utilisation: dict[str, float | None], kwargs: dict[str, Any], expected: tuple, reason: str
) -> None:
    d = decide(current, readings(**utilisation), **kwargs)
    assert (d.decision, d.action, d.target) == expected, d.reason
    assert reason in d.reason + " " + d.formula
    if d.action == "set-min":
        hpa = kwargs["hpa"]
        assert d.new_hpa == AutoscalingBounds(d.target, hpa.max_replicas)
        assert d.new_hpa.min_replicas >= kwargs.get("bounds", Bounds(1, 10)).min_replicas
    if d.decision == "no-decision":
        assert d.reason.startswith("no decision: ") and not d.record_history


def test_recommendation_is_recorded_and_pruned_to_the_window() -> None:
    state = ScaleState(recommendations=((NOW - 1000, 5), (NOW - 500, 4), (NOW - 200, 3)))
    d = decide(3, readings(cpu=0.5))
    assert d.history == ((NOW, 3),) and d.record_history
    d = decide(3, readings(cpu=0.5), state=state)
    # the newest entry at or before the window's start is kept: it held at the window's start
    assert d.history == ((NOW - 500, 4), (NOW - 200, 3), (NOW, 3))


def test_stabilised_takes_the_max_over_the_window() -> None:
    history = ((NOW - 600, 9), (NOW - 310, 2), (NOW - 100, 5), (NOW, 1))
    assert stabilised(history, NOW, 300) == (5, 600)
    assert stabilised(history[1:], NOW, 300) == (5, 310)
    assert stabilised(((NOW - 100, 1),), NOW, 300) == (None, 100)
    assert stabilised(((NOW - 100, 1),), NOW, 0) == (1, 100)
    assert stabilised((), NOW, 300) == (None, 0.0)
    assert prune(((NOW + 5, 7), (NOW - 10, 1)), NOW, 300) == ((NOW - 10, 1),)  # future entries dropped


def test_per_resource_bounds_cap_its_recommendation() -> None:
    cpu = dataclasses.replace(POLICY.resource("cpu"), max_replicas=3)
    policy = dataclasses.replace(POLICY, resources=(cpu,))
    d = decide(3, readings(cpu=0.99), policy=policy)
    assert (d.decision, d.recommendation) == ("hold", 3)
    assert "bounded to 3 by cpu min/max [1, 3]" in d.formula


def test_float_noise_does_not_add_a_replica() -> None:
    rp = POLICY.resource("cpu")
    # 0.7 * 1.2 / 0.7 is 1.2000000000000002 in floating point: 3 x that must be 4, and 5 x 1.4 must be 7
    assert evaluate(Reading("cpu", 84.0, 100.0, "t"), rp, 3, 0.1).raw == 4
    assert evaluate(Reading("cpu", 98.0, 100.0, "t"), rp, 5, 0.1).raw == 7


def test_zero_capacity_is_no_data() -> None:
    result = evaluate(Reading("cpu", 50.0, 0.0, "t"), POLICY.resource("cpu"), 2, 0.1)
    assert result.replicas is None and "capacity" in result.formula
