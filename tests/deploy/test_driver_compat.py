"""The manifests as the pipelines see them: a region's objects, loaded into kmock's API
emulator, read and changed by the real kubernetes driver (the one the steps use).

This pins the conventions the two sides share: Deployment `<service>-<version>`, the `version`
label, the `<service>-preview` Service, the HPA named like the service.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from rpops.platform import AutoscalingBounds, get_driver
from rpops.platform.kubernetes.driver import KubernetesDriver

from .helpers import OVERLAYS, ROOT, build

sys.path.insert(0, str(ROOT / "tests" / "integration"))  # the shared kmock fixture
from kmock_fixture import DEPLOYMENTS, HPAS, SERVICES, ApiServer, play_controller  # noqa: E402

NS = "research-platform"
SERVICE = "research-platform"
PATHS = {"Deployment": DEPLOYMENTS, "Service": SERVICES, "HorizontalPodAutoscaler": HPAS}


@pytest.fixture()
def api() -> Iterator[ApiServer]:
    server = ApiServer(NS)
    try:
        for doc in build(OVERLAYS / "eu-west"):
            if doc["kind"] in PATHS:
                if doc["kind"] == "Deployment":
                    doc["metadata"]["generation"] = 1
                server.put(PATHS[doc["kind"]], doc["metadata"]["name"], doc)
                if doc["kind"] == "Deployment":  # play the controller: all replicas up
                    play_controller(server, doc["metadata"]["name"])
        yield server
    finally:
        server.close()


@pytest.fixture()
def driver(api: ApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KubernetesDriver]:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    config = api.kubeconfig(tmp_path, {"eu-west": None})
    drv = get_driver("kubernetes", kubeconfig=str(config), namespace=NS, attempts=2, backoff=0.01,
                     request_timeout=5.0, poll_interval=0.02)
    assert isinstance(drv, KubernetesDriver)
    try:
        yield drv
    finally:
        drv.close()


def test_driver_reads_the_deployed_region(driver: KubernetesDriver) -> None:
    workload = driver.workload(SERVICE, "v1")
    assert (workload.version, workload.replicas, workload.ready_replicas) == ("v1", 3, 3)
    assert workload.image == "ghcr.io/research-platform/research-platform:0.1.0"
    assert workload.autoscaling == AutoscalingBounds(3, 10)  # eu-west's bounds
    assert (workload.resources.cpu_request, workload.resources.memory_limit) == ("250m", "2Gi")
    routes = driver.routes(SERVICE)
    assert (routes.active, routes.preview) == ("v1", "v1")
    assert [w.version for w in driver.versions(SERVICE)] == ["v1"]
    # Readiness reads the ReplicaSet of the Deployment's revision through the manifests' selector.
    assert driver.wait_ready(SERVICE, "v1", timeout=2).ready


def test_blue_green_on_the_manifests_keeps_the_served_version_on_the_label(
        driver: KubernetesDriver, api: ApiServer) -> None:
    driver.deploy(SERVICE, "v2", replicas=3)
    green = api.get(DEPLOYMENTS, f"{SERVICE}-v2")
    labels = green["spec"]["template"]["metadata"]["labels"]
    assert (labels["version"], labels["region"], labels["compliance"]) == ("v2", "eu-west", "gdpr")
    assert green["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": SERVICE, "version": "v2"}
    (container,) = green["spec"]["template"]["spec"]["containers"]
    # The copy keeps the hardening and the downward-API version: v2 pods serve "v2".
    assert "$(SERVICE_VERSION)" in container["args"]
    env = {e["name"]: e for e in container["env"]}
    assert env["SERVICE_VERSION"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['version']"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    driver.route(SERVICE, "v2", preview=True)
    assert api.get(SERVICES, f"{SERVICE}-preview")["spec"]["selector"]["version"] == "v2"
    assert api.get(SERVICES, SERVICE)["spec"]["selector"]["version"] == "v1"
    driver.route(SERVICE, "v2")
    active = api.get(SERVICES, SERVICE)["spec"]["selector"]
    assert active == {"app.kubernetes.io/name": SERVICE, "version": "v2"}
    # The autoscaler follows the active colour.
    assert api.get(HPAS, SERVICE)["spec"]["scaleTargetRef"]["name"] == f"{SERVICE}-v2"
