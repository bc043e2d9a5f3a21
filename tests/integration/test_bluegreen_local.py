"""`rpops bluegreen` on the local platform: real workload processes behind the switching proxy,
steady load through the service (200 requests/s) with every failure time-stamped, the command
line as a subprocess (exit codes, outputs, crashes), and the WorkflowTemplate under `rpops local`.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bluegreen_support import (
    FAST,
    SERVICE,
    Load,
    outputs_of,
    report_of,
    run_cli,
    running_platform,
    set_faults,
    start_cli,
    wait_until,
)
from prometheus_fixture import RunningPrometheus, start
from rpops.platform import AutoscalingBounds
from rpops.platform.local.driver import LocalDriver
from rpops.steps.bluegreen.phases import PROMOTION_CRASH_POINTS

REPO = Path(__file__).resolve().parents[2]
PREFIX = "rpops.research-platform.io/bluegreen."


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    return tmp_path / "platform"


@pytest.fixture()
def platform(root: Path) -> Iterator[LocalDriver]:
    with running_platform(root) as driver:
        yield driver


def promote(root: Path, out: Path, version: str, *extra: str, **env: Any) -> subprocess.CompletedProcess[str]:
    return run_cli(root, out, "promote", "--service", SERVICE, "--version", version, *FAST, *extra, **env)


def state_of(driver: LocalDriver) -> dict[str, str]:
    return {k: v for k, v in driver.annotations(SERVICE).items() if k.startswith("bluegreen.")}


def replicas(driver: LocalDriver) -> dict[str, int]:
    return {w.version: w.replicas for w in driver.versions(SERVICE)}


def test_good_promotion_under_load_fails_no_request(
    platform: LocalDriver, root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with Load(platform.service_url(SERVICE)) as load:
        switch_started = time.monotonic()
        done = promote(root, out, "v2", "--owner", "ci")
        time.sleep(0.3)  # traffic after the promotion, on green alone
    assert done.returncode == 0, done.stderr
    assert load.failures == []
    assert len(load.samples) > 150
    assert load.versions_after(switch_started) >= {"v1", "v2"}
    assert [s.version for s in load.samples[-20:]] == ["v2"] * 20
    assert outputs_of(out) == {
        "phase": "complete",
        "active_version": "v2",
        "previous_version": "v1",
        "rolled_back": "false",
        "reason": outputs_of(out)["reason"],
        "result": "promoted",
    }
    # blue is kept, at 0 replicas, for a fast rollback; green runs blue's count
    assert replicas(platform) == {"v1": 0, "v2": 2}
    assert platform.routes(SERVICE).active == "v2" and platform.routes(SERVICE).preview == "v2"
    state = state_of(platform)
    assert state["bluegreen.phase"] == "complete"
    assert (state["bluegreen.stable"], state["bluegreen.previous"]) == ("v2", "v1")
    assert state["bluegreen.owner"] == "ci"
    assert "bluegreen.lock" not in state  # released
    report = report_of(out)
    timeline = report["timeline"]
    assert [e["phase"] for e in timeline] == [
        "deploy",
        "wait-ready",
        "analyze",
        "switch",
        "verify",
        "finalize",
    ]
    assert all(e["result"] == "succeeded" and e["start"] <= e["end"] for e in timeline)
    assert all(a["end"] <= b["start"] + 0.001 for a, b in zip(timeline, timeline[1:], strict=False))
    pre = report["analysis"][0]
    assert pre["stage"] == "pre" and pre["phase"] == "Successful"
    assert pre["targets"][0] == "preview route" and len(pre["targets"]) == 3  # the route and both instances
    assert report["verify"]["failed_requests"] == 0 and report["verify"]["served_requests"] > 0

    # Promoting the active version again is a no-op that changes nothing.
    again = promote(root, tmp_path / "again", "v2")
    assert again.returncode == 0, again.stderr
    assert outputs_of(tmp_path / "again")["result"] == "no-op"
    assert state_of(platform)["bluegreen.timeline"] == state["bluegreen.timeline"]


def test_green_that_never_becomes_ready_is_aborted_with_blue_untouched(
    platform: LocalDriver, root: Path, tmp_path: Path
) -> None:
    blue_pids = sorted(i.pid or 0 for i in platform.instances(SERVICE, "v1"))
    with Load(platform.service_url(SERVICE)) as load:
        deployed = run_cli(root, tmp_path / "a", "deploy", "--service", SERVICE, "--version", "v2", *FAST)
        assert deployed.returncode == 0, deployed.stderr
        assert outputs_of(tmp_path / "a")["phase"] == "deployed"
        # The local driver starts instances without faults: make green unready through its admin API.
        set_faults(platform, "v2", not_ready=True)
        waited = run_cli(
            root,
            tmp_path / "b",
            "wait-ready",
            "--service",
            SERVICE,
            *FAST,
            "--progress-deadline-seconds",
            "1",
        )
    assert waited.returncode == 1, waited.stderr
    outputs = outputs_of(tmp_path / "b")
    assert outputs["phase"] == "aborted" and outputs["rolled_back"] == "true"
    assert "not ready within the progress deadline (1s)" in outputs["reason"]
    assert "0/2 ready" in outputs["reason"]
    assert outputs["active_version"] == "v1"
    assert load.failures == []
    assert platform.routes(SERVICE).active == "v1"
    assert sorted(i.pid or 0 for i in platform.instances(SERVICE, "v1")) == blue_pids  # not even restarted
    assert replicas(platform) == {"v1": 2, "v2": 0}
    # switch and later phases refuse an aborted promotion
    refused = run_cli(root, tmp_path / "c", "switch", "--service", SERVICE, *FAST)
    assert refused.returncode == 1 and "was aborted" in refused.stderr


def test_failure_after_the_switch_goes_back_to_blue_within_the_window(
    platform: LocalDriver, root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with Load(platform.service_url(SERVICE)) as load:
        proc = start_cli(
            root, out, "promote", "--service", SERVICE, "--version", "v2", *FAST, "--verify-seconds", "20"
        )
        wait_until(lambda: platform.routes(SERVICE).active == "v2", interval=0.05)
        injected = time.monotonic()
        set_faults(platform, "v2", error_rate=1.0)
        _, stderr = proc.communicate(timeout=60)
        ended = time.monotonic()
        time.sleep(0.5)  # traffic after the rollback
    assert proc.returncode == 1, stderr
    outputs = outputs_of(out)
    assert outputs["phase"] == "rolled-back" and outputs["rolled_back"] == "true"
    assert outputs["active_version"] == "v1" and outputs["previous_version"] == "v1"
    assert "post-promotion analysis failed" in outputs["reason"]
    assert platform.routes(SERVICE).active == "v1"
    assert replicas(platform) == {"v1": 2, "v2": 0}
    failures = load.failures
    assert failures, "the load should have met the failing green"
    assert all(injected <= f.at <= ended for f in failures)  # only inside the verify window
    assert [s.version for s in load.samples[-20:]] == ["v1"] * 20
    verify = report_of(out)["verify"]
    assert verify["failed_requests"] >= 1
    assert verify["probe_failures"] >= 1
    assert isinstance(verify["detection_to_route_back_s"], float) and verify["detection_to_route_back_s"] >= 0
    assert f"{verify['failed_requests']} failed requests" in stderr
    timeline = report_of(out)["timeline"]
    assert [(e["phase"], e["result"]) for e in timeline][-2:] == [
        ("verify", "failed"),
        ("rollback", "succeeded"),
    ]


CRASH_POINTS = PROMOTION_CRASH_POINTS
STATE_AFTER = {
    "deploy": ("deployed", "v1"),
    "wait-ready": ("ready", "v1"),
    "analyze": ("analyzed", "v1"),
    "switch:before-route": ("switching", "v1"),
    "switch:after-route": ("switching", "v2"),
    "switch": ("switched", "v2"),
    "verify": ("verified", "v2"),
    "finalize": ("complete", "v2"),
}


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_killed_runner_is_finished_by_a_rerun(
    platform: LocalDriver, root: Path, tmp_path: Path, point: str
) -> None:
    with Load(platform.service_url(SERVICE)) as load:
        crashed = promote(root, tmp_path / "a", "v2", "--owner", "job-1", RPOPS_BLUEGREEN_CRASH_AFTER=point)
        assert crashed.returncode == 137, crashed.stderr
        phase, active = STATE_AFTER[point]
        state = state_of(platform)
        assert state["bluegreen.phase"] == phase
        assert platform.routes(SERVICE).active == active
        assert "bluegreen.lock" in state  # the dead run still holds it ...
        rerun = promote(root, tmp_path / "b", "v2", "--owner", "job-1")  # ... and its rerun takes it over
        time.sleep(0.2)
    assert rerun.returncode == 0, rerun.stderr
    assert outputs_of(tmp_path / "b")["result"] == ("no-op" if point == "finalize" else "promoted")
    assert load.failures == []
    assert platform.routes(SERVICE).active == "v2"
    assert replicas(platform) == {"v1": 0, "v2": 2}
    final = state_of(platform)
    assert final["bluegreen.phase"] == "complete" and final["bluegreen.previous"] == "v1"
    assert "bluegreen.lock" not in final
    timeline = json.loads(final["bluegreen.timeline"])
    assert [e["phase"] for e in timeline if e["result"] == "succeeded"] == [
        "deploy",
        "wait-ready",
        "analyze",
        "switch",
        "verify",
        "finalize",
    ]
    assert all(e["result"] in ("succeeded", "interrupted") for e in timeline)


def test_a_killed_rollback_is_finished_by_a_rerun(platform: LocalDriver, root: Path, tmp_path: Path) -> None:
    assert promote(root, tmp_path / "a", "v2").returncode == 0
    with Load(platform.service_url(SERVICE)) as load:
        crashed = run_cli(
            root,
            tmp_path / "b",
            "rollback",
            "--service",
            SERVICE,
            "--reason",
            "bad release",
            RPOPS_BLUEGREEN_CRASH_AFTER="rollback:after-route",
        )
        assert crashed.returncode == 137, crashed.stderr
        assert platform.routes(SERVICE).active == "v1"
        assert state_of(platform)["bluegreen.phase"] == "rolling-back"
        # A promotion of the same version finishes the rollback first, and says so.
        rerun = promote(root, tmp_path / "c", "v2")
        time.sleep(0.2)
    assert rerun.returncode == 1 and "interrupted rollback was finished" in rerun.stderr
    assert load.failures == []
    state = state_of(platform)
    assert state["bluegreen.phase"] == "rolled-back" and state["bluegreen.stable"] == "v1"
    assert state["bluegreen.reason"] == "bad release"
    assert replicas(platform) == {"v1": 2, "v2": 0}


def test_concurrent_promotions_one_at_a_time(platform: LocalDriver, root: Path, tmp_path: Path) -> None:
    with Load(platform.service_url(SERVICE)) as load:
        # Two runs started together: exactly one takes the service, the other is refused at once.
        first = start_cli(root, tmp_path / "a", "promote", "--service", SERVICE, "--version", "v2", *FAST,
                          "--owner", "alice", "--verify-seconds", "2")  # fmt: skip
        second = start_cli(root, tmp_path / "b", "promote", "--service", SERVICE, "--version", "v3", *FAST,
                           "--owner", "bob")  # fmt: skip
        results = {}
        for name, proc in (("alice", first), ("bob", second)):
            _, err = proc.communicate(timeout=60)
            results[name] = (proc.returncode, err)
        codes = sorted(code for code, _ in results.values())
        assert codes == [0, 1], results
        winner = next(name for name, (code, _) in results.items() if code == 0)
        loser_err = next(err for code, err in results.values() if code == 1)
        assert "is locked" in loser_err and f"{winner} on" in loser_err and "--lock-wait" in loser_err
        won = "v2" if winner == "alice" else "v3"
        assert platform.routes(SERVICE).active == won
        assert sorted(replicas(platform)) == ["v1", won]  # the refused run deployed nothing

        # A third run that may wait gets the service once the running one is done.
        running = start_cli(root, tmp_path / "c", "promote", "--service", SERVICE, "--version", "v4", *FAST,
                            "--owner", "carol", "--verify-seconds", "2")  # fmt: skip
        wait_until(lambda: state_of(platform).get("bluegreen.owner") == "carol", interval=0.05)
        waiting = run_cli(root, tmp_path / "d", "promote", "--service", SERVICE, "--version", "v5", *FAST,
                          "--owner", "dave", "--lock-wait", "60")  # fmt: skip
        running.communicate(timeout=60)
        time.sleep(0.2)
    assert running.returncode == 0
    assert waiting.returncode == 0, waiting.stderr
    assert "waiting for the lock" in waiting.stderr
    assert load.failures == []
    assert platform.routes(SERVICE).active == "v5"
    state = state_of(platform)
    assert (state["bluegreen.stable"], state["bluegreen.previous"]) == ("v5", "v4")
    # Each finalize removed the versions older than the previous one.
    assert replicas(platform) == {"v4": 0, "v5": 2}


def test_green_starts_at_the_autoscaler_floor(platform: LocalDriver, root: Path, tmp_path: Path) -> None:
    platform.set_autoscaling(SERVICE, AutoscalingBounds(3, 6))  # blue runs 2; the HPA wants at least 3
    with Load(platform.service_url(SERVICE)) as load:
        done = promote(root, tmp_path / "a", "v2")
    assert done.returncode == 0, done.stderr
    assert load.failures == []
    assert replicas(platform) == {"v1": 0, "v2": 3}
    green = platform.workload(SERVICE, "v2")
    assert green.active and green.autoscaling == AutoscalingBounds(3, 6)  # the HPA follows green
    assert state_of(platform)["bluegreen.autoscaling"] == "3-6"
    # --preview-replica-count overrides the count
    done = promote(root, tmp_path / "b", "v3", "--preview-replica-count", "1")
    assert done.returncode == 0, done.stderr
    assert replicas(platform)["v3"] == 1


def test_rollback_by_hand_after_completion_brings_blue_back_under_load(
    platform: LocalDriver, root: Path, tmp_path: Path
) -> None:
    assert promote(root, tmp_path / "a", "v2").returncode == 0
    assert replicas(platform) == {"v1": 0, "v2": 2}
    with Load(platform.service_url(SERVICE)) as load:
        back = run_cli(root, tmp_path / "b", "rollback", "--service", SERVICE, "--reason", "customer reports")
        time.sleep(0.3)
    assert back.returncode == 0, back.stderr
    assert load.failures == []
    assert [s.version for s in load.samples[-20:]] == ["v1"] * 20
    outputs = outputs_of(tmp_path / "b")
    assert (outputs["result"], outputs["phase"], outputs["rolled_back"]) == (
        "rolled-back",
        "rolled-back",
        "true",
    )
    assert outputs["reason"] == "customer reports"
    assert replicas(platform) == {"v1": 2, "v2": 0}
    # Rolling back again changes nothing and keeps the first reason.
    again = run_cli(root, tmp_path / "c", "rollback", "--service", SERVICE, "--reason", "again")
    assert again.returncode == 0
    assert state_of(platform)["bluegreen.reason"] == "customer reports"
    status = run_cli(root, tmp_path / "d", "status", "--service", SERVICE, "--output", "json")
    doc = json.loads(status.stdout)
    assert doc["state"]["phase"] == "rolled-back" and doc["routes"]["active"] == "v1"
    assert [e["phase"] for e in doc["state"]["timeline"]][-1] == "rollback"
    table = run_cli(root, tmp_path / "e", "status", "--service", SERVICE)
    assert "phase     rolled-back" in table.stdout and "rollback   succeeded" in table.stdout


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalDriver, Path]]:
    """One platform for the tests that must leave it unchanged."""
    root = tmp_path_factory.mktemp("shared") / "platform"
    with running_platform(root) as driver:
        yield driver, root


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["promote", "--service", "nope", "--version", "v2"], "--service nope"),
        (["promote", "--service", SERVICE], "needs --version"),
        (["deploy", "--service", SERVICE, "--version", "V 2"], "version 'V 2' is invalid"),
        (["promote", "--service", SERVICE, "--version", "v2", "--scale-down-delay-seconds", "-5"],
         "--scale-down-delay-seconds -5"),
        (["promote", "--service", SERVICE, "--version", "v2", "--image", "bad image"], "--image 'bad image'"),
        (["promote", "--service", SERVICE, "--version", "v2", "--analysis", "/nonexistent.yaml"],
         "no such file"),
        (["promote", "--service", SERVICE, "--version", "v2", "--prometheus", "http://127.0.0.1:9",
          "--analysis-yaml", "metrics: [{name: m, query: up, successCondition: 'result[0] >>> 1'}]"],
         "does not compile"),
        (["promote", "--service", SERVICE, "--version", "v2", "--prometheus", "http://127.0.0.1:9",
          "--analysis-yaml", "metrics: [{name: m, query: up, failureCondition: '__import__(\"os\")'}]"],
         "does not compile"),
        (["rollback", "--service", SERVICE], "needs --reason"),
        (["promote", "--service", SERVICE, "--version", "v2", "--phases", "deploy,launch"], "--phases"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_and_changes_nothing(
    shared: tuple[LocalDriver, Path], tmp_path: Path, args: list[str], message: str
) -> None:
    _, root = shared
    before = (root / "state.json").read_bytes()
    done = run_cli(root, tmp_path / "out", *args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert (root / "state.json").read_bytes() == before
    assert not (tmp_path / "out").exists()


def test_prometheus_analysis_no_data_is_a_failure_unless_allowed(
    platform: LocalDriver, root: Path, tmp_path: Path
) -> None:
    prom: RunningPrometheus = start(wait_up=False)
    try:
        ok = tmp_path / "ok.yaml"
        ok.write_text(
            "metrics:\n"
            "  - name: error-ratio\n"
            "    query: vector(0.001)\n"
            "    successCondition: result[0] < 0.01\n"
            "    failureCondition: result[0] > 0.05\n"
            "    interval: 100ms\n"
            "    count: 2\n"
        )
        done = promote(root, tmp_path / "a", "v2", "--analysis", str(ok), "--prometheus", prom.url)
        assert done.returncode == 0, done.stderr
        metrics = {m["name"]: m for m in report_of(tmp_path / "a")["analysis"][0]["metrics"]}
        assert metrics["error-ratio"]["phase"] == "Successful" and metrics["error-ratio"]["successful"] == 2

        empty = tmp_path / "empty.yaml"
        empty.write_text(
            "kind: AnalysisTemplate\n"
            "spec:\n"
            "  metrics:\n"
            "    - name: green-errors\n"
            "      provider:\n"
            "        prometheus: {query: 'sum(rate(no_such_series_total{version=\"$version\"}[1m]))'}\n"
            "      successCondition: result[0] < 0.01\n"
        )
        failed = promote(root, tmp_path / "b", "v3", "--analysis", str(empty), "--prometheus", prom.url)
        assert failed.returncode == 1
        outputs = outputs_of(tmp_path / "b")
        assert outputs["phase"] == "aborted" and "green-errors failed: no data" in outputs["reason"]
        assert platform.routes(SERVICE).active == "v2"

        allowed = tmp_path / "allowed.yaml"
        allowed.write_text(empty.read_text() + "      allowEmpty: true\n")
        done = promote(root, tmp_path / "c", "v3", "--analysis", str(allowed), "--prometheus", prom.url)
        assert done.returncode == 0, done.stderr
        assert platform.routes(SERVICE).active == "v3"
    finally:
        prom.stop()


def _local_run(tmp_path: Path, root: Path, name: str, *params: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "rpops", "local", "run", "research-platform-blue-green",
            "--runs-dir", str(tmp_path / "runs"), "--name", name, "--output", "json",
            "-p", f"service={SERVICE}", "-p", "verify-seconds=1", "-p", "scale-down-delay-seconds=0",
            *params]  # fmt: skip
    from bluegreen_support import cli_env

    return subprocess.Popen(argv, cwd=REPO, env=cli_env(root, tmp_path / "unused"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def _run_status(tmp_path: Path, name: str) -> dict[str, object]:
    path = tmp_path / "runs" / name / "status.json"
    try:
        doc: dict[str, object] = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return doc


def _promotion_metrics(doc: dict[str, object]) -> list[dict[str, object]]:
    status = doc.get("status") or {}
    assert isinstance(status, dict)
    return [m for m in status.get("metrics") or [] if m.get("name") == "research_platform_promotions_total"]


def test_the_template_runs_under_rpops_local(platform: LocalDriver, root: Path, tmp_path: Path) -> None:
    with Load(platform.service_url(SERVICE)) as load:
        run = _local_run(tmp_path, root, "bg-auto", "-p", "version=v2")
        stdout, stderr = run.communicate(timeout=120)
        assert run.returncode == 0, stderr
        doc = json.loads(stdout)
        assert doc["status"]["phase"] == "Succeeded"
        assert {p["name"]: p["value"] for p in doc["status"]["outputs"]["parameters"]}.items() >= {
            "phase": "complete",
            "active_version": "v2",
            "previous_version": "v1",
            "rolled_back": "false",
            "result": "promoted",
        }.items()
        assert [m["labels"] for m in _promotion_metrics(doc)] == [{"service": SERVICE, "result": "promoted"}]
        assert platform.routes(SERVICE).active == "v2"

        # auto-promote=false: the run suspends after the analysis, before the switch, until resumed.
        held = _local_run(tmp_path, root, "bg-manual", "-p", "version=v3", "-p", "auto-promote=false")

        def suspended() -> bool:
            status: Any = _run_status(tmp_path, "bg-manual").get("status") or {}
            nodes = status.get("nodes") or {}
            return any(
                n.get("displayName") == "approval" and n.get("phase") == "Running" for n in nodes.values()
            )

        wait_until(suspended, timeout=60, interval=0.1)
        assert state_of(platform)["bluegreen.phase"] == "analyzed"
        assert platform.routes(SERVICE).active == "v2"
        time.sleep(0.5)
        assert platform.routes(SERVICE).active == "v2"  # still waiting
        resumed = subprocess.run(
            [sys.executable, "-m", "rpops", "local", "resume", "bg-manual",
             "--runs-dir", str(tmp_path / "runs")],
            capture_output=True, text=True, timeout=30, cwd=REPO,
        )  # fmt: skip
        assert resumed.returncode == 0, resumed.stderr
        stdout, stderr = held.communicate(timeout=120)
        assert held.returncode == 0, stderr
        time.sleep(0.2)
    assert load.failures == []
    assert platform.routes(SERVICE).active == "v3"
    assert replicas(platform) == {"v2": 0, "v3": 2}


def test_the_template_rolls_back_and_counts_a_failed_promotion(
    platform: LocalDriver, root: Path, tmp_path: Path
) -> None:
    # A latency bound no probe can meet: the pre-promotion analysis fails, the exit handler runs.
    run = _local_run(tmp_path, root, "bg-fail", "-p", "version=v2", "-p", "max-p95-ms=0.001")
    stdout, stderr = run.communicate(timeout=120)
    doc = json.loads(stdout)
    assert doc["status"]["phase"] == "Failed", stderr
    nodes = {n["displayName"]: n for n in doc["status"]["nodes"].values()}
    assert nodes["promotion"]["phase"] == "Omitted"
    assert nodes["rollback"]["phase"] == "Succeeded"
    assert [m["labels"] for m in _promotion_metrics(doc)] == [{"service": SERVICE, "result": "aborted"}]
    assert platform.routes(SERVICE).active == "v1"
    assert replicas(platform) == {"v1": 2, "v2": 0}
    state = state_of(platform)
    assert state["bluegreen.phase"] == "aborted" and "latency-p95 failed" in state["bluegreen.reason"]
    assert "bluegreen.lock" not in state


def test_sigterm_leaves_a_state_a_rerun_finishes(platform: LocalDriver, root: Path, tmp_path: Path) -> None:
    """A runner stopped mid-verify (a pod evicted) leaves the switch recorded; the rerun verifies again."""
    proc = start_cli(root, tmp_path / "a", "promote", "--service", SERVICE, "--version", "v2", *FAST,
                     "--owner", "job", "--verify-seconds", "30")  # fmt: skip
    wait_until(lambda: state_of(platform).get("bluegreen.phase") == "switched", interval=0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    done = promote(root, tmp_path / "b", "v2", "--owner", "job")
    assert done.returncode == 0, done.stderr
    assert state_of(platform)["bluegreen.phase"] == "complete"
    timeline = report_of(tmp_path / "b")["timeline"]
    assert ("verify", "interrupted") in [(e["phase"], e["result"]) for e in timeline]


def test_exit_handler_rollback_touches_only_its_own_unfinished_promotion(
    platform: LocalDriver, root: Path, tmp_path: Path
) -> None:
    crashed = promote(root, tmp_path / "a", "v2", "--owner", "wf-a", RPOPS_BLUEGREEN_CRASH_AFTER="analyze")
    assert crashed.returncode == 137
    before = state_of(platform)
    # another workflow's exit handler: leaves wf-a's promotion alone, without waiting for its lock
    other = run_cli(root, tmp_path / "b", "rollback", "--service", SERVICE, "--owner", "wf-b", "--if-owner",
                    "--reason", "workflow wf-b ended Failed", "--lock-wait", "300", timeout=20)  # fmt: skip
    assert other.returncode == 0, other.stderr
    assert outputs_of(tmp_path / "b")["result"] == "skipped"
    assert state_of(platform) == before
    # wf-a's own exit handler undoes it
    own = run_cli(root, tmp_path / "c", "rollback", "--service", SERVICE, "--owner", "wf-a", "--if-owner",
                  "--reason", "workflow wf-a ended Failed")  # fmt: skip
    assert own.returncode == 0, own.stderr
    assert outputs_of(tmp_path / "c")["result"] == "aborted"
    assert replicas(platform) == {"v1": 2, "v2": 0}
    # and never undoes a promotion that completed
    assert promote(root, tmp_path / "d", "v3", "--owner", "wf-c").returncode == 0
    done = run_cli(root, tmp_path / "e", "rollback", "--service", SERVICE, "--owner", "wf-c", "--if-owner",
                   "--reason", "workflow wf-c ended Error")  # fmt: skip
    assert done.returncode == 0 and outputs_of(tmp_path / "e")["result"] == "skipped"
    assert platform.routes(SERVICE).active == "v3"
