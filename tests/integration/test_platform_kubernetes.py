"""The kubernetes driver with the real `kubernetes` client over HTTP, against kmock's API emulator.

kmock (0.8) keeps objects in memory and serves get/list/create/patch/delete like an API server,
with gaps (no controllers, no label selectors, no resourceVersion): the tests play the controller
where needed by writing objects' status, and inject failures (409, 500, slow answers) per request.
The driver's own methods are never replaced.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kmock_fixture import (
    DEPLOYMENTS,
    HPAS,
    PODS,
    REPLICASETS,
    REVISION,
    SERVICES,
    ApiServer,
    play_controller,
    replicaset_obj,
)
from rpops.core.errors import UsageError
from rpops.platform import (
    AutoscalingBounds,
    Conflict,
    DeadlineExceeded,
    NotFound,
    PlatformDriver,
    PlatformUnavailable,
    Resources,
    get_driver,
)
from rpops.platform.kubernetes.driver import KubernetesDriver

NS = "rp-ns"
PREFIX = "rpops.research-platform.io/"


def deployment(
    service: str,
    version: str,
    replicas: int = 2,
    ready: int | None = None,
    rv: str | None = "7",
    containers: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": service, "version": version}
    ready = replicas if ready is None else ready
    meta: dict[str, Any] = {
        "name": f"{service}-{version}",
        "namespace": NS,
        "labels": dict(labels),
        "annotations": {f"{PREFIX}owner": "sre", "deployment.kubernetes.io/revision": "3"},
        "generation": 4,
    }
    if rv:
        meta["resourceVersion"] = rv
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "containers": containers
                    or [
                        {
                            "name": service,
                            "image": f"registry.example:5000/research-platform:{version}",
                            "ports": [{"containerPort": 8080}],
                            "resources": {
                                "requests": {"cpu": "250m", "memory": "256Mi"},
                                "limits": {"cpu": "1", "memory": "512Mi", "ephemeral-storage": "1Gi"},
                            },
                        },
                        {"name": "log-shipper", "image": "fluent-bit:3"},
                    ]
                },
            },
        },
        "status": {
            "observedGeneration": 4,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
        },
    }


def service_obj(name: str, version: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NS, "resourceVersion": "11"},
        "spec": {
            "selector": {"app.kubernetes.io/name": "rp", "version": version},
            "ports": [{"port": 80, "targetPort": 8080}],
        },
    }


def hpa_obj(target: str, lo: int = 2, hi: int = 6) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "rp", "namespace": NS},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": lo,
            "maxReplicas": hi,
        },
    }


def pod(name: str, version: str, ip: str | None, ready: bool) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if ip:
        status["podIP"] = ip
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {"app.kubernetes.io/name": "rp", "version": version},
        },
        "spec": {"containers": [{"name": "rp", "image": "x", "ports": [{"containerPort": 8080}]}]},
        "status": status,
    }


@pytest.fixture()
def api() -> Iterator[ApiServer]:
    server = ApiServer(NS)
    for dep in (deployment("rp", "v1"), deployment("rp", "v2", ready=1)):
        # What the controller keeps for revision 3 of each: rp-v2 has 1 of 2 replicas up.
        server.put(DEPLOYMENTS, dep["metadata"]["name"], dep)
        rs = replicaset_obj(dep, "3", 2, ready=dep["status"]["readyReplicas"])
        server.put(REPLICASETS, rs["metadata"]["name"], rs)
    server.put(DEPLOYMENTS, "other-v1", deployment("other", "v1"))  # another service: never ours
    server.put(SERVICES, "rp", service_obj("rp", "v1"))
    server.put(SERVICES, "rp-preview", service_obj("rp-preview", "v2"))
    server.put(HPAS, "rp", hpa_obj("rp-v1"))
    server.put(PODS, "rp-v1-a", pod("rp-v1-a", "v1", "10.0.0.5", True))
    server.put(PODS, "rp-v1-b", pod("rp-v1-b", "v1", "10.0.0.6", False))
    server.put(PODS, "rp-v1-c", pod("rp-v1-c", "v1", None, False))  # pending: no IP yet
    server.put(PODS, "rp-v2-a", pod("rp-v2-a", "v2", "10.0.1.5", True))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture()
def kubeconfig(api: ApiServer, tmp_path: Path) -> Path:
    return api.kubeconfig(tmp_path, {"test": "from-ctx", "other": "elsewhere"})


@pytest.fixture()
def driver(kubeconfig: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> KubernetesDriver:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("RPOPS_K8S_CALL_LOG", str(tmp_path / "calls.jsonl"))
    drv = get_driver(
        "kubernetes",
        kubeconfig=str(kubeconfig),
        namespace=NS,
        attempts=3,
        backoff=0.01,
        request_timeout=2.0,
        poll_interval=0.02,
    )
    assert isinstance(drv, KubernetesDriver)
    return drv


def writes(api: ApiServer) -> list[Any]:
    return [r for r in api.requests() if r.method.value not in ("GET",)]


# -- configuration ---------------------------------------------------------------------------


def test_in_a_pod_the_service_account_configures_the_client_and_names_the_namespace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a pod (KUBERNETES_SERVICE_HOST set, no kubeconfig) the client's own in-cluster loader
    reads the mounted token and CA; the namespace comes from the mounted namespace file."""
    import kubernetes.config.incluster_config as incluster
    import rpops.platform.kubernetes.driver as driver_module

    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("pod-t0ken")
    (account / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    (account / "namespace").write_text("from-the-pod\n")
    monkeypatch.setattr(incluster, "SERVICE_TOKEN_FILENAME", str(account / "token"))
    monkeypatch.setattr(incluster, "SERVICE_CERT_FILENAME", str(account / "ca.crt"))
    monkeypatch.setattr(driver_module, "SA_NAMESPACE_FILE", str(account / "namespace"))
    for name in ("KUBECONFIG", "RPOPS_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    driver = KubernetesDriver()
    cfg = driver._api_client.configuration
    assert cfg.host == "https://10.96.0.1:443" and cfg.ssl_ca_cert == str(account / "ca.crt")
    assert cfg.api_key["BearerToken"].lower() == "bearer pod-t0ken"
    assert driver.namespace == "from-the-pod"
    monkeypatch.setenv("RPOPS_NAMESPACE", "from-env")
    assert KubernetesDriver().namespace == "from-env"
    assert KubernetesDriver(namespace="flag").namespace == "flag"


def test_namespace_comes_from_option_then_env_then_kubeconfig(
    kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("RPOPS_NAMESPACE", raising=False)
    assert KubernetesDriver(kubeconfig=str(kubeconfig)).namespace == "from-ctx"
    assert KubernetesDriver(kubeconfig=str(kubeconfig), context="other").namespace == "elsewhere"
    monkeypatch.setenv("RPOPS_NAMESPACE", "from-env")
    assert KubernetesDriver(kubeconfig=str(kubeconfig)).namespace == "from-env"
    assert KubernetesDriver(kubeconfig=str(kubeconfig), namespace="flag").namespace == "flag"
    with pytest.raises(UsageError, match="namespace 'Bad_NS'"):
        KubernetesDriver(kubeconfig=str(kubeconfig), namespace="Bad_NS")


def test_missing_kubeconfig_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(UsageError, match="no Kubernetes configuration"):
        KubernetesDriver(kubeconfig=str(tmp_path / "missing"))


# -- reads -----------------------------------------------------------------------------------


def test_reads_a_workload(driver: KubernetesDriver) -> None:
    assert isinstance(driver, PlatformDriver)
    w = driver.workload("rp", "v1")
    assert (w.service, w.version, w.replicas, w.ready_replicas, w.available_replicas) == ("rp", "v1", 2, 2, 2)
    assert w.image == "registry.example:5000/research-platform:v1"
    assert w.resources == Resources(
        cpu_request="250m", cpu_limit="1", memory_request="256Mi", memory_limit="512Mi"
    )
    assert w.autoscaling == AutoscalingBounds(2, 6)
    assert w.annotations == {"owner": "sre"}
    assert w.active and not w.preview and w.ready
    v2 = driver.workload("rp", "v2")
    assert v2.preview and not v2.active and v2.autoscaling is None
    assert (v2.ready_replicas, v2.ready) == (1, False)


def test_versions_lists_only_the_service(driver: KubernetesDriver) -> None:
    # kmock ignores label selectors, so this also proves the driver filters what it gets
    assert [w.version for w in driver.versions("rp")] == ["v1", "v2"]
    assert driver.routes("rp").active == "v1" and driver.routes("rp").preview == "v2"


def test_instances_have_urls_per_pod(driver: KubernetesDriver) -> None:
    instances = driver.instances("rp", "v1")
    assert [(i.name, i.url, i.ready) for i in instances] == [
        ("rp-v1-a", "http://10.0.0.5:8080", True),
        ("rp-v1-b", "http://10.0.0.6:8080", False),
    ]


def test_missing_object_is_not_found_naming_it(driver: KubernetesDriver) -> None:
    with pytest.raises(NotFound, match=f"Deployment {NS}/rp-v9 not found"):
        driver.workload("rp", "v9")
    with pytest.raises(NotFound, match=f"Deployment {NS}/rp-v9"):
        driver.scale("rp", "v9", 3)


# -- writes ----------------------------------------------------------------------------------


def test_scale_is_a_conditional_merge_patch(driver: KubernetesDriver, api: ApiServer) -> None:
    driver.scale("rp", "v1", 5)
    assert api.get(DEPLOYMENTS, "rp-v1")["spec"]["replicas"] == 5
    [patch] = writes(api)
    assert patch.method.value == "PATCH" and patch.headers["Content-Type"] == "application/merge-patch+json"
    assert patch.data == {"spec": {"replicas": 5}, "metadata": {"resourceVersion": "7"}}
    driver.scale("rp", "v1", 5)  # idempotent: no second write
    assert len(writes(api)) == 1


def test_conflict_is_retried_on_a_fresh_read(driver: KubernetesDriver, api: ApiServer) -> None:
    url = f"/apis/apps/v1/namespaces/{NS}/deployments/rp-v1"

    def concurrent_writer(request: Any) -> dict[str, Any]:
        # Another writer got there first: our write did not land, the object is at a new version.
        api.kmock.objects[DEPLOYMENTS, NS, "rp-v1"].patch(
            {"spec": {"replicas": 2}, "metadata": {"resourceVersion": "8"}}
        )
        return {
            "kind": "Status",
            "code": 409,
            "reason": "Conflict",
            "message": "the object has been modified",
        }

    api.kmock["patch", url][:1] << 409 << concurrent_writer
    driver.scale("rp", "v1", 3)
    assert api.get(DEPLOYMENTS, "rp-v1")["spec"]["replicas"] == 3
    verbs = [(c.verb, c.status) for c in driver.calls if c.resource == "deployments"]
    assert verbs == [("get", 200), ("patch", 409), ("get", 200), ("patch", 200)]
    first, second = writes(api)
    assert first.data["metadata"] == {"resourceVersion": "7"}
    assert second.data["metadata"] == {"resourceVersion": "8"}  # recomputed from the fresh read


def test_endless_conflicts_give_up(driver: KubernetesDriver, api: ApiServer) -> None:
    url = f"/apis/apps/v1/namespaces/{NS}/deployments/rp-v1"

    def busy_writer(request: Any) -> dict[str, Any]:
        api.kmock.objects[DEPLOYMENTS, NS, "rp-v1"].patch({"spec": {"replicas": 2}})
        return {"kind": "Status", "code": 409, "message": "modified"}

    api.kmock["patch", url] << 409 << busy_writer
    with pytest.raises(Conflict, match="3 conflicting writes"):
        driver.scale("rp", "v1", 3)
    assert [c.verb for c in driver.calls].count("patch") == 3


def test_server_errors_are_retried_then_reported_unreachable(
    driver: KubernetesDriver, api: ApiServer
) -> None:
    url = f"/apis/apps/v1/namespaces/{NS}/deployments/rp-v1"
    api.kmock["get", url][:2] << 500 << {"kind": "Status", "code": 500, "message": "etcd hiccup"}
    assert driver.workload("rp", "v1").replicas == 2
    assert [c.status for c in driver.calls if c.resource == "deployments"] == [500, 500, 200]

    api.kmock["get", f"/apis/apps/v1/namespaces/{NS}/deployments/rp-v2"] << 503 << {"kind": "Status"}
    with pytest.raises(PlatformUnavailable, match="after 3 attempts") as err:
        driver.workload("rp", "v2")
    assert err.value.exit_code == 3


def test_timeouts_are_bounded_and_retried(
    kubeconfig: Path, api: ApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    driver = KubernetesDriver(
        kubeconfig=str(kubeconfig), namespace=NS, attempts=2, backoff=0.0, request_timeout=0.3
    )

    async def slow() -> dict[str, Any]:
        await asyncio.sleep(3)
        return {}

    url = f"/apis/apps/v1/namespaces/{NS}/deployments/rp-v1"
    api.kmock["get", url][:1] << slow
    assert driver.workload("rp", "v1").version == "v1"  # the second attempt answered

    api.kmock["get", f"/apis/apps/v1/namespaces/{NS}/deployments/rp-v2"] << slow
    started = time.monotonic()
    with pytest.raises(PlatformUnavailable, match="ReadTimeoutError"):
        driver.workload("rp", "v2")
    assert time.monotonic() - started < 2.0  # 2 attempts x 0.3 s, not the server's 3 s


def test_set_autoscaling_patches_creates_and_deletes(driver: KubernetesDriver, api: ApiServer) -> None:
    driver.set_autoscaling("rp", AutoscalingBounds(3, 9))
    spec = api.get(HPAS, "rp")["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"], spec["scaleTargetRef"]["name"]) == (3, 9, "rp-v1")
    driver.set_autoscaling("rp", None)
    assert api.gone(HPAS, "rp")
    assert driver.workload("rp", "v1").autoscaling is None
    driver.set_autoscaling("rp", AutoscalingBounds(1, 4))  # none left: created, on the active version
    created = api.get(HPAS, "rp")
    assert created["spec"]["scaleTargetRef"]["name"] == "rp-v1"
    assert created["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert driver.workload("rp", "v1").autoscaling == AutoscalingBounds(1, 4)


def test_route_switch_is_one_selector_patch(driver: KubernetesDriver, api: ApiServer) -> None:
    driver.route("rp", "v2")
    svc = api.get(SERVICES, "rp")
    assert svc["spec"]["selector"] == {"app.kubernetes.io/name": "rp", "version": "v2"}
    service_patches = [r for r in writes(api) if r.resource.plural == "services"]
    assert len(service_patches) == 1 and service_patches[0].name == "rp"
    assert service_patches[0].data == {
        "spec": {"selector": {"version": "v2"}},
        "metadata": {"resourceVersion": "11"},
    }
    assert api.get(HPAS, "rp")["spec"]["scaleTargetRef"]["name"] == "rp-v2"  # the autoscaler follows
    assert driver.routes("rp").active == "v2"
    assert api.get(SERVICES, "rp-preview")["spec"]["selector"]["version"] == "v2"  # untouched

    driver.route("rp", "v1", preview=True)
    assert api.get(SERVICES, "rp-preview")["spec"]["selector"]["version"] == "v1"
    assert api.get(SERVICES, "rp")["spec"]["selector"]["version"] == "v2"
    with pytest.raises(NotFound, match="rp-v7"):
        driver.route("rp", "v7")
    assert api.get(SERVICES, "rp")["spec"]["selector"]["version"] == "v2"


def test_annotations_are_prefixed_and_removable(driver: KubernetesDriver, api: ApiServer) -> None:
    driver.annotate("rp", {"promoted-from": "v1", "phase": "analysis"})
    assert driver.annotations("rp") == {"promoted-from": "v1", "phase": "analysis"}
    assert api.get(SERVICES, "rp")["metadata"]["annotations"][f"{PREFIX}phase"] == "analysis"
    driver.annotate("rp", {"phase": None})
    assert driver.annotations("rp") == {"promoted-from": "v1"}
    driver.annotate("rp", {f"{PREFIX}checked": "yes"}, version="v2")
    assert driver.annotations("rp", "v2") == {"owner": "sre", "checked": "yes"}


def test_set_resources_keeps_other_containers_and_fields(driver: KubernetesDriver, api: ApiServer) -> None:
    driver.set_resources("rp", "v1", Resources(cpu_request="500m", memory_limit="1Gi"))
    containers = api.get(DEPLOYMENTS, "rp-v1")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["rp", "log-shipper"]
    assert containers[0]["resources"] == {
        "requests": {"cpu": "500m", "memory": "256Mi"},
        "limits": {"cpu": "1", "memory": "1Gi", "ephemeral-storage": "1Gi"},
    }
    [patch] = writes(api)
    assert patch.headers["Content-Type"] == "application/json-patch+json"
    with pytest.raises(UsageError, match="memory request 2Gi is above"):
        driver.set_resources("rp", "v1", Resources(memory_request="2Gi"))  # over the 1Gi limit now


def test_deploy_copies_the_active_version(driver: KubernetesDriver, api: ApiServer) -> None:
    driver.deploy("rp", "v3", replicas=3)
    created = api.get(DEPLOYMENTS, "rp-v3")
    assert created["metadata"]["labels"] == {"app.kubernetes.io/name": "rp", "version": "v3"}
    assert "annotations" not in created["metadata"]  # ours and the controller's stay on the original
    assert created["spec"]["selector"]["matchLabels"]["version"] == "v3"
    assert created["spec"]["template"]["metadata"]["labels"]["version"] == "v3"
    assert (
        created["spec"]["template"]["spec"]["containers"][0]["image"]
        == "registry.example:5000/research-platform:v3"
    )
    assert created["spec"]["template"]["spec"]["containers"][1]["image"] == "fluent-bit:3"
    assert created["spec"]["replicas"] == 3 and "status" not in created
    driver.deploy("rp", "v3", replicas=1, image="registry.example:5000/research-platform:v3.1")
    updated = api.get(DEPLOYMENTS, "rp-v3")
    assert updated["spec"]["replicas"] == 1
    assert updated["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":v3.1")


def test_wait_ready_follows_the_rollout(driver: KubernetesDriver, api: ApiServer) -> None:
    def controller() -> None:
        time.sleep(0.2)
        play_controller(api, "rp-v2")  # the second replica comes up: Deployment and ReplicaSet say so

    thread = threading.Thread(target=controller)
    thread.start()
    started = time.monotonic()
    workload = driver.wait_ready("rp", "v2", timeout=5)
    thread.join()
    assert workload.ready and workload.ready_replicas == 2
    assert time.monotonic() - started >= 0.2
    api.patch_status(DEPLOYMENTS, "rp-v2", {"updatedReplicas": 1})
    with pytest.raises(DeadlineExceeded, match="1/2 replicas updated"):
        driver.wait_ready("rp", "v2", timeout=0.1)


def _replicasets(api: ApiServer) -> dict[str, dict[str, Any]]:
    def read() -> dict[str, dict[str, Any]]:
        return {
            name: json.loads(json.dumps(obj.raw))
            for (resource, ns, name), obj in api.kmock.objects.items()
            if resource.plural == "replicasets" and ns == NS and not obj.deleted
        }

    result: dict[str, dict[str, Any]] = api.run(read)
    return result


def test_ready_only_when_the_current_revisions_replicaset_is(
    driver: KubernetesDriver, api: ApiServer
) -> None:
    # The Deployment's status says 2/2, but the ReplicaSet of its revision (3) has 1 ready: not done.
    api.patch_status(DEPLOYMENTS, "rp-v2", {"readyReplicas": 2, "availableReplicas": 2})
    [rs_name] = [n for n in _replicasets(api) if n.startswith("rp-v2-")]
    with pytest.raises(
        DeadlineExceeded, match=rf"ReplicaSet {rs_name} \(revision 3\): 1/2 ready, 1/2 available"
    ):
        driver.wait_ready("rp", "v2", timeout=0.1)
    # Listed by the Deployment's selector, in our namespace (kmock ignores the selector: the
    # driver's own filter keeps rp-v1's ReplicaSet, also at revision 3 and all ready, out).
    lists = [
        r
        for r in api.requests()
        if r.method.value == "GET" and r.resource and r.resource.plural == "replicasets"
    ]
    assert lists and all(r.namespace == NS and r.name is None for r in lists)
    assert lists[0].params["labelSelector"] == "app.kubernetes.io/name=rp,version=v2"

    # The controller rolls out revision 4: the Deployment first, its ReplicaSet shortly after.
    api.patch(DEPLOYMENTS, "rp-v2", {"metadata": {"annotations": {REVISION: "4"}}})
    api.patch_status(DEPLOYMENTS, "rp-v2", {"readyReplicas": 2, "availableReplicas": 2})
    with pytest.raises(DeadlineExceeded, match="no ReplicaSet of revision 4 yet"):
        driver.wait_ready("rp", "v2", timeout=0.1)

    def controller() -> None:
        time.sleep(0.2)
        dep = api.get(DEPLOYMENTS, "rp-v2")
        new = replicaset_obj(dep, "4", 2, template_id="r4")
        api.put(REPLICASETS, new["metadata"]["name"], new)
        api.patch(REPLICASETS, rs_name, {"spec": {"replicas": 0}, "status": {"replicas": 0}})

    thread = threading.Thread(target=controller)
    thread.start()
    started = time.monotonic()
    workload = driver.wait_ready("rp", "v2", timeout=5)
    thread.join()
    assert workload.ready and time.monotonic() - started >= 0.2
    assert [c.verb for c in driver.calls if c.resource == "replicasets"][-1] == "list"
    assert {c.group for c in driver.calls if c.resource == "replicasets"} == {"apps"}


def test_an_old_replicaset_holding_replicas_keeps_the_rollout_incomplete(
    driver: KubernetesDriver, api: ApiServer
) -> None:
    dep = api.get(DEPLOYMENTS, "rp-v1")
    [rev3] = [n for n in _replicasets(api) if n.startswith("rp-v1-")]  # the fixture's, 2 replicas
    api.patch(DEPLOYMENTS, "rp-v1", {"metadata": {"annotations": {REVISION: "4"}}})
    new = replicaset_obj(dep, "4", 2, template_id="r4")  # the current revision: all up
    api.put(REPLICASETS, new["metadata"]["name"], new)
    old = replicaset_obj(dep, "2", 1, template_id="r2")  # an older one, still draining
    api.put(REPLICASETS, old["metadata"]["name"], old)
    with pytest.raises(DeadlineExceeded) as err:
        driver.wait_ready("rp", "v1", timeout=0.1)
    assert f"old ReplicaSet {rev3} (revision 3) still has 2 replicas" in str(err.value)
    assert "old ReplicaSet rp-v1-r2 (revision 2) still has 1 replicas" in str(err.value)
    assert "rp-v1-r4" not in str(err.value)
    api.patch(REPLICASETS, rev3, {"spec": {"replicas": 0}, "status": {"replicas": 0}})
    api.patch(REPLICASETS, "rp-v1-r2", {"spec": {"replicas": 0}})
    # Scaled down, but its pod is still there (status.replicas): still incomplete.
    with pytest.raises(DeadlineExceeded, match=r"ready after 0.1s: old ReplicaSet rp-v1-r2 \(revision 2\)"):
        driver.wait_ready("rp", "v1", timeout=0.1)
    api.patch_status(REPLICASETS, "rp-v1-r2", {"replicas": 0, "readyReplicas": 0, "availableReplicas": 0})
    assert driver.wait_ready("rp", "v1", timeout=1).ready


def test_replicasets_of_a_namesake_deployment_do_not_count(driver: KubernetesDriver, api: ApiServer) -> None:
    # rp-v1 was deleted and created again: the ReplicaSets left over name it, with the old uid.
    api.patch(DEPLOYMENTS, "rp-v1", {"metadata": {"uid": "uid-new"}})
    for name in [n for n in _replicasets(api) if n.startswith("rp-v1-")]:
        owner = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "rp-v1", "uid": "uid-old"}
        api.patch(REPLICASETS, name, {"metadata": {"ownerReferences": [owner]}})
    with pytest.raises(DeadlineExceeded, match="no ReplicaSet of revision 3 yet"):
        driver.wait_ready("rp", "v1", timeout=0.1)
    rs = play_controller(api, "rp-v1")  # the new one, owned by uid-new
    assert rs["metadata"]["ownerReferences"][0]["uid"] == "uid-new"
    assert driver.wait_ready("rp", "v1", timeout=1).ready


def test_remove_refuses_the_active_version(driver: KubernetesDriver, api: ApiServer) -> None:
    with pytest.raises(Conflict, match="active route"):
        driver.remove("rp", "v1")
    driver.remove("rp", "v2", delete=False)
    assert api.get(DEPLOYMENTS, "rp-v2")["spec"]["replicas"] == 0
    driver.remove("rp", "v2")
    assert api.gone(DEPLOYMENTS, "rp-v2")
    driver.remove("rp", "v2")  # already gone: nothing to do


def test_restart_stamps_the_pod_template(driver: KubernetesDriver, api: ApiServer) -> None:
    driver.restart("rp", "v1")
    stamp = api.get(DEPLOYMENTS, "rp-v1")["spec"]["template"]["metadata"]["annotations"]
    assert "kubectl.kubernetes.io/restartedAt" in stamp


def test_bad_input_makes_no_call(driver: KubernetesDriver) -> None:
    with pytest.raises(UsageError, match="replicas -1"):
        driver.scale("rp", "v1", -1)
    with pytest.raises(UsageError, match="version 'V1!'"):
        driver.deploy("rp", "V1!")
    with pytest.raises(UsageError, match="annotation"):
        driver.annotate("rp", {})
    with pytest.raises(UsageError, match="timeout"):
        driver.wait_ready("rp", "v1", timeout=-1)
    assert driver.calls == []


def test_every_call_is_logged_for_rbac(driver: KubernetesDriver, tmp_path: Path) -> None:
    driver.workload("rp", "v1")
    driver.versions("rp")
    driver.instances("rp", "v1")
    driver.wait_ready("rp", "v1", timeout=1)
    driver.scale("rp", "v1", 4)
    driver.route("rp", "v2")
    driver.set_autoscaling("rp", None)
    driver.set_autoscaling("rp", AutoscalingBounds(2, 3))
    driver.deploy("rp", "v4", replicas=1)
    driver.remove("rp", "v4")
    lines = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert len(lines) == len(driver.calls) > 10
    seen = {(c["verb"], c["group"], c["resource"]) for c in lines}
    assert seen == {
        ("get", "apps", "deployments"),
        ("list", "apps", "deployments"),
        ("list", "apps", "replicasets"),
        ("patch", "apps", "deployments"),
        ("create", "apps", "deployments"),
        ("delete", "apps", "deployments"),
        ("get", "", "services"),
        ("patch", "", "services"),
        ("list", "", "pods"),
        ("get", "autoscaling", "horizontalpodautoscalers"),
        ("patch", "autoscaling", "horizontalpodautoscalers"),
        ("delete", "autoscaling", "horizontalpodautoscalers"),
        ("create", "autoscaling", "horizontalpodautoscalers"),
    }
    assert {c["namespace"] for c in lines} == {NS}
