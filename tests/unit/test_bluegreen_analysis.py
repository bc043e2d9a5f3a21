"""Analysis semantics (Argo Rollouts' AnalysisTemplates) and the analysis file."""

from __future__ import annotations

from pathlib import Path

import pytest
from rpops.clients.prometheus import parse_response
from rpops.core.errors import UsageError
from rpops.steps.bluegreen.analysis import (
    Measurement,
    MetricResult,
    MetricSpec,
    Phase,
    Tracker,
    assess,
    builtin_specs,
    judge,
    load_file,
    measure_query,
    no_data,
    parse_analysis,
    render_query,
    worst,
)

BOTH = MetricSpec("m", "q", success="result[0] < 0.5", failure="result[0] > 0.9")


# --- one measurement -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "value", "phase"),
    [
        (BOTH, [0.1], Phase.SUCCESSFUL),
        (BOTH, [0.95], Phase.FAILED),
        (BOTH, [0.7], Phase.INCONCLUSIVE),  # neither condition holds
        (MetricSpec("m", "q", success="result[0] < 0.5"), [0.7], Phase.FAILED),  # success only: false fails
        (
            MetricSpec("m", "q", failure="result[0] > 0.9"),
            [0.7],
            Phase.SUCCESSFUL,
        ),  # failure only: false passes
        (MetricSpec("m", "q", success="result > 1", failure="result > 0"), 3.0, Phase.FAILED),  # failure wins
        (BOTH, [], Phase.ERROR),  # result[0] of nothing: the condition errors
    ],
)
def test_judge_follows_argo(spec: MetricSpec, value: object, phase: Phase) -> None:
    assert judge(spec, value).phase is phase


def test_no_data_is_a_failure_unless_allowed() -> None:
    base = dict(name="m", query="q", success="result[0] < 0.5")
    assert no_data(MetricSpec(**base), "empty").phase is Phase.FAILED  # type: ignore[arg-type]
    assert no_data(MetricSpec(**base, no_data="pass"), "empty").phase is Phase.SUCCESSFUL  # type: ignore[arg-type]
    assert no_data(MetricSpec(**base, no_data="inconclusive"), "e").phase is Phase.INCONCLUSIVE  # type: ignore[arg-type]
    guarded = MetricSpec("m", "q", success="len(result) == 0 or result[0] < 0.5", no_data="evaluate")
    assert no_data(guarded, "empty").phase is Phase.SUCCESSFUL


def _answer(result_type: str, result: object) -> bytes:
    import json

    return json.dumps({"status": "success", "data": {"resultType": result_type, "result": result}}).encode()


def test_query_results_become_measurements() -> None:
    spec = MetricSpec("m", "q", success="result[0] < 0.5")
    vector = parse_response("q", 200, _answer("vector", [{"metric": {}, "value": [1, "0.25"]}]))
    assert measure_query(spec, vector).phase is Phase.SUCCESSFUL
    empty = parse_response("q", 200, _answer("vector", []))
    measured = measure_query(spec, empty)
    assert measured.phase is Phase.FAILED and "no data" in measured.message
    nan = parse_response("q", 200, _answer("vector", [{"metric": {}, "value": [1, "NaN"]}]))
    assert measure_query(spec, nan).phase is Phase.FAILED
    scalar = parse_response("q", 200, _answer("scalar", [1, "0.7"]))
    assert measure_query(MetricSpec("m", "q", success="result < 0.5"), scalar).phase is Phase.FAILED
    bad = parse_response("q", 400, b'{"status":"error","errorType":"bad_data","error":"parse error"}')
    errored = measure_query(spec, bad)
    assert errored.phase is Phase.ERROR and "parse error" in errored.message


# --- a metric over its measurements --------------------------------------------------------------


def result(*phases: Phase) -> MetricResult:
    return MetricResult("m", tuple(Measurement(p) for p in phases))


def test_assess_limits_and_count() -> None:
    spec = MetricSpec("m", "q", success="x", count=3, failure_limit=1, inconclusive_limit=0)
    assert assess(spec, result(Phase.SUCCESSFUL), False) is Phase.RUNNING
    assert assess(spec, result(Phase.FAILED), False) is Phase.RUNNING  # one failure tolerated
    assert assess(spec, result(Phase.FAILED, Phase.FAILED), False) is Phase.FAILED
    assert assess(spec, result(Phase.INCONCLUSIVE), False) is Phase.INCONCLUSIVE
    assert assess(spec, result(Phase.FAILED, Phase.SUCCESSFUL, Phase.SUCCESSFUL), False) is Phase.SUCCESSFUL
    errors = MetricSpec("m", "q", success="x", count=10, consecutive_error_limit=2)
    assert assess(errors, result(Phase.ERROR, Phase.ERROR), False) is Phase.RUNNING
    assert assess(errors, result(Phase.ERROR, Phase.ERROR, Phase.ERROR), False) is Phase.ERROR
    assert (
        assess(errors, result(Phase.ERROR, Phase.ERROR, Phase.SUCCESSFUL, Phase.ERROR), False)
        is Phase.RUNNING
    )
    # at the end of a window, a metric without failures is successful, even with no measurement
    forever = MetricSpec("m", "q", success="x", count=None, interval=1)
    assert assess(forever, result(Phase.SUCCESSFUL), True) is Phase.SUCCESSFUL
    assert assess(forever, result(), True) is Phase.SUCCESSFUL


def test_worst_phase_decides_the_run() -> None:
    assert worst([Phase.SUCCESSFUL, Phase.INCONCLUSIVE]) is Phase.INCONCLUSIVE
    assert worst([Phase.ERROR, Phase.FAILED, Phase.SUCCESSFUL]) is Phase.FAILED
    assert worst([Phase.SUCCESSFUL, Phase.RUNNING]) is Phase.RUNNING


def test_tracker_schedules_by_interval_and_stops_at_count() -> None:
    fast = MetricSpec("fast", "q", success="result < 1", interval=1.0, count=2)
    slow = MetricSpec("slow", "q", success="result < 1", interval=5.0, count=1, initial_delay=2.0)
    tracker = Tracker([fast, slow], started=100.0)
    assert [s.name for s in tracker.due(100.0)] == ["fast"]
    tracker.record(fast, judge(fast, 0.5), 100.0)
    assert tracker.due(100.5) == [] and tracker.next_time() == 101.0
    assert [s.name for s in tracker.due(102.0)] == ["fast", "slow"]
    tracker.record(fast, judge(fast, 0.5), 102.0)
    tracker.record(slow, judge(slow, 0.2), 102.0)
    assert tracker.phase() is Phase.SUCCESSFUL and tracker.next_time() is None
    failing = Tracker([fast], started=0.0)
    failing.record(fast, judge(fast, 3.0), 0.0)
    assert [r.name for r in failing.failures()] == ["fast"]


def test_builtin_metrics() -> None:
    pre = builtin_specs(max_error_rate=0.01, max_p95_ms=500.0, interval=1.0, count=3, stage="pre")
    post = builtin_specs(max_error_rate=0.01, max_p95_ms=500.0, interval=0.5, count=None, stage="post")
    assert [s.name for s in pre] == ["error-rate", "latency-p95", "version", "checks"]
    assert [s.name for s in post] == ["error-rate", "latency-p95", "version", "served-error-rate"]
    by_name = {s.name: s for s in pre}
    assert judge(by_name["error-rate"], 0.02).phase is Phase.FAILED
    assert judge(by_name["latency-p95"], 499.0).phase is Phase.SUCCESSFUL
    assert judge(by_name["version"], 1).phase is Phase.FAILED
    assert judge(by_name["checks"], ["i-0: health (HTTP 503)"]).phase is Phase.FAILED
    assert {s.name: s.no_data for s in post}["served-error-rate"] == "pass"


# --- the analysis file ---------------------------------------------------------------------------

GOOD = """
metrics:
  - name: error-rate
    query: sum(rate(x{$green}[1m]))
    successCondition: result[0] <= 0.01
    failureCondition: result[0] > 0.05
    interval: 30s
    count: 4
    failureLimit: 1
    inconclusiveLimit: 2
    consecutiveErrorLimit: 3
    when: post
  - name: latency
    provider:
      prometheus: {address: "http://prom:9090", query: 'histogram_quantile(0.95, x{version="$version"})'}
    failureCondition: result[0] > 0.5
    allowEmpty: true
    initialDelay: 500ms
"""


def test_parse_analysis() -> None:
    first, second = parse_analysis(GOOD, "a.yaml")
    assert first == MetricSpec(
        name="error-rate",
        query="sum(rate(x{$green}[1m]))",
        success="result[0] <= 0.01",
        failure="result[0] > 0.05",
        interval=30.0,
        count=4,
        failure_limit=1,
        inconclusive_limit=2,
        consecutive_error_limit=3,
        when="post",
    )
    assert (second.address, second.no_data, second.count, second.initial_delay) == (
        "http://prom:9090",
        "pass",
        1,
        0.5,
    )
    template = "kind: AnalysisTemplate\nspec:\n" + "\n".join("  " + line for line in GOOD.splitlines())
    assert parse_analysis(template, "t.yaml") == [first, second]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("metrics: []", "non-empty list"),
        ("- a", "must hold `metrics:`"),
        ("metrics: [{name: m, query: up}]", "needs a successCondition or a failureCondition"),
        ("metrics: [{name: m, successCondition: 'result>0'}]", "has no query"),
        ("metrics: [{name: m, query: up, successCondition: 'result >'}]", "does not compile"),
        ("metrics: [{name: m, query: up, successCondition: 'open(\"/etc/passwd\")'}]", "does not compile"),
        ("metrics: [{name: m, query: up, successCondition: 'result>0', interval: soon}]", "invalid duration"),
        ("metrics: [{name: m, query: up, successCondition: 'result>0', count: 0}]", "between 1 and"),
        ("metrics: [{name: m, query: up, successCondition: 'result>0', count: 3}]", "needs an interval"),
        ("metrics: [{name: m, query: up, failureCondition: 'result>0', noDataPolicy: ignore}]",
         "noDataPolicy"),
        ("metrics: [{name: m, query: 'x{$pod}', successCondition: 'result>0'}]",
         "unknown placeholder(s) $pod"),
        ("metrics: [{name: m, query: up, succesCondition: 'result > 1'}]",
         "unknown field(s) succesCondition"),
        ("metrics: [{name: m, query: up, failureCondition: 'result > 1'}, "
         "{name: m, query: up, failureCondition: 'result > 1'}]", "appear more than once"),
        ("metrics: [{name: m, provider: {datadog: {}}, successCondition: 'result>0'}]", "only `prometheus"),
        ("metrics: [{name: 'a b', query: up, successCondition: 'result>0'}]", "name 'a b'"),
        ("metrics: [", "not valid YAML"),
    ],
)  # fmt: skip
def test_bad_analysis_is_a_usage_error(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=None) as err:
        parse_analysis(text, "a.yaml")
    assert message in str(err.value)


def test_load_file(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(GOOD)
    assert len(load_file(str(path))) == 2
    with pytest.raises(UsageError, match="no such file"):
        load_file(str(tmp_path / "missing.yaml"))


def test_render_query_substitutes_placeholders() -> None:
    values = {
        "$service": "rp",
        "$version": "v2",
        "$stable": "v1",
        "$namespace": "ns",
        "$instances": "127\\\\.0\\\\.0\\\\.1:4000",
        "$green": 'namespace="ns",pod=~"rp-v2-.*"',
    }
    query = 'sum(rate(x{$green,version="$version"}[1m])) / sum(rate(x{version="$stable"}[1m]))'
    assert render_query(query, values) == (
        'sum(rate(x{namespace="ns",pod=~"rp-v2-.*",version="v2"}[1m])) / sum(rate(x{version="v1"}[1m]))'
    )
