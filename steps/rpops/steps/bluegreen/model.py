"""Typed values of a blue-green promotion, and their encoding as annotations on the service.

The promotion state lives on the service (Kubernetes: the Service object; local: the service's
record), as annotations under `rpops.research-platform.io/bluegreen.*`, so that any run, on any
machine, can read where a promotion stands and converge from there:

    bluegreen.phase         the state reached (State below)
    bluegreen.stable        the version known good: blue during a promotion, green once complete
    bluegreen.previous      the version the active route left at the switch (fast-rollback target)
    bluegreen.preview       green: the version being promoted (or the last one)
    bluegreen.owner         who runs the promotion (--owner; the workflow name in the template)
    bluegreen.started-at    when the promotion started (ISO 8601, UTC)
    bluegreen.switched-at   when the active route moved to green (unix seconds)
    bluegreen.replicas      green's replica count, decided once at deploy
    bluegreen.autoscaling   the HPA bounds seen on blue at deploy ("min-max"), moved to green
    bluegreen.image         green's image, as asked
    bluegreen.reason        why the promotion was aborted or rolled back
    bluegreen.rolled-back   "true" once aborted or rolled back
    bluegreen.timeline      JSON list of {phase, start, end, result, detail}
    bluegreen.lock          JSON {owner, token, host, pid, pid_start, expires}

Nothing here does I/O.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from rpops.platform.base import AutoscalingBounds, Routes, Workload
from rpops.platform.service_lock import LockInfo, read_lock

KEY = "bluegreen."
PHASES = ("deploy", "wait-ready", "analyze", "switch", "verify", "finalize")
COMMANDS = (*PHASES, "rollback", "promote", "status")
MAX_TIMELINE = 40
MAX_DETAIL = 300


class State(enum.StrEnum):
    """Where a promotion stands. The forward states are ordered; the last three are terminal."""

    DEPLOYING = "deploying"
    DEPLOYED = "deployed"
    READY = "ready"
    ANALYZED = "analyzed"
    SWITCHING = "switching"
    SWITCHED = "switched"
    VERIFIED = "verified"
    COMPLETE = "complete"
    ROLLING_BACK = "rolling-back"
    ABORTED = "aborted"
    ROLLED_BACK = "rolled-back"


FORWARD = (
    State.DEPLOYING,
    State.DEPLOYED,
    State.READY,
    State.ANALYZED,
    State.SWITCHING,
    State.SWITCHED,
    State.VERIFIED,
    State.COMPLETE,
)
TERMINAL = frozenset({State.COMPLETE, State.ABORTED, State.ROLLED_BACK})
# The state a phase leaves behind when it is done: a rerun skips a phase whose state was reached.
DONE_STATE = {
    "deploy": State.DEPLOYED,
    "wait-ready": State.READY,
    "analyze": State.ANALYZED,
    "switch": State.SWITCHED,
    "verify": State.VERIFIED,
    "finalize": State.COMPLETE,
}


def reached(state: State | None, goal: State) -> bool:
    """Whether a forward `state` is at or past `goal` (False for rollback states and None)."""
    if state is None or state not in FORWARD or goal not in FORWARD:
        return False
    return FORWARD.index(state) >= FORWARD.index(goal)


@dataclass(frozen=True)
class TimelineEntry:
    phase: str
    start: float
    end: float | None = None
    result: str = "running"  # running | succeeded | failed | skipped | interrupted
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "start": round(self.start, 3),
            "end": None if self.end is None else round(self.end, 3),
            "result": self.result,
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> TimelineEntry:
        end = raw.get("end")
        return cls(
            phase=str(raw.get("phase", "?")),
            start=float(raw.get("start") or 0.0),
            end=None if end is None else float(end),
            result=str(raw.get("result") or "running"),
            detail=str(raw.get("detail") or ""),
        )


@dataclass(frozen=True)
class Record:
    """The promotion state read from (and written to) the service's annotations."""

    phase: State | None = None
    stable: str | None = None
    previous: str | None = None
    preview: str | None = None
    owner: str | None = None
    started_at: str | None = None
    switched_at: float | None = None
    replicas: int | None = None
    autoscaling: AutoscalingBounds | None = None
    image: str | None = None
    reason: str | None = None
    rolled_back: bool = False
    timeline: tuple[TimelineEntry, ...] = ()
    lock: LockInfo | None = None

    @property
    def in_progress(self) -> bool:
        return self.phase is not None and self.phase not in TERMINAL

    def summary(self) -> dict[str, Any]:
        return {
            "phase": self.phase.value if self.phase else None,
            "stable": self.stable,
            "previous": self.previous,
            "preview": self.preview,
            "owner": self.owner,
            "started_at": self.started_at,
            "switched_at": self.switched_at,
            "replicas": self.replicas,
            "autoscaling": None
            if self.autoscaling is None
            else {
                "min_replicas": self.autoscaling.min_replicas,
                "max_replicas": self.autoscaling.max_replicas,
            },
            "image": self.image,
            "reason": self.reason,
            "rolled_back": self.rolled_back,
            "lock": None if self.lock is None else self.lock.to_json(),
            "timeline": [e.to_json() for e in self.timeline],
        }


@dataclass(frozen=True)
class World:
    """One observation of the platform, for the decide functions."""

    service: str
    routes: Routes
    versions: Mapping[str, Workload]
    record: Record

    @property
    def active(self) -> Workload | None:
        return self.versions.get(self.routes.active) if self.routes.active else None


# --- annotations <-> Record ------------------------------------------------------------------


def _float(text: str | None) -> float | None:
    try:
        value = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text not in (None, "") else None
    except ValueError:
        return None


def _bounds(text: str | None) -> AutoscalingBounds | None:
    if not text or "-" not in text:
        return None
    low, _, high = text.partition("-")
    try:
        return AutoscalingBounds(int(low), int(high))
    except (ValueError, Exception):  # noqa: BLE001 - a damaged value reads as "no autoscaling"
        return None


def _state(text: str | None) -> State | None:
    try:
        return State(text) if text else None
    except ValueError:
        return None


def _timeline(text: str | None) -> tuple[TimelineEntry, ...]:
    if not text:
        return ()
    try:
        raw = json.loads(text)
        return tuple(TimelineEntry.from_json(e) for e in raw if isinstance(e, Mapping))
    except (ValueError, TypeError, KeyError):
        return ()


def record_from(annotations: Mapping[str, str]) -> Record:
    """Read the promotion state; damaged values read as absent rather than failing the run."""

    def get(name: str) -> str | None:
        value = annotations.get(KEY + name)
        return value if value else None

    return Record(
        phase=_state(get("phase")),
        stable=get("stable"),
        previous=get("previous"),
        preview=get("preview"),
        owner=get("owner"),
        started_at=get("started-at"),
        switched_at=_float(get("switched-at")),
        replicas=_int(get("replicas")),
        autoscaling=_bounds(get("autoscaling")),
        image=get("image"),
        reason=get("reason"),
        rolled_back=get("rolled-back") == "true",
        timeline=_timeline(get("timeline")),
        lock=read_lock(annotations),
    )


def annotations_for(old: Record, new: Record) -> dict[str, str | None]:
    """The annotation changes that turn `old` into `new` (None removes a key); empty when equal."""
    out: dict[str, str | None] = {}

    def put(name: str, before: Any, after: Any, text: str | None) -> None:
        if before != after:
            out[KEY + name] = text

    put("phase", old.phase, new.phase, new.phase.value if new.phase else None)
    for name, attr in (
        ("stable", "stable"),
        ("previous", "previous"),
        ("preview", "preview"),
        ("owner", "owner"),
        ("started-at", "started_at"),
        ("image", "image"),
        ("reason", "reason"),
    ):
        put(name, getattr(old, attr), getattr(new, attr), getattr(new, attr) or None)
    put(
        "switched-at",
        old.switched_at,
        new.switched_at,
        None if new.switched_at is None else f"{new.switched_at:.3f}",
    )
    put("replicas", old.replicas, new.replicas, None if new.replicas is None else str(new.replicas))
    put(
        "autoscaling",
        old.autoscaling,
        new.autoscaling,
        None if new.autoscaling is None else f"{new.autoscaling.min_replicas}-{new.autoscaling.max_replicas}",
    )
    put("rolled-back", old.rolled_back, new.rolled_back, "true" if new.rolled_back else None)
    put(
        "timeline",
        old.timeline,
        new.timeline,
        json.dumps([e.to_json() for e in new.timeline], separators=(",", ":")) if new.timeline else None,
    )
    put(
        "lock",
        old.lock,
        new.lock,
        None if new.lock is None else json.dumps(new.lock.to_json(), separators=(",", ":")),
    )
    return out


# --- the timeline ----------------------------------------------------------------------------


def _clip(detail: str) -> str:
    return detail if len(detail) <= MAX_DETAIL else detail[: MAX_DETAIL - 3] + "..."


def timeline_start(timeline: tuple[TimelineEntry, ...], phase: str, now: float) -> tuple[TimelineEntry, ...]:
    """Open an entry for `phase`; an entry still open from a crashed run is closed as interrupted."""
    closed = tuple(
        replace(e, end=e.end if e.end is not None else now, result="interrupted")
        if e.result == "running"
        else e
        for e in timeline
    )
    return (*closed, TimelineEntry(phase=phase, start=now))[-MAX_TIMELINE:]


def timeline_end(
    timeline: tuple[TimelineEntry, ...], phase: str, now: float, result: str, detail: str = ""
) -> tuple[TimelineEntry, ...]:
    """Close the open entry of `phase` (or add a closed one when none is open)."""
    entries = list(timeline)
    for i in range(len(entries) - 1, -1, -1):
        if entries[i].phase == phase and entries[i].result == "running":
            entries[i] = replace(entries[i], end=now, result=result, detail=_clip(detail))
            return tuple(entries)[-MAX_TIMELINE:]
    entries.append(TimelineEntry(phase=phase, start=now, end=now, result=result, detail=_clip(detail)))
    return tuple(entries)[-MAX_TIMELINE:]


@dataclass(frozen=True)
class Outcome:
    """What a command did, for the outputs and the report."""

    command: str
    result: str  # promoted | no-op | in-progress | aborted | rolled-back | skipped | status
    record: Record
    routes: Routes
    detail: str = ""
    analysis: list[dict[str, Any]] = field(default_factory=list)
    verify: dict[str, Any] = field(default_factory=dict)
