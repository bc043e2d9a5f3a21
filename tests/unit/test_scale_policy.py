"""The scaling policy file, the annotations state, query rendering and the predictive decision."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from rpops.clients.promql import instances_regex, render
from rpops.core.errors import UsageError
from rpops.platform.base import AutoscalingBounds
from rpops.steps.scale.policy import load_policy
from rpops.steps.scale.predictive import Capacity, ForecastSummary, decide_predictive, measure_capacity
from rpops.steps.scale.reactive import Bounds, Decision, Reading, evaluate
from rpops.steps.scale.state import (
    HPA_BASE_MIN,
    LAST_TIME,
    RECOMMENDATIONS,
    ScaleState,
    parse_time,
    read_state,
    scaled_annotations,
)

NOW = 1_800_000_000.0
BOUNDS = Bounds(1, 10)


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_default_policy_is_the_platforms() -> None:
    p = load_policy()
    got = {r.name: (r.scale_up, r.scale_down, r.cooldown_seconds) for r in p.resources}
    assert got == {"cpu": (0.7, 0.3, 120.0), "memory": (0.8, 0.4, 180.0), "tasks": (0.8, 0.3, 60.0)}
    assert (p.tolerance, p.scale_down_stabilization_seconds) == (0.1, 300.0)
    assert (p.predictive.history_days, p.predictive.min_history_hours, p.predictive.look_ahead_minutes) == (
        7.0,
        24.0,
        30.0,
    )
    assert "research_platform_cpu_usage_percent" in p.resource("cpu").query
    assert "research_platform_memory_usage_mb" in p.resource("memory").query
    assert "research_platform_requests_total" in p.resource("tasks").query


def test_a_policy_file_merges_over_the_default(tmp_path: Path) -> None:
    p = load_policy(
        write(
            tmp_path,
            """
        max_replicas: 20
        resources:
          cpu: {scale_up: 0.6, scale_down: 0.2}
        predictive: {look_ahead_minutes: 45}
    """,
        )
    )
    assert p.max_replicas == 20 and p.min_replicas == 1
    cpu = p.resource("cpu")
    assert (cpu.scale_up, cpu.scale_down, cpu.cooldown_seconds) == (0.6, 0.2, 120.0)
    assert p.resource("memory").scale_up == 0.8
    assert p.predictive.look_ahead_minutes == 45 and p.predictive.history_days == 7
    assert p.source.startswith("--policy ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("maxreplicas: 3\n", "unknown key(s) maxreplicas"),
        ("min_replicas: 5\nmax_replicas: 2\n", "min_replicas 5 is greater than max_replicas 2"),
        ("max_replicas: 0\n", "max_replicas is 0"),
        ("max_replicas: 5000\n", "max_replicas is 5000"),
        ("resources: {cpu: {scale_up: 0.3, scale_down: 0.5}}\n", "scale_down 0.5 must be below scale_up 0.3"),
        ("resources: {cpu: {scale_up: '0.7'}}\n", "resources.cpu.scale_up must be a number"),
        ("resources: {cpu: {cooldown_seconds: -1}}\n", "cooldown_seconds is -1"),
        ("resources: {gpu: {scale_up: 0.5}}\n", "unknown resource(s) gpu"),
        ("resources: {cpu: {status_field: cpu}}\n", "status_field 'cpu' is not in /api/performance/status"),
        ("resources: {cpu: {treshold: 1}}\n", "resources.cpu: unknown key(s) treshold"),
        ("rate_window: soon\n", "is not a PromQL duration"),
        ("tolerance: 1.5\n", "tolerance is 1.5"),
        ("predictive: {min_history_hours: 500}\n", "exceeds history_days x 24"),
        ("version: 2\n", "version 2 is not supported"),
        ("- a list\n", "must be a YAML mapping"),
        ("max_replicas: [1\n", "invalid YAML at line"),
    ],
)
def test_policy_errors_name_the_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        load_policy(write(tmp_path, text))
    assert message in str(info.value) and "--policy" in str(info.value)


def test_unreadable_policy(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read the policy file"):
        load_policy(str(tmp_path / "missing.yaml"))


# --- annotations ------------------------------------------------------------------------------


def test_state_round_trips_through_annotations() -> None:
    history = ((NOW - 100, 3), (NOW, 4))
    ann = scaled_annotations(NOW, "scale-up to 4", "cpu", history, 2)
    state = read_state({k: v for k, v in ann.items() if v is not None})
    assert state.last_scale_time == NOW and state.last_scale_reason == "scale-up to 4"
    assert state.last_scale_resource == "cpu" and state.recommendations == history
    assert state.hpa_base_min == 2 and state.problems == ()


def test_garbled_annotations_are_ignored_not_fatal() -> None:
    state = read_state({LAST_TIME: "yesterday", RECOMMENDATIONS: "{not json", HPA_BASE_MIN: "-3"})
    assert state == ScaleState()
    assert len(state.problems) == 3 and "yesterday" in state.problems[0]
    assert read_state({RECOMMENDATIONS: '[[1, 2], ["x", 3], [5, -1], [6, true]]'}).recommendations == (
        (1.0, 2),
    )


def test_parse_time_accepts_z_and_naive_as_utc() -> None:
    assert (
        parse_time("2027-01-15T08:00:00Z")
        == parse_time("2027-01-15T08:00:00")
        == parse_time("2027-01-15T09:00:00+01:00")
    )


# --- queries ----------------------------------------------------------------------------------


def test_render_substitutes_selector_then_placeholders() -> None:
    regex = instances_regex(["http://127.0.0.1:4000", "http://127.0.0.1:3999"])
    assert regex == "127\\\\.0\\\\.0\\\\.1:3999|127\\\\.0\\\\.0\\\\.1:4000"
    text = render(
        "sum(rate(x{$selector}[$window]))",
        label="q",
        selector='namespace="$namespace",pod=~"$service-$version-.*"',
        window="1m",
        service="rp",
        version="v2",
        namespace="ns",
        instances=regex,
    )
    assert text == 'sum(rate(x{namespace="ns",pod=~"rp-v2-.*"}[1m]))'
    with pytest.raises(UsageError, match=r"unknown placeholder\(s\) \$windw"):
        render(
            "rate(x[$windw])",
            label="q",
            selector="",
            window="1m",
            service="s",
            version="v",
            namespace="",
            instances="",
        )
    # a regex anchor is not a placeholder
    assert (
        render(
            'x{a=~"b$"}',
            label="q",
            selector="",
            window="",
            service="",
            version="",
            namespace="",
            instances="",
        )
        == 'x{a=~"b$"}'
    )


# --- predictive decision ----------------------------------------------------------------------


def forecast(peak: float) -> ForecastSummary:
    return ForecastSummary(peak=peak, peak_at=NOW + 900, points=((NOW + 900, peak),), model={})


def predictive(
    peak: float | None,
    *,
    current: int = 2,
    apply: bool = False,
    capacity: float | None = 40.0,
    hpa: AutoscalingBounds | None = None,
    bounds: Bounds = BOUNDS,
) -> Decision:
    return decide_predictive(
        current=current,
        hpa=hpa,
        bounds=bounds,
        state=ScaleState(),
        forecast=None if peak is None else forecast(peak),
        no_forecast_reason="not enough history (2 h)",
        capacity=Capacity(capacity, "test"),
        apply=apply,
        now=NOW,
    )


def test_predictive_prescales_only_ahead_of_a_peak() -> None:
    d = predictive(100.0)  # needs ceil(100 / 40) = 3 > 2: forecast only by default
    assert (d.decision, d.action, d.target) == ("scale-up", "none", 3)
    assert "forecast only" in d.reason and "--apply-forecast" in d.reason
    d = predictive(100.0, apply=True)
    assert (d.decision, d.action, d.target) == ("scale-up", "scale", 3)
    d = predictive(100.0, apply=True, hpa=AutoscalingBounds(2, 8))
    assert (d.action, d.new_hpa, d.hpa_base_min) == ("set-min", AutoscalingBounds(3, 8), 2)
    d = predictive(1000.0, apply=True)
    assert d.target == 10 and "bounded to 10" in d.formula


def test_predictive_never_scales_in() -> None:
    d = predictive(10.0, current=5, apply=True)
    assert (d.decision, d.action) == ("hold", "none") and "never scales in" in d.reason
    d = predictive(100.0, current=2, apply=True, hpa=AutoscalingBounds(4, 8))
    assert (d.decision, d.action) == ("hold", "none")  # the HPA's minimum already covers it


def test_predictive_without_forecast_or_capacity_decides_nothing() -> None:
    d = predictive(None)
    assert d.decision == "no-decision" and "not enough history" in d.reason
    d = predictive(100.0, capacity=None)
    assert d.decision == "no-decision" and "--replica-capacity-rps" in d.reason


def test_capacity_is_measured_at_the_most_loaded_resource() -> None:
    from rpops.steps.scale.policy import load_policy

    p = load_policy()
    results = [
        evaluate(Reading("cpu", 35.0, 100.0, "t"), p.resource("cpu"), 3, 0.1),  # 0.35 of target 0.7 -> x2
        evaluate(Reading("memory", 256.0, 512.0, "t"), p.resource("memory"), 3, 0.1),  # 0.5 of 0.8 -> x1.6
    ]
    cap = measure_capacity(60.0, 3, results)
    assert cap.rps == pytest.approx(20.0 * 1.6) and "memory" in cap.source
    assert measure_capacity(0.0, 3, results).rps is None
    idle = [evaluate(Reading("cpu", 1.0, 100.0, "t"), p.resource("cpu"), 3, 0.1)]
    assert measure_capacity(60.0, 3, idle).rps is None
