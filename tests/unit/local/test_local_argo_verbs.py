"""`rpops local` verbs that follow argo's: run KIND/NAME (as `argo submit --from`), watch, logs -f,
retry, delete; and a failed step's one-line result in the run tree (as `argo get` shows a node's
message). Every case runs the real command line in a subprocess."""

from __future__ import annotations

import io
import json
import subprocess
import time
from pathlib import Path

import pytest
from local_helpers import RPOPS
from rpops.local import display
from rpops.workload.testing import start_workload

ARGO = Path(__file__).resolve().parents[3] / "manifests" / "argo"

LIBRARY = """\
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: verbs-check
spec:
  entrypoint: main
  arguments:
    parameters:
    - name: limit
      value: "1s"
  templates:
  - name: main
    steps:
    - - {name: measure, template: measure}
  - name: measure
    container:
      image: busybox
      command: [sh, -c]
      args:
      - |
        echo "probing"
        if [ "$VERBS_FIXED" = 1 ]; then
          echo "response_time 0.2s within {{workflow.parameters.limit}}"; exit 0
        fi
        echo "response_time 2.5s over the {{workflow.parameters.limit}} limit"
        exit 1
---
apiVersion: argoproj.io/v1alpha1
kind: CronWorkflow
metadata:
  name: verbs-nightly
spec:
  schedules: ["0 3 * * *"]
  workflowSpec:
    entrypoint: main
    templates:
    - name: main
      container: {image: busybox, command: [echo, "nightly ran"]}
---
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: verbs-slow
spec:
  entrypoint: main
  templates:
  - name: main
    container:
      image: busybox
      command: [sh, -c, "echo one; sleep 1; echo two; sleep 1; echo three"]
---
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: verbs-pipeline
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: build, template: build}
    - - name: check
        template: check
        arguments:
          parameters: [{name: version, value: "{{steps.build.outputs.parameters.version}}"}]
  - name: build
    container:
      image: busybox
      command: [sh, -c, "echo built >> builds.log; echo v7 > /tmp/version"]
    outputs:
      parameters: [{name: version, valueFrom: {path: /tmp/version}}]
  - name: check
    inputs:
      parameters: [{name: version}]
    container:
      image: busybox
      command: [sh, -c, 'test "$VERBS_FIXED" = 1 && echo "checked {{inputs.parameters.version}}"']
"""


@pytest.fixture
def project(tmp_path: Path, cli_env: dict[str, str]) -> Path:
    (tmp_path / "argo").mkdir()
    (tmp_path / "argo" / "library.yaml").write_text(LIBRARY)
    return tmp_path


def _cli(
    project: Path, env: dict[str, str], *args: str, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*RPOPS, "local", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=project,
        timeout=timeout,
    )


def _common(project: Path) -> list[str]:
    return ["--runs-dir", str(project / "runs")]


def _wait_running(project: Path, name: str, deadline_s: float = 60) -> None:
    path = project / "runs" / name / "status.json"
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            doc = None
        if doc and any(
            n["type"] == "Pod" and n["phase"] == "Running" for n in doc["status"]["nodes"].values()
        ):
            return
        time.sleep(0.1)
    raise AssertionError(f"{name} did not start a step within {deadline_s}s")


def test_run_from_kind_name_as_argo_submit_from(project: Path, cli_env: dict[str, str]) -> None:
    man = ["--manifests", str(project / "argo")]
    cron = _cli(project, cli_env, "run", "cronwf/verbs-nightly", *man, *_common(project), "--name", "n1")
    assert cron.returncode == 0, cron.stderr
    assert json.loads((project / "runs" / "n1" / "status.json").read_text())["status"]["phase"] == "Succeeded"
    flag = _cli(project, cli_env, "run", "--from", "CronWorkflow/verbs-nightly", *man, *_common(project))
    assert flag.returncode == 0, flag.stderr
    tmpl = _cli(project, cli_env, "run", "workflowtemplate/verbs-slow", *man, *_common(project))
    assert tmpl.returncode == 0, tmpl.stderr

    missing = _cli(project, cli_env, "run", "wftmpl/verbs-nope", *man, *_common(project))
    assert missing.returncode == 2
    assert "no WorkflowTemplate named 'verbs-nope'" in missing.stderr and "verbs-check" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad_kind = _cli(project, cli_env, "run", "--from", "deployment/x", *man, *_common(project))
    assert bad_kind.returncode == 2 and "KIND/NAME" in bad_kind.stderr
    both = _cli(project, cli_env, "run", "verbs-slow", "--from", "cronwf/verbs-nightly", *man)
    assert both.returncode == 2 and "one of them" in both.stderr


def test_failed_step_result_in_tree_then_retry_keeps_name_and_parameters(
    project: Path, cli_env: dict[str, str]
) -> None:
    man = ["--manifests", str(project / "argo")]
    failed = _cli(
        project, cli_env, "run", "verbs-check", "-p", "limit=2s", *man, *_common(project), "--name", "c1"
    )
    assert failed.returncode == 1
    # the plain progress lines and the final tree both carry the reason, not only the exit code
    assert any(
        "Failed" in line and "Error (exit code 1): response_time 2.5s over the 2s limit" in line
        for line in failed.stdout.splitlines()
    ), failed.stdout
    got = _cli(project, cli_env, "get", "c1", *_common(project))
    row = next(line for line in got.stdout.splitlines() if "measure" in line and "✖" in line)
    assert row.endswith("Error (exit code 1): response_time 2.5s over the 2s limit")

    # the cause is fixed (the step sees it in its environment), then the run is retried
    done = _cli(project, {**cli_env, "VERBS_FIXED": "1"}, "retry", "c1", *man, *_common(project))
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads((project / "runs" / "c1" / "status.json").read_text())
    assert doc["status"]["phase"] == "Succeeded"
    assert {p["name"]: p["value"] for p in doc["spec"]["arguments"]["parameters"]} == {"limit": "2s"}
    old = json.loads((project / "runs" / ".retried" / "c1.1" / "status.json").read_text())
    assert old["status"]["phase"] == "Failed"
    names = _cli(project, cli_env, "list", *_common(project), "--output", "json")
    assert [r["name"] for r in json.loads(names.stdout)] == ["c1"]  # the kept attempt is not listed

    again = _cli(project, cli_env, "retry", "c1", *man, *_common(project))
    assert again.returncode == 2 and "only a Failed or Error run can be retried" in again.stderr


def test_retry_keeps_the_steps_that_succeeded_as_argo_retry_does(
    project: Path, cli_env: dict[str, str]
) -> None:
    man = ["--manifests", str(project / "argo")]
    failed = _cli(project, cli_env, "run", "verbs-pipeline", *man, *_common(project), "--name", "p1")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert (project / "builds.log").read_text() == "built\n"

    done = _cli(project, {**cli_env, "VERBS_FIXED": "1"}, "retry", "p1", *man, *_common(project))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (project / "builds.log").read_text() == "built\n"  # build did not run again
    nodes = json.loads((project / "runs" / "p1" / "status.json").read_text())["status"]["nodes"]
    by_name = {n["displayName"]: n for n in nodes.values()}
    assert by_name["build"]["phase"] == "Succeeded"
    assert by_name["build"]["message"] == "kept from the earlier attempt"
    assert {p["name"]: p["value"] for p in by_name["build"]["outputs"]["parameters"]} == {"version": "v7"}
    assert by_name["check"]["phase"] == "Succeeded" and by_name["check"]["outputs"]["result"] == "checked v7"
    logs = _cli(project, cli_env, "logs", "p1", *_common(project))
    assert "checked v7" in logs.stdout


def test_logs_follow_and_watch_until_the_run_ends(project: Path, cli_env: dict[str, str]) -> None:
    man = ["--manifests", str(project / "argo")]
    runner = subprocess.Popen(
        [*RPOPS, "local", "run", "verbs-slow", *man, *_common(project), "--name", "s1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=cli_env,
        cwd=project,
    )
    try:
        _wait_running(project, "s1")
        watcher = subprocess.Popen(
            [*RPOPS, "local", "watch", "s1", *_common(project)],
            stdout=subprocess.PIPE,
            text=True,
            env=cli_env,
            cwd=project,
        )
        follow = _cli(project, cli_env, "logs", "s1", "-f", *_common(project))
        # the last line is printed after `logs -f` began: it arrived by following
        assert follow.returncode == 0, follow.stderr
        assert [line.split(": ", 1)[1] for line in follow.stdout.splitlines()] == ["one", "two", "three"]
        out, _ = watcher.communicate(timeout=60)
        assert watcher.returncode == 0
        assert any(line.startswith("Status:") and "Succeeded" in line for line in out.splitlines())
    finally:
        runner.wait(timeout=60)
    plain = _cli(project, cli_env, "logs", "s1", *_common(project))
    assert plain.stdout.splitlines() == ["one", "two", "three"]


def test_delete_finished_runs_refuses_running_ones(project: Path, cli_env: dict[str, str]) -> None:
    man = ["--manifests", str(project / "argo")]
    for name in ("d1", "d2"):
        assert (
            _cli(
                project, cli_env, "run", "cronwf/verbs-nightly", *man, *_common(project), "--name", name
            ).returncode
            == 0
        )
    one = _cli(project, cli_env, "delete", "d1", *_common(project))
    assert one.returncode == 0 and "Workflow 'd1' deleted" in one.stdout
    assert not (project / "runs" / "d1").exists() and (project / "runs" / "d2").exists()
    unknown = _cli(project, cli_env, "delete", "d1", *_common(project))
    assert unknown.returncode == 2 and "no run named 'd1'" in unknown.stderr

    runner = subprocess.Popen(
        [*RPOPS, "local", "run", "verbs-slow", *man, *_common(project), "--name", "d3"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=cli_env,
        cwd=project,
    )
    try:
        _wait_running(project, "d3")
        busy = _cli(project, cli_env, "delete", "d3", *_common(project))
        assert busy.returncode == 2 and "still running" in busy.stderr
        assert (project / "runs" / "d3").exists()
    finally:
        runner.wait(timeout=60)
    rest = _cli(project, cli_env, "delete", "--completed", *_common(project))
    assert rest.returncode == 0
    assert not [p for p in (project / "runs").iterdir() if not p.name.startswith(".")]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_color_turns_colour_off_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert display.use_color(_Tty())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not display.use_color(_Tty())
    monkeypatch.setenv("NO_COLOR", "")  # no-color.org: only a non-empty value counts
    assert display.use_color(_Tty())
    assert not display.use_color(io.StringIO())
    doc = {
        "metadata": {"name": "w"},
        "status": {
            "phase": "Failed",
            "nodes": {
                "w": {
                    "id": "w",
                    "name": "w",
                    "displayName": "w",
                    "type": "Pod",
                    "phase": "Failed",
                    "message": "Error (exit code 1)",
                    "outputs": {"result": "a\nlast reason\n\n"},
                }
            },
        },
    }
    text = "\n".join(display.render(doc, color=False))
    assert "\x1b[" not in text and "Error (exit code 1): last reason" in text


def test_the_validate_template_shows_why_it_failed(tmp_path: Path, cli_env: dict[str, str]) -> None:
    """The rendered validate template against a real workload that answers slowly: the tree
    names the failed check and its detail (the step prints a JSON report), not only the exit code."""
    with start_workload(latency_ms=400) as workload:
        run = _cli(
            tmp_path,
            cli_env,
            "run",
            "workflowtemplate/research-platform-validate",
            "--manifests",
            str(ARGO),
            "-p",
            f"url={workload.url}",
            "-p",
            "max-response-ms=50",
            *_common(tmp_path),
            "--name",
            "v1",
        )
    assert run.returncode == 1, run.stdout + run.stderr
    got = _cli(tmp_path, cli_env, "get", "v1", *_common(tmp_path))
    rows = [line for line in got.stdout.splitlines() if "✖ validate(0)" in line]
    assert rows and "Error (exit code 1): response_time: " in rows[0], got.stdout


def test_failure_line_from_a_json_report_or_plain_text() -> None:
    report = {
        "passed": False,
        "failed": ["response_time"],
        "checks": [
            {"name": "health", "passed": True, "detail": "200"},
            {"name": "response_time", "passed": False, "detail": "p95 812 ms over 50 ms"},
        ],
    }
    assert display.failure_line(json.dumps(report, indent=2)) == "response_time: p95 812 ms over 50 ms"
    assert display.failure_line('{"status": "fail", "message": "gate:  3 critical"}') == "gate: 3 critical"
    assert display.failure_line('{"failed": ["a", "b"]}') == "failed: a, b"
    assert display.failure_line("starting\nlast words\n\n") == "last words"
    assert len(display.failure_line("x" * 500)) == display.RESULT_CHARS
