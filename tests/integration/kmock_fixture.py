"""kmock's Kubernetes API emulator on a background event loop, for steps that run the real
`kubernetes` client (the synchronous client needs the server on another thread).

    api = ApiServer()
    api.put("apps/v1/deployments", "rp-v1", deployment_obj(...))
    kubeconfig = api.kubeconfig(tmp_path)     # for KUBECONFIG
    api.get("apps/v1/deployments", "rp-v1")   # what the driver wrote
    api.close()
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kmock
import pytest

DEPLOYMENTS = "apps/v1/deployments"
SERVICES = "v1/services"
HPAS = "autoscaling/v2/horizontalpodautoscalers"
PODS = "v1/pods"


class ApiServer:
    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
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

    def put(self, resource: str, name: str, obj: dict[str, Any]) -> None:
        self.run(lambda: self.kmock.objects.__setitem__((resource, self.namespace, name), obj))

    def get(self, resource: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.run(
            lambda: copy.deepcopy(self.kmock.objects[resource, self.namespace, name].raw)
        )
        return result

    def writes(self) -> list[str]:
        """`METHOD path` of every request that was not a read."""
        return [
            f"{r.method.value} {r.url.path}"
            for r in self.run(lambda: list(self.kmock))
            if r.method.value != "GET"
        ]

    def kubeconfig(self, directory: Path) -> Path:
        path = directory / "kubeconfig"
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "test",
                    "clusters": [{"name": "kmock", "cluster": {"server": self.url}}],
                    "users": [{"name": "tester", "user": {"token": "t0ken"}}],
                    "contexts": [
                        {
                            "name": "test",
                            "context": {"cluster": "kmock", "user": "tester", "namespace": self.namespace},
                        }
                    ],
                }
            )
        )
        return path

    def close(self) -> None:
        async def stop() -> None:
            await self.server.__aexit__(None, None, None)
            await self.kmock.__aexit__(None, None, None)

        self.run(stop)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def deployment_obj(
    namespace: str, service: str, version: str, replicas: int, resources: dict[str, Any] | None = None
) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": service, "version": version}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": f"{service}-{version}",
            "namespace": namespace,
            "labels": dict(labels),
            "resourceVersion": "5",
            "generation": 2,
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "containers": [
                        {
                            "name": service,
                            "image": f"registry.example/research-platform:{version}",
                            "ports": [{"containerPort": 8080}],
                            "resources": resources
                            if resources is not None
                            else {
                                "requests": {"cpu": "500m", "memory": "512Mi"},
                                "limits": {"memory": "512Mi"},
                            },
                        }
                    ]
                },
            },
        },
        "status": {
            "observedGeneration": 2,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
        },
    }


def service_obj(namespace: str, name: str, service: str, version: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": "3"},
        "spec": {
            "selector": {"app.kubernetes.io/name": service, "version": version},
            "ports": [{"port": 80, "targetPort": 8080}],
        },
    }


def hpa_obj(namespace: str, service: str, target: str, low: int, high: int) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": service, "namespace": namespace, "resourceVersion": "9"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": low,
            "maxReplicas": high,
        },
    }


def pod_obj(namespace: str, name: str, service: str, version: str, ip: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": service, "version": version},
        },
        "spec": {"containers": [{"name": service, "image": "x", "ports": [{"containerPort": 8080}]}]},
        "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]},
    }


def use_kubeconfig(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """Point the `kubernetes` client at `path` for steps that build their driver from the environment.

    The client reads $KUBECONFIG once, when it is imported (kube_config.KUBE_CONFIG_DEFAULT_LOCATION),
    so a second test with another kubeconfig would reach the first test's (stopped) server.
    """
    import kubernetes.config.kube_config as kube_config

    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))
