"""A small Kubernetes for the blue-green tests: kmock as the API server, plus the two controllers
a promotion relies on, played for real:

- a Deployment controller: each Deployment of the service runs `spec.replicas` reference-workload
  processes on 127.0.0.1; it publishes them as Pods (podIP 127.0.0.1, containerPort = the
  process's port, Ready from GET /ready), keeps a ReplicaSet per pod template (a new template is
  a new revision: the Deployment's `deployment.kubernetes.io/revision`, the older ReplicaSet
  scaled to 0; the processes are not restarted) and writes the Deployment's status;
- a kube-proxy: the local platform's proxy process, whose active and preview backend sets follow
  the ready Pods that the Services `<service>` and `<service>-preview` select by version.

So the kubernetes driver's patches (selector, replicas, HPA) have their real effect on traffic.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from kmock_fixture import (
    DEPLOYMENTS,
    PODS,
    REPLICASETS,
    REVISION,
    SERVICES,
    ApiServer,
    replicaset_obj,
    template_hash,
)
from rpops.platform.local import processes as proc
from rpops.workload.testing import RunningWorkload, start_workload

NAME_LABEL = "app.kubernetes.io/name"


class FakeCluster:
    def __init__(self, api: ApiServer, service: str, workdir: Path) -> None:
        self.api = api
        self.namespace = api.namespace
        self.service = service
        self.admin_token = "cluster-admin-token"  # noqa: S105 - a test token
        self.faults: dict[str, dict[str, Any]] = {}  # version -> faults its new processes start with
        self.workloads: dict[str, list[RunningWorkload]] = {}
        self._status: dict[str, dict[str, Any]] = {}
        self._pods: dict[str, dict[str, Any]] = {}
        self._revisions: dict[str, tuple[str, int]] = {}  # Deployment -> (template hash, revision)
        self._replicasets: dict[str, dict[str, Any]] = {}  # what we last wrote, by name
        self._sets: tuple[list[str], list[str]] | None = None
        self._http = httpx.Client(timeout=1.0, trust_env=False)
        self._start_proxy(workdir)
        self._stop = threading.Event()
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    # --- the kube-proxy ---------------------------------------------------------------------------

    def _start_proxy(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        info = workdir / "proxy.json"
        token = secrets.token_urlsafe(16)
        argv = [sys.executable, "-m", "rpops.platform.local.proxy", "--host", "127.0.0.1", "--port", "0",
                "--preview-port", "0", "--control-port", "0", "--info-file", str(info),
                "--ready-interval", "0.2"]  # fmt: skip
        log = workdir / "proxy.log"
        self.proxy_pid, self.proxy_created = proc.spawn(argv, {**os.environ, "RPOPS_PROXY_TOKEN": token}, log)
        data = json.loads(
            proc.wait_file(info, self.proxy_pid, self.proxy_created, time.monotonic() + 20, log)
        )
        self.control = proc.ProxyControl(int(data["control_port"]), token)
        self.active_url = f"http://127.0.0.1:{data['port']}"
        self.preview_url = f"http://127.0.0.1:{data['preview_port']}"

    # --- reading kmock's objects ------------------------------------------------------------------

    def _objects(self, plural: str) -> dict[str, dict[str, Any]]:
        def read() -> dict[str, dict[str, Any]]:
            out = {}
            for (resource, ns, name), obj in self.api.kmock.objects.items():
                if resource.plural == plural and ns == self.namespace and not obj.deleted:
                    out[name] = json.loads(json.dumps(obj.raw))
            return out

        result: dict[str, dict[str, Any]] = self.api.run(read)
        return result

    def _ready(self, workload: RunningWorkload) -> bool:
        try:
            return self._http.get(f"{workload.url}/ready").status_code == 200
        except httpx.HTTPError:
            return False

    # --- the controllers --------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.reconcile()
            except Exception as exc:  # noqa: BLE001 - keep the controller alive; the test reads errors
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self._stop.wait(0.05)

    def reconcile(self) -> None:
        deployments = {
            name: d
            for name, d in self._objects("deployments").items()
            if ((d.get("metadata") or {}).get("labels") or {}).get(NAME_LABEL) == self.service
        }
        for name, dep in deployments.items():
            version = dep["metadata"]["labels"]["version"]
            desired = (dep.get("spec") or {}).get("replicas", 1)
            running = self.workloads.setdefault(name, [])
            while len(running) < desired and not self._stop.is_set():
                running.append(
                    start_workload(
                        version=version, admin_token=self.admin_token, **self.faults.get(version, {})
                    )
                )
            while len(running) > desired:
                running.pop().stop()
        for name in [n for n in self.workloads if n not in deployments]:
            for workload in self.workloads.pop(name):
                workload.stop()
            self._revisions.pop(name, None)
        # Pods and Deployment status
        ready_by_version: dict[str, list[str]] = {}
        wanted_pods: dict[str, dict[str, Any]] = {}
        wanted_sets: dict[str, dict[str, Any]] = {}
        for name, running in self.workloads.items():
            version = deployments[name]["metadata"]["labels"]["version"]
            ready = [w for w in running if self._ready(w)]
            ready_by_version.setdefault(version, []).extend(f"127.0.0.1:{w.port}" for w in ready)
            for i, w in enumerate(running):
                wanted_pods[f"{name}-{i}"] = self._pod(f"{name}-{i}", version, w.port, w in ready)
            owned = self._replicaset_objs(deployments[name], len(running), len(ready))
            wanted_sets.update(owned)
            status = {
                "replicas": len(running),
                "updatedReplicas": len(running),
                "readyReplicas": len(ready),
                "availableReplicas": len(ready),
                "observedGeneration": (deployments[name].get("metadata") or {}).get("generation", 1),
            }
            if self._status.get(name) != status:
                self._status[name] = status
                self._put_sets(owned)  # the ReplicaSets first, as the real controller does
                self._patch_status(name, status)
        self._put_sets(wanted_sets)
        self._collect_sets(wanted_sets)
        for name, pod in wanted_pods.items():
            if self._pods.get(name) != pod:
                self.api.put(PODS, name, pod)
                self._pods[name] = pod
        for name in [n for n in self._pods if n not in wanted_pods]:
            self._delete_pod(name)
            del self._pods[name]
        # kube-proxy
        services = self._objects("services")

        def selected(svc: str) -> list[str]:
            selector = ((services.get(svc) or {}).get("spec") or {}).get("selector") or {}
            return sorted(ready_by_version.get(selector.get("version", ""), []))

        sets = (selected(self.service), selected(f"{self.service}-preview"))
        if sets != self._sets:
            self.control.set_backends(*sets)
            self._sets = sets

    def _replicaset_objs(self, dep: dict[str, Any], replicas: int, ready: int) -> dict[str, dict[str, Any]]:
        """The Deployment's ReplicaSets: the current revision's holding the processes, and the
        previous one (if the template changed) scaled to 0. Bumps the Deployment's revision."""
        name = dep["metadata"]["name"]
        digest = template_hash(dep)
        seen = self._revisions.get(name)
        out: dict[str, dict[str, Any]] = {}
        if seen is None or seen[0] != digest:
            stamped = (dep["metadata"].get("annotations") or {}).get(REVISION) or ""
            if seen is None:  # first seen: keep the revision it carries, else the first one
                revision = int(stamped or 0) or 1
            else:  # a new pod template: the next revision
                revision = max(seen[1], int(stamped or 0)) + 1
            self._revisions[name] = (digest, revision)
            if stamped != str(revision):
                self.api.patch(DEPLOYMENTS, name, {"metadata": {"annotations": {REVISION: str(revision)}}})
            if seen is not None:
                old = replicaset_obj(dep, str(seen[1]), 0, template_id=seen[0])
                out[old["metadata"]["name"]] = old
        current = replicaset_obj(dep, str(self._revisions[name][1]), replicas, ready, template_id=digest)
        out[current["metadata"]["name"]] = current
        return out

    def _put_sets(self, wanted: dict[str, dict[str, Any]]) -> None:
        for name, rs in wanted.items():
            if self._replicasets.get(name) != rs:
                self.api.put(REPLICASETS, name, rs)
                self._replicasets[name] = rs

    def _collect_sets(self, wanted: dict[str, dict[str, Any]]) -> None:
        owners = {n: rs["metadata"]["ownerReferences"][0]["name"] for n, rs in self._replicasets.items()}
        live = {rs["metadata"]["ownerReferences"][0]["name"] for rs in wanted.values()}
        for name in [n for n, owner in owners.items() if owner not in live]:
            self._delete(REPLICASETS, name)  # the garbage collector: its Deployment is gone
            del self._replicasets[name]

    def _patch_status(self, name: str, status: dict[str, Any]) -> None:
        def patch() -> None:
            self.api.kmock.objects[DEPLOYMENTS, self.namespace, name].patch({"status": status})

        self.api.run(patch)

    def _delete_pod(self, name: str) -> None:
        self._delete(PODS, name)

    def _delete(self, resource: str, name: str) -> None:
        def delete() -> None:
            del self.api.kmock.objects[resource, self.namespace, name]

        self.api.run(delete)

    def _pod(self, name: str, version: str, port: int, ready: bool) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {NAME_LABEL: self.service, "version": version},
            },
            "spec": {
                "containers": [{"name": self.service, "image": "x", "ports": [{"containerPort": port}]}]
            },
            "status": {
                "podIP": "127.0.0.1",
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            },
        }

    # --- for tests ---------------------------------------------------------------------------------

    def set_faults(self, version: str, **faults: Any) -> None:
        for name, running in self.workloads.items():
            if name == f"{self.service}-{version}":
                for workload in running:
                    workload.set_faults(**faults)

    def selector(self, name: str | None = None) -> str | None:
        spec = self.api.get(SERVICES, name or self.service).get("spec") or {}
        value = (spec.get("selector") or {}).get("version")
        return str(value) if value else None

    def wait_settled(self, timeout: float = 30.0) -> None:
        """Until every Deployment runs its replicas and the proxy follows the Services."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            deps = self._objects("deployments")
            if (
                all(
                    (self._status.get(n) or {}).get("readyReplicas")
                    == (d.get("spec") or {}).get("replicas", 1)
                    for n, d in deps.items()
                )
                and self._sets
                and self._sets[0]
            ):
                return
            time.sleep(0.05)
        raise AssertionError(f"cluster did not settle: {self._status} {self.errors}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        for running in self.workloads.values():
            for workload in running:
                workload.stop()
        self.workloads.clear()
        proc.terminate(self.proxy_pid, self.proxy_created, timeout=5.0)
        self._http.close()
