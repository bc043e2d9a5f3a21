"""`rpops scale` end to end: the local driver with real workload processes, a real Prometheus
(live scrapes and backfilled history), and the kubernetes driver against kmock's API emulator.

Every process is started on 127.0.0.1 and stopped by PID in a fixture's teardown.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from kmock_fixture import (
    DEPLOYMENTS,
    HPAS,
    PODS,
    SERVICES,
    ApiServer,
    deployment_obj,
    hpa_obj,
    play_controller,
    pod_obj,
    service_obj,
    use_kubeconfig,
)
from prometheus_fixture import RunningPrometheus, free_port, start
from rpops.core.times import iso
from rpops.platform import AutoscalingBounds
from rpops.platform.local.driver import LocalDriver
from rpops.steps.scale.synthetic import Trace, sample
from step_runner import Runner, step_runner

SERVICE = "rp"
PREFIX = "rpops.research-platform.io/"


@pytest.fixture()
def platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalDriver]:
    root = tmp_path / "platform"
    monkeypatch.setenv("RPOPS_PLATFORM_DIR", str(root))
    monkeypatch.setenv("RPOPS_PLATFORM", "local")
    driver = LocalDriver(root=root, ready_interval=0.2, drain_timeout=3.0)
    try:
        driver.up(SERVICE, "v1", replicas=1, port=0)
        yield driver
    finally:
        driver.down()


@pytest.fixture()
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Runner:
    """`rpops scale ARGS` in-process, outputs under a fresh directory per call."""
    return step_runner("scale", tmp_path, monkeypatch, capsys)


def set_faults(driver: LocalDriver, **faults: float) -> None:
    token = driver.admin_token(SERVICE)
    for inst in driver.instances(SERVICE, "v1"):
        r = httpx.post(
            f"{inst.url}/admin/faults",
            json=faults,
            headers={"Authorization": f"Bearer {token}"},
            trust_env=False,
        )
        r.raise_for_status()


def wait_cpu(
    driver: LocalDriver, percent: float, of: Callable[[list[float]], float] = min, timeout: float = 15.0
) -> None:
    """Wait until `of` the instances' CPU figures (every one by default) reads `percent` or more."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        figures = [
            httpx.get(f"{i.url}/api/performance/status", trust_env=False).json()["cpu_percent"]
            for i in driver.instances(SERVICE, "v1")
        ]
        if of(figures) >= percent:
            return
        time.sleep(0.2)
    raise AssertionError(f"cpu_burn never showed {percent}% on every instance: {figures}")


def wait_idle(driver: LocalDriver, percent: float = 20.0, timeout: float = 20.0) -> None:
    """Wait until every instance's CPU reads below `percent` (start-up work has settled)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        figures = [
            httpx.get(f"{i.url}/api/performance/status", trust_env=False).json()["cpu_percent"]
            for i in driver.instances(SERVICE, "v1")
        ]
        if max(figures) < percent:
            return
        time.sleep(0.3)
    raise AssertionError(f"the instances never settled below {percent}% CPU")


def policy_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return str(path)


# A policy scaled for a shared 2-core test machine: a 0.9 burn reads 50-90%.
LOW_CPU_POLICY = "resources:\n  cpu: {scale_up: 0.3, scale_down: 0.05}\n"


# --- reactive, from the instances' own figures --------------------------------------------------


def test_scale_up_under_cpu_load_then_cooldown(platform: LocalDriver, run: Runner, tmp_path: Path) -> None:
    policy = policy_file(tmp_path, LOW_CPU_POLICY)
    set_faults(platform, cpu_burn=0.9)
    wait_cpu(platform, 40)
    r = run("--service", SERVICE, "--policy", policy)
    assert r.code == 0, r.stderr
    assert (
        r.output("scaled") == "true" and r.output("decision") == "scale-up" and r.output("direction") == "up"
    )
    replicas = int(r.output("replicas"))
    assert replicas >= 2, r.output("reason")
    w = platform.workload(SERVICE, "v1")
    assert w.replicas == replicas and w.ready_replicas == replicas
    assert len(platform.instances(SERVICE, "v1")) == replicas  # real processes were started
    assert w.annotations["last-scale-reason"].startswith("scale-up to")
    assert w.annotations["last-scale-resource"] == "cpu"
    report = r.report
    assert (
        report["formula"].startswith("cpu: ceil(1 x ")
        and report["observed"]["readings"]["cpu"]["value"] >= 40
    )
    assert report["observed"]["readings"]["cpu"]["source"].startswith("instances:")
    # Every instance burns again, against a lower threshold: more is wanted, but the cpu cooldown
    # (120 s) holds it. Up to four replicas share two cores, so what counts is their average (what
    # the step reads): 0.2 is twice the threshold.
    set_faults(platform, cpu_burn=0.9)
    wait_cpu(platform, 20, statistics.mean)
    tighter = policy_file(tmp_path, "resources:\n  cpu: {scale_up: 0.1, scale_down: 0.01}\n")
    again = run("--service", SERVICE, "--policy", tighter)
    assert again.code == 0 and again.output("scaled") == "false" and again.output("decision") == "hold"
    assert "cooldown" in again.output("reason")
    assert platform.workload(SERVICE, "v1").replicas == replicas


def test_dry_run_reports_and_changes_nothing(platform: LocalDriver, run: Runner, tmp_path: Path) -> None:
    set_faults(platform, cpu_burn=0.9)
    wait_cpu(platform, 40)
    before = platform.workload(SERVICE, "v1")
    r = run(
        "--service",
        SERVICE,
        "--version",
        "v1",
        "--policy",
        policy_file(tmp_path, LOW_CPU_POLICY),
        "--dry-run",
    )
    assert r.code == 0
    assert (
        r.output("decision") == "scale-up" and r.output("scaled") == "false" and r.output("replicas") == "1"
    )
    assert "dry run: nothing changed" in r.stdout and r.report["done"] == [] and r.report["target"] >= 2
    after = platform.workload(SERVICE, "v1")
    assert after.replicas == before.replicas == 1 and after.annotations == before.annotations


def test_scale_down_waits_out_the_stabilisation_window(platform: LocalDriver, run: Runner) -> None:
    platform.scale(SERVICE, "v1", 3)
    # One replica is recommended while the average utilisation of three stays under 0.1
    # (ceil(3 x u / 0.3) = 1): let start-up CPU settle before each reading.
    wait_idle(platform, 8.0)
    now = time.time()
    first = run("--service", SERVICE, "--now", iso(now))
    assert first.code == 0 and first.output("decision") == "hold", first.output("reason")
    assert "stabilisation window" in first.output("reason")
    assert platform.workload(SERVICE, "v1").replicas == 3
    history = json.loads(platform.workload(SERVICE, "v1").annotations["scale-recommendations"])
    assert history == [[int(now), 1]]
    # 301 s later (as the step sees it) the recommendation has been 1 for the whole window
    wait_idle(platform, 8.0)
    later = run("--service", SERVICE, "--now", iso(now + 301))
    assert later.code == 0 and later.output("decision") == "scale-down", later.output("reason")
    assert later.output("replicas") == "1" and later.output("direction") == "down"
    assert platform.workload(SERVICE, "v1").replicas == 1
    assert len(platform.instances(SERVICE, "v1")) == 1


def test_with_an_hpa_only_min_replicas_moves(platform: LocalDriver, run: Runner, tmp_path: Path) -> None:
    platform.set_autoscaling(SERVICE, AutoscalingBounds(1, 4))
    set_faults(platform, cpu_burn=0.9)
    wait_cpu(platform, 40)
    r = run("--service", SERVICE, "--policy", policy_file(tmp_path, LOW_CPU_POLICY))
    assert r.code == 0 and r.output("scaled") == "true", r.output("reason")
    w = platform.workload(SERVICE, "v1")
    assert w.autoscaling is not None and w.autoscaling.min_replicas >= 2 and w.autoscaling.max_replicas == 4
    assert w.replicas == 1  # the step never sets replicas under an HPA
    assert w.annotations["hpa-base-min-replicas"] == "1"
    assert r.report["action"] == "set-min" and "minReplicas 1 ->" in r.output("reason")


# --- bad input: exit 2, nothing changed -------------------------------------------------------


def state_of(driver: LocalDriver) -> str:
    return (driver.root / "state.json").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--min-replicas", "0"], "--min-replicas 0 is too low"),
        (["--min-replicas", "-2"], "--min-replicas -2 is too low"),
        (["--max-replicas", "5000"], "--max-replicas 5000 is above the maximum of 1000"),
        (["--max-replicas", "three"], "--max-replicas: 'three' is not a whole number"),
        (
            ["--min-replicas", "5", "--max-replicas", "2"],
            "min replicas 5 (--min-replicas) is greater than max",
        ),
        (["--min-replicas", "12"], "is greater than max replicas 10 (the policy's max_replicas"),
        (["--version", "v9"], "rp/v9 is not a workload on the local platform"),
        (["--version", "V_9"], "version 'V_9' is invalid"),
        (["--mode", "predictive"], "--mode predictive needs --prometheus URL"),
        (["--now", "tomorrow"], "--now 'tomorrow' is not an ISO 8601 time"),
        (["--prometheus", "ftp://x"], "--prometheus: 'ftp://x' is not an http(s) URL"),
        (["--look-ahead-minutes", "-5"], "--look-ahead-minutes '-5' is out of range"),
        (["--mode", "sideways"], "invalid choice: 'sideways'"),
    ],
)
def test_bad_input_exits_2_and_changes_nothing(
    platform: LocalDriver, run: Runner, args: list[str], message: str
) -> None:
    before = state_of(platform)
    r = run("--service", SERVICE, *args)
    assert r.code == 2, r.stdout + r.stderr
    assert message in r.stderr
    assert state_of(platform) == before


def test_unknown_service_and_policy_errors_exit_2(platform: LocalDriver, run: Runner, tmp_path: Path) -> None:
    before = state_of(platform)
    r = run("--service", "nosuch")
    assert r.code == 2 and "nosuch/(active) is not a workload on the local platform" in r.stderr
    r = run(
        "--service",
        SERVICE,
        "--policy",
        policy_file(tmp_path, "resources: {cpu: {scale_up: 0.2, scale_down: 0.4}}\n"),
    )
    assert r.code == 2 and "resources.cpu.scale_down 0.4 must be below scale_up 0.2" in r.stderr
    r = run("--service", SERVICE, "--policy", str(tmp_path / "missing.yaml"))
    assert r.code == 2 and "cannot read the policy file" in r.stderr
    assert state_of(platform) == before


def test_subprocess_exit_code_and_outputs(platform: LocalDriver, tmp_path: Path) -> None:
    wait_idle(platform)  # "hold" needs utilisation under the scale-up threshold: start-up CPU settles
    env = {
        **os.environ,
        "RPOPS_OUTPUTS": str(tmp_path / "cli"),
        "RPOPS_PLATFORM_DIR": str(platform.root),
        "RPOPS_PLATFORM": "local",
    }
    done = subprocess.run(
        [sys.executable, "-m", "rpops", "scale", "--service", SERVICE, "--dry-run", "false"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("hold rp/v1: 1 -> 1:")
    assert (tmp_path / "cli" / "scaled").read_text() == "false"
    bad = subprocess.run(
        [sys.executable, "-m", "rpops", "scale", "--service", SERVICE, "--max-replicas", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert bad.returncode == 2 and "--max-replicas 0 is too low" in bad.stderr


# --- through a real Prometheus ------------------------------------------------------------------


@pytest.fixture()
def live_prometheus(platform: LocalDriver) -> Iterator[RunningPrometheus]:
    targets = [i.url.split("//", 1)[1] for i in platform.instances(SERVICE, "v1")]
    prom = start(targets)
    try:
        yield prom
    finally:
        prom.stop()


def test_reactive_from_prometheus(
    platform: LocalDriver, live_prometheus: RunningPrometheus, run: Runner, tmp_path: Path
) -> None:
    set_faults(platform, cpu_burn=0.9)
    wait_cpu(platform, 40)
    live_prometheus.wait_for("research_platform_cpu_usage_percent > 30")
    r = run(
        "--service",
        SERVICE,
        "--prometheus",
        live_prometheus.url,
        "--policy",
        policy_file(tmp_path, LOW_CPU_POLICY),
    )
    assert r.code == 0 and r.output("decision") == "scale-up", r.output("reason")
    cpu = r.report["observed"]["readings"]["cpu"]
    assert cpu["source"].startswith("prometheus: avg(research_platform_cpu_usage_percent{instance=~")
    assert cpu["value"] > 30
    assert platform.workload(SERVICE, "v1").replicas >= 2


def test_prometheus_without_data_is_no_decision(platform: LocalDriver, run: Runner) -> None:
    with start([]) as prom:  # scrapes nothing: every query is empty
        before = state_of(platform)
        r = run("--service", SERVICE, "--prometheus", prom.url)
        assert r.code == 0 and r.output("decision") == "no-decision" and r.output("scaled") == "false"
        assert "Prometheus returned no series" in r.output("reason")
        assert state_of(platform) == before


def test_prometheus_refusing_a_query_exits_2_and_unreachable_exits_3(
    platform: LocalDriver, run: Runner, tmp_path: Path
) -> None:
    with start([]) as prom:
        policy = policy_file(tmp_path, "resources:\n  cpu: {query: 'avg(rate(x[$window])'}\n")
        r = run("--service", SERVICE, "--prometheus", prom.url, "--policy", policy)
        assert r.code == 2 and "Prometheus refused" in r.stderr and "resources.cpu.query" in r.stderr
    r = run("--service", SERVICE, "--prometheus", f"http://127.0.0.1:{free_port()}")
    assert r.code == 3 and "unreachable" in r.stderr


# --- predictive, on backfilled history ----------------------------------------------------------


def requests_history(instance: str, trace: Trace, start: float, end: float, step: float = 60.0) -> str:
    """OpenMetrics for a research_platform_requests counter following `trace` (its rate)."""
    lines = ["# TYPE research_platform_requests counter"]
    total = 0.0
    for t, rate in sample(trace, start, end, step):
        total += rate * step
        lines.append(
            f'research_platform_requests_total{{instance="{instance}",job="workload",route="/health",'
            f'method="GET",status="200"}} {total:.3f} {t:.3f}'
        )
    return "\n".join(lines) + "\n# EOF\n"


def test_predictive_forecasts_a_ramp_and_prescales_only_when_asked(
    platform: LocalDriver, run: Runner
) -> None:
    # "Now" is the last 08:00 UTC at least an hour ago; the daily ramp (to 100 rps) starts at 08:15.
    # History: two days of that pattern, backfilled for the running instance.
    day = 86400.0
    now = (time.time() - 3600 - 8 * 3600) // day * day + 8 * 3600
    trace = Trace(
        base=10,
        peak=100,
        ramp_start_h=8.25,
        ramp_minutes=10,
        weekend_factor=1.0,
        trend_per_day=0.0,
        noise=0.03,
        origin=now,
    )
    instance = platform.instances(SERVICE, "v1")[0].url.split("//", 1)[1]
    history = requests_history(instance, trace, now - 2 * day, now)
    with start([], backfill_openmetrics=history) as prom:
        args = [
            "--service",
            SERVICE,
            "--mode",
            "predictive",
            "--prometheus",
            prom.url,
            "--now",
            iso(now),
            "--history-days",
            "2",
            "--replica-capacity-rps",
            "40",
        ]
        r = run(*args)
        assert r.code == 0, r.stderr
        assert r.output("decision") == "scale-up" and r.output("scaled") == "false", r.output("reason")
        assert "forecast only" in r.output("reason")
        details = r.report["details"]
        assert 85 <= details["forecast_peak_rps"] <= 115 and r.report["target"] == 3
        assert details["forecast_peak_at"] > iso(now + 15 * 60)  # the peak is after the ramp starts
        assert platform.workload(SERVICE, "v1").replicas == 1
        applied = run(*args, "--apply-forecast")
        assert applied.code == 0 and applied.output("scaled") == "true" and applied.output("replicas") == "3"
        assert platform.workload(SERVICE, "v1").replicas == 3
        # with only 18 h of history before it, the 24 h minimum refuses to decide
        short = run(
            "--service",
            SERVICE,
            "--mode",
            "predictive",
            "--prometheus",
            prom.url,
            "--now",
            iso(now - 30 * 3600),
            "--history-days",
            "2",
            "--replica-capacity-rps",
            "40",
        )
        assert short.code == 0 and short.output("decision") == "no-decision"
        assert "not enough history" in short.output("reason")
        assert platform.workload(SERVICE, "v1").replicas == 3


# --- the kubernetes driver, against kmock -------------------------------------------------------

NS = "rp-ns"


@pytest.fixture()
def kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ApiServer]:
    api = ApiServer(NS)
    api.put(DEPLOYMENTS, "rp-v1", deployment_obj(NS, SERVICE, "v1", replicas=2))
    play_controller(api, "rp-v1")  # rolled out: its ReplicaSet, as a controller keeps it
    api.put(SERVICES, SERVICE, service_obj(NS, SERVICE, SERVICE, "v1"))
    api.put(HPAS, SERVICE, hpa_obj(NS, SERVICE, "rp-v1", 2, 6))
    api.put(PODS, "rp-v1-a", pod_obj(NS, "rp-v1-a", SERVICE, "v1", "10.0.0.5"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    use_kubeconfig(monkeypatch, api.kubeconfig(tmp_path))
    monkeypatch.setenv("RPOPS_NAMESPACE", NS)
    monkeypatch.setenv("RPOPS_PLATFORM", "kubernetes")
    try:
        yield api
    finally:
        api.close()


def test_kubernetes_with_hpa_moves_min_replicas_only(kube: ApiServer, run: Runner, tmp_path: Path) -> None:
    from rpops.workload.testing import start_workload

    # The pods' figures come from Prometheus scraping a real workload that burns CPU (the pod IPs
    # are never contacted).
    with (
        start_workload(version="v1", cpu_burn=0.9) as workload,
        start([f"127.0.0.1:{workload.port}"]) as prom,
    ):
        prom.wait_for("research_platform_cpu_usage_percent > 30")
        policy = policy_file(tmp_path, LOW_CPU_POLICY)
        r = run(
            "--service", SERVICE, "--prometheus", prom.url, "--selector", 'job="workload"', "--policy", policy
        )
    assert r.code == 0 and r.output("scaled") == "true", r.stderr + r.output("reason")
    hpa = kube.get(HPAS, SERVICE)
    deployment = kube.get(DEPLOYMENTS, "rp-v1")
    assert hpa["spec"]["minReplicas"] >= 3 and hpa["spec"]["maxReplicas"] == 6
    assert deployment["spec"]["replicas"] == 2  # never set under an HPA
    annotations = deployment["metadata"]["annotations"]
    assert annotations[f"{PREFIX}hpa-base-min-replicas"] == "2"
    assert annotations[f"{PREFIX}last-scale-reason"].startswith("scale-up: raise the HPA's minReplicas 2 ->")
    assert not any(w.startswith("PATCH") and "deployments" in w and "scale" in w for w in kube.writes())
