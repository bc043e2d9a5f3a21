"""CronWorkflow schedules for `rpops local serve`, as Argo's cron controller runs them.

Supported fields of a CronWorkflow's spec: `schedules` (standard 5-field cron and the
descriptors @yearly @annually @monthly @weekly @daily @midnight @hourly, through croniter, and
`@every <duration>` as Argo's cron library reads it: every D after the previous run, in whole
seconds), `timezone` (IANA name; default this machine's zone), `concurrencyPolicy` (Allow,
Forbid: skip while a run is active, Replace: terminate it and start anew),
`startingDeadlineSeconds` (a run later than that after its time is skipped; on start a missed
time within the deadline runs once), `successfulJobsHistoryLimit` / `failedJobsHistoryLimit`
(default 3 / 1: older finished run records are deleted), `suspend`, `workflowMetadata`
(labels and annotations of the runs), `workflowSpec`. `when` and `stopStrategy` are refused
when the CronWorkflow is loaded.

decide: `next_fire`, `verdict`, `decide`, `catch_up` and `prune` are pure (times are epoch
seconds passed in). act: `Scheduler.tick(now)` starts and stops runs and deletes records; a
thread calls it every `tick_s`.
"""

from __future__ import annotations

import logging
import math
import shutil
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from rpops.core.durations import parse_duration
from rpops.core.errors import UsageError
from rpops.local.load.catalog import API_VERSION, Catalog, Document

log = logging.getLogger("rpops.local.server.serve")

CRON_LABEL = "workflows.argoproj.io/cron-workflow"
SCHEDULED_ANNOTATION = "workflows.argoproj.io/scheduled-time"
POLICIES = ("Allow", "Forbid", "Replace")
DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
DEFAULT_SUCCESSFUL_LIMIT = 3
DEFAULT_FAILED_LIMIT = 1


@dataclass(frozen=True)
class Schedule:
    """One entry of `schedules`, in a timezone."""

    text: str
    tz: tzinfo
    every_s: float | None = None  # `@every D`

    def next_after(self, t: float) -> float:
        if self.every_s is not None:
            return math.floor(t) + self.every_s
        start = datetime.fromtimestamp(t, self.tz)
        return float(croniter(self.text, start).get_next(datetime).timestamp())

    def last_at_or_before(self, t: float) -> float | None:
        """The latest scheduled time <= t (None for @every, which has no fixed times)."""
        if self.every_s is not None:
            return None
        start = datetime.fromtimestamp(t + 1e-3, self.tz)
        return float(croniter(self.text, start).get_prev(datetime).timestamp())


def parse_schedule(text: str, tz: tzinfo) -> Schedule:
    """A schedule in Argo's syntax; UsageError names what is wrong."""
    stripped = str(text).strip()
    if stripped.startswith("@every"):
        try:
            seconds = parse_duration(stripped[len("@every") :].strip())
        except ValueError as exc:
            raise UsageError(f"schedule {text!r}: {exc}; write e.g. @every 30s") from None
        return Schedule(stripped, tz, every_s=max(1.0, math.floor(seconds)))
    if stripped.startswith("@"):
        if stripped not in DESCRIPTORS:
            raise UsageError(
                f"schedule {text!r}: unknown descriptor (known: {', '.join(DESCRIPTORS)}, @every D)"
            )
    elif len(stripped.split()) != 5 or not croniter.is_valid(stripped):
        raise UsageError(
            f"schedule {text!r} is not a 5-field cron expression "
            "(minute hour day-of-month month day-of-week), "
            "e.g. '0 2 * * *'"
        )
    return Schedule(stripped, tz)


@dataclass(frozen=True)
class CronSpec:
    name: str
    namespace: str
    schedules: tuple[Schedule, ...]
    policy: str
    starting_deadline_s: float | None
    successful_limit: int
    failed_limit: int
    suspend: bool
    workflow_spec: dict[str, Any]
    labels: dict[str, str]
    annotations: dict[str, str]


def _timezone(name: str | None) -> tzinfo:
    if not name:
        local = datetime.now().astimezone().tzinfo
        return local or UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(
            f"timezone {name!r} is not an IANA time zone name, e.g. Europe/Berlin or UTC"
        ) from None


def check_cron(doc: Document, catalog: Catalog, namespace: str) -> CronSpec:
    """The CronWorkflow's schedule settings; UsageError naming the document and every problem."""
    problems: list[str] = []
    try:
        catalog.spec(doc)  # the workflowSpec inside what rpops local runs
    except UsageError as exc:
        problems.append(str(exc))
    spec: Mapping[str, Any] = doc.raw.get("spec") or {}
    for key in ("when", "stopStrategy"):
        if key in spec:
            problems.append(f"spec.{key}: not supported by rpops local serve")
    tz: tzinfo = UTC
    try:
        tz = _timezone(spec.get("timezone"))
    except UsageError as exc:
        problems.append(f"spec.timezone: {exc}")
    schedules = []
    raw_schedules = spec.get("schedules")
    if "schedule" in spec:
        problems.append("spec.schedule: Argo v4 takes `schedules: [...]`")
    if not isinstance(raw_schedules, list) or not raw_schedules:
        problems.append("spec.schedules: a CronWorkflow needs at least one schedule")
    else:
        for text in raw_schedules:
            try:
                schedules.append(parse_schedule(text, tz))
            except UsageError as exc:
                problems.append(f"spec.schedules: {exc}")
    policy = spec.get("concurrencyPolicy") or "Allow"
    if policy not in POLICIES:
        problems.append(f"spec.concurrencyPolicy: {policy!r} is not one of {', '.join(POLICIES)}")
    deadline = spec.get("startingDeadlineSeconds")
    limits = {}
    for key, default in (
        ("successfulJobsHistoryLimit", DEFAULT_SUCCESSFUL_LIMIT),
        ("failedJobsHistoryLimit", DEFAULT_FAILED_LIMIT),
    ):
        value = spec.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            problems.append(f"spec.{key}: must be a whole number >= 0")
            value = default
        limits[key] = value
    if deadline is not None and (not isinstance(deadline, int) or isinstance(deadline, bool) or deadline < 0):
        problems.append("spec.startingDeadlineSeconds: must be a whole number >= 0")
        deadline = None
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise UsageError(f"{doc.label} cannot be scheduled:\n{lines}")
    meta = spec.get("workflowMetadata") or {}
    return CronSpec(
        name=doc.name,
        namespace=str(doc.metadata.get("namespace") or namespace),
        schedules=tuple(schedules),
        policy=policy,
        starting_deadline_s=float(deadline) if deadline is not None else None,
        successful_limit=limits["successfulJobsHistoryLimit"],
        failed_limit=limits["failedJobsHistoryLimit"],
        suspend=bool(spec.get("suspend", False)),
        workflow_spec=dict(spec.get("workflowSpec") or {}),
        labels={str(k): str(v) for k, v in (meta.get("labels") or {}).items()},
        annotations={str(k): str(v) for k, v in (meta.get("annotations") or {}).items()},
    )


def load_crons(catalog: Catalog, namespace: str) -> list[CronSpec]:
    docs = [d for d in catalog.cron_workflows() if str(d.metadata.get("namespace") or namespace) == namespace]
    return [check_cron(d, catalog, namespace) for d in docs]


# --------------------------------------------------------------------------------------------- decide


def next_fire(spec: CronSpec, after: float) -> float:
    """The first scheduled time after `after`, over every schedule."""
    return min(s.next_after(after) for s in spec.schedules)


def verdict(scheduled: float, now: float, deadline_s: float | None) -> str:
    """`run`, or `missed` when the run would start more than startingDeadlineSeconds late."""
    if deadline_s is not None and now - scheduled > deadline_s:
        return "missed"
    return "run"


@dataclass(frozen=True)
class Decision:
    start: bool
    stop: tuple[str, ...]
    reason: str


def decide(policy: str, active: Sequence[str]) -> Decision:
    """What concurrencyPolicy makes of a scheduled time while `active` runs are not finished."""
    if not active or policy == "Allow":
        return Decision(True, (), "")
    if policy == "Forbid":
        return Decision(False, (), f"concurrencyPolicy Forbid: {', '.join(active)} still running")
    return Decision(True, tuple(active), f"concurrencyPolicy Replace: terminating {', '.join(active)}")


def catch_up(spec: CronSpec, now: float, already_ran: Callable[[float], bool]) -> float | None:
    """On start: the latest scheduled time within startingDeadlineSeconds that has no run yet."""
    if spec.starting_deadline_s is None or spec.suspend:
        return None
    times = [t for s in spec.schedules if (t := s.last_at_or_before(now)) is not None]
    if not times:
        return None
    latest = max(times)
    if now - latest <= spec.starting_deadline_s and not already_ran(latest):
        return latest
    return None


@dataclass(frozen=True)
class RunRecord:
    name: str
    phase: str
    finished_at: str  # RFC 3339; sorts by time


def prune(records: Sequence[RunRecord], successful_limit: int, failed_limit: int) -> list[str]:
    """Finished runs beyond the history limits, oldest first (running ones are kept)."""
    doomed: list[str] = []
    for phases, limit in ((("Succeeded",), successful_limit), (("Failed", "Error"), failed_limit)):
        done = sorted((r for r in records if r.phase in phases), key=lambda r: r.finished_at, reverse=True)
        doomed += [r.name for r in reversed(done[limit:])]
    return doomed


def run_name(cron: str, scheduled: float) -> str:
    return f"{cron}-{int(scheduled)}"


def workflow_document(spec: CronSpec, scheduled: float) -> Document:
    """The Workflow a CronWorkflow creates for one scheduled time."""
    raw = {
        "apiVersion": API_VERSION,
        "kind": "Workflow",
        "metadata": {
            "name": run_name(spec.name, scheduled),
            "namespace": spec.namespace,
            "labels": {**spec.labels, CRON_LABEL: spec.name},
            "annotations": {
                **spec.annotations,
                SCHEDULED_ANNOTATION: datetime.fromtimestamp(scheduled, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        },
        "spec": spec.workflow_spec,
    }
    # A fixed key per CronWorkflow: Catalog.add replaces the previous run's document.
    return Document(
        kind="Workflow", name=f"{spec.name}-scheduled", raw=raw, source=f"cronworkflow {spec.name}"
    )


# --------------------------------------------------------------------------------------------- act


@dataclass
class _State:
    spec: CronSpec
    next_at: float
    handles: list[Any] = field(default_factory=list)
    pending_prune: bool = False


class Scheduler:
    """Runs the CronWorkflows' schedules; `start()` a thread, or call `tick(now)` yourself."""

    def __init__(
        self,
        catalog: Catalog,
        crons: Sequence[CronSpec],
        options_factory: Callable[..., Any],  # (name) -> rpops.local.run.executor.Options
        runs_dir: Path,
        *,
        lock: threading.Lock | None = None,
        now: float | None = None,
        tick_s: float = 0.2,
        node_listeners: Sequence[Callable[..., None]] = (),
    ) -> None:
        self.catalog = catalog
        self.options_factory = options_factory
        self.runs_dir = runs_dir
        self.lock = lock or threading.Lock()
        self.tick_s = tick_s
        self.node_listeners = node_listeners
        start = time.time() if now is None else now
        self.states = {c.name: _State(c, next_fire(c, start)) for c in crons}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        for state in self.states.values():
            cron = state.spec.name

            def ran(t: float, cron: str = cron) -> bool:
                return (runs_dir / run_name(cron, t)).exists()

            missed = catch_up(state.spec, start, ran)
            if missed is not None:
                log.info(
                    "cronworkflow %s: running the missed time %s (within the starting deadline)",
                    state.spec.name,
                    run_name(state.spec.name, missed),
                )
                self._fire(state, missed, start)
            state.pending_prune = True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="rpops-cron", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def active(self) -> list[Any]:
        return [h for s in self.states.values() for h in s.handles if not h.run.done.is_set()]

    def _loop(self) -> None:
        while not self._stop.wait(self.tick_s):
            try:
                self.tick(time.time())
            except Exception:  # one bad tick must not end the schedules
                log.exception("cron: tick failed")

    def tick(self, now: float) -> None:
        for state in self.states.values():
            finished = [h for h in state.handles if h.run.done.is_set()]
            if finished:
                state.handles = [h for h in state.handles if not h.run.done.is_set()]
                state.pending_prune = True
            if state.pending_prune:
                self._prune(state.spec)
                state.pending_prune = False
            if now < state.next_at:
                continue
            scheduled = state.next_at
            state.next_at = next_fire(state.spec, max(now, scheduled))
            if state.spec.suspend:
                continue
            if verdict(scheduled, now, state.spec.starting_deadline_s) == "missed":
                log.warning(
                    "cronworkflow %s: skipped %s, %.1f s late (startingDeadlineSeconds %g)",
                    state.spec.name,
                    run_name(state.spec.name, scheduled),
                    now - scheduled,
                    state.spec.starting_deadline_s or 0,
                )
                continue
            self._fire(state, scheduled, now)

    def _fire(self, state: _State, scheduled: float, now: float) -> None:
        from rpops.local.api import start

        spec = state.spec
        active = [h for h in state.handles if not h.run.done.is_set()]
        decision = decide(spec.policy, [h.name for h in active])
        if decision.reason:
            log.info("cronworkflow %s: %s", spec.name, decision.reason)
        for h in active:
            if h.name in decision.stop:
                h.stop("Terminate")
        if not decision.start:
            return
        doc = workflow_document(spec, scheduled)
        name = run_name(spec.name, scheduled)
        try:
            with self.lock:
                self.catalog.add(doc)
                handle = start(
                    self.catalog, doc, options=self.options_factory(name), node_listeners=self.node_listeners
                )
        except UsageError as exc:
            log.error("cronworkflow %s: cannot start %s: %s", spec.name, name, exc)
            return
        state.handles.append(handle)
        log.info("cronworkflow %s: started %s", spec.name, handle.name)

    def _prune(self, spec: CronSpec) -> None:
        from rpops.local.records.runs import list_runs

        running = {h.name for h in self.active()}
        records = [
            RunRecord(
                d["metadata"]["name"], d["status"].get("phase") or "", d["status"].get("finishedAt") or ""
            )
            for d in list_runs(self.runs_dir)
            if (d["metadata"].get("labels") or {}).get(CRON_LABEL) == spec.name
            and d["metadata"]["name"] not in running
        ]
        for name in prune(records, spec.successful_limit, spec.failed_limit):
            shutil.rmtree(self.runs_dir / name, ignore_errors=True)
            log.info("cronworkflow %s: deleted the record of %s (history limits)", spec.name, name)
