"""health-check rules files: merging, custom rules, and every way a file is refused (exit 2)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from rpops.clients.probe import ProbeResult
from rpops.core.errors import UsageError
from rpops.steps.health.decide import (
    QUERY_NAMES,
    Target,
    TargetProbe,
    assess_target,
    classify,
    signal_names,
)
from rpops.steps.health.rulefile import DEFAULT_RULES_PATH, load_rules


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def names_for(cpu: float = 10.0, p95: float = 5.0, region: str = "") -> dict[str, object]:
    def r(path: str, body: bytes, elapsed: float = 5.0) -> ProbeResult:
        return ProbeResult(method="GET", url=f"http://t{path}", status=200, elapsed_ms=elapsed, attempts=1,
                           body=body)

    health = b'{"status": "healthy", "checks": {"security": true}}'
    probe = TargetProbe(target=Target("t", "http://t"), health=r("/health", health), ready=r("/ready", b"{}"),
                        status=r("/s", b'{"cpu_percent": %f, "memory_mb": 50}' % cpu),
                        samples=tuple(r("/health", health, p95) for _ in range(3)))
    return signal_names([assess_target(probe)], None, region)


def test_builtin_rules_load_with_standards_thresholds() -> None:
    rules = load_rules(None)
    assert rules.source == "built-in"
    assert [r.name for r in rules.rules] == [
        "target-unreachable", "target-unhealthy", "cpu-critical", "memory-critical", "slow-and-busy", "slow",
        "errors", "cpu-high", "memory-high", "not-ready"]
    assert rules.default_status == "healthy"
    t = rules.thresholds
    response = (t["response_target_ms"], t["response_acceptable_ms"], t["response_critical_ms"])
    assert response == (500, 1000, 2000)
    assert (t["memory_target_mb"], t["memory_acceptable_mb"], t["memory_critical_mb"]) == (1024, 2048, 4096)
    assert (t["cpu_target_percent"], t["cpu_acceptable_percent"], t["cpu_critical_percent"]) == (50, 70, 90)
    assert set(rules.queries) == set(QUERY_NAMES)
    assert "research_platform_request_duration_seconds_bucket" in rules.queries["p95_ms"]
    assert rules.window == "5m"
    assert DEFAULT_RULES_PATH.is_file()


def test_thresholds_only_file_keeps_the_builtin_rules(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path, """
        thresholds:
          cpu_critical_percent: 80
        queries:
          cpu_percent: max(my_cpu)
        window: 1m
    """))
    assert [r.name for r in rules.rules][:3] == ["target-unreachable", "target-unhealthy", "cpu-critical"]
    assert rules.thresholds["cpu_critical_percent"] == 80
    assert rules.thresholds["response_critical_ms"] == 2000  # the rest kept
    assert rules.queries["cpu_percent"] == "max(my_cpu)"
    assert rules.queries["memory_mb"] == "max(research_platform_memory_usage_mb)"
    assert rules.window == "1m"
    assert classify(names_for(cpu=85.0), rules).status == "overloaded"
    assert classify(names_for(cpu=85.0), load_rules(None)).status == "degraded"  # over acceptable only


def test_custom_rules_replace_the_builtin_ones(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path, """
        version: 1
        thresholds:
          eu_p95_ms: 10
        rules:
          - name: eu-strict
            when: region == "eu" and p95_ms > eu_p95_ms
            status: degraded
            reason: "EU p95 {p95_ms} ms over {eu_p95_ms} ms"
          - name: anything-slow
            when: p95_ms > 100
            status: degraded
        default:
          status: healthy
          reason: fine in {region}
    """))
    assert [r.name for r in rules.rules] == ["eu-strict", "anything-slow"]
    eu = classify(names_for(p95=20.0, region="eu"), rules)
    assert (eu.status, eu.rule, eu.reason) == ("degraded", "eu-strict", "EU p95 20 ms over 10 ms")
    us = classify(names_for(p95=20.0, region="us"), rules)
    assert (us.status, us.rule, us.reason) == ("healthy", "default", "fine in us")
    slow = classify(names_for(p95=200.0, region="us"), rules)
    assert slow.rule == "anything-slow" and slow.reason == "rule anything-slow: p95_ms > 100"


BAD_FILES = [
    ("not a mapping", "- a\n- b\n", "must be a YAML mapping"),
    ("unknown key", "thresholds: {}\nrulez: []\n", "unknown key(s) rulez"),
    ("version", "version: 2\n", "version 2 is not supported"),
    ("rules without default", "rules:\n  - {name: a, when: 'True', status: healthy}\n",
     "needs a final 'default:'"),
    ("default without rules", "default: {status: healthy}\n", "'default:' without 'rules:'"),
    ("empty rules", "rules: []\ndefault: {status: healthy}\n", "non-empty list"),
    ("rule not a mapping", "rules: [x]\ndefault: {status: healthy}\n", "rule #1 must be a mapping"),
    ("missing when", "rules:\n  - {name: a, status: healthy}\ndefault: {status: healthy}\n", "missing when"),
    ("bad status", "rules:\n  - {name: a, when: 'True', status: sick}\ndefault: {status: healthy}\n",
     "status 'sick' is not one of healthy, degraded, overloaded, unhealthy"),
    ("bad default status", "rules:\n  - {name: a, when: 'True', status: healthy}\ndefault: {status: ok}\n",
     "default: status 'ok'"),
    ("rule key typo",
     "rules:\n  - {name: a, when: 'True', status: healthy, reson: x}\ndefault: {status: healthy}\n",
     "unknown key(s) reson"),
    ("duplicate names", "rules:\n  - {name: a, when: 'True', status: healthy}\n"
     "  - {name: a, when: 'False', status: degraded}\ndefault: {status: healthy}\n", "used twice"),
    ("bad rule name",
     "rules:\n  - {name: 'a b', when: 'True', status: healthy}\ndefault: {status: healthy}\n",
     "name must be"),
    ("empty when", "rules:\n  - {name: a, when: '', status: healthy}\ndefault: {status: healthy}\n",
     "non-empty expression"),
    ("unknown name",
     "rules:\n  - {name: a, when: 'p99_ms > 1', status: degraded}\ndefault: {status: healthy}\n",
     "rule 'a': 'when: p99_ms > 1' cannot be evaluated"),
    ("syntax error",
     "rules:\n  - {name: a, when: 'p95_ms >', status: degraded}\ndefault: {status: healthy}\n",
     "'when' was refused"),
    ("refused import", "rules:\n  - {name: a, when: \"__import__('os').system('true')\", status: degraded}\n"
     "default: {status: healthy}\n", "'when' was refused"),
    ("refused dunder", "rules:\n  - {name: a, when: 'region.__class__', status: degraded}\n"
     "default: {status: healthy}\n", "rule #1 ('a')"),
    ("unknown placeholder", "rules:\n  - {name: a, when: 'True', status: degraded, reason: '{nope}'}\n"
     "default: {status: healthy}\n", "reason uses unknown name(s) nope"),
    ("threshold shadows a signal", "thresholds: {p95_ms: 3}\n", "would hide the signal"),
    ("threshold not a number", "thresholds: {x: fast}\n", "threshold 'x' must be a number"),
    ("threshold bool", "thresholds: {x: true}\n", "threshold 'x' must be a number"),
    ("unknown query", "queries: {p99_ms: up}\n", "unknown query 'p99_ms'"),
    ("query not a string", "queries: {p95_ms: 3}\n", "must be a PromQL string"),
    ("bad window", "window: five minutes\n", "not a Prometheus duration"),
]


@pytest.mark.parametrize(("case", "text", "message"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_rules_files_are_refused_naming_the_file(tmp_path: Path, case: str, text: str,
                                                     message: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(UsageError) as caught:
        load_rules(str(path))
    assert str(caught.value).startswith(f"--rules {path}: ")
    assert message in str(caught.value)
    assert caught.value.exit_code == 2


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "thresholds:\n  a: 1\n  b: [1, 2\n")
    with pytest.raises(UsageError, match=r"invalid YAML at line \d+, column \d+"):
        load_rules(path)


def test_unsafe_yaml_tags_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "thresholds: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(UsageError, match="invalid YAML"):
        load_rules(path)


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read the rules file"):
        load_rules(str(tmp_path / "missing.yaml"))
    with pytest.raises(UsageError, match="cannot read the rules file"):
        load_rules(str(tmp_path))  # a directory
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00rules")
    with pytest.raises(UsageError, match="not UTF-8"):
        load_rules(str(binary))


def test_a_rule_failing_on_observed_values_is_a_usage_error(tmp_path: Path) -> None:
    # Passes the dry run (a one-name placeholder tuple), fails on the real, empty tuple.
    rules = load_rules(write(tmp_path, """
        rules:
          - name: first-failing
            when: failing_names[0] == "x"
            status: unhealthy
        default: {status: healthy}
    """))
    with pytest.raises(UsageError, match="rule 'first-failing' failed on the observed values"):
        classify(names_for(), rules)
