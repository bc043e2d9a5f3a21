"""Behaviour that needs more than an expectation table: timings, killed processes, locks held
across processes, suspend/resume, stop, and the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from local_helpers import RPOPS, WORKFLOWS, alive, catalog, run
from rpops.local.api import start
from rpops.local.load import paths
from rpops.local.run import isolation


def _epoch(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def _nodes(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["displayName"]: n for n in status["status"]["nodes"].values()}


def test_deadline_kills_the_step_and_its_children(runs_dir: Path) -> None:
    began = time.monotonic()
    result = run("conf-deadline-template", runs_dir)
    assert time.monotonic() - began < 15
    nodes = _nodes(result.status)
    hang = nodes["hang"]
    for name in ("hang", "stubborn"):  # stubborn ignores SIGTERM: SIGKILL after the grace period (1 s)
        node = nodes[name]
        assert node["phase"] == "Failed" and node["message"] == "Step exceeded its deadline"
        outputs = runs_dir / result.name / "nodes" / node["id"] / "tmp" / "outputs"
        if not paths.mode().namespace:
            outputs = outputs.parent  # the fallback: the node's folder is its /tmp/outputs
        for file in ["child"]:
            child = int((outputs / file).read_text())
            deadline = time.monotonic() + 5
            while alive(child) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not alive(child), f"{file} process {child} of the killed step {name} is still running"
    stubborn = _epoch(nodes["stubborn"]["finishedAt"]) - _epoch(nodes["stubborn"]["startedAt"])
    assert 1.8 <= stubborn < 8, stubborn
    log = (runs_dir / result.name / "logs" / f"{hang['id']}.log").read_text()
    assert "started" in log


def test_retry_backoff_waits_between_attempts(runs_dir: Path) -> None:
    nodes = _nodes(run("conf-retry-backoff", runs_dir).status)
    gap1 = _epoch(nodes["flaky(1)"]["startedAt"]) - _epoch(nodes["flaky(0)"]["finishedAt"])
    gap2 = _epoch(nodes["flaky(2)"]["startedAt"]) - _epoch(nodes["flaky(1)"]["finishedAt"])
    assert 0.18 <= gap1 < 2.0, gap1  # duration 200ms
    assert 0.36 <= gap2 < 2.5, gap2  # duration * factor
    assert nodes["flaky"]["children"] == [nodes[f"flaky({i})"]["id"] for i in range(3)]


@pytest.mark.parametrize("name", ["conf-parallelism", "conf-parallelism-workflow"])
def test_parallelism_runs_one_at_a_time(name: str, runs_dir: Path) -> None:
    nodes = _nodes(run(name, runs_dir).status)
    spans = sorted(
        tuple(map(float, n["outputs"]["result"].split())) for k, n in nodes.items() if k.startswith("nap(")
    )
    assert len(spans) == 3
    for (_, end), (start_, _) in zip(spans, spans[1:], strict=False):
        assert start_ >= end - 0.01, spans


def test_mutex_excludes_two_runs_in_separate_processes(tmp_path: Path, cli_env: dict[str, str]) -> None:
    service = f"svc-{uuid.uuid4().hex[:8]}"
    cmd = [
        *RPOPS,
        "local",
        "run",
        "conf-mutex",
        "--manifests",
        str(WORKFLOWS),
        "--runs-dir",
        str(tmp_path / "runs"),
        "-p",
        f"service={service}",
        "-p",
        "hold=1.5",
    ]
    procs = [
        subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env, cwd=tmp_path
        )
        for _ in range(2)
    ]
    outs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            outs.append(out)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    spans = []
    for name in os.listdir(tmp_path / "runs"):
        doc = json.loads((tmp_path / "runs" / name / "status.json").read_text())
        start_, end = map(float, _nodes(doc)["change"]["outputs"]["result"].split())
        spans.append((start_, end))
    spans.sort()
    assert len(spans) == 2
    assert spans[1][0] >= spans[0][1], f"both runs held the mutex at once: {spans}"
    assert any(f"Waiting for default/Mutex/conf-mutex-{service} lock" in out for out in outs), outs
    assert (tmp_path / "locks").is_dir()  # beside the runs directory: .rpops/locks by default


def test_suspend_waits_for_resume_from_another_process(runs_dir: Path, cli_env: dict[str, str]) -> None:
    handle = start(catalog(), "conf-suspend", {}, runs_dir)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            nodes = _nodes(handle.status())
            if nodes.get("pause", {}).get("phase") == "Succeeded":
                break
            time.sleep(0.05)
        nodes = _nodes(handle.status())
        assert nodes["pause"]["phase"] == "Succeeded"  # its duration (1 s) ran out
        assert nodes["approve"]["phase"] == "Running" and nodes["approve"]["type"] == "Suspend"
        assert "rpops local resume" in nodes["approve"]["message"]
        assert handle.wait(0.3) is None  # still waiting for approval
        proc = subprocess.run(
            [*RPOPS, "local", "resume", handle.name, "--runs-dir", str(runs_dir)],
            capture_output=True,
            text=True,
            env=cli_env,
            timeout=30,
        )
        assert proc.returncode == 0, proc.stderr
        result = handle.wait(10)
        assert result is not None and result.phase == "Succeeded"
        assert result.nodes["after"].phase == "Succeeded"
    finally:
        handle.stop("Terminate")
        handle.wait(10)


@pytest.mark.parametrize(("flags", "exit_handler_runs"), [([], True), (["--terminate"], False)])
def test_stop_from_another_process(
    flags: list[str], exit_handler_runs: bool, runs_dir: Path, cli_env: dict[str, str]
) -> None:
    handle = start(catalog(), "conf-stoppable", {}, runs_dir)
    deadline = time.monotonic() + 10
    while _nodes(handle.status()).get("long", {}).get("phase") != "Running" and time.monotonic() < deadline:
        time.sleep(0.05)
    proc = subprocess.run(
        [*RPOPS, "local", "stop", handle.name, "--runs-dir", str(runs_dir), *flags],
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    result = handle.wait(15)
    assert result is not None
    strategy = "Terminate" if flags else "Stop"
    assert result.phase == "Failed" and result.message == f"Stopped with strategy '{strategy}'"
    assert result.nodes["long"].phase == "Failed"
    long_id = _nodes(result.status)["long"]["id"]
    outputs = runs_dir / result.name / "nodes" / long_id / "tmp"
    child = int(((outputs / "outputs") if paths.mode().namespace else outputs).joinpath("child").read_text())
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child), f"the stopped step's child {child} is still running"
    assert "never" not in result.nodes
    assert ("onExit" in result.nodes) is exit_handler_runs
    if exit_handler_runs:
        assert result.nodes["onExit"].result == "Failed"
    again = subprocess.run(
        [*RPOPS, "local", "stop", handle.name, "--runs-dir", str(runs_dir)],
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=30,
    )
    assert again.returncode == 2 and "is not running (it is Failed)" in again.stderr


def name_prefix(line: str) -> bool:
    return "conf-steps-failure-" in line


def _cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*RPOPS, "local", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=60
    )


def test_cli_run_plain_lines_get_list_logs(tmp_path: Path, cli_env: dict[str, str]) -> None:
    runs = str(tmp_path / "runs")
    failed = _cli(["run", str(WORKFLOWS / "steps-failure.yaml"), "--runs-dir", runs], tmp_path, cli_env)
    assert failed.returncode == 1
    lines = failed.stdout.splitlines()
    assert any("Workflow" in line and name_prefix(line) and "Running" in line for line in lines)
    assert any(
        "Failed" in line and ".boom (exit)" in line and "Error (exit code 3)" in line for line in lines
    )
    assert any(line.startswith("Status:") and "Failed" in line for line in lines)
    name = next(line.split()[1] for line in lines if line.startswith("Name:"))
    assert name.startswith("conf-steps-failure-")

    listed = _cli(["list", "--runs-dir", runs], tmp_path, cli_env)
    assert listed.returncode == 0 and name in listed.stdout and "Failed" in listed.stdout

    got = _cli(["get", name, "--runs-dir", runs], tmp_path, cli_env)
    assert got.returncode == 0
    assert "boom" in got.stdout and "Error (exit code 3)" in got.stdout and "STEP" in got.stdout
    doc = json.loads(_cli(["get", name, "--runs-dir", runs, "--output", "json"], tmp_path, cli_env).stdout)
    assert doc["kind"] == "Workflow" and doc["status"]["phase"] == "Failed"

    logs = _cli(["logs", name, "--runs-dir", runs, "--node", "boom"], tmp_path, cli_env)
    assert logs.returncode == 0 and logs.stdout.strip() == "exiting with 3"
    every = _cli(["logs", name, "--runs-dir", runs], tmp_path, cli_env)
    assert "boom: exiting with 3" in every.stdout and "ok: exiting with 0" in every.stdout


def test_cli_json_output_and_exit_code(tmp_path: Path, cli_env: dict[str, str]) -> None:
    proc = _cli(
        [
            "run",
            "conf-dag-basic",
            "--manifests",
            str(WORKFLOWS),
            "--runs-dir",
            str(tmp_path / "runs"),
            "--output",
            "json",
        ],
        tmp_path,
        cli_env,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["status"]["phase"] == "Succeeded"
    assert doc["status"]["outputs"]["parameters"] == [{"name": "sum", "value": "5"}]
    assert doc["metadata"]["labels"]["workflows.argoproj.io/workflow-template"] == "conf-dag-basic"
    assert doc["status"]["progress"] == "4/4"


def test_rpops_steps_work_without_an_activated_venv(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rpops",
            "local",
            "run",
            "conf-script",
            "--manifests",
            str(WORKFLOWS),
            "--runs-dir",
            str(tmp_path / "runs"),
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    nodes = _nodes(json.loads(proc.stdout))
    from rpops import __version__

    assert nodes["version"]["outputs"]["result"] == __version__


def test_platform_subcommand_delegates(tmp_path: Path, cli_env: dict[str, str]) -> None:
    proc = _cli(["platform", "--help"], tmp_path, cli_env)
    assert proc.returncode == 0, proc.stderr
    assert "rpops local platform" in proc.stdout and "up" in proc.stdout


def test_live_tree_redraws_in_place(runs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rpops.local import display
    from rpops.local.display import LiveTree, render

    monkeypatch.setattr(display, "is_terminal", lambda out: True)  # a StringIO standing for a terminal
    monkeypatch.delenv("NO_COLOR", raising=False)

    result = run("conf-retry-backoff", runs_dir)
    handle_run = start(catalog(), "conf-when", {}, runs_dir)
    handle_run.wait(30)
    out = io.StringIO()
    tree = LiveTree(handle_run.run, out)
    tree.draw()
    first = out.getvalue()
    tree.draw()
    second = out.getvalue()[len(first) :]
    lines = first.count("\n")
    assert "\x1b[32m" in first  # Succeeded in green
    assert second.startswith(f"\x1b[{lines}F\x1b[J")  # back to the top of the last drawing, then redraw
    plain = render(result.status)
    assert any("flaky(0)" in line and "Error (exit code 1)" in line for line in plain)
    assert not any("\x1b[" in line for line in plain)


def test_stopping_a_dag_fails_it_and_starts_nothing_new(runs_dir: Path) -> None:
    handle = start(catalog(), "conf-parallelism-workflow", {}, runs_dir)  # one pod at a time
    deadline = time.monotonic() + 10
    while not any(n["phase"] == "Running" and n["type"] == "Pod" for n in _nodes(handle.status()).values()):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    handle.stop()
    result = handle.wait(15)
    assert result is not None
    assert result.phase == "Failed" and result.message == "Stopped with strategy 'Stop'"
    nodes = _nodes(result.status)
    assert nodes["nap"]["type"] == "TaskGroup" and nodes["nap"]["phase"] == "Failed"
    items = [n for k, n in nodes.items() if k.startswith("nap(")]
    started = [n for n in items if (runs_dir / result.name / "logs" / f"{n['id']}.log").exists()]
    assert len(started) == 1, started  # the items still waiting for the workflow's parallelism never started
    waiting = [n for n in items if n not in started]
    assert all(n["phase"] == "Failed" and n["message"] == "Stopped with strategy 'Stop'" for n in waiting)


def test_each_node_writes_its_own_tmp_never_the_hosts(runs_dir: Path) -> None:
    """Two parallel nodes write the same /tmp path; each reads its own value back; the host's
    /tmp stays untouched (the paths land in each node's folder of the run)."""
    host = Path("/tmp/rpops-conformance-private")  # noqa: S108 - the path the nodes write privately
    assert not host.exists()
    result = run("conf-private-tmp", runs_dir)
    if not paths.mode().namespace:
        pytest.fail(f"this machine offers no mount namespace ({paths.mode().reason})")
    assert result.phase == "Succeeded", result.message
    assert not host.exists()
    nodes = _nodes(result.status)
    for name in ("left", "right"):
        private = runs_dir / result.name / "nodes" / nodes[name]["id"] / "tmp" / "rpops-conformance-private"
        assert (private / "word.txt").read_text() == name


def test_fallback_without_namespace_maps_only_tmp_outputs(
    runs_dir: Path, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    """RPOPS_LOCAL_ISOLATION=none: /tmp/outputs/ is mapped through RPOPS_OUTPUTS; an output at
    another path is refused before the run, naming the field and why."""
    env = {**cli_env, "RPOPS_LOCAL_ISOLATION": "none"}
    refused = _cli(
        ["run", "conf-private-tmp", "--manifests", str(WORKFLOWS), "--runs-dir", str(runs_dir)], tmp_path, env
    )
    assert refused.returncode == 2, refused.stderr
    assert "field 'outputs.parameters[0].valueFrom.path': must be under /tmp/outputs/" in refused.stderr
    assert "RPOPS_LOCAL_ISOLATION=none" in refused.stderr and "Traceback" not in refused.stderr
    assert not runs_dir.exists()
    ok = _cli(
        ["run", "conf-script", "--manifests", str(WORKFLOWS), "--runs-dir", str(runs_dir)],
        tmp_path,
        env,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_substitution_is_one_pass_over_unpaired_tags() -> None:
    """Argo's fasttemplate pairing: `{{` runs to the next `}}`; an unpaired `{{` is text; a value
    is never scanned again (the linear time is measured in benchmarks/bench_executor.py)."""
    from rpops.local.expr.substitute import render, tags

    assert render("{{a}} {{ b }} {{c", {"a": "{{b}}", "b": "2"}, strict=False) == "{{b}} 2 {{c"
    assert tags("x {{ {{a}} }}") == ["{{a"]
    text = "{{a}}" * 20_000 + "{{" * 20_000
    assert render(text, {"a": "1"}, strict=False) == "1" * 20_000 + "{{" * 20_000


def test_host_folders_a_node_names_stay_visible(tmp_path: Path) -> None:
    """The working directory and environment paths under /tmp are mounted into the node's view;
    /tmp itself, /tmp/outputs and paths with '..' never are."""
    (tmp_path / "state" / "deep").mkdir(parents=True)
    env = {
        "A": "/tmp/",  # noqa: S108
        "B": "/tmp/outputs/x",  # noqa: S108
        "C": f"{tmp_path}/state/deep{os.pathsep}/usr/bin",
        "D": f"{tmp_path}/state/file.txt",
        "E": "/tmp/../etc",  # noqa: S108
    }
    expected = [str(tmp_path)] if str(tmp_path).startswith("/tmp/") else []  # noqa: S108
    assert isolation.host_paths(str(tmp_path), env) == expected
    assert isolation.host_paths("/", {"D": f"{tmp_path}/state/file.txt"}) == (
        [str(tmp_path / "state")] if expected else []
    )
