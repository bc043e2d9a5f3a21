"""The promotion state as annotations, the timeline, the lock decision, the probe figures, and
the flags' validation."""

from __future__ import annotations

import json

import pytest
from rpops.core.errors import UsageError
from rpops.platform.base import AutoscalingBounds, check_annotations
from rpops.platform.service_lock import LockInfo
from rpops.steps.bluegreen import lock
from rpops.steps.bluegreen.model import (
    KEY,
    MAX_TIMELINE,
    Record,
    State,
    TimelineEntry,
    annotations_for,
    reached,
    record_from,
    timeline_end,
    timeline_start,
)
from rpops.steps.bluegreen.probes import Round, builtin_values, parse_counters, served_delta
from rpops.steps.bluegreen.settings import BlueGreenSettings, build_plan

FULL = Record(
    phase=State.SWITCHED,
    stable="v1",
    previous="v1",
    preview="v2",
    owner="wf-abc12",
    started_at="2026-01-01T00:00:00Z",
    switched_at=1700000000.5,
    replicas=3,
    autoscaling=AutoscalingBounds(2, 6),
    image="registry.example/rp:v2",
    reason=None,
    rolled_back=False,
    timeline=(TimelineEntry("deploy", 1.0, 2.0, "succeeded", "ok"), TimelineEntry("switch", 3.0)),
    lock=LockInfo("wf-abc12", "t0k", "host", 42, 1.5, 1700000300.0),
)


def test_record_round_trips_through_annotations() -> None:
    changes = annotations_for(Record(), FULL)
    check_annotations(changes)  # every key and value is a valid annotation for both drivers
    written = {k: v for k, v in changes.items() if v is not None}
    assert written[KEY + "phase"] == "switched" and written[KEY + "autoscaling"] == "2-6"
    assert record_from(written) == FULL
    assert annotations_for(FULL, FULL) == {}  # nothing changed: nothing written
    cleared = annotations_for(FULL, Record())
    assert all(v is None for v in cleared.values()) and set(cleared) == set(written)


def test_damaged_annotations_read_as_absent() -> None:
    record = record_from(
        {
            KEY + "phase": "exploded",
            KEY + "lock": "{not json",
            KEY + "replicas": "many",
            KEY + "timeline": "[1]",
        }
    )
    assert record == Record()


def test_reached_orders_forward_states_only() -> None:
    assert reached(State.SWITCHED, State.ANALYZED) and reached(State.COMPLETE, State.COMPLETE)
    assert not reached(State.SWITCHING, State.SWITCHED)
    assert not reached(State.ROLLED_BACK, State.DEPLOYED) and not reached(None, State.DEPLOYING)


def test_timeline_closes_interrupted_entries_and_stays_bounded() -> None:
    timeline = timeline_start((), "verify", 10.0)
    timeline = timeline_start(timeline, "verify", 20.0)  # a rerun after a crash
    assert [(e.result, e.end) for e in timeline] == [("interrupted", 20.0), ("running", None)]
    timeline = timeline_end(timeline, "verify", 25.0, "succeeded", "x" * 1000)
    assert timeline[-1].result == "succeeded" and len(timeline[-1].detail) == 300
    closed = timeline_end((), "rollback", 5.0, "succeeded")
    assert closed == (TimelineEntry("rollback", 5.0, 5.0, "succeeded", ""),)
    long: tuple[TimelineEntry, ...] = ()
    for i in range(100):
        long = timeline_start(long, "p", float(i))
    assert len(long) == MAX_TIMELINE
    assert len(json.dumps([e.to_json() for e in long])) < 8192


# --- the lock decision ---------------------------------------------------------------------------

ME = lock.Holder("wf-1", "host-a", 100, 5.0)


def held(owner: str = "other", host: str = "host-b", pid: int = 7, expires: float = 200.0) -> LockInfo:
    return LockInfo(owner, "tok", host, pid, 1.0, expires)


@pytest.mark.parametrize(
    ("current", "alive", "verdict"),
    [
        (None, None, lock.Verdict.TAKE),
        (held(expires=99.0), None, lock.Verdict.TAKE),  # expired
        (held(), None, lock.Verdict.HELD),  # another owner, another machine, live
        (held(host="host-a"), True, lock.Verdict.HELD),  # another live process here
        (held(host="host-a"), False, lock.Verdict.TAKE),  # its process here is gone
        (held(owner="wf-1"), None, lock.Verdict.TAKE),  # the same promotion, rerun elsewhere
        (held(owner="wf-1", host="host-a"), True, lock.Verdict.HELD),  # same name, but running now
        (held(owner="wf-1", host="host-a"), False, lock.Verdict.TAKE),
    ],
)
def test_lock_decision(current: LockInfo | None, alive: bool | None, verdict: lock.Verdict) -> None:
    assert lock.decide(current, ME, now=100.0, holder_alive=alive) is verdict


def test_lock_message_names_the_holder() -> None:
    text = lock.describe(held(owner="alice"), 150.0, Record(phase=State.ANALYZED, preview="v3"))
    assert text == "alice on host-b pid 7 is promoting v3 (phase analyzed); its lock expires in 50s"


# --- probe figures --------------------------------------------------------------------------------

METRICS = """# HELP research_platform_requests_total HTTP requests answered.
# TYPE research_platform_requests_total counter
research_platform_requests_total{method="GET",route="/health",status="200"} 90.0
research_platform_requests_total{method="GET",route="/health",status="500"} 7.0
research_platform_requests_total{method="GET",route="/ready",status="503"} 3.0
research_platform_requests_total{method="POST",route="/api/secure-eval",status="400"} 5.0
research_platform_request_duration_seconds_count{route="/health"} 97.0
"""


def test_counters_and_their_deltas() -> None:
    assert parse_counters(METRICS) == (105.0, 10.0)
    before = {"a": (100.0, 10.0), "b": (50.0, 0.0)}
    after = {"a": (130.0, 12.0), "b": (5.0, 1.0), "c": (4.0, 4.0)}  # b restarted, c is new
    assert served_delta(before, after) == (30 + 5 + 4, 2 + 1 + 4)


def test_builtin_values_of_a_round() -> None:
    r = Round(at=0.0, requests=20, errors=2, latencies_ms=tuple(float(i) for i in range(1, 21)),
              wrong_versions=("preview route answered v1, not v2",), served=(0.0, 0.0))  # fmt: skip
    values = builtin_values(r)
    assert values["error-rate"] == 0.1 and values["version"] == 1 and values["checks"] == []
    assert values["latency-p95"] == pytest.approx(19.05)
    assert values["served-error-rate"] is None  # nothing served: no data
    assert builtin_values(Round(at=0.0))["error-rate"] is None


# --- flags ----------------------------------------------------------------------------------------


def settings(**kw: object) -> BlueGreenSettings:
    return BlueGreenSettings(**{"service": "rp", "version": "v2", **kw})  # type: ignore[arg-type]


def test_plan_defaults() -> None:
    plan = build_plan("promote", settings())
    assert plan.phases == ("deploy", "wait-ready", "analyze", "switch", "verify", "finalize")
    assert (plan.progress_deadline, plan.verify_seconds, plan.scale_down_delay) == (600.0, 30.0, 30.0)
    assert plan.preview_replicas is None and plan.metrics == () and "@" in plan.owner
    assert build_plan("promote", settings(phases="finalize,deploy")).phases == ("deploy", "finalize")


@pytest.mark.parametrize(
    ("command", "kw", "message"),
    [
        ("promote", {"version": ""}, "needs --version"),
        ("deploy", {"service": "Bad_Service"}, "service name 'Bad_Service' is invalid"),
        ("promote", {"preview_replica_count": "zero"}, "--preview-replica-count 'zero'"),
        ("promote", {"preview_replica_count": "0"}, "from 1 to 1000"),
        ("promote", {"scale_down_delay_seconds": -1.0}, "--scale-down-delay-seconds -1"),
        ("promote", {"verify_seconds": float("nan")}, "--verify-seconds nan"),
        ("promote", {"progress_deadline_seconds": 0.0}, "--progress-deadline-seconds 0"),
        ("promote", {"max_error_rate": 2.0}, "--max-error-rate 2"),
        ("promote", {"analysis_yaml": "metrics: [{name: m, query: up, successCondition: 'result > 1'}]"},
         "no address is given"),
        ("promote", {"prometheus": "http://p:9090", "analysis_yaml":
                     "metrics: [{name: m, query: up, successCondition: 'result > 1', interval: 1s}]"},
         "would never end"),
        ("promote", {"prometheus": "ftp://p"}, "--prometheus"),
        ("promote", {"image": "a b"}, "--image 'a b'"),
        ("deploy", {"phases": "deploy"}, "--phases applies to"),
        ("rollback", {"reason": "  "}, "needs --reason"),
        ("promote", {"owner": "x\ny"}, "--owner"),
        ("launch", {}, "unknown phase 'launch'"),
    ],
)  # fmt: skip
def test_bad_flags_are_usage_errors(command: str, kw: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError) as err:
        build_plan(command, settings(**kw))
    assert message in str(err.value)
