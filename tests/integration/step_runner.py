"""A step's CLI for tests, each call with its own outputs directory ($RPOPS_OUTPUTS):

run = step_runner("scale", tmp_path, monkeypatch, capsys)   # in-process: main(["scale", ...])
result = run("--service", "rp", "--dry-run")
result.code, result.stdout, result.output("decision"), result.report
result = run_subprocess("health-check", tmp_path / "out", "--target", ...)  # as Argo runs it
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rpops.core.cli import main


@dataclass
class StepResult:
    code: int
    stdout: str
    stderr: str
    outputs: Path

    def output(self, name: str) -> str:
        return (self.outputs / name).read_text()

    @property
    def report(self) -> dict[str, Any]:
        report: dict[str, Any] = json.loads(self.output("report.json"))
        return report


Runner = Callable[..., StepResult]


def step_runner(
    step: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Runner:
    """`rpops STEP ARGS` in this process; outputs under tmp_path/outputs-N, N counting calls."""
    calls = itertools.count()

    def run(*args: str) -> StepResult:
        outputs = tmp_path / f"outputs-{next(calls)}"
        monkeypatch.setenv("RPOPS_OUTPUTS", str(outputs))
        try:
            code = main([step, *args])
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return StepResult(code, captured.out, captured.err, outputs)

    return run


def run_subprocess(step: str, outputs: Path, *args: str, timeout: float = 60) -> StepResult:
    """`rpops STEP ARGS` as a separate process, as a workflow step runs it."""
    env = {**os.environ, "RPOPS_OUTPUTS": str(outputs)}
    done = subprocess.run(
        [sys.executable, "-m", "rpops", step, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    return StepResult(done.returncode, done.stdout, done.stderr, outputs)
