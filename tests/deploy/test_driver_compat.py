"""The manifests as the pipelines see them: a region's objects, loaded into kmock's API
emulator, read and changed by the real kubernetes driver (the one the steps use).

This pins the conventions the two sides share: Deployment `<service>-<version>`, the `version`
label, the `<service>-preview` Service, the HPA named like the service.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kmock
import pytest
from rpops.platform import AutoscalingBounds, get_driver
from rpops.platform.kubernetes import KubernetesDriver

from .helpers import OVERLAYS, build

NS = "research-platform"
SERVICE = "research-platform"
PATHS = {"Deployment": "apps/v1/deployments", "Service": "v1/services",
         "HorizontalPodAutoscaler": "autoscaling/v2/horizontalpodautoscalers"}


class ApiServer:
    """kmock on a background event loop (the driver's client is synchronous)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def start() -> tuple[kmock.KubernetesEmulator, kmock.Server]:
            emulator = kmock.KubernetesEmulator()
            await emulator.__aenter__()
            server = kmock.Server(emulator)
            await server.__aenter__()
            return emulator, server

        self.kmock, self.server = self.run(start)
        self.url = str(self.server.url).rstrip("/")

    def run(self, fn: Callable[[], Any]) -> Any:
        async def call() -> Any:
            result = fn()
            return await result if asyncio.iscoroutine(result) else result

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(10)

    def put(self, kind: str, obj: dict[str, Any]) -> None:
        key = (PATHS[kind], NS, obj["metadata"]["name"])
        self.run(lambda: self.kmock.objects.__setitem__(key, obj))

    def get(self, kind: str, name: str) -> dict[str, Any]:
        key = (PATHS[kind], NS, name)
        result: dict[str, Any] = self.run(lambda: copy.deepcopy(self.kmock.objects[key].raw))
        return result

    def close(self) -> None:
        async def stop() -> None:
            await self.server.__aexit__(None, None, None)
            await self.kmock.__aexit__(None, None, None)

        self.run(stop)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture()
def api() -> Iterator[ApiServer]:
    server = ApiServer()
    try:
        for doc in build(OVERLAYS / "eu-west"):
            if doc["kind"] in PATHS:
                if doc["kind"] == "Deployment":  # play the controller: all replicas up
                    n = doc["spec"]["replicas"]
                    doc["status"] = {"replicas": n, "readyReplicas": n, "availableReplicas": n,
                                     "updatedReplicas": n, "observedGeneration": 1}
                    doc["metadata"]["generation"] = 1
                server.put(doc["kind"], doc)
        yield server
    finally:
        server.close()


@pytest.fixture()
def driver(api: ApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KubernetesDriver]:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    config = tmp_path / "kubeconfig"
    config.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "eu-west",
        "clusters": [{"name": "kmock", "cluster": {"server": api.url}}],
        "users": [{"name": "sre", "user": {"token": "t0ken"}}],
        "contexts": [{"name": "eu-west", "context": {"cluster": "kmock", "user": "sre"}}],
    }))
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


def test_blue_green_on_the_manifests_keeps_the_served_version_on_the_label(
        driver: KubernetesDriver, api: ApiServer) -> None:
    driver.deploy(SERVICE, "v2", replicas=3)
    green = api.get("Deployment", f"{SERVICE}-v2")
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
    assert api.get("Service", f"{SERVICE}-preview")["spec"]["selector"]["version"] == "v2"
    assert api.get("Service", SERVICE)["spec"]["selector"]["version"] == "v1"
    driver.route(SERVICE, "v2")
    active = api.get("Service", SERVICE)["spec"]["selector"]
    assert active == {"app.kubernetes.io/name": SERVICE, "version": "v2"}
    # The autoscaler follows the active colour.
    assert api.get("HorizontalPodAutoscaler", SERVICE)["spec"]["scaleTargetRef"]["name"] == f"{SERVICE}-v2"
