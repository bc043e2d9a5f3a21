"""The flags of `rpops scale` and `rpops optimize`: help, on/off switches, input checks."""

from __future__ import annotations

import argparse

import pytest
from rpops.core.cli import build_parser, main
from rpops.core.errors import UsageError
from rpops.core.settings import from_args
from rpops.steps.optimize.settings import OptimizeSettings
from rpops.steps.optimize.settings import Plan as OptimizePlan
from rpops.steps.optimize.settings import plan as optimize_plan
from rpops.steps.scale.settings import ScaleSettings
from rpops.steps.scale.settings import plan as scale_plan


@pytest.mark.parametrize("command", ["scale", "optimize"])
def test_help_lists_every_flag_and_the_outputs(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--service" in out and "--prometheus" in out and "Outputs:" in out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], False),
        (["--dry-run"], True),
        (["--dry-run", "true"], True),
        (["--dry-run", "false"], False),
        (["--dry-run", "FALSE"], False),
        (["--no-dry-run"], False),
    ],
)
def test_switches_take_an_optional_value(argv: list[str], expected: bool) -> None:
    args = build_parser("scale").parse_args(["--service", "rp", *argv])
    assert args.dry_run is expected


def test_a_switch_refuses_other_values(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser("optimize").parse_args(
            ["--service", "rp", "--prometheus", "http://p:9090", "--apply", "maybe"]
        )
    assert info.value.code == 2 and "'maybe' is not true or false" in capsys.readouterr().err


def scale_settings(*argv: str) -> ScaleSettings:
    return from_args(ScaleSettings, build_parser("scale").parse_args(list(argv)))


def test_scale_plan_checks_inputs_before_any_platform_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RPOPS_PLATFORM", "local")
    p = scale_plan(
        scale_settings(
            "--service", "rp", "--min-replicas", "2", "--max-replicas", "4", "--now", "2027-01-04T09:00:00Z"
        )
    )
    assert (p.bounds.min_replicas, p.bounds.max_replicas, p.version) == (2, 4, None)
    assert p.now == 1799053200.0 and p.look_ahead_s == 1800 and p.history_s == 7 * 86400
    with pytest.raises(UsageError, match="service name 'Bad_Name' is invalid"):
        scale_plan(scale_settings("--service", "Bad_Name"))
    with pytest.raises(UsageError, match="raise --step-seconds to at least"):
        scale_plan(
            scale_settings(
                "--service",
                "rp",
                "--mode",
                "predictive",
                "--prometheus",
                "http://p:9090",
                "--history-days",
                "30",
                "--step-seconds",
                "60",
            )
        )
    monkeypatch.setenv("RPOPS_PLATFORM", "nomad")
    with pytest.raises(UsageError, match="platform 'nomad' is unknown"):
        scale_plan(scale_settings("--service", "rp"))


def test_optimize_plan_defaults_follow_the_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    def plan(*argv: str) -> OptimizePlan:
        args: argparse.Namespace = build_parser("optimize").parse_args(list(argv))
        return optimize_plan(from_args(OptimizeSettings, args))

    monkeypatch.setenv("RPOPS_PLATFORM", "kubernetes")
    p = plan("--service", "rp", "--prometheus", "http://p:9090")
    assert "container_cpu_usage_seconds_total" in p.queries["cpu"] and p.step_s == 60
    assert p.rightsizing.cpu_percentile == 95 and p.rightsizing.memory_buffer == 0.15
    monkeypatch.setenv("RPOPS_PLATFORM", "local")
    p = plan("--service", "rp", "--prometheus", "http://p:9090", "--memory-query", "max(x{$selector})")
    assert "process_cpu_seconds_total" in p.queries["cpu"] and p.query_sources["memory"] == "--memory-query"
    with pytest.raises(UsageError, match="--prometheus is empty"):
        plan("--service", "rp", "--prometheus", "")
