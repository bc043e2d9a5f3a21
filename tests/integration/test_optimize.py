"""`rpops optimize` end to end: a real Prometheus (backfilled history and live scrapes of real
workload processes), the local driver, and the kubernetes driver against kmock's API emulator."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
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
from rpops.platform import Resources
from rpops.platform.local.driver import LocalDriver
from step_runner import Runner, step_runner

SERVICE = "rp"
MI = 2**20


@pytest.fixture()
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Runner:
    """`rpops optimize ARGS` in-process, outputs under a fresh directory per call."""
    return step_runner("optimize", tmp_path, monkeypatch, capsys)


@pytest.fixture()
def platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalDriver]:
    root = tmp_path / "platform"
    monkeypatch.setenv("RPOPS_PLATFORM_DIR", str(root))
    monkeypatch.setenv("RPOPS_PLATFORM", "local")
    driver = LocalDriver(root=root, ready_interval=0.2, drain_timeout=3.0)
    try:
        driver.up(SERVICE, "v1", replicas=1, port=0)
        driver.set_resources(
            SERVICE, "v1", Resources(cpu_request="1", memory_request="512Mi", memory_limit="512Mi")
        )
        yield driver
    finally:
        driver.down()


def address(driver: LocalDriver) -> str:
    return driver.instances(SERVICE, "v1")[0].url.split("//", 1)[1]


def process_history(
    labels: str, start: float, end: float, cores: float, peak_bytes: float, step: float = 15.0
) -> str:
    """OpenMetrics: a CPU counter burning `cores` and a resident memory gauge that peaks once."""
    cpu = ["# TYPE process_cpu_seconds counter"]
    mem = ["# TYPE process_resident_memory_bytes gauge"]
    t, total, i = start, 0.0, 0
    while t < end:
        total += cores * step
        cpu.append(f"process_cpu_seconds_total{{{labels}}} {total:.3f} {t:.3f}")
        value = peak_bytes if i == 200 else 0.5 * peak_bytes + (i % 7) * MI
        mem.append(f"process_resident_memory_bytes{{{labels}}} {value:.0f} {t:.3f}")
        t, i = t + step, i + 1
    return "\n".join(cpu + mem) + "\n# EOF\n"


def test_backfilled_history_gives_krr_simple_and_applies(platform: LocalDriver, run: Runner) -> None:
    now = time.time()
    inst = address(platform)
    history = process_history(f'instance="{inst}",job="workload"', now - 4 * 3600, now - 30, 0.25, 120 * MI)
    with start([inst], backfill_openmetrics=history) as prom:
        r = run("--service", SERVICE, "--prometheus", prom.url, "--history-hours", "6", "--apply")
    assert r.code == 0, r.stderr
    rec = json.loads(r.output("recommendation"))
    # P95 of a steady 0.25 cores; peak 120Mi + 15% = 138Mi; no CPU limit
    assert rec == {
        "cpu_request": "250m",
        "cpu_limit": None,
        "memory_request": "138Mi",
        "memory_limit": "138Mi",
    }
    assert r.output("applied") == "true" and r.output("leak") == "false"
    assert platform.workload(SERVICE, "v1").resources == Resources(
        cpu_request="250m", cpu_limit=None, memory_request="138Mi", memory_limit="138Mi"
    )
    report = r.report
    assert report["cpu"]["points"] >= 100 and report["cpu"]["history_s"] >= 3 * 3600
    assert "process_cpu_seconds_total{instance=~" in report["queries"]["cpu"]["query"]
    assert report["current"]["cpu_request"] == "1"
    # A second run finds nothing past the 10% threshold and changes nothing.


def test_second_run_within_threshold_changes_nothing(platform: LocalDriver, run: Runner) -> None:
    now = time.time()
    inst = address(platform)
    platform.set_resources(
        SERVICE, "v1", Resources(cpu_request="240m", memory_request="130Mi", memory_limit="130Mi")
    )
    history = process_history(f'instance="{inst}",job="workload"', now - 4 * 3600, now - 30, 0.25, 120 * MI)
    with start([], backfill_openmetrics=history) as prom:
        r = run("--service", SERVICE, "--prometheus", prom.url, "--history-hours", "6", "--apply")
    assert r.code == 0 and r.output("applied") == "false", r.output("reason")
    assert "cpu: keep 240m" in r.output("reason") and "memory: keep 130Mi" in r.output("reason")
    assert platform.workload(SERVICE, "v1").resources.cpu_request == "240m"


def pods_history(start: float, end: float, busy_pods: int, idle_pods: int, step: float = 15.0) -> str:
    """Several instances of one version: busy ones cycle 0.3..1.2 cores every 10 minutes, idle ones
    burn 0.05; memory follows the load."""
    cpu = ["# TYPE process_cpu_seconds counter"]
    mem = ["# TYPE process_resident_memory_bytes gauge"]
    for n in range(busy_pods + idle_pods):
        labels = f'instance="10.9.0.{n}:8000",job="fleet"'
        busy = n < busy_pods
        t, total = start, 0.0
        while t < end:
            cores = (0.3 + 0.3 * (int((t - start) // 600 + n) % 4)) if busy else 0.05
            total += cores * step
            cpu.append(f"process_cpu_seconds_total{{{labels}}} {total:.3f} {t:.3f}")
            rss = (100 + 200 * cores + n) * MI
            mem.append(f"process_resident_memory_bytes{{{labels}}} {rss:.0f} {t:.3f}")
            t += step
    return "\n".join(cpu + mem) + "\n# EOF\n"


@pytest.mark.parametrize(("busy", "idle"), [(1, 2), (1, 9), (2, 18)])
def test_multi_pod_history_matches_prometheus_own_per_pod_quantile_then_max(
    platform: LocalDriver, run: Runner, busy: int, idle: int
) -> None:
    """The oracle is Prometheus computing krr's simple strategy itself: `quantile_over_time` per
    pod over the same per-pod rate, then `max` (krr's PercentileCPULoader and strategy); memory
    `max_over_time` per pod, then `max`, plus 15 %."""
    now = (time.time() // 60 - 1) * 60  # on the minute: the range query's steps line up with the subquery's
    history = pods_history(now - 5 * 3600, now - 30, busy, idle)
    with start([], backfill_openmetrics=history) as prom:
        rate = 'sum by (instance) (rate(process_cpu_seconds_total{job="fleet"}[5m]))'
        args = ["--service", SERVICE, "--prometheus", prom.url, "--history-hours", "6", "--now", iso(now)]
        r = run(*args, "--selector", 'job="fleet"', "--step-seconds", "60")
        expected: dict[str, str] = {}
        for q in (0.95, 0.75):
            oracle = prom.query(f"max(quantile_over_time({q}, ({rate})[6h:60s]))", time=now)
            cores = float(oracle["result"][0]["value"][1])
            expected[f"{q:g}"] = f"{max(math.ceil(round(cores * 1000, 6)), 10)}m"
        peak = prom.query('max(max_over_time(process_resident_memory_bytes{job="fleet"}[6h]))', time=now)
        memory = math.ceil(round(float(peak["result"][0]["value"][1]) * 1.15 / MI, 6))
        p75 = run(*args, "--selector", 'job="fleet"', "--step-seconds", "60", "--cpu-percentile", "75")
    assert r.code == 0 and p75.code == 0, r.stderr + p75.stderr
    rec = json.loads(r.output("recommendation"))
    assert rec["cpu_request"] == expected["0.95"], (r.report["cpu"]["info"], expected)
    assert rec["memory_request"] == rec["memory_limit"] == f"{memory}Mi"
    assert json.loads(p75.output("recommendation"))["cpu_request"] == expected["0.75"]
    assert r.report["series"] == {"cpu": busy + idle, "memory": busy + idle}
    # the busy pods set it: far above what the idle majority uses
    assert int(rec["cpu_request"].rstrip("m")) >= 1000


@pytest.fixture()
def live(platform: LocalDriver) -> Iterator[RunningPrometheus]:
    prom = start([address(platform)])
    try:
        yield prom
    finally:
        prom.stop()


def test_defaults_on_minutes_of_data_say_not_enough_data(
    platform: LocalDriver, live: RunningPrometheus, run
) -> None:
    live.wait_for("process_resident_memory_bytes")
    before = platform.workload(SERVICE, "v1").resources
    r = run("--service", SERVICE, "--prometheus", live.url, "--apply")
    assert r.code == 0
    assert r.output("applied") == "false" and "not enough data" in r.output("reason")
    assert json.loads(r.output("recommendation"))["cpu_request"] is None
    assert platform.workload(SERVICE, "v1").resources == before


def set_faults(driver: LocalDriver, **faults: float) -> None:
    token = driver.admin_token(SERVICE)
    for inst in driver.instances(SERVICE, "v1"):
        httpx.post(
            f"{inst.url}/admin/faults",
            json=faults,
            headers={"Authorization": f"Bearer {token}"},
            trust_env=False,
        ).raise_for_status()


SHORT = [
    "--history-hours",
    "0.01",
    "--min-history-hours",
    "0.002",
    "--min-points",
    "5",
    "--rate-window",
    "3s",
    "--step-seconds",
    "1",
]


def test_live_load_with_small_windows(platform: LocalDriver, live: RunningPrometheus, run: Runner) -> None:
    set_faults(platform, cpu_burn=0.8)
    live.wait_for("rate(process_cpu_seconds_total[3s]) > 0.2", timeout=30)
    time.sleep(10)  # ten seconds of samples under load
    r = run("--service", SERVICE, "--prometheus", live.url, *SHORT)
    assert r.code == 0, r.stderr
    rec = json.loads(r.output("recommendation"))
    assert rec["cpu_request"] is not None and int(rec["cpu_request"].rstrip("m")) >= 200
    assert rec["memory_request"] is not None and rec["memory_request"] == rec["memory_limit"]
    assert r.output("applied") == "false"  # recommended only: no --apply


def test_memory_leak_is_reported_and_restarted(
    platform: LocalDriver, live: RunningPrometheus, run: Runner
) -> None:
    before = platform.instances(SERVICE, "v1")[0]
    live.wait_for("process_resident_memory_bytes")
    set_faults(platform, memory_growth_mb_per_s=8)
    time.sleep(12)
    r = run("--service", SERVICE, "--prometheus", live.url, *SHORT, "--restart-leaking")
    assert r.code == 0, r.stderr
    assert r.output("leak") == "true", json.dumps(r.report["leaks"], indent=1)
    finding = next(f for f in r.report["leaks"] if f["leak"])
    assert finding["pod"] == address_of(before.url) and finding["slope_bytes_per_hour"] > 0
    assert "rolling restart" in " ".join(r.report["done"])
    after = platform.instances(SERVICE, "v1")
    assert len(after) == 1 and after[0].pid != before.pid


def address_of(url: str) -> str:
    return url.split("//", 1)[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--history-hours", "0"], "--history-hours 0 is out of range"),
        (["--change-threshold", "-0.1"], "--change-threshold -0.1 is out of range"),
        (["--history-hours", "2"], "--min-history-hours 3 is more than --history-hours 2"),
        (["--rate-window", "five"], "--rate-window 'five' is not a PromQL duration"),
        (["--version", "v7"], "rp/v7 is not a workload"),
        (["--cpu-query", "rate(x[$windw])"], "unknown placeholder(s) $windw"),
        (
            ["--history-hours", "2000", "--step-seconds", "60", "--min-history-hours", "1"],
            "more than 11000 points",
        ),
    ],
)
def test_bad_input_exits_2(platform: LocalDriver, run: Runner, args: list[str], message: str) -> None:
    before = platform.workload(SERVICE, "v1").resources
    with start([]) as prom:
        r = run("--service", SERVICE, "--prometheus", prom.url, "--apply", *args)
    assert r.code == 2, r.stdout + r.stderr
    assert message in r.stderr
    assert platform.workload(SERVICE, "v1").resources == before


def test_queries_file_and_prometheus_failures(platform: LocalDriver, run: Runner, tmp_path: Path) -> None:
    bad = tmp_path / "queries.yaml"
    bad.write_text("cpu: [1, 2]\n")
    r = run("--service", SERVICE, "--prometheus", "http://127.0.0.1:9", "--queries", str(bad))
    assert r.code == 2 and "cpu must be a non-empty PromQL string" in r.stderr
    good = tmp_path / "q.yaml"
    good.write_text("cpu: 'sum by (instance) (rate(process_cpu_seconds_total{$selector}[$window])'\n")
    with start([]) as prom:
        r = run("--service", SERVICE, "--prometheus", prom.url, "--queries", str(good))
        assert r.code == 2 and "Prometheus refused" in r.stderr and f"--queries {good}" in r.stderr
        empty = run("--service", SERVICE, "--prometheus", prom.url, "--apply")
        assert empty.code == 0 and "not enough data: 0 points" in empty.output("reason")
    r = run("--service", SERVICE, "--prometheus", f"http://127.0.0.1:{free_port()}")
    assert r.code == 3 and "unreachable" in r.stderr


# --- the kubernetes driver, against kmock -------------------------------------------------------

NS = "rp-ns"


def cadvisor_history(start: float, end: float, step: float = 30.0) -> str:
    cpu = ["# TYPE container_cpu_usage_seconds counter"]
    mem = ["# TYPE container_memory_working_set_bytes gauge"]
    for pod, cores, peak in (
        ("rp-v1-a", 0.3, 300 * MI),
        ("rp-v1-b", 0.1, 200 * MI),
        ("other-v1-a", 3.0, 4000 * MI),
    ):
        labels = f'namespace="{NS}",pod="{pod}",container="{pod.split("-")[0]}"'
        t, total, i = start, 0.0, 0
        while t < end:
            total += cores * step
            cpu.append(f"container_cpu_usage_seconds_total{{{labels}}} {total:.3f} {t:.3f}")
            mem.append(
                f"container_memory_working_set_bytes{{{labels}}} {peak if i == 50 else peak / 2:.0f} {t:.3f}"
            )
            t, i = t + step, i + 1
        # the pause container's series must be ignored
        mem.append(
            f'container_memory_working_set_bytes{{namespace="{NS}",pod="{pod}",container="POD"}} {9e9:.0f} '
            f"{start + 60:.3f}"
        )
    return "\n".join(cpu + mem) + "\n# EOF\n"


def test_kubernetes_apply_patches_the_deployment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run
) -> None:
    api = ApiServer(NS)
    try:
        api.put(DEPLOYMENTS, "rp-v1", deployment_obj(NS, SERVICE, "v1", replicas=2))
        play_controller(api, "rp-v1")  # rolled out: its ReplicaSet, as a controller keeps it
        api.put(SERVICES, SERVICE, service_obj(NS, SERVICE, SERVICE, "v1"))
        api.put(HPAS, SERVICE, hpa_obj(NS, SERVICE, "rp-v1", 2, 6))
        api.put(PODS, "rp-v1-a", pod_obj(NS, "rp-v1-a", SERVICE, "v1", "10.0.0.5"))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        use_kubeconfig(monkeypatch, api.kubeconfig(tmp_path))
        monkeypatch.setenv("RPOPS_NAMESPACE", NS)
        monkeypatch.setenv("RPOPS_PLATFORM", "kubernetes")
        now = time.time()
        with start([], backfill_openmetrics=cadvisor_history(now - 5 * 3600, now - 60)) as prom:
            r = run("--service", SERVICE, "--prometheus", prom.url, "--apply", "--now", iso(now))
        assert r.code == 0, r.stderr
        assert json.loads(r.output("recommendation")) == {
            "cpu_request": "300m",
            "cpu_limit": None,
            "memory_request": "345Mi",
            "memory_limit": "345Mi",
        }
        container = api.get(DEPLOYMENTS, "rp-v1")["spec"]["template"]["spec"]["containers"][0]
        assert container["resources"] == {
            "requests": {"cpu": "300m", "memory": "345Mi"},
            "limits": {"memory": "345Mi"},
        }
        assert r.output("applied") == "true" and r.report["hpa"] == {"min_replicas": 2, "max_replicas": 6}
        assert any("HPA" in note for note in r.report["notes"])
        assert 'namespace="rp-ns",pod=~"rp-v1-.*"' in r.report["queries"]["memory"]["query"]
    finally:
        api.close()
