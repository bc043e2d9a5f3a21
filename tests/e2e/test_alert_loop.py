"""The whole loop, for real: faults in the workload -> Prometheus alerts -> Alertmanager's webhook ->
`rpops local serve` -> the WorkflowEventBinding -> research-platform-recovery -> the remediation
acts on the local platform -> the alert resolves.

Processes (all on 127.0.0.1, stopped by PID): the local platform (proxy + workload processes),
Prometheus (Debian's) scraping them with the production scrape jobs and rules (`for` capped at
1 s, see fixtures.py), Alertmanager (Debian's) with the production routing, and `rpops local
serve` with the rendered manifests. A steady load stands in for users and kubelet probes, and
two busy processes (fixtures.CpuHogs, RPOPS_TEST_CPU_HOGS) for whatever else the machine runs:
the loop must close on a busy machine, not only on a quiet one.

Every recovery here is started by a real alert and decides from that alert's own rule: the
first check's status, the scale step's reading and the second check's verdict all come from
the alert's expression in Prometheus (rpops.alerting.evidence).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fixtures import (
    REGION,
    SERVICE,
    VERSION,
    CpuHogs,
    Load,
    RunningAlertmanager,
    RunningServe,
    alertmanager_payload,
    platform_dir,
    start_stack,
    wait_until,
)
from prometheus_fixture import RunningPrometheus
from rpops.platform.local.driver import LocalDriver

from workflows import recovery

PHASE_TIMEOUT = 60.0


@dataclass
class Loop:
    driver: LocalDriver
    url: str
    prometheus: RunningPrometheus
    alertmanager: RunningAlertmanager
    serve: RunningServe

    @property
    def version(self) -> str:
        """The version the service's route selects (v2 once the promotion test has run)."""
        return self.driver.routes(SERVICE).active or VERSION

    def replicas(self) -> int:
        return self.driver.workload(SERVICE, self.version).replicas

    def set_faults(self, **faults: Any) -> None:
        token = self.driver.admin_token(SERVICE)
        for inst in self.driver.instances(SERVICE, self.version):
            response = httpx.post(
                f"{inst.url}/admin/faults",
                json=faults,
                headers={"Authorization": f"Bearer {token}"},
                trust_env=False,
                timeout=10,
            )
            response.raise_for_status()

    def clear_faults(self) -> None:
        token = self.driver.admin_token(SERVICE)
        for inst in self.driver.instances(SERVICE, self.version):
            httpx.delete(
                f"{inst.url}/admin/faults", headers={"Authorization": f"Bearer {token}"}, trust_env=False
            ).raise_for_status()

    def recovery_for(self, alertname: str) -> dict[str, Any] | None:
        """The finished recovery run started by `alertname`'s webhook, if any."""
        for wf in self.serve.workflows(
            "workflows.argoproj.io/workflow-event-binding=research-platform-alerts"
        ):
            params = {p["name"]: p["value"] for p in wf["spec"]["arguments"]["parameters"]}
            if params.get("alertname") == alertname and wf["status"]["phase"] not in ("Pending", "Running"):
                return wf
        return None

    def wait_recovery(self, alertname: str) -> dict[str, Any]:
        try:
            wf: dict[str, Any] = wait_until(
                lambda: self.recovery_for(alertname),
                PHASE_TIMEOUT,
                f"no finished recovery for {alertname}",
                0.5,
            )
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{self.diagnostics()}") from None
        return wf

    def firing(self, alertname: str) -> bool:
        result = self.prometheus.query(f'ALERTS{{alertname="{alertname}", alertstate="firing"}}')["result"]
        return bool(result)

    def diagnostics(self) -> str:
        alerts = self.prometheus.query("ALERTS")["result"]
        return (
            f"ALERTS: {[(a['metric']['alertname'], a['metric']['alertstate']) for a in alerts]}\n"
            f"serve log:\n{self.serve.logs()}\nalertmanager log:\n{self.alertmanager.logs()}"
        )


def steps(wf: dict[str, Any]) -> dict[str, str]:
    """Display name -> phase of the run's DAG tasks (retries folded into their parent)."""
    return {
        n["displayName"]: n["phase"]
        for n in wf["status"]["nodes"].values()
        if n["type"] in ("Retry", "Pod", "Skipped") and "(" not in n["displayName"]
    }


def node_outputs(wf: dict[str, Any], display_name: str) -> dict[str, str]:
    """A task's output parameters (kept on the node whether or not the workflow succeeded)."""
    node = next(n for n in wf["status"]["nodes"].values() if n["displayName"] == display_name)
    return {p["name"]: p.get("value", "") for p in (node.get("outputs") or {}).get("parameters") or ()}


def outputs(wf: dict[str, Any]) -> dict[str, str]:
    return {
        p["name"]: p.get("value", "") for p in (wf["status"].get("outputs") or {}).get("parameters") or ()
    }


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    tmp = tmp_path_factory.mktemp("alert-loop")
    root = platform_dir("alert-loop")
    mp = pytest.MonkeyPatch()
    mp.setenv("RPOPS_PLATFORM_DIR", str(root))
    driver = LocalDriver(root=root, ready_interval=0.2, drain_timeout=3.0)
    stack: list[Any] = []
    try:
        stack.append(CpuHogs().stop)
        status = driver.up(SERVICE, VERSION, replicas=1, port=0)
        stack.append(lambda: driver.down())
        monitoring = start_stack(root, tmp, status.url)
        stack.append(monitoring.stop)
        load = Load(status.url)
        stack.append(load.stop)
        yield Loop(driver, status.url, monitoring.prometheus, monitoring.alertmanager, monitoring.serve)
    finally:
        for stop in reversed(stack):
            stop()
        mp.undo()
        shutil.rmtree(root, ignore_errors=True)


def test_a_promotion_under_the_alert_loop_starts_no_recovery(loop: Loop, tmp_path: Path) -> None:
    """A blue-green promotion scales the old colour to 0 (a planned stop of every old target):
    no TargetDown or HealthCheckFailing fires, no recovery starts. (First in the module: the
    remediations below leave alerts firing for their windows; the next test runs on v2.)"""
    before = {wf["metadata"]["name"] for wf in loop.serve.workflows()}
    env = {**os.environ, "RPOPS_PLATFORM": "local", "RPOPS_OUTPUTS": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "rpops", "bluegreen", "promote", "--service", SERVICE, "--version", "v2",
         "--analysis-interval", "0.2", "--analysis-count", "2", "--verify-seconds", "1",
         "--verify-interval", "0.2", "--scale-down-delay-seconds", "0", "--progress-deadline-seconds", "60"],
        env=env, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert loop.version == "v2" and loop.replicas() == 1
    assert loop.driver.workload(SERVICE, VERSION).replicas == 0  # the old colour is gone
    # Longer than a scrape, an evaluation, `for` (1 s here), group_wait (0 s) and the webhook.
    quiet_until = time.monotonic() + 12
    while time.monotonic() < quiet_until:
        paged = [
            a["metric"]["alertname"]
            for a in loop.prometheus.query('ALERTS{alertname=~"TargetDown|HealthCheckFailing"}')["result"]
        ]
        assert not paged, f"{paged}\n{loop.diagnostics()}"
        time.sleep(0.5)
    started = {wf["metadata"]["name"] for wf in loop.serve.workflows()} - before
    assert not started, started


def test_alerts_remediate_the_platform(loop: Loop) -> None:
    # 1. Latency: p95 over 2000 ms fires PerformanceDegraded; the recovery's check reads the alert's
    #    own p95 and finds the service degraded; optimize runs but, with seconds of history, changes
    #    nothing, so the second check sees the alert still holding: the run fails and says so.
    loop.set_faults(latency_ms=2500)
    wf = loop.wait_recovery("PerformanceDegraded")
    params = {p["name"]: p["value"] for p in wf["spec"]["arguments"]["parameters"]}
    assert params["service"] == SERVICE and params["region"] == REGION
    assert json.loads(params["alert-labels"])["remediation"] == recovery.NAME
    check = node_outputs(wf, "check-health")
    assert check["status"] == "degraded" and check["outcome"] == "remediate", check
    assert "PerformanceDegraded" in check["reason"], check
    ran = steps(wf)
    assert ran["optimize"] == "Succeeded" and ran["scale"] == "Skipped", ran
    assert wf["status"]["phase"] == "Failed" and ran["verify-health"] == "Failed", ran
    verify = node_outputs(wf, "verify-health")
    assert verify["outcome"] == "still-firing" and verify["status"] == "degraded", verify

    # 2. CPU: one core kept busy on the only replica fires HighCPU; the check reads the alert's
    #    CPU over its window (overloaded), the scale step reads that same figure and scales out,
    #    the second check waits for the alert's latest evaluation to clear, and the alert resolves.
    loop.clear_faults()
    assert loop.replicas() == 1
    loop.set_faults(cpu_burn=1.0)
    wf = loop.wait_recovery("HighCPU")
    assert wf["status"]["phase"] == "Succeeded", json.dumps(wf["status"], indent=1)[:3000]
    assert outputs(wf)["initial-status"] == "overloaded", node_outputs(wf, "check-health")
    ran = steps(wf)
    assert ran["scale"] == "Succeeded" and ran["optimize"] == "Skipped", ran
    scale = node_outputs(wf, "scale")
    assert scale["decision"] == "scale-up" and "cpu utilisation" in scale["reason"], scale
    assert loop.replicas() > 1, scale["reason"]
    assert outputs(wf)["outcome"] == "cleared" and outputs(wf)["status"] == "healthy", outputs(wf)
    # The scale template's counter, as Argo would export it: one scaling, upwards.
    counters = [m for m in wf["status"].get("metrics") or () if m["name"].endswith("scaling_events_total")]
    assert [(m["labels"], m["value"]) for m in counters] == [
        ({"service": SERVICE, "direction": "up", "region": REGION}, 1.0)
    ], counters
    wait_until(lambda: not loop.firing("HighCPU"), 30, f"HighCPU still firing\n{loop.diagnostics()}", 0.5)

    # 3. Failing /health: HealthCheckFailing fires; the recovery finds the service unhealthy and
    #    runs the security scan, which cannot mend /health: the second check says so.
    loop.clear_faults()
    loop.set_faults(unhealthy=True)
    wf = loop.wait_recovery("HealthCheckFailing")
    assert node_outputs(wf, "check-health")["status"] == "unhealthy"
    ran = steps(wf)
    assert ran["optimize"] == "Skipped" and ran["scale"] == "Skipped", ran
    # It scanned this checkout (fixtures.LOCAL_SCAN), which has no critical finding.
    assert ran["security-scan"] == "Succeeded", ran
    scan = node_outputs(wf, "security-scan")
    assert scan["status"] == "pass" and int(scan["total"]) >= int(scan["high"]) >= 0, scan
    assert node_outputs(wf, "verify-health")["outcome"] == "still-firing", ran
    loop.clear_faults()


def test_malformed_and_unauthenticated_webhooks_start_nothing(loop: Loop) -> None:
    before = {wf["metadata"]["name"] for wf in loop.serve.workflows()}
    payload = alertmanager_payload("HighMemory", fingerprint="feedfacefeedface")
    refused = {
        "no token": loop.serve.post_event(payload, token=""),
        "wrong token": loop.serve.post_event(payload, token="not-the-token"),
        "not JSON": loop.serve.post_event(b"{version: 4"),
        "version 3": loop.serve.post_event({**payload, "version": "3"}),
        "no alerts": loop.serve.post_event({**payload, "alerts": []}),
    }
    assert {k: r.status_code for k, r in refused.items()} == {
        "no token": 401,
        "wrong token": 401,
        "not JSON": 400,
        "version 3": 400,
        "no alerts": 400,
    }
    assert "bearer token" in refused["no token"].json()["message"]
    assert "version" in refused["version 3"].json()["message"]
    assert {wf["metadata"]["name"] for wf in loop.serve.workflows()} == before

