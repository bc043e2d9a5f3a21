"""rpops.alerting: reading an alert's rule as evidence (pure parts), and what each step of an
alert-driven recovery concludes from it."""

from __future__ import annotations

import pytest
from rpops.alerting import catalog, verdict
from rpops.alerting.evidence import (
    LATEST,
    ONSET,
    Comparison,
    Rule,
    judge,
    matches,
    measured_query,
    parse_labels,
    split_expr,
)
from rpops.core.errors import UsageError

LABELS = {
    "alertname": "HighCPU",
    "service": "research-platform",
    "region": "us-east",
    "remediation": "research-platform-recovery",
    "severity": "warning",
}


def rule(query: str = "research_platform_cpu_utilisation_ratio > 0.9", firing: bool = True) -> Rule:
    return Rule("HighCPU", query, for_s=300, interval_s=30, firing=(LABELS,) if firing else ())


@pytest.mark.parametrize("alert", [a for a in catalog.ALERTS], ids=lambda a: a.name)
def test_every_catalogued_expression_splits_back_into_its_parts(alert: catalog.Alert) -> None:
    got = split_expr(alert.expr)
    assert got == Comparison(alert.value, alert.op, alert.threshold_value)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (
            'count by (region) (up{job=~"a|b>c"} == 0) > 0',
            ('count by (region) (up{job=~"a|b>c"} == 0)', ">", 0),
        ),
        ('x{a!~"b"} <= 2.5', ('x{a!~"b"}', "<=", 2.5)),
        ("rate(x[5m]) * 100 >= 1e3", ("rate(x[5m]) * 100", ">=", 1000)),
        ('x{l="a \\" > 1"} != 3', ('x{l="a \\" > 1"}', "!=", 3)),
    ],
)
def test_split_finds_the_top_level_comparison(query: str, expected: tuple[str, str, float]) -> None:
    assert split_expr(query) == Comparison(*expected)


@pytest.mark.parametrize("query", ["up", "x > bool 1", "x > y", "> 1", "(x > 1)"])
def test_expressions_that_are_no_threshold_are_refused(query: str) -> None:
    with pytest.raises(ValueError):
        split_expr(query)


def test_series_are_matched_on_the_labels_both_carry() -> None:
    assert matches({"region": "us-east"}, LABELS)
    assert matches({}, LABELS)
    assert matches({"instance": "x"}, LABELS)  # a label the alert lacks does not decide
    assert not matches({"region": "eu-west"}, LABELS)


def test_onset_averages_the_value_over_the_rules_own_window() -> None:
    r, c = rule(), split_expr(rule().query)
    assert measured_query(r, c, ONSET) == "avg_over_time((research_platform_cpu_utilisation_ratio)[300s:30s])"
    assert measured_query(r, c, LATEST) == "research_platform_cpu_utilisation_ratio"
    short = Rule("HighCPU", r.query, for_s=0, interval_s=1)  # `for: 0s`: at least one evaluation
    assert (
        measured_query(short, c, ONSET) == "avg_over_time((research_platform_cpu_utilisation_ratio)[1s:1s])"
    )


def test_judge_reads_only_the_alerts_own_series() -> None:
    r = rule()
    c = split_expr(r.query)
    samples = [({"region": "eu-west"}, 0.99), ({"region": "us-east"}, 0.95)]
    ev = judge(r, c, ONSET, samples, LABELS)
    assert (ev.value, ev.holds, ev.firing, dict(ev.series)) == (0.95, True, True, {"region": "us-east"})
    assert "HighCPU: 0.95 averaged over 300s > 0.9 holds (the alert is firing)" == ev.summary
    low = judge(r, c, ONSET, [({"region": "us-east"}, 0.64)], LABELS)
    assert (low.value, low.holds) == (0.64, False)
    none = judge(rule(firing=False), c, LATEST, [({"region": "eu-west"}, 0.99)], LABELS)
    assert (none.value, none.holds, none.firing) == (None, False, False)
    assert "no series" in none.summary


def test_labels_are_a_json_object_of_strings() -> None:
    assert parse_labels('{"region": "us-east"}') == {"region": "us-east"}
    assert parse_labels("") == {}
    for bad in ("{", "[]", '{"a": 1}'):
        with pytest.raises(UsageError, match="--alert-labels"):
            parse_labels(bad)


# --------------------------------------------------------------------------------------------- verdicts


def evidence(value: float | None, firing: bool, reading: str = ONSET) -> object:
    r = rule(firing=firing)
    samples = [] if value is None else [({"region": "us-east"}, value)]
    return judge(r, split_expr(r.query), reading, samples, LABELS)


def test_the_first_check_remediates_only_what_the_alert_still_shows() -> None:
    holds = verdict.check(evidence(0.97, True), "overloaded")  # type: ignore[arg-type]
    assert (holds.status, holds.outcome, holds.exit_code) == ("overloaded", "remediate", 0)
    resolved = verdict.check(evidence(0.4, False), "overloaded")  # type: ignore[arg-type]
    assert (resolved.status, resolved.outcome, resolved.exit_code) == ("healthy", "resolved", 0)
    # Firing, but its own expression does not hold: a distinct outcome and a failed step, never
    # a quiet "healthy".
    odd = verdict.check(evidence(0.64, True), "overloaded")  # type: ignore[arg-type]
    assert (odd.outcome, odd.exit_code) == ("not-remediable", 1)
    assert "nothing to remediate while the alert fires" in odd.reason


def test_the_second_check_says_whether_the_alert_cleared() -> None:
    cleared = verdict.verify(evidence(0.5, True, LATEST), "overloaded", 60)  # type: ignore[arg-type]
    assert (cleared.status, cleared.outcome, cleared.exit_code) == ("healthy", "cleared", 0)
    still = verdict.verify(evidence(0.95, True, LATEST), "overloaded", 60)  # type: ignore[arg-type]
    assert (still.status, still.outcome, still.exit_code) == ("overloaded", "still-firing", 1)
    assert "did not clear the alert within 60s" in still.reason


def test_only_remediable_alerts_have_a_status() -> None:
    assert verdict.alert_status("HighCPU") == "overloaded"
    assert verdict.alert_status("TargetDown") == "unhealthy"
    for name in ("AutoScalingTriggered", "NoSuchAlert"):
        with pytest.raises(ValueError, match="not a remediable alert"):
            verdict.alert_status(name)


# --------------------------------------------------------------------------------------------- scale


def test_a_scale_step_that_changes_nothing_while_the_alert_holds_fails() -> None:
    from types import SimpleNamespace

    from rpops.steps.scale.decide import alert_stuck

    holds, gone = evidence(0.97, True), evidence(0.4, False)
    assert alert_stuck(SimpleNamespace(evidence=holds, promotion=""), scaled=False)  # type: ignore[arg-type]
    assert not alert_stuck(SimpleNamespace(evidence=holds, promotion=""), scaled=True)  # type: ignore[arg-type]
    promoting = SimpleNamespace(evidence=holds, promotion="promotion in progress: bg-1 holds it")
    assert not alert_stuck(promoting, scaled=False)  # type: ignore[arg-type]
    assert not alert_stuck(SimpleNamespace(evidence=gone, promotion=""), scaled=False)  # type: ignore[arg-type]
    assert not alert_stuck(SimpleNamespace(evidence=None, promotion=""), scaled=False)  # type: ignore[arg-type]


def test_a_live_promotion_lock_is_seen_by_the_scale_step() -> None:
    from rpops.platform.service_lock import LockInfo
    from rpops.steps.bluegreen.model import Record, annotations_for
    from rpops.steps.scale.observe import promotion_in_progress

    lock = LockInfo(owner="bluegreen-v2", token="t", host="h", pid=1, pid_start=0.0, expires=1000.0)
    annotations = {k: v for k, v in annotations_for(Record(), Record(lock=lock)).items() if v is not None}

    class Driver:
        def annotations(self, service: str) -> dict[str, str]:
            return annotations

    assert promotion_in_progress(Driver(), "research-platform", now=900.0).startswith(  # type: ignore[arg-type]
        "promotion in progress: bluegreen-v2 holds research-platform"
    )
    assert promotion_in_progress(Driver(), "research-platform", now=1001.0) == ""  # type: ignore[arg-type]


def test_the_rules_and_query_answers_of_prometheus_are_read() -> None:
    from rpops.alerting.evidence import rule_from, samples_from

    answer = {
        "groups": [
            {
                "name": "research-platform.alerts",
                "interval": 1,
                "rules": [
                    {"type": "recording", "name": "HighCPU", "query": "x"},
                    {
                        "type": "alerting",
                        "name": "HighCPU",
                        "query": "research_platform_cpu_utilisation_ratio > 0.9",
                        "duration": 300,
                        "alerts": [
                            {"state": "firing", "labels": LABELS},
                            {"state": "pending", "labels": {**LABELS, "region": "eu-west"}},
                        ],
                    },
                ],
            }
        ]
    }
    r = rule_from(answer, "HighCPU", "http://prom")
    assert (r.for_s, r.interval_s, r.firing, len(r.pending)) == (300, 1, (LABELS,), 1)
    with pytest.raises(UsageError, match="no alerting rule of that name"):
        rule_from(answer, "HighMemory", "http://prom")
    vector = {
        "resultType": "vector",
        "result": [{"metric": {"__name__": "x", "region": "us-east"}, "value": [1, "0.97"]}],
    }
    assert samples_from(vector) == [({"region": "us-east"}, 0.97)]
    assert samples_from({"resultType": "scalar", "result": [1, "NaN"]})[0][1] != 0.97
