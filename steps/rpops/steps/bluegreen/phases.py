"""The phases of a blue-green promotion, each a reconcile step: observe the platform and the
recorded state (observe.py), decide (decide.py), act through the platform driver, record.

Every phase is idempotent. It records its intent before acting and its result after, so a run
killed at any point leaves a state that the next run reads and converges from: it finishes the
promotion, or rolls it back. A phase whose result is recorded is skipped on a rerun.

Test hook: RPOPS_BLUEGREEN_CRASH_AFTER=<point> makes the process exit hard (os._exit(137), no
cleanup, as a SIGKILL would) at that point: after a phase (`deploy`, `wait-ready`, `analyze`,
`switch`, `verify`, `finalize`, `rollback`), inside the switch (`switch:before-route`,
`switch:after-route`) or inside a rollback (`rollback:after-route`).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, NoReturn

from rpops.core.errors import GateFailed, RpopsError, UsageError
from rpops.core.times import iso
from rpops.platform.base import DeadlineExceeded, PlatformDriver, Routes
from rpops.steps.bluegreen import decide as d
from rpops.steps.bluegreen import observe
from rpops.steps.bluegreen.lock import SETTLE_S, Holder, PromotionLock
from rpops.steps.bluegreen.measure import AnalysisRun
from rpops.steps.bluegreen.model import (
    TERMINAL,
    Outcome,
    Record,
    State,
    World,
    annotations_for,
    timeline_end,
    timeline_start,
)
from rpops.steps.bluegreen.probes import served_delta
from rpops.steps.bluegreen.settings import Plan

log = logging.getLogger(__name__)

CRASH_ENV = "RPOPS_BLUEGREEN_CRASH_AFTER"
# Where a promotion can be killed (crash_point), in the order it passes them.
PROMOTION_CRASH_POINTS = (
    "deploy",
    "wait-ready",
    "analyze",
    "switch:before-route",
    "switch:after-route",
    "switch",
    "verify",
    "finalize",
)


def crash_point(name: str) -> None:
    """The test hook (see the module docstring)."""
    if os.environ.get(CRASH_ENV) == name:
        log.critical("%s=%s: exiting hard here, as a killed runner would", CRASH_ENV, name)
        logging.shutdown()
        sys.stderr.flush()
        os._exit(137)


class PromotionFailed(GateFailed):
    """A gate failed and the promotion was aborted or rolled back (exit 1)."""


class Promoter:
    """Runs one `rpops bluegreen` command against a platform driver."""

    def __init__(
        self,
        driver: PlatformDriver,
        plan: Plan,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        lock_settle: float = SETTLE_S,
    ) -> None:
        self.driver = driver
        self.plan = plan
        self.service = plan.service
        self.clock = clock
        self.sleep = sleep
        self.lock = PromotionLock(
            driver,
            plan.service,
            Holder.current(plan.owner),
            plan.lock_ttl,
            clock=clock,
            sleep=sleep,
            settle=lock_settle,
        )
        self.analysis: list[dict[str, Any]] = []
        self.verify_report: dict[str, Any] = {}
        self.detail = ""

    # --- observe (observe.py) -----------------------------------------------------------------

    def read_record(self) -> Record:
        return observe.read_record(self.driver, self.service)

    def observe(self) -> World:
        return observe.read_world(self.driver, self.service)

    # --- record ---------------------------------------------------------------------------------

    def update(self, change: Callable[[Record], Record]) -> Record:
        """Read the record, check the lock is still ours (fencing), write `change(record)` renewed."""
        current = self.read_record()
        self.lock.check(current)
        new = self.lock.locked_record(change(current))
        changes = annotations_for(current, new)
        if changes:
            self.driver.annotate(self.service, changes)
        return new

    def begin(self, step: str) -> Record:
        now = self.clock()
        log.info("%s: %s", self.service, step)
        return self.update(lambda r: replace(r, timeline=timeline_start(r.timeline, step, now)))

    def end(self, step: str, result: str, detail: str = "", **fields: Any) -> Record:
        """Close the timeline entry of `step`, with the record changes `fields` in the same write."""
        now = self.clock()
        self.detail = detail
        log.info("%s: %s %s%s", self.service, step, result, f": {detail}" if detail else "")
        return self.update(
            lambda r: replace(r, timeline=timeline_end(r.timeline, step, now, result, detail), **fields)
        )

    def renew_if_due(self) -> None:
        if self.lock.renew_due():
            self.lock.renew()

    # --- waiting --------------------------------------------------------------------------------

    def await_ready(self, version: str, timeout: float) -> tuple[bool, str]:
        """Wait until every replica of `version` is ready, renewing the lock meanwhile."""
        deadline = time.monotonic() + timeout
        chunk = max(0.5, self.plan.lock_ttl / 3)
        while True:
            remaining = deadline - time.monotonic()
            try:
                workload = self.driver.wait_ready(
                    self.service, version, timeout=max(0.05, min(chunk, remaining))
                )
                return True, f"{workload.ready_replicas}/{workload.replicas} ready"
            except DeadlineExceeded as exc:
                if time.monotonic() >= deadline:
                    return False, str(exc)
                self.renew_if_due()

    def pause(self, seconds: float) -> None:
        """Sleep `seconds`, renewing the lock meanwhile."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.sleep(min(left, max(0.5, self.plan.lock_ttl / 3)))
            self.renew_if_due()

    # --- commands -------------------------------------------------------------------------------

    def promote(self, phases: tuple[str, ...]) -> str:
        """Run `phases` in order (skipping those already done); returns the result word."""
        world = self.observe()
        version = self.plan.version or world.record.preview
        if version is None:
            raise UsageError("--version is needed: no promotion is recorded to continue")
        if self.nothing_to_promote(world, version):
            return "no-op"
        if "deploy" in phases:
            decision = d.plan_promotion(world, version, self.plan.preview_replicas)
            if isinstance(decision, d.NoOp):
                self.detail = decision.reason
                return "no-op"
            if isinstance(decision, d.Refuse):
                raise RpopsError(decision.reason)
            if isinstance(decision, d.FinishRollback):
                self.rollback(decision.reason)
                raise PromotionFailed(f"an interrupted rollback was finished: {decision.reason}")
            self.deploy(decision)
        for phase in phases:
            if phase != "deploy":
                self.run_phase(phase, version)
        final = self.read_record()
        return "promoted" if final.phase is State.COMPLETE else "in-progress"

    def nothing_to_promote(self, world: World, version: str) -> bool:
        """Settle what the record says first: finish an interrupted rollback (and fail), take over
        our own promotion from another owner; True when `version` is already active."""
        record = world.record
        if record.phase is State.ROLLING_BACK:
            self.rollback(record.reason or "finishing an interrupted rollback")
            raise PromotionFailed(
                f"an interrupted rollback was finished: {record.reason or 'no reason recorded'}"
            )
        if record.in_progress and record.owner != self.plan.owner and record.preview == version:
            log.warning("taking over the promotion of %s from %s", version, record.owner)
            self.update(lambda r: replace(r, owner=self.plan.owner))
        if not record.in_progress and world.routes.active == version:
            self.detail = f"{version} is already the active version of {self.service}: nothing to promote"
            log.info("%s", self.detail)
            return True
        return False

    def run_phase(self, phase: str, version: str) -> None:
        """One phase after deploy, unless it is done already (or may not run yet: refused)."""
        world = self.observe()
        step = d.plan_phase(world, phase, version)
        if isinstance(step, d.SkipPhase):
            log.info("%s", step.reason)
            return
        if isinstance(step, d.Refuse):
            raise RpopsError(step.reason)
        getattr(self, phase.replace("-", "_"))(world, step.version)

    def abort(self, phase: str, reason: str) -> NoReturn:
        """A gate before or at the switch failed: close the phase, roll back, fail."""
        self.end(phase, "failed", reason)
        self.rollback(reason)
        raise PromotionFailed(f"promotion aborted: {reason}")

    # --- deploy -----------------------------------------------------------------------------------

    def deploy(self, decision: d.Start | d.Resume) -> None:
        if isinstance(decision, d.Resume):
            record = self.read_record()
            if record.phase is not State.DEPLOYING:
                log.info("deploy of %s is already done (phase %s)", decision.version, record.phase)
                return
            version, replicas, image = decision.version, record.replicas or 1, record.image
            self.begin("deploy")
        else:
            version, replicas, image = decision.version, decision.replicas, self.plan.image
            self.start(decision)
        try:
            self.driver.deploy(self.service, version, replicas=replicas, image=image)
        except DeadlineExceeded as exc:
            self.abort("deploy", f"green {version} did not start: {exc}")
        self.driver.route(self.service, version, preview=True)
        what = f"{replicas} replica{'s' if replicas != 1 else ''}" + (f" of {image}" if image else "")
        self.end(
            "deploy", "succeeded", f"{version}: {what}; preview route -> {version}", phase=State.DEPLOYED
        )
        crash_point("deploy")

    def start(self, decision: d.Start) -> None:
        """Record a new promotion (its intent: deploying), before anything is deployed."""
        now = self.clock()

        def fresh(r: Record) -> Record:
            # A new promotion: keep only the previous version (the fast-rollback target) and the lock.
            return Record(
                phase=State.DEPLOYING,
                stable=decision.stable,
                previous=r.previous,
                preview=decision.version,
                owner=self.plan.owner,
                started_at=iso(now),
                replicas=decision.replicas,
                autoscaling=decision.autoscaling,
                image=self.plan.image,
                timeline=timeline_start((), "deploy", now),
                lock=r.lock,
            )

        self.update(fresh)
        log.info(
            "%s: deploying %s with %d replicas (blue %s)",
            self.service,
            decision.version,
            decision.replicas,
            decision.stable,
        )

    # --- wait-ready --------------------------------------------------------------------------------

    def wait_ready(self, world: World, version: str) -> None:
        self.begin("wait-ready")
        ok, detail = self.await_ready(version, self.plan.progress_deadline)
        if not ok:
            self.abort(
                "wait-ready",
                f"green {version} was not ready within the progress deadline "
                f"({self.plan.progress_deadline:g}s): {detail}",
            )
        self.end("wait-ready", "succeeded", detail, phase=State.READY)
        crash_point("wait-ready")

    # --- analyze ---------------------------------------------------------------------------------

    def run_analysis(self, stage: str, version: str, stable: str | None, window: float | None) -> AnalysisRun:
        config = observe.analysis_config(self.driver, self.plan, stage, version, stable, window)
        result = observe.run_analysis(config, self.lock.renew_due, self.lock.renew)
        targets = [t.name for t in config.targets]
        self.analysis.append({"stage": stage, "targets": targets, **result.to_json()})
        return result

    def analyze(self, world: World, version: str) -> None:
        self.begin("analyze")
        result = self.run_analysis("pre", version, world.record.stable, None)
        if not result.passed:
            self.abort("analyze", "pre-promotion analysis failed: " + "; ".join(result.failures))
        probes = sum(r.requests for r in result.rounds)
        self.end(
            "analyze",
            "succeeded",
            f"{len(result.metrics)} metrics successful over {len(result.rounds)} rounds ({probes} probes)",
            phase=State.ANALYZED,
        )
        crash_point("analyze")

    # --- switch ----------------------------------------------------------------------------------

    def switch(self, world: World, version: str) -> None:
        self.begin("switch")
        blocker = d.switch_blocker(world.versions.get(version), version)
        if blocker:
            log.info("waiting before the switch: %s", blocker)
            ok, detail = self.await_ready(version, self.plan.progress_deadline)
            if not ok:
                self.abort("switch", f"green {version} is not fully available for the switch: {detail}")
        routes = self.driver.routes(self.service)
        if routes.active != version:
            blue = routes.active
            self.update(lambda r: replace(r, phase=State.SWITCHING, previous=blue or r.previous))
            crash_point("switch:before-route")
            # The last look before the one change: never route to a version without every replica ready.
            blocker = d.switch_blocker(self.driver.workload(self.service, version), version)
            if blocker:
                self.abort("switch", f"refusing to switch: {blocker}")
            self.driver.route(self.service, version)
            crash_point("switch:after-route")
            detail = f"active route {blue} -> {version}"
        else:
            detail = f"active route already on {version}"
        now = self.clock()
        self.end(
            "switch",
            "succeeded",
            detail,
            phase=State.SWITCHED,
            switched_at=world.record.switched_at if world.record.switched_at else now,
        )
        crash_point("switch")

    # --- verify ----------------------------------------------------------------------------------

    def verify(self, world: World, version: str) -> None:
        self.begin("verify")
        routes = self.driver.routes(self.service)
        if routes.active != version:
            raise RpopsError(
                f"the active route of {self.service} is on {routes.active}, not {version}: someone moved it; "
                "see `rpops bluegreen status`"
            )
        result = self.run_analysis("post", version, world.record.stable, self.plan.verify_seconds)
        window: dict[str, Any] = {
            "seconds": round(result.ended - result.started, 3),
            "probes": sum(r.requests for r in result.rounds),
            "probe_failures": sum(r.errors for r in result.rounds),
        }
        if not result.passed:
            self.verify_failed(version, result, window)
        served, errors = result.served()
        window.update(served_requests=int(served), failed_requests=int(errors))
        self.verify_report = window
        self.end(
            "verify",
            "succeeded",
            f"{int(served)} requests served by {version} in {window['seconds']:g}s, {int(errors)} failed",
            phase=State.VERIFIED,
        )
        crash_point("verify")

    def verify_failed(self, version: str, result: AnalysisRun, window: dict[str, Any]) -> NoReturn:
        """Green failed on live traffic: traffic back to blue at once, then count what green served
        in the whole window (its counters, read before it is scaled down), and fail."""
        reason = "post-promotion analysis failed: " + "; ".join(result.failures)
        detected = result.detected_at or time.monotonic()
        self.end("verify", "failed", reason)
        counted: dict[str, tuple[float, float]] = {}

        def count() -> None:
            counted.update(observe.green_counters(list(result.counters_start), self.plan.timeout))

        routed = self.rollback(reason, on_routed=count)
        back_s = (routed - detected) if routed is not None else None
        served, errors = served_delta(result.counters_start, counted) if counted else result.served()
        window.update(
            served_requests=int(served),
            failed_requests=int(errors),
            detection_to_route_back_s=None if back_s is None else round(back_s, 4),
        )
        self.verify_report = window
        raise PromotionFailed(
            f"{reason}; traffic back on {self.read_record().stable} "
            + (f"{back_s:.3f}s after detection; " if back_s is not None else "; ")
            + f"{int(errors)} failed requests of {int(served)} served by {version} in the verify window"
        )

    # --- finalize ----------------------------------------------------------------------------------

    def finalize(self, world: World, version: str) -> None:
        record = self.begin("finalize")
        wait = d.scale_down_wait(record.switched_at, self.plan.scale_down_delay, self.clock())
        if wait > 0:
            log.info("keeping blue %s for %.1fs more (scale-down delay)", record.previous, wait)
            self.pause(wait)
        world = self.observe()
        record = world.record
        self.lock.check(record)
        if world.routes.active != version:
            raise RpopsError(
                f"the active route of {self.service} is on {world.routes.active}, not {version}: "
                "someone moved it; see `rpops bluegreen status`"
            )
        notes = []
        blue = record.previous if record.previous != version else None
        if blue and blue in world.versions and world.versions[blue].replicas > 0:
            self.driver.scale(self.service, blue, 0)
            notes.append(f"{blue} scaled to 0 (kept for a fast rollback)")
        green = world.versions.get(version)
        if record.autoscaling is not None and green is not None and green.autoscaling != record.autoscaling:
            self.driver.set_autoscaling(self.service, record.autoscaling)
            bounds = record.autoscaling
            notes.append(f"autoscaling {bounds.min_replicas}-{bounds.max_replicas} on {version}")
        for stale in d.stale_versions(world, (version, blue)):
            self.driver.remove(self.service, stale, delete=True)
            notes.append(f"removed {stale}")
        self.end(
            "finalize",
            "succeeded",
            "; ".join(notes) or "nothing left to clean up",
            phase=State.COMPLETE,
            stable=version,
            previous=blue,
        )
        crash_point("finalize")

    # --- rollback ----------------------------------------------------------------------------------

    def rollback(self, reason: str, on_routed: Callable[[], None] | None = None) -> float | None:
        """Route back to the stable version (scaling it up first if needed), scale green down,
        record why. Returns the monotonic time the route moved back (None when it did not move).
        `on_routed` runs once traffic is back and before green is scaled down."""
        world = self.observe()
        plan = d.plan_rollback(world)
        if isinstance(plan, d.Refuse):
            raise RpopsError(plan.reason)
        record = world.record
        source = world.versions.get(plan.source or "")
        reroute = world.routes.active != plan.target
        shrink = (
            bool(plan.source) and plan.source != plan.target and source is not None and source.replicas > 0
        )
        if record.phase in (State.ABORTED, State.ROLLED_BACK) and not reroute and not shrink:
            # Already rolled back: keep the original reason and timeline.
            self.detail = f"already {record.phase.value}: {record.reason or 'no reason recorded'}"
            log.info("%s: %s", self.service, self.detail)
            return None
        # The intent names target and source, so that a rerun after a crash finishes this rollback.
        self.update(
            lambda r: replace(
                r,
                phase=State.ROLLING_BACK,
                reason=reason,
                stable=plan.target,
                preview=plan.source,
                previous=None if plan.clear_previous else r.previous,
                switched_at=r.switched_at if r.switched_at or not plan.switched else self.clock(),
                timeline=timeline_start(r.timeline, "rollback", self.clock()),
            )
        )
        notes: list[str] = []
        routed = self.route_back(world, plan, notes) if reroute else None
        if on_routed is not None:
            on_routed()
        if shrink and plan.source:
            self.driver.scale(self.service, plan.source, 0)
            notes.append(f"{plan.source} scaled to 0")
        detail = "; ".join(notes) or "nothing left to change"
        self.end(
            "rollback",
            "succeeded",
            f"{reason} ({detail})",
            phase=d.rollback_state(plan),
            rolled_back=True,
            reason=reason,
            stable=plan.target,
            previous=None if plan.clear_previous else record.previous,
        )
        self.detail = f"{reason} ({detail})"
        crash_point("rollback")
        return routed

    def route_back(self, world: World, plan: d.RollbackPlan, notes: list[str]) -> float:
        """Move the active route to the rollback target once it has every replica ready (scaling it
        up from 0 first); returns the monotonic time it moved."""
        target = world.versions[plan.target]
        if d.switch_blocker(target, plan.target):
            if target.replicas == 0:
                self.driver.scale(self.service, plan.target, plan.restore_replicas)
                notes.append(f"{plan.target} scaled back to {plan.restore_replicas}")
            ok, detail = self.await_ready(plan.target, self.plan.progress_deadline)
            if not ok:
                self.end("rollback", "failed", detail)
                raise GateFailed(
                    f"cannot roll {self.service} back to {plan.target}: it has no fully ready replicas "
                    f"({detail}); the active route stays on {world.routes.active}"
                )
        # The last look before the one change: never route to a version without ready replicas.
        blocker = d.switch_blocker(self.driver.workload(self.service, plan.target), plan.target)
        if blocker:
            self.end("rollback", "failed", blocker)
            raise GateFailed(f"cannot roll {self.service} back to {plan.target}: {blocker}")
        self.driver.route(self.service, plan.target)
        routed = time.monotonic()
        notes.append(f"active route {world.routes.active} -> {plan.target}")
        crash_point("rollback:after-route")
        return routed

    def not_ours(self, record: Record) -> str | None:
        """--if-owner: why this run leaves the service alone (None: the promotion is ours to undo)."""
        if record.owner != self.plan.owner:
            return f"the promotion on {self.service} is {record.owner or 'nobody'}'s, not {self.plan.owner}"
        if record.phase is State.COMPLETE:
            return (
                f"the promotion of {record.preview} by {self.plan.owner} completed; not undoing it "
                "(run rollback without --if-owner to)"
            )
        return None

    def rollback_command(self) -> str:
        record = self.read_record()
        if self.plan.if_owner and (why := self.not_ours(record)):
            self.detail = why
            return "skipped"
        self.rollback(self.plan.reason)
        final = self.read_record()
        return "aborted" if final.phase is State.ABORTED else "rolled-back"

    # --- the entry point ---------------------------------------------------------------------------

    def run(self) -> Outcome:
        plan = self.plan
        world = observe.existing_world(self.driver, self.service)
        if plan.command == "status":
            return Outcome("status", "status", world.record, world.routes)
        if plan.command == "rollback" and plan.if_owner and (why := self.not_ours(world.record)):
            # Another run's promotion: leave it, without even waiting for its lock.
            self.detail = why
            log.info("%s", why)
            return self.outcome("skipped")
        self.lock.acquire(plan.lock_wait, force=plan.force and plan.command == "rollback")
        result = "error"
        try:
            if plan.command == "rollback":
                result = self.rollback_command()
            elif plan.command == "promote":
                result = self.promote(plan.phases)
            else:
                result = self.promote((plan.command,))
        except PromotionFailed:
            result = "failed"
            raise
        finally:
            self._release_if_done(result)
        return self.outcome(result)

    def _release_if_done(self, result: str) -> None:
        try:
            record = self.read_record()
            if record.phase in TERMINAL or result in ("no-op", "skipped") or record.phase is None:
                self.lock.release()
        except RpopsError as exc:  # the lock expires by itself; say so and go on
            log.warning("could not release the lock of %s: %s", self.service, exc)

    def outcome(self, result: str) -> Outcome:
        try:
            record = self.read_record()
            routes = self.driver.routes(self.service)
        except RpopsError:
            record, routes = Record(), Routes(self.service, None, None)
        if result == "failed":
            result = (
                "aborted"
                if record.phase is State.ABORTED
                else "rolled-back"
                if record.rolled_back
                else "failed"
            )
        return Outcome(
            self.plan.command,
            result,
            record,
            routes,
            self.detail,
            list(self.analysis),
            dict(self.verify_report),
        )
