"""Bad input is refused before anything starts (exit 2), naming the template, the step and the field."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from local_helpers import RPOPS, WORKFLOWS, catalog
from rpops.core.errors import UsageError
from rpops.local.api import start
from rpops.local.load.catalog import load_documents

BAD = sorted((WORKFLOWS / "bad").glob("*.yaml"))


def _needles(path: Path) -> list[str]:
    doc = yaml.safe_load(path.read_text())
    return json.loads(doc["metadata"]["annotations"]["rpops.test/refused"])


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_refused_document(path: Path, runs_dir: Path) -> None:
    docs = load_documents([path])
    with pytest.raises(UsageError) as err:
        start(docs, docs.runnable()[0], {}, runs_dir)
    message = str(err.value)
    assert "nothing was started" in message
    assert str(path) in message or docs.runnable()[0].name in message
    for needle in _needles(path):
        assert needle in message
    assert not runs_dir.exists()


def test_cli_refusal_exits_2_and_starts_nothing(tmp_path: Path, cli_env: dict[str, str]) -> None:
    path = WORKFLOWS / "bad" / "cyclic-dag.yaml"
    proc = subprocess.run(
        [*RPOPS, "local", "run", str(path), "--runs-dir", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        env=cli_env,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "the dag is cyclic: a -> c -> b -> a" in proc.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("name", "params", "needle"),
    [
        ("conf-template-ref-base", {}, "missing required parameter 'who'; pass -p who=VALUE"),
        (
            "conf-skipped-defaults",
            {"enabled": "maybe"},
            "parameter 'enabled' value 'maybe' is not one of: true, false",
        ),
        ("conf-cron", {"mode": "weekly"}, "parameter 'mode' value 'weekly' is not one of: daily, full"),
        ("conf-when", {"stauts": "x"}, "unknown parameter 'stauts' (parameters: status, p95, version)"),
        ("conf-wehn", {}, "unknown template 'conf-wehn'"),
    ],
)
def test_bad_parameters_and_names(name: str, params: dict[str, str], needle: str, runs_dir: Path) -> None:
    with pytest.raises(UsageError) as err:
        start(catalog(), name, params, runs_dir)
    assert needle in str(err.value)
    assert not runs_dir.exists()


def test_unknown_template_suggests_the_close_name(runs_dir: Path) -> None:
    with pytest.raises(UsageError, match="Did you mean 'conf-when'"):
        start(catalog(), "conf-wehn", {}, runs_dir)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "conf-when", "-p", "status"], "-p 'status': write parameters as KEY=VALUE"),
        (["run", "missing.yaml"], "missing.yaml: no such file or directory"),
        (
            ["run", "conf-when", "--manifests", "no-such-dir"],
            "--manifests no-such-dir: no such file or directory",
        ),
        (["get", "no-such-run"], "no run named 'no-such-run'"),
        (["resume", "no-such-run"], "no run named 'no-such-run'"),
    ],
)
def test_cli_usage_errors(args: list[str], needle: str, tmp_path: Path, cli_env: dict[str, str]) -> None:
    full = [*RPOPS, "local", *args, "--runs-dir", str(tmp_path / "runs")]
    if args[0] == "run" and "--manifests" not in args:
        full += ["--manifests", str(WORKFLOWS)]
    proc = subprocess.run(full, capture_output=True, text=True, env=cli_env, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr


def test_lint_accepts_the_suite_and_refuses_bad_documents(tmp_path: Path, cli_env: dict[str, str]) -> None:
    good = tmp_path / "good"
    good.mkdir()
    for path in WORKFLOWS.glob("*.yaml"):
        (good / path.name).write_text(path.read_text())
    ok = subprocess.run(
        [*RPOPS, "local", "lint", "--manifests", str(good)],
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert "ok   " in ok.stdout
    bad = subprocess.run(
        [*RPOPS, "local", "lint", "--manifests", str(WORKFLOWS / "bad")],
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=60,
    )
    assert bad.returncode == 2
    assert f"{len(BAD)} of {len(BAD)} documents cannot run locally" in bad.stderr
