"""`rpops bluegreen` through the kubernetes driver (the real `kubernetes` client) against kmock,
with the Deployment controller and kube-proxy played for real (bluegreen_cluster): the switch is
one selector patch, the state lives in the Service's annotations, the HPA follows green, and a
failure after the switch patches the selector back."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bluegreen_cluster import FakeCluster
from bluegreen_support import FAST as SUPPORT_FAST
from bluegreen_support import Load, outputs_of, rpops_argv, wait_until
from kmock_fixture import DEPLOYMENTS, HPAS, SERVICES, ApiServer, deployment_obj, hpa_obj, service_obj
from rpops.platform.kubernetes.driver import KubernetesDriver
from rpops.steps.bluegreen.phases import PROMOTION_CRASH_POINTS, Promoter, PromotionFailed
from rpops.steps.bluegreen.settings import BlueGreenSettings, build_plan

NS = "research-platform"
SERVICE = "rp"
PREFIX = "rpops.research-platform.io/bluegreen."
FAST = dict(
    analysis_interval=0.1,
    analysis_count=2,
    analysis_requests=5,
    verify_seconds=1.0,
    verify_interval=0.1,
    scale_down_delay_seconds=0.0,
    progress_deadline_seconds=30.0,
    lock_ttl=30.0,
)


@pytest.fixture()
def api() -> Iterator[ApiServer]:
    server = ApiServer(NS)
    blue = deployment_obj(NS, SERVICE, "v1", 2)
    server.put(DEPLOYMENTS, "rp-v1", blue)
    server.put(SERVICES, SERVICE, service_obj(NS, SERVICE, SERVICE, "v1"))
    server.put(SERVICES, f"{SERVICE}-preview", service_obj(NS, f"{SERVICE}-preview", SERVICE, "v1"))
    server.put(HPAS, SERVICE, hpa_obj(NS, SERVICE, "rp-v1", 3, 6))  # blue runs 2; the HPA floor is 3
    try:
        yield server
    finally:
        server.close()


@pytest.fixture()
def cluster(api: ApiServer, tmp_path: Path) -> Iterator[FakeCluster]:
    fake = FakeCluster(api, SERVICE, tmp_path / "cluster")
    try:
        fake.wait_settled()
        yield fake
    finally:
        fake.close()
    assert fake.errors == []


@pytest.fixture()
def driver(api: ApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> KubernetesDriver:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return KubernetesDriver(
        kubeconfig=str(api.kubeconfig(tmp_path)),
        namespace=NS,
        request_timeout=5.0,
        poll_interval=0.05,
        backoff=0.01,
    )


def promoter(driver: KubernetesDriver, cluster: FakeCluster, command: str, **kw: Any) -> Promoter:
    settings = BlueGreenSettings(
        service=SERVICE,
        active_url=cluster.active_url,
        preview_url=cluster.preview_url,
        owner="wf-test",
        **{**FAST, **kw},
    )
    return Promoter(driver, build_plan(command, settings))


def service_patches(api: ApiServer, name: str = SERVICE) -> list[dict[str, Any]]:
    path = f"/api/v1/namespaces/{NS}/services/{name}"
    requests = api.run(lambda: list(api.kmock))
    return [r.data for r in requests if r.method.value == "PATCH" and r.url.path == path]


def bluegreen_annotations(api: ApiServer) -> dict[str, str]:
    raw = api.get(SERVICES, SERVICE)["metadata"].get("annotations") or {}
    return {k[len(PREFIX) :]: v for k, v in raw.items() if k.startswith(PREFIX)}


def test_promotion_is_one_selector_patch_with_state_on_the_service(
    api: ApiServer, cluster: FakeCluster, driver: KubernetesDriver
) -> None:
    with Load(cluster.active_url) as load:
        outcome = promoter(driver, cluster, "promote", version="v2").run()
        time.sleep(0.3)
    assert outcome.result == "promoted", outcome.detail
    assert load.failures == []
    assert [s.version for s in load.samples[-10:]] == ["v2"] * 10
    # the switch: one merge patch of the active Service's selector, nothing else in it
    selector_patches = [p for p in service_patches(api) if "spec" in p]
    assert [p["spec"] for p in selector_patches] == [{"selector": {"version": "v2"}}]
    assert cluster.selector() == "v2" and cluster.selector(f"{SERVICE}-preview") == "v2"
    green = api.get(DEPLOYMENTS, "rp-v2")
    assert green["spec"]["replicas"] == 3  # the HPA's floor, not blue's 2
    assert (
        green["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/research-platform:v2"
    )
    blue = api.get(DEPLOYMENTS, "rp-v1")
    assert blue["spec"]["replicas"] == 0  # kept, scaled down
    assert api.get(HPAS, SERVICE)["spec"]["scaleTargetRef"]["name"] == "rp-v2"
    state = bluegreen_annotations(api)
    assert {k: state[k] for k in ("phase", "stable", "previous", "preview", "owner", "autoscaling")} == {
        "phase": "complete",
        "stable": "v2",
        "previous": "v1",
        "preview": "v2",
        "owner": "wf-test",
        "autoscaling": "3-6",
    }
    assert "lock" not in state and "started-at" in state
    # every annotation write is a merge patch of metadata.annotations on the Service
    assert all(set(p) <= {"metadata", "spec"} for p in service_patches(api))


def test_failure_after_the_switch_patches_the_selector_back(
    api: ApiServer, cluster: FakeCluster, driver: KubernetesDriver
) -> None:
    errors: list[BaseException] = []
    run = promoter(driver, cluster, "promote", version="v2", verify_seconds=20.0)

    def promote() -> None:
        try:
            run.run()
        except BaseException as exc:  # noqa: BLE001 - inspected below
            errors.append(exc)

    with Load(cluster.active_url) as load:
        thread = threading.Thread(target=promote)
        thread.start()
        wait_until(lambda: bluegreen_annotations(api).get("phase") == "switched", timeout=60, interval=0.05)
        injected = time.monotonic()
        cluster.set_faults("v2", error_rate=1.0)
        thread.join(timeout=60)
        ended = time.monotonic()
        wait_until(lambda: [s.version for s in load.samples[-10:]] == ["v1"] * 10, timeout=10)
    assert len(errors) == 1 and isinstance(errors[0], PromotionFailed), errors
    assert "post-promotion analysis failed" in str(errors[0])
    assert all(injected <= f.at <= ended + 0.5 for f in load.failures)  # the proxy follows within its loop
    assert [p["spec"] for p in service_patches(api) if "spec" in p] == [
        {"selector": {"version": "v2"}},
        {"selector": {"version": "v1"}},
    ]
    assert api.get(DEPLOYMENTS, "rp-v1")["spec"]["replicas"] == 2
    assert api.get(DEPLOYMENTS, "rp-v2")["spec"]["replicas"] == 0
    assert api.get(HPAS, SERVICE)["spec"]["scaleTargetRef"]["name"] == "rp-v1"
    state = bluegreen_annotations(api)
    assert state["phase"] == "rolled-back" and state["rolled-back"] == "true"
    assert "post-promotion analysis failed" in state["reason"]
    assert run.verify_report["failed_requests"] >= 1


def test_green_that_never_becomes_ready_never_gets_the_selector(
    api: ApiServer, cluster: FakeCluster, driver: KubernetesDriver
) -> None:
    cluster.faults["v2"] = {"not_ready": True}
    with Load(cluster.active_url) as load, pytest.raises(PromotionFailed, match="not ready within"):
        promoter(driver, cluster, "promote", version="v2", progress_deadline_seconds=2.0).run()
    assert load.failures == []
    assert [p for p in service_patches(api) if "spec" in p] == []  # the active Service was never touched
    assert cluster.selector() == "v1"
    assert api.get(DEPLOYMENTS, "rp-v1")["spec"]["replicas"] == 2
    assert api.get(DEPLOYMENTS, "rp-v2")["spec"]["replicas"] == 0
    state = bluegreen_annotations(api)
    assert state["phase"] == "aborted" and "progress deadline (2s)" in state["reason"]
    assert "rp-v2 not ready after" in state["reason"]


def test_rollback_after_completion_scales_blue_up_before_the_selector_moves(
    api: ApiServer, cluster: FakeCluster, driver: KubernetesDriver
) -> None:
    assert promoter(driver, cluster, "promote", version="v2").run().result == "promoted"
    assert api.get(DEPLOYMENTS, "rp-v1")["spec"]["replicas"] == 0
    with Load(cluster.active_url) as load:
        outcome = promoter(driver, cluster, "rollback", reason="pager").run()
        time.sleep(0.3)
    assert outcome.result == "rolled-back"
    assert load.failures == []  # blue was ready before any traffic went to it
    assert cluster.selector() == "v1"
    assert api.get(DEPLOYMENTS, "rp-v1")["spec"]["replicas"] == 3
    assert api.get(DEPLOYMENTS, "rp-v2")["spec"]["replicas"] == 0
    state = bluegreen_annotations(api)
    assert (state["phase"], state["stable"], state["reason"]) == ("rolled-back", "v1", "pager")
    assert "previous" not in state


# --- a killed runner, finished by a rerun --------------------------------------------------------

CRASH_POINTS = PROMOTION_CRASH_POINTS
# What the dead run leaves: the recorded phase, where the active Service's selector points, and how
# many of the promotion's writes to the cluster (WRITES in the test below) it made.
STATE_AFTER = {
    "deploy": ("deployed", "v1", 2),
    "wait-ready": ("ready", "v1", 2),
    "analyze": ("analyzed", "v1", 2),
    "switch:before-route": ("switching", "v1", 2),
    "switch:after-route": ("switching", "v2", 4),
    "switch": ("switched", "v2", 4),
    "verify": ("verified", "v2", 4),
    "finalize": ("complete", "v2", 5),
}
PHASES = ["deploy", "wait-ready", "analyze", "switch", "verify", "finalize"]
COLLECTION = f"/apis/apps/v1/namespaces/{NS}/deployments"
DEPLOYMENT = COLLECTION + "/{}"
SERVICE_PATH = f"/api/v1/namespaces/{NS}/services/{{}}"
HPA_PATH = f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers/{SERVICE}"


def promote_cli(
    api: ApiServer, cluster: FakeCluster, tmp_path: Path, out: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """`rpops bluegreen promote` as a process of its own (a crash point exits it hard), through
    the kubernetes driver; the RBAC check's call log ($RPOPS_K8S_CALL_LOG) is inherited."""
    drop = ("RPOPS_BLUEGREEN_CRASH", "KUBERNETES_SERVICE", "RPOPS_NAMESPACE", "RPOPS_PLATFORM")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    environ.update(
        RPOPS_PLATFORM="kubernetes",
        KUBECONFIG=str(api.kubeconfig(tmp_path)),
        RPOPS_OUTPUTS=str(tmp_path / out),
        PYTHONUNBUFFERED="1",
        **env,
    )
    argv = rpops_argv(
        "promote", "--service", SERVICE, "--version", "v2", "--owner", "job-1", "--namespace", NS,
        "--active-url", cluster.active_url, "--preview-url", cluster.preview_url, *SUPPORT_FAST,
    )  # fmt: skip
    return subprocess.run(argv, env=environ, capture_output=True, text=True, timeout=120)


def spec_writes(api: ApiServer) -> list[tuple[str, str, Any]]:
    """Every write but the promotion record's (annotation-only patches of the active Service):
    (method, path, what changed besides metadata)."""
    out = []
    for r in api.requests():
        method, path, body = r.method.value, r.url.path, r.data
        if method == "GET":
            continue
        changed = {k: v for k, v in body.items() if k != "metadata"} if isinstance(body, dict) else body
        if method == "PATCH" and path == SERVICE_PATH.format(SERVICE) and not changed:
            continue
        out.append((method, path, changed))
    return out


def deployment_replicas(api: ApiServer) -> dict[str, int]:
    """Every Deployment stored in the namespace (not only the ones the driver's selectors find)."""

    def read() -> dict[str, int]:
        return {
            name: obj.raw["spec"]["replicas"]
            for (resource, ns, name), obj in api.kmock.objects.items()
            if resource.plural == "deployments" and ns == NS and not obj.deleted
        }

    result: dict[str, int] = api.run(read)
    return result


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_killed_runner_is_finished_by_a_rerun(
    api: ApiServer, cluster: FakeCluster, tmp_path: Path, point: str
) -> None:
    with Load(cluster.active_url) as load:
        crashed = promote_cli(api, cluster, tmp_path, "a", RPOPS_BLUEGREEN_CRASH_AFTER=point)
        assert crashed.returncode == 137, crashed.stderr
        phase, active, done = STATE_AFTER[point]
        state = bluegreen_annotations(api)
        assert state["phase"] == phase
        assert cluster.selector() == active
        assert "lock" in state  # the dead run still holds it ...
        before = spec_writes(api)
        assert len(before) == done, before
        rerun = promote_cli(api, cluster, tmp_path, "b")  # ... and its rerun, same owner, takes it over
        time.sleep(0.3)
    assert rerun.returncode == 0, rerun.stderr
    assert outputs_of(tmp_path / "b")["result"] == ("no-op" if point == "finalize" else "promoted")
    assert load.failures == []
    assert cluster.selector() == "v2" and cluster.selector(f"{SERVICE}-preview") == "v2"
    final = bluegreen_annotations(api)
    assert (final["phase"], final["stable"], final["previous"]) == ("complete", "v2", "v1")
    assert "lock" not in final
    timeline = json.loads(final["timeline"])
    assert [e["phase"] for e in timeline if e["result"] == "succeeded"] == PHASES  # each done once
    interrupted = [e["phase"] for e in timeline if e["result"] != "succeeded"]
    assert interrupted == (["switch"] if point.startswith("switch:") else []), timeline
    assert all(e["result"] == "interrupted" for e in timeline if e["result"] != "succeeded")
    # the phases the dead run finished were skipped, not redone: their entries are untouched
    finished = [e for e in json.loads(state["timeline"]) if e["result"] == "succeeded"]
    assert [e["phase"] for e in finished] == PHASES[: len(finished)]
    assert timeline[: len(finished)] == finished
    # the cluster converged: blue kept at 0, green at the HPA's floor, the HPA on green, no duplicate
    assert deployment_replicas(api) == {"rp-v1": 0, "rp-v2": 3}
    assert api.get(HPAS, SERVICE)["spec"]["scaleTargetRef"]["name"] == "rp-v2"
    # each change to the cluster was made once over both runs: the rerun made only those the dead
    # run had not (one create, one selector patch per Service, one HPA retarget, one scale-down)
    writes = spec_writes(api)
    assert [(method, path) for method, path, _ in writes] == [
        ("POST", COLLECTION),
        ("PATCH", SERVICE_PATH.format(f"{SERVICE}-preview")),
        ("PATCH", SERVICE_PATH.format(SERVICE)),
        ("PATCH", HPA_PATH),
        ("PATCH", DEPLOYMENT.format("rp-v1")),
    ], writes
    assert [body for _, _, body in writes[1:]] == [
        {"spec": {"selector": {"version": "v2"}}},
        {"spec": {"selector": {"version": "v2"}}},
        {"spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "rp-v2"}}},
        {"spec": {"replicas": 0}},
    ]
