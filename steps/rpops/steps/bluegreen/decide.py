"""Pure decisions of a blue-green promotion: from one observation (`World`) to what to do.

No I/O and no clock: `now` is passed in. The phases module observes, asks these functions, and
acts; most of the promotion's logic is tested here directly. Green's validation checks are those
of `rpops validate` (rpops.steps.validate.decide, pure), judged on each analysis target.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rpops.platform.base import AutoscalingBounds, Workload
from rpops.steps.bluegreen.model import DONE_STATE, PHASES, Record, State, World, reached
from rpops.steps.validate import decide as validation

# The state a phase needs before it may run (the previous phase's done state).
NEEDS = {
    "wait-ready": State.DEPLOYED,
    "analyze": State.READY,
    "switch": State.ANALYZED,
    "verify": State.SWITCHED,
    "finalize": State.VERIFIED,
}


@dataclass(frozen=True)
class Start:
    """Begin a new promotion of `version` from the active version `stable`."""

    version: str
    stable: str
    replicas: int
    autoscaling: AutoscalingBounds | None


@dataclass(frozen=True)
class Resume:
    """A promotion of this version is in progress (a rerun after a crash, or the next step)."""

    version: str


@dataclass(frozen=True)
class NoOp:
    reason: str


@dataclass(frozen=True)
class Refuse:
    reason: str


@dataclass(frozen=True)
class FinishRollback:
    """A rollback was interrupted: finish it before anything else."""

    reason: str


@dataclass(frozen=True)
class RunPhase:
    version: str


@dataclass(frozen=True)
class SkipPhase:
    reason: str


@dataclass(frozen=True)
class RollbackPlan:
    """Route back to `target` (scaling it up to `restore_replicas` first if it has none ready), then
    scale `source` down. `switched`: traffic had moved to `source` (rolled-back, else aborted)."""

    target: str
    source: str | None
    switched: bool
    restore_replicas: int
    clear_previous: bool  # undoing a completed promotion: no older version to fall back on after it


def preview_replicas(active: Workload, override: int | None) -> int:
    """Green's replica count: the override, else what blue runs now, never below the HPA's minimum
    (an HPA may be about to raise blue; green must not start below it and drop capacity)."""
    if override is not None:
        return override
    floor = active.autoscaling.min_replicas if active.autoscaling else 0
    return max(active.replicas, floor, 1)


def _hint(service: str, record: Record) -> str:
    return (
        f"finish it with `rpops bluegreen promote --service {service} --version {record.preview}` or undo it "
        f"with `rpops bluegreen rollback --service {service} --reason ...`"
    )


def plan_promotion(
    world: World, version: str, override_replicas: int | None
) -> Start | Resume | NoOp | Refuse | FinishRollback:
    """What `deploy` (and `promote`) should do for `version`."""
    record = world.record
    if record.phase is State.ROLLING_BACK:
        return FinishRollback(record.reason or "an interrupted rollback")
    if record.in_progress:
        if record.preview == version:
            return Resume(version)
        assert record.phase is not None
        return Refuse(
            f"a promotion of {record.preview} by {record.owner or 'someone'} is in progress on "
            f"{world.service} (phase {record.phase.value}): {_hint(world.service, record)}"
        )
    active = world.routes.active
    if active == version:
        return NoOp(f"{version} is already the active version of {world.service}: nothing to promote")
    blue = world.active
    if active is None or blue is None:
        return Refuse(
            f"{world.service} has no active version to promote from (active route: {active or 'none'}): "
            "deploy and route a first version before a blue-green promotion"
        )
    return Start(version, active, preview_replicas(blue, override_replicas), blue.autoscaling)


def plan_phase(world: World, phase: str, version: str | None) -> RunPhase | SkipPhase | Refuse:
    """Whether a phase after deploy may run now, is already done, or must be refused."""
    assert phase in PHASES and phase != "deploy"
    record = world.record
    service = world.service
    wanted = version or record.preview
    if record.phase is None or wanted is None:
        return Refuse(
            f"no promotion is recorded on {service}: start one with "
            f"`rpops bluegreen deploy --service {service} --version V`"
        )
    if record.preview != wanted:
        return Refuse(
            f"the promotion recorded on {service} is of {record.preview}, not {wanted}: "
            f"start {wanted} with `rpops bluegreen deploy` once it is over"
        )
    if record.phase in (State.ABORTED, State.ROLLED_BACK, State.ROLLING_BACK):
        return Refuse(
            f"the promotion of {wanted} on {service} was {record.phase.value}"
            + (f" ({record.reason})" if record.reason else "")
            + ": start again with `rpops bluegreen deploy`"
        )
    if reached(record.phase, DONE_STATE[phase]):
        return SkipPhase(f"{phase} of {wanted} is already done (phase {record.phase.value})")
    need = NEEDS[phase]
    # A crash between "switching" and "switched" is finished by rerunning switch.
    if not reached(record.phase, need):
        return Refuse(
            f"{phase} needs the promotion of {wanted} to be {need.value} first (it is {record.phase.value}); "
            f"run the earlier phases, or `rpops bluegreen promote`"
        )
    return RunPhase(wanted)


def switch_blocker(green: Workload | None, version: str) -> str | None:
    """Why the active route must not move to `green` now; None when every replica is ready."""
    if green is None:
        return f"version {version} has no deployment"
    if green.replicas < 1:
        return f"version {version} runs no replicas (0 desired)"
    if green.ready_replicas < green.replicas or green.available_replicas < green.replicas:
        return (
            f"version {version} is not fully available: {green.ready_replicas}/{green.replicas} ready, "
            f"{green.available_replicas}/{green.replicas} available"
        )
    return None


def plan_rollback(world: World) -> RollbackPlan | Refuse:
    record = world.record
    service = world.service
    if record.phase is None:
        return Refuse(f"no promotion is recorded on {service}: nothing to roll back")
    if record.phase is State.COMPLETE:
        if not record.previous:
            return Refuse(
                f"the last promotion on {service} ({record.stable}) kept no previous version to roll back to"
            )
        target, source = record.previous, record.stable
        current = world.versions.get(source or "")
        restore = max(current.replicas if current else 0, record.replicas or 0, 1)
        switched, clear = True, True
    else:
        if not record.stable:
            return Refuse(f"the promotion recorded on {service} names no stable version to roll back to")
        target, source = record.stable, record.preview
        switched = record.switched_at is not None or (source is not None and world.routes.active == source)
        restore = max(record.replicas or 0, 1)
        clear = False
    if target not in world.versions:
        return Refuse(
            f"version {target} of {service} is gone, so traffic cannot go back to it: deploy it again "
            f"(`rpops bluegreen promote --service {service} --version {target}`)"
        )
    return RollbackPlan(target, source, switched, restore, clear)


def rollback_state(plan: RollbackPlan) -> State:
    return State.ROLLED_BACK if plan.switched else State.ABORTED


def scale_down_wait(switched_at: float | None, delay: float, now: float) -> float:
    """Seconds left of the scale-down delay, counted from the switch (so a rerun does not wait again)."""
    if switched_at is None:
        return delay
    return max(0.0, switched_at + delay - now)


def stale_versions(world: World, keep: Iterable[str | None]) -> list[str]:
    """Versions to delete at finalize: older than the previous one, and running nothing.

    A version that still runs replicas is left alone (someone else's): only our scaled-down
    leftovers (earlier blues, aborted greens) go.
    """
    kept = {v for v in keep if v} | {v for v in (world.routes.active, world.routes.preview) if v}
    return sorted(v for v, w in world.versions.items() if v not in kept and w.replicas == 0)


def failed_checks(
    names: Sequence[str], observations: Sequence[validation.Observation], max_response_ms: float
) -> list[str]:
    """The checks of `rpops validate` that failed on each target (named), as `target: check (detail)`."""
    return [
        f"{name}: {check.name} ({check.detail})"
        for name, obs in zip(names, observations, strict=True)
        for check in validation.decide(obs, max_response_ms)
        if not check.passed
    ]
