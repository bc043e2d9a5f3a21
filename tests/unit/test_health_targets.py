"""`--target` parsing and the other input checks of health-check (all before any probe)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rpops.core.errors import UsageError
from rpops.core.parsers import http_url as check_url
from rpops.steps.health.decide import Target
from rpops.steps.health.settings import HealthSettings, parse_targets, plan


def test_repeated_flags_and_comma_separated_pairs() -> None:
    targets = parse_targets([
        "us-east=http://10.0.0.1:8000/",
        "eu-west=http://10.0.1.1:8000, ap-south=https://ap.example.internal/platform",
    ])
    assert targets == [
        Target("us-east", "http://10.0.0.1:8000"),
        Target("eu-west", "http://10.0.1.1:8000"),
        Target("ap-south", "https://ap.example.internal/platform"),
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("http://10.0.0.1:8000", "is not NAME=URL"),
        ("=http://10.0.0.1:8000", "is not NAME=URL"),
        ("a=", "is not NAME=URL"),
        ("a=http://x:1,", "is not NAME=URL"),
        ("a b=http://x:1", "name 'a b'"),
        ("-a=http://x:1", "name '-a'"),
        ("a=ftp://x/", "not an http(s) URL"),
        ("a=10.0.0.1:8000", "not an http(s) URL"),
        ("a=http://", "not an http(s) URL"),
        ("a=http://x:99999", "Port out of range"),
        ("a=http://x:1/health?x=1", "query or fragment"),
        ("a=http://x:1,a=http://y:1", "given twice"),
    ],
)
def test_malformed_targets_name_the_flag_and_the_fix(value: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_targets([value])
    text = str(caught.value)
    assert text.startswith(f"--target {value!r}")
    assert message in text
    assert caught.value.exit_code == 2


def test_no_target() -> None:
    with pytest.raises(UsageError, match="no target"):
        parse_targets([])


def test_check_url_strips_the_trailing_slash() -> None:
    assert check_url("http://127.0.0.1:8000/", "--url") == "http://127.0.0.1:8000"
    with pytest.raises(UsageError, match="--prometheus"):
        check_url("prometheus:9090", "--prometheus")


def test_plan_query_precedence_and_window(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("window: 2m\nqueries:\n  memory_mb: max(rss_mb)\n  memory_limit_mb: ''\n")
    p = plan(HealthSettings(target=("a=http://127.0.0.1:1",), prometheus="http://127.0.0.1:9090/",
                            rules=str(rules), query_cpu_percent="max(rate(cpu[$window]))"))
    assert p.prometheus == "http://127.0.0.1:9090"
    assert p.queries["cpu_percent"] == "max(rate(cpu[2m]))"  # the flag wins; $window from the file
    assert p.query_sources["cpu_percent"] == "--query-cpu-percent"
    assert p.queries["memory_mb"] == "max(rss_mb)"  # the file overrides the built-in query
    assert p.query_sources["memory_mb"] == f"--rules {rules} queries.memory_mb"
    assert "memory_limit_mb" not in p.queries  # '' skips it
    assert "[2m]" in p.queries["p95_ms"] and "$window" not in p.queries["p95_ms"]  # built-in, substituted
    flagged = plan(HealthSettings(target=("a=http://127.0.0.1:1",), prometheus="http://127.0.0.1:9090",
                                  window="45s"))
    assert "[45s]" in flagged.queries["error_rate"]


def test_plan_without_prometheus_has_no_queries() -> None:
    p = plan(HealthSettings(target=("a=http://127.0.0.1:1",)))
    assert p.prometheus is None and p.queries == {}
    assert p.ruleset.source == "built-in"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"timeout": 0.0}, "--timeout 0: must be between"),
        ({"retries": 11}, "--retries 11: must be between 0 and 10"),
        ({"samples": 1001}, "--samples 1001"),
        ({"prometheus_timeout": -1.0}, "--prometheus-timeout -1"),
        ({"status_path": "api/status"}, "--status-path 'api/status': must start with '/'"),
        ({"region": "r" * 129}, "--region: at most 128 characters"),
    ],
)
def test_plan_refuses_out_of_range_settings(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        plan(HealthSettings(target=("a=http://127.0.0.1:1",), **overrides))  # type: ignore[arg-type]
