"""The pure decisions of a blue-green promotion (rpops.steps.bluegreen.decide)."""

from __future__ import annotations

import pytest
from rpops.platform.base import AutoscalingBounds, Routes, Workload
from rpops.steps.bluegreen import decide as d
from rpops.steps.bluegreen.model import Record, State, World


def wl(
    version: str, replicas: int = 2, ready: int | None = None, hpa: AutoscalingBounds | None = None
) -> Workload:
    ready = replicas if ready is None else ready
    return Workload("rp", version, f"img:{version}", replicas, ready, ready, autoscaling=hpa)


def world(
    active: str | None = "v1", *versions: Workload, record: Record | None = None, preview: str | None = None
) -> World:
    found = {w.version: w for w in (versions or (wl("v1"),))}
    return World("rp", Routes("rp", active, preview), found, record or Record())


# --- where green starts --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("replicas", "hpa", "override", "expected"),
    [
        (2, None, None, 2),  # blue's current count
        (4, AutoscalingBounds(2, 6), None, 4),  # the HPA scaled blue up: keep that capacity
        (2, AutoscalingBounds(3, 6), None, 3),  # never below the HPA's floor
        (0, None, None, 1),  # at least one
        (5, AutoscalingBounds(3, 6), 1, 1),  # the operator's override wins
    ],
)
def test_preview_replicas_is_hpa_aware(
    replicas: int, hpa: AutoscalingBounds | None, override: int | None, expected: int
) -> None:
    assert d.preview_replicas(wl("v1", replicas, hpa=hpa), override) == expected


def test_a_new_promotion_starts_from_the_active_version() -> None:
    decision = d.plan_promotion(world("v1", wl("v1", 3, hpa=AutoscalingBounds(2, 5))), "v2", None)
    assert decision == d.Start("v2", "v1", 3, AutoscalingBounds(2, 5))


def test_promoting_the_active_version_is_a_no_op() -> None:
    decision = d.plan_promotion(world("v1"), "v1", None)
    assert isinstance(decision, d.NoOp) and "already the active version" in decision.reason


def test_a_promotion_in_progress_is_resumed_or_refused() -> None:
    record = Record(phase=State.SWITCHED, preview="v2", stable="v1", owner="alice")
    assert d.plan_promotion(world("v2", wl("v1"), wl("v2"), record=record), "v2", None) == d.Resume("v2")
    refused = d.plan_promotion(world("v2", wl("v1"), wl("v2"), record=record), "v3", None)
    assert isinstance(refused, d.Refuse)
    assert "promotion of v2 by alice is in progress" in refused.reason and "rollback" in refused.reason


def test_an_interrupted_rollback_is_finished_first() -> None:
    record = Record(phase=State.ROLLING_BACK, preview="v2", stable="v1", reason="bad")
    assert d.plan_promotion(world("v1", record=record), "v2", None) == d.FinishRollback("bad")


def test_finished_promotions_do_not_block_a_new_one() -> None:
    for phase in (State.COMPLETE, State.ABORTED, State.ROLLED_BACK):
        record = Record(phase=phase, preview="v2", stable="v1")
        assert isinstance(d.plan_promotion(world("v1", record=record), "v3", None), d.Start)


def test_no_active_version_is_refused() -> None:
    decision = d.plan_promotion(world(None), "v2", None)
    assert isinstance(decision, d.Refuse) and "no active version" in decision.reason


# --- phases after deploy -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "phase", "expected"),
    [
        (State.DEPLOYED, "wait-ready", d.RunPhase),
        (State.READY, "wait-ready", d.SkipPhase),
        (State.DEPLOYED, "analyze", d.Refuse),  # not ready yet
        (State.ANALYZED, "switch", d.RunPhase),
        (State.SWITCHING, "switch", d.RunPhase),  # a crash mid-switch: the rerun finishes it
        (State.SWITCHING, "verify", d.Refuse),
        (State.SWITCHED, "switch", d.SkipPhase),
        (State.SWITCHED, "verify", d.RunPhase),
        (State.VERIFIED, "finalize", d.RunPhase),
        (State.COMPLETE, "finalize", d.SkipPhase),
        (State.COMPLETE, "analyze", d.SkipPhase),
        (State.ABORTED, "switch", d.Refuse),
        (State.ROLLED_BACK, "finalize", d.Refuse),
    ],
)
def test_plan_phase(state: State, phase: str, expected: type) -> None:
    record = Record(phase=state, preview="v2", stable="v1")
    assert isinstance(d.plan_phase(world("v1", record=record), phase, None), expected)


def test_plan_phase_names_the_recorded_version() -> None:
    record = Record(phase=State.DEPLOYED, preview="v2", stable="v1")
    assert d.plan_phase(world("v1", record=record), "wait-ready", None) == d.RunPhase("v2")
    other = d.plan_phase(world("v1", record=record), "wait-ready", "v3")
    assert isinstance(other, d.Refuse) and "is of v2, not v3" in other.reason
    none = d.plan_phase(world("v1"), "switch", "v2")
    assert isinstance(none, d.Refuse) and "no promotion is recorded" in none.reason


# --- the switch --------------------------------------------------------------------------------


def test_switch_needs_every_replica_ready() -> None:
    assert d.switch_blocker(wl("v2", 3), "v2") is None
    assert "2/3 ready" in (d.switch_blocker(wl("v2", 3, ready=2), "v2") or "")
    assert "0 desired" in (d.switch_blocker(wl("v2", 0), "v2") or "")  # never route to nothing
    assert "no deployment" in (d.switch_blocker(None, "v2") or "")


# --- rollback ----------------------------------------------------------------------------------


def test_rollback_before_the_switch_is_an_abort() -> None:
    record = Record(phase=State.ANALYZED, preview="v2", stable="v1", replicas=3)
    plan = d.plan_rollback(world("v1", wl("v1"), wl("v2", 3), record=record))
    assert plan == d.RollbackPlan("v1", "v2", switched=False, restore_replicas=3, clear_previous=False)
    assert isinstance(plan, d.RollbackPlan) and d.rollback_state(plan) is State.ABORTED


def test_rollback_after_the_switch_goes_back_to_stable() -> None:
    record = Record(phase=State.SWITCHED, preview="v2", stable="v1", previous="v1", switched_at=100.0)
    plan = d.plan_rollback(world("v2", wl("v1"), wl("v2"), record=record))
    assert isinstance(plan, d.RollbackPlan)
    assert (plan.target, plan.source, plan.switched) == ("v1", "v2", True)
    assert d.rollback_state(plan) is State.ROLLED_BACK


def test_rollback_of_a_completed_promotion_goes_to_the_previous_version() -> None:
    record = Record(phase=State.COMPLETE, preview="v2", stable="v2", previous="v1", replicas=2)
    plan = d.plan_rollback(world("v2", wl("v1", 0), wl("v2", 4), record=record))
    assert plan == d.RollbackPlan("v1", "v2", switched=True, restore_replicas=4, clear_previous=True)


def test_rollback_refuses_when_there_is_nothing_to_go_back_to() -> None:
    assert isinstance(d.plan_rollback(world("v1")), d.Refuse)
    done = Record(phase=State.COMPLETE, preview="v2", stable="v2", previous=None)
    assert "no previous version" in d.plan_rollback(world("v2", wl("v2"), record=done)).reason  # type: ignore[union-attr]
    gone = Record(phase=State.COMPLETE, preview="v2", stable="v2", previous="v1")
    refused = d.plan_rollback(world("v2", wl("v2"), record=gone))
    assert isinstance(refused, d.Refuse) and "v1 of rp is gone" in refused.reason


# --- finalize ----------------------------------------------------------------------------------


def test_scale_down_delay_counts_from_the_switch() -> None:
    assert d.scale_down_wait(100.0, 30.0, now=110.0) == 20.0
    assert d.scale_down_wait(100.0, 30.0, now=200.0) == 0.0  # a rerun does not wait again
    assert d.scale_down_wait(None, 30.0, now=200.0) == 30.0


def test_stale_versions_are_the_scaled_down_older_ones() -> None:
    w = world("v3", wl("v1", 0), wl("v2", 0), wl("v3"), wl("v9", 2), wl("v0", 0), preview="v3")
    # keep green (v3) and the previous one (v2); v9 still runs: not ours to delete
    assert d.stale_versions(w, ("v3", "v2")) == ["v0", "v1"]
