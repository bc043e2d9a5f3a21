"""kmock's Kubernetes API emulator on a background event loop, for tests that run the real
`kubernetes` client (the synchronous client needs the server on another thread).

    api = ApiServer()                          # namespace "research-platform"
    api.put(DEPLOYMENTS, "rp-v1", deployment_obj(...))
    play_controller(api, "rp-v1")             # the ReplicaSet and status a controller would write
    kubeconfig = api.kubeconfig(tmp_path)      # for KUBECONFIG
    api.get(DEPLOYMENTS, "rp-v1")             # what the driver wrote
    api.close()

kmock has no controllers: a test that needs a rolled-out Deployment writes what the Deployment
controller would (its status, and the ReplicaSet of its current revision, which the kubernetes
driver reads for readiness).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import kmock
import pytest

DEPLOYMENTS = "apps/v1/deployments"
REPLICASETS = "apps/v1/replicasets"
SERVICES = "v1/services"
HPAS = "autoscaling/v2/horizontalpodautoscalers"
PODS = "v1/pods"
REVISION = "deployment.kubernetes.io/revision"
TEMPLATE_HASH = "pod-template-hash"


class ApiServer:
    """kmock's emulator and its HTTP server, on an event loop of their own."""

    def __init__(self, namespace: str = "research-platform") -> None:
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
        """Run `fn` (sync or async) on the server's loop and return its result."""

        async def call() -> Any:
            result = fn()
            return await result if asyncio.iscoroutine(result) else result

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(10)

    def put(self, resource: str, name: str, obj: dict[str, Any]) -> None:
        self.run(lambda: self.kmock.objects.__setitem__((resource, self.namespace, name), obj))

    def get(self, resource: str, name: str) -> dict[str, Any]:
        def read() -> dict[str, Any]:
            return copy.deepcopy(self.kmock.objects[resource, self.namespace, name].raw)

        result: dict[str, Any] = self.run(read)
        return result

    def patch(self, resource: str, name: str, changes: dict[str, Any]) -> None:
        """Merge `changes` into a stored object (as a controller's write would)."""
        self.run(lambda: self.kmock.objects[resource, self.namespace, name].patch(changes))

    def patch_status(self, resource: str, name: str, status: dict[str, Any]) -> None:
        """Play the controller: write an object's status."""
        self.patch(resource, name, {"status": status})

    def gone(self, resource: str, name: str) -> bool:
        return bool(self.run(lambda: self.kmock.objects[resource, self.namespace, name].deleted))

    def requests(self) -> list[Any]:
        """Every request the server answered, oldest first (kmock's request records)."""
        result: list[Any] = self.run(lambda: list(self.kmock))
        return result

    def writes(self) -> list[str]:
        """`METHOD path` of every request that was not a read."""
        return [f"{r.method.value} {r.url.path}" for r in self.requests() if r.method.value != "GET"]

    def kubeconfig(self, directory: Path, contexts: Mapping[str, str | None] | None = None) -> Path:
        """A kubeconfig for this server in `directory`. `contexts` maps context name -> namespace
        (None: no namespace); the first is current. Default: one context "test" in our namespace."""
        contexts = dict(contexts) if contexts else {"test": self.namespace}
        entries = []
        for name, namespace in contexts.items():
            context: dict[str, str] = {"cluster": "kmock", "user": "tester"}
            if namespace:
                context["namespace"] = namespace
            entries.append({"name": name, "context": context})
        path = directory / "kubeconfig"
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": next(iter(contexts)),
                    "clusters": [{"name": "kmock", "cluster": {"server": self.url}}],
                    "users": [{"name": "tester", "user": {"token": "t0ken"}}],
                    "contexts": entries,
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
        self.loop.close()


# --- playing the Deployment controller ---------------------------------------------------------


def template_hash(deployment: Mapping[str, Any]) -> str:
    """A stable hash of the pod template, like the controller's pod-template-hash label."""
    template = json.dumps((deployment.get("spec") or {}).get("template") or {}, sort_keys=True)
    return hashlib.sha256(template.encode()).hexdigest()[:10]


def replicaset_obj(
    deployment: Mapping[str, Any],
    revision: str,
    replicas: int,
    ready: int | None = None,
    available: int | None = None,
    template_id: str | None = None,
) -> dict[str, Any]:
    """The ReplicaSet the Deployment controller keeps for one revision of `deployment`: named
    `<deployment>-<pod-template-hash>`, owned by the Deployment, annotated with the revision.
    `ready`/`available` default to `replicas` (all up)."""
    meta = deployment.get("metadata") or {}
    name = str(meta["name"])
    suffix = template_id or template_hash(deployment)
    spec = deployment.get("spec") or {}
    template = copy.deepcopy(spec.get("template") or {})
    labels = {**((template.get("metadata") or {}).get("labels") or {}), TEMPLATE_HASH: suffix}
    template.setdefault("metadata", {})["labels"] = dict(labels)
    owner: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": name,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    if meta.get("uid"):
        owner["uid"] = meta["uid"]
    ready = replicas if ready is None else ready
    available = ready if available is None else available
    selector = {**((spec.get("selector") or {}).get("matchLabels") or {}), TEMPLATE_HASH: suffix}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{name}-{suffix}",
            "namespace": meta.get("namespace"),
            "labels": labels,
            "annotations": {REVISION: revision},
            "ownerReferences": [owner],
            "generation": 1,
        },
        "spec": {"replicas": replicas, "selector": {"matchLabels": selector}, "template": template},
        "status": {
            "replicas": replicas,
            "fullyLabeledReplicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": available,
            "observedGeneration": 1,
        },
    }


def play_controller(api: ApiServer, name: str, ready: int | None = None) -> dict[str, Any]:
    """Do what the Deployment controller does for Deployment `name` once `ready` of its replicas
    (default: all) are up: give it a revision when it has none, write the ReplicaSet of that
    revision, and the Deployment's status. Returns the ReplicaSet."""
    deployment = api.get(DEPLOYMENTS, name)
    meta = deployment.get("metadata") or {}
    revision = (meta.get("annotations") or {}).get(REVISION)
    if not revision:
        revision = "1"
        api.patch(DEPLOYMENTS, name, {"metadata": {"annotations": {REVISION: revision}}})
    replicas = (deployment.get("spec") or {}).get("replicas")
    desired = 1 if replicas is None else int(replicas)
    replicaset = replicaset_obj(deployment, revision, desired, ready)
    api.put(REPLICASETS, replicaset["metadata"]["name"], replicaset)
    up = desired if ready is None else ready
    api.patch_status(
        DEPLOYMENTS,
        name,
        {
            "observedGeneration": meta.get("generation", 1),
            "replicas": desired,
            "updatedReplicas": desired,
            "readyReplicas": up,
            "availableReplicas": up,
        },
    )
    return replicaset


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
