"""The kubernetes driver: the official `kubernetes` client against the cluster's API.

Configuration: in-cluster (service account) when running in a pod, else kubeconfig (file and
context from options, or $KUBECONFIG / ~/.kube/config). Namespace: the `namespace` option, else
$RPOPS_NAMESPACE, else the service account's namespace file, else the kubeconfig context's, else
"default".

Readiness (`wait_ready`) is `kubectl rollout status`'s: the Deployment's status, then the
ReplicaSet of its current revision (listed by the Deployment's selector, `list replicasets`) with
every replica ready and available, and no older ReplicaSet still holding replicas.

Every call carries `_request_timeout`. Timeouts, connection errors, 429 and 5xx are retried a
bounded number of times and then raise PlatformUnavailable (exit 3). Writes are patches only
(merge or JSON patch, never replace/PUT), computed from a fresh read and made conditional on its
resourceVersion: a 409 re-reads and recomputes, boundedly. A 404 becomes NotFound naming
kind namespace/name.

Every API call is recorded as an ApiCall (verb, group, resource, namespace, name, status) in
`driver.calls`, and appended as a JSON line to the file named by $RPOPS_K8S_CALL_LOG when set, so a
test can check that the RBAC Role covers what the driver does.

The `kubernetes` package is imported here only, when a driver is made.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rpops.core.errors import UsageError
from rpops.platform.base import (
    LISTABLE_KINDS,
    AutoscalingBounds,
    Conflict,
    DeadlineExceeded,
    Instance,
    NotFound,
    PlatformError,
    PlatformUnavailable,
    Resources,
    Routes,
    SeriesQueries,
    Workload,
    check_annotations,
    check_kinds,
    check_replicas,
    check_service,
    check_timeout,
    check_version,
    strip_annotations,
)
from rpops.platform.kubernetes import model as m

log = logging.getLogger(__name__)

SA_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
CALL_LOG_ENV = "RPOPS_K8S_CALL_LOG"

# (group, plural) -> (API class name, method suffix, kind)
_RESOURCES: dict[str, tuple[str, str, str, str]] = {
    "deployments": ("apps", "AppsV1Api", "namespaced_deployment", "Deployment"),
    # Read only (list), for readiness: the ReplicaSet of a Deployment's current revision.
    "replicasets": ("apps", "AppsV1Api", "namespaced_replica_set", "ReplicaSet"),
    "services": ("", "CoreV1Api", "namespaced_service", "Service"),
    "horizontalpodautoscalers": (
        "autoscaling",
        "AutoscalingV2Api",
        "namespaced_horizontal_pod_autoscaler",
        "HorizontalPodAutoscaler",
    ),
    "pods": ("", "CoreV1Api", "namespaced_pod", "Pod"),
    # Read only, for the security scan's configuration checks (list_objects).
    "networkpolicies": ("networking.k8s.io", "NetworkingV1Api", "namespaced_network_policy", "NetworkPolicy"),
    "poddisruptionbudgets": (
        "policy",
        "PolicyV1Api",
        "namespaced_pod_disruption_budget",
        "PodDisruptionBudget",
    ),
}
# Kind -> plural, for list_objects.
_PLURALS = {kind: plural for plural, (_, _, _, kind) in _RESOURCES.items()}
# Page size of list_objects: bounded responses however large the namespace.
LIST_PAGE = 250
_VERB_PREFIX = {"get": "read", "list": "list", "create": "create", "patch": "patch", "delete": "delete"}
_MERGE_PATCH = "application/merge-patch+json"
_JSON_PATCH = "application/json-patch+json"


@dataclass(frozen=True)
class ApiCall:
    """One request the driver made, in RBAC terms."""

    verb: str  # get | list | create | patch | delete
    group: str  # "" (core), "apps", "autoscaling", "networking.k8s.io", "policy"
    resource: str  # plural: deployments, replicasets, services, horizontalpodautoscalers, pods, ...
    namespace: str
    name: str | None
    status: int  # HTTP status, 0 when no answer came


class _Transient(Exception):
    """A failure worth retrying: timeout, connection error, 429, 5xx or a malformed answer."""

    malformed = False


class _Malformed(_Transient):
    """A 2xx answer that is not JSON or not shaped like a Kubernetes object."""

    malformed = True


class KubernetesDriver:
    """PlatformDriver over the Kubernetes API (Deployments, Services, HPAs, Pods; ReplicaSets are
    listed for readiness; NetworkPolicies and PodDisruptionBudgets are only listed, for the security
    scan)."""

    name = "kubernetes"
    # The pod and namespace labels manifests/monitoring/prometheus-scrape.yaml (and cAdvisor) attach;
    # cAdvisor's series of the pod's containers, not of its pause container.
    series = SeriesQueries(
        selector='namespace="$namespace",pod=~"$service-$version-.*"',
        cpu_usage='sum by (pod) (rate(container_cpu_usage_seconds_total{$selector,container!="",'
        'container!="POD"}[$window]))',
        memory_usage='max by (pod) (max_over_time(container_memory_working_set_bytes{$selector,'
        'container!="",container!="POD"}[$step]))',
    )

    def __init__(
        self,
        namespace: str | None = None,
        context: str | None = None,
        kubeconfig: str | None = None,
        request_timeout: float = 10.0,
        attempts: int = 5,
        backoff: float = 0.2,
        poll_interval: float = 2.0,
    ) -> None:
        if not isinstance(attempts, int) or attempts < 1:
            raise UsageError(f"attempts {attempts!r} is invalid: use a whole number >= 1")
        self.request_timeout = check_timeout(request_timeout)
        self.attempts = attempts
        self.backoff = max(0.0, float(backoff))
        self.poll_interval = max(0.01, float(poll_interval))
        self.calls: list[ApiCall] = []
        self._call_log = os.environ.get(CALL_LOG_ENV) or None

        from kubernetes import client, config  # lazy: only this driver needs the client

        self._client = client
        cfg = client.Configuration()
        kube_namespace: str | None = None
        # The client reads $KUBECONFIG once at import; read it now so a later change counts.
        kubeconfig = kubeconfig or os.environ.get("KUBECONFIG") or None
        in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and not (kubeconfig or context)
        try:
            if in_cluster:
                config.load_incluster_config(client_configuration=cfg)
            else:
                config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg)
                kube_namespace = self._kubeconfig_namespace(config, kubeconfig, context)
        except (config.ConfigException, OSError) as exc:
            raise UsageError(
                f"no Kubernetes configuration: not running in a pod, and kubeconfig "
                f"{kubeconfig or os.environ.get('KUBECONFIG') or '~/.kube/config'} could not be "
                f"loaded ({exc}); set KUBECONFIG or pass a kubeconfig/context"
            ) from exc
        cfg.retries = False  # retries are ours: bounded, and aware of which failures are transient
        self._api_client = client.ApiClient(cfg)
        self._apis: dict[str, Any] = {}
        self.namespace = m.check_namespace(self._pick_namespace(namespace, kube_namespace))

    # -- configuration -----------------------------------------------------------------------

    @staticmethod
    def _kubeconfig_namespace(config: Any, kubeconfig: str | None, context: str | None) -> str | None:
        try:
            contexts, current = config.list_kube_config_contexts(config_file=kubeconfig)
        except Exception:  # noqa: BLE001 - the namespace fallback is optional
            return None
        chosen = next((c for c in contexts if c.get("name") == context), None) if context else current
        return ((chosen or {}).get("context") or {}).get("namespace")

    @staticmethod
    def _pick_namespace(option: str | None, kube_namespace: str | None) -> str:
        if option:
            return option
        if os.environ.get("RPOPS_NAMESPACE"):
            return os.environ["RPOPS_NAMESPACE"]
        try:
            text = Path(SA_NAMESPACE_FILE).read_text().strip()
            if text:
                return text
        except OSError:
            pass
        return kube_namespace or "default"

    def close(self) -> None:
        self._api_client.close()

    # -- the one way out ---------------------------------------------------------------------

    def _record(self, call: ApiCall) -> None:
        self.calls.append(call)
        if self._call_log:
            try:
                with open(self._call_log, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(asdict(call), sort_keys=True) + "\n")
            except OSError:
                log.warning("cannot append to the API call log %s", self._call_log)

    def _api(
        self,
        verb: str,
        resource: str,
        name: str | None = None,
        body: Any = None,
        label_selector: str | None = None,
        query: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One API call with timeout, call recording, bounded retries of transient failures, and
        errors mapped onto ours. Returns the response body as a dict."""
        group, api_class, suffix, kind = _RESOURCES[resource]
        api = self._apis.get(api_class)
        if api is None:
            api = self._apis[api_class] = getattr(self._client, api_class)(self._api_client)
        method = getattr(api, f"{_VERB_PREFIX[verb]}_{suffix}")
        kwargs: dict[str, Any] = {"_request_timeout": self.request_timeout, "_preload_content": False}
        args: list[Any] = []
        if name is not None:
            args.append(name)
        args.append(self.namespace)
        if body is not None:
            args.append(body)
        if verb == "patch":
            # Explicit, always: the client would pick strategic merge for a dict body.
            kwargs["_content_type"] = _JSON_PATCH if isinstance(body, list) else _MERGE_PATCH
        if label_selector:
            kwargs["label_selector"] = label_selector
        kwargs.update(query or {})
        where = f"{kind} {self.namespace}/{name}" if name else f"{kind} list in {self.namespace}"
        last: Exception | None = None
        for attempt in range(self.attempts):
            status = 0
            try:
                try:
                    response = method(*args, **kwargs)
                    status = int(response.status)
                    return self._parse(response.data, verb, where)
                except self._client.ApiException as exc:
                    status = int(exc.status or 0)
                    if status in (429,) or status >= 500 or status == 0:
                        raise _Transient(f"{where}: HTTP {status} {exc.reason or ''}".strip()) from exc
                    raise self._map_error(exc, kind, name, verb, where) from exc
                except Exception as exc:
                    import urllib3

                    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
                        raise _Transient(f"{where}: {type(exc).__name__}: {exc}") from exc
                    raise
                finally:
                    self._record(ApiCall(verb, group, resource, self.namespace, name, status))
            except _Transient as exc:
                last = exc
                log.warning(
                    "kubernetes %s %s failed (attempt %d/%d): %s",
                    verb,
                    where,
                    attempt + 1,
                    self.attempts,
                    exc,
                )
                if attempt + 1 < self.attempts:
                    time.sleep(self.backoff * (2**attempt))
        state = "gave no usable answer" if getattr(last, "malformed", False) else "unreachable"
        raise PlatformUnavailable(
            f"Kubernetes API {state} for {verb} {where} after {self.attempts} attempts: {last}"
        )

    @staticmethod
    def _parse(data: bytes | None, verb: str, where: str) -> dict[str, Any]:
        """A 2xx answer's body as a Kubernetes object (or list); a malformed one is a failed call."""
        try:
            doc = json.loads(data or b"{}")
        except (ValueError, RecursionError) as exc:
            detail = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
            raise _Malformed(f"{where}: the answer is not JSON ({detail})") from None
        problem = m.answer_problem(doc, is_list=verb == "list") if verb in ("get", "list", "create",
                                                                             "patch") else None
        if problem is None and not isinstance(doc, dict):
            problem = f"the answer is a {type(doc).__name__}, not an object"
        if problem is not None:
            raise _Malformed(f"{where}: malformed answer: {problem}")
        return doc

    @staticmethod
    def _map_error(exc: Any, kind: str, name: str | None, verb: str, where: str) -> PlatformError:
        status = int(exc.status or 0)
        message = ""
        try:
            message = json.loads(exc.body or "{}").get("message") or ""
        except (ValueError, AttributeError):
            message = str(exc.body or "")[:200]
        if status == 404:
            return NotFound(kind, where.split(" ", 1)[1], message)
        if status == 409:
            return Conflict(f"{verb} {where} conflicted: {message or 'the object changed'}")
        if status in (401, 403):
            return PlatformError(
                f"{verb} {where} was refused (HTTP {status}): the service account needs "
                f"RBAC '{verb}' on this resource. {message}".strip()
            )
        return PlatformError(f"{verb} {where} failed (HTTP {status}): {message or exc.reason}")

    # -- reads -------------------------------------------------------------------------------

    def _get(self, resource: str, name: str) -> dict[str, Any]:
        return self._api("get", resource, name)

    def _get_or_none(self, resource: str, name: str) -> dict[str, Any] | None:
        try:
            return self._get(resource, name)
        except NotFound:
            return None

    def _list(self, resource: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        selector = ",".join(f"{k}={v}" for k, v in labels.items())
        items = self._api("list", resource, label_selector=selector).get("items") or []
        return [item for item in items if m.labels_match(item, labels)]

    def _routes(self, service: str) -> Routes:
        active = m.route_of(self._get_or_none("services", service))
        preview = m.route_of(self._get_or_none("services", m.preview_service_name(service)))
        return Routes(service=service, active=active, preview=preview)

    def workload(self, service: str, version: str) -> Workload:
        check_version(check_service(service), version)
        deployment = self._get("deployments", m.deployment_name(service, version))
        hpa = self._get_or_none("horizontalpodautoscalers", service)
        routes = self._routes(service)
        return m.workload_from(deployment, service, hpa, routes.active, routes.preview)

    def versions(self, service: str) -> list[Workload]:
        check_service(service)
        deployments = self._list("deployments", {m.NAME_LABEL: service})
        hpa = self._get_or_none("horizontalpodautoscalers", service)
        routes = self._routes(service)
        out = [m.workload_from(d, service, hpa, routes.active, routes.preview) for d in deployments]
        return sorted(out, key=lambda w: w.version)

    def routes(self, service: str) -> Routes:
        return self._routes(check_service(service))

    def instances(self, service: str, version: str) -> list[Instance]:
        check_version(check_service(service), version)
        pods = self._list("pods", {m.NAME_LABEL: service, m.VERSION_LABEL: version})
        out: list[Instance] = []
        for pod in pods:
            meta = pod.get("metadata") or {}
            url = m.pod_url(pod, service)
            if url is None or meta.get("deletionTimestamp"):
                continue
            out.append(
                Instance(
                    service=service,
                    version=version,
                    name=str(meta.get("name")),
                    url=url,
                    ready=m.pod_ready(pod),
                )
            )
        return sorted(out, key=lambda i: i.name)

    def list_objects(self, kinds: Sequence[str]) -> list[dict[str, Any]]:
        """Every object of these kinds in the namespace, as the API returns them (plain JSON: the
        responses are never deserialized into client models), with `kind` and `apiVersion` set
        (list items carry neither). Read page by page; sorted by kind, then name."""
        out: list[dict[str, Any]] = []
        for kind in check_kinds(kinds):
            resource = _PLURALS[kind]
            token: str | None = None
            while True:
                query: dict[str, Any] = {"limit": LIST_PAGE}
                if token:
                    query["_continue"] = token
                page = self._api("list", resource, query=query)
                for item in page.get("items") or []:
                    out.append({"apiVersion": LISTABLE_KINDS[kind], "kind": kind, **item})
                token = (page.get("metadata") or {}).get("continue") or None
                if not token:
                    break
        order = {kind: i for i, kind in enumerate(LISTABLE_KINDS)}
        return sorted(out, key=lambda o: (order[o["kind"]], str((o.get("metadata") or {}).get("name"))))

    def annotations(self, service: str, version: str | None = None) -> dict[str, str]:
        resource, name = self._annotation_target(service, version)
        obj = self._get(resource, name)
        return strip_annotations((obj.get("metadata") or {}).get("annotations"))

    # -- writes ------------------------------------------------------------------------------

    def _update(
        self, resource: str, name: str, decide: Callable[[dict[str, Any]], m.Patch | None]
    ) -> dict[str, Any]:
        """Read, decide a patch, write it conditionally; on 409 read again. Idempotent: no patch, no write."""
        for attempt in range(self.attempts):
            obj = self._get(resource, name)
            patch = decide(obj)
            if patch is None:
                return obj
            try:
                return self._api("patch", resource, name, body=m.with_resource_version(obj, patch))
            except Conflict:
                log.info(
                    "conflict patching %s %s/%s (attempt %d/%d); re-reading",
                    resource,
                    self.namespace,
                    name,
                    attempt + 1,
                    self.attempts,
                )
                if attempt + 1 < self.attempts:
                    time.sleep(self.backoff * attempt)
        raise Conflict(
            f"{_RESOURCES[resource][3]} {self.namespace}/{name} kept changing under us: "
            f"{self.attempts} conflicting writes in a row; retry later"
        )

    def scale(self, service: str, version: str, replicas: int) -> None:
        check_version(check_service(service), version)
        check_replicas(replicas)
        self._update("deployments", m.deployment_name(service, version), lambda d: m.scale_patch(d, replicas))

    def set_autoscaling(self, service: str, bounds: AutoscalingBounds | None) -> None:
        check_service(service)
        if bounds is not None and not isinstance(bounds, AutoscalingBounds):
            raise UsageError("bounds must be an AutoscalingBounds(min_replicas, max_replicas) or None")
        if bounds is None:
            try:
                self._api("delete", "horizontalpodautoscalers", service)
            except NotFound:
                pass
            return
        hpa = self._get_or_none("horizontalpodautoscalers", service)
        if hpa is None:
            active = self._routes(service).active
            if active is None:
                raise Conflict(
                    f"service {service} has no active route, so an autoscaler has nothing to "
                    "target: route a version first"
                )
            body = m.new_hpa(service, self.namespace, m.deployment_name(service, active), bounds)
            try:
                self._api("create", "horizontalpodautoscalers", body=body)
                return
            except Conflict:
                pass  # created meanwhile: fall through and patch it
        self._update("horizontalpodautoscalers", service, lambda h: m.hpa_bounds_patch(h, bounds))

    def set_resources(self, service: str, version: str, resources: Resources) -> None:
        check_version(check_service(service), version)
        if not isinstance(resources, Resources):
            raise UsageError("resources must be a Resources(cpu_request=..., memory_limit=...) value")
        self._update(
            "deployments",
            m.deployment_name(service, version),
            lambda d: m.resources_patch(d, service, resources),
        )

    def deploy(self, service: str, version: str, *, replicas: int = 1, image: str | None = None) -> None:
        check_version(check_service(service), version)
        check_replicas(replicas)
        if image is not None and (not isinstance(image, str) or not image.strip() or " " in image):
            raise UsageError(
                f"image {image!r} is invalid: pass a container image reference like "
                "registry.example/research-platform:v2"
            )
        name = m.deployment_name(service, version)
        if self._get_or_none("deployments", name) is None:
            body = m.new_deployment(
                service, version, self.namespace, replicas, image, self._template(service)
            )
            try:
                self._api("create", "deployments", body=body)
                return
            except Conflict:
                log.info("deployment %s/%s appeared meanwhile; updating it", self.namespace, name)
        self._update("deployments", name, lambda d: m.update_patch(d, service, replicas, image))

    def _template(self, service: str) -> dict[str, Any] | None:
        """The Deployment a new version copies: the active version's, else the newest by name."""
        deployments = self._list("deployments", {m.NAME_LABEL: service})
        if not deployments:
            return None
        active = self._routes(service).active
        for d in deployments:
            if ((d.get("metadata") or {}).get("labels") or {}).get(m.VERSION_LABEL) == active:
                return d
        return sorted(deployments, key=lambda d: d["metadata"]["name"])[-1]

    def _replicasets(self, deployment: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The ReplicaSets the Deployment's selector matches (its own among them: m.owned_by tells)."""
        selector = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        return self._list("replicasets", {str(k): str(v) for k, v in selector.items()})

    def wait_ready(self, service: str, version: str, *, timeout: float = 300.0) -> Workload:
        """Until the rollout is complete: the Deployment's status says so (as `kubectl rollout
        status` reads it), then its ReplicaSets agree (m.replicaset_status). The ReplicaSets are
        listed only once the Deployment's status looks complete."""
        check_version(check_service(service), version)
        deadline = time.monotonic() + check_timeout(timeout)
        name = m.deployment_name(service, version)
        while True:
            deployment = self._get("deployments", name)
            complete, detail = m.rollout_status(deployment)
            if complete:
                complete, detail = m.replicaset_status(deployment, self._replicasets(deployment))
            if complete:
                return self.workload(service, version)
            if time.monotonic() >= deadline:
                raise DeadlineExceeded(
                    f"Deployment {self.namespace}/{name} not ready after {round(timeout, 2):g}s: {detail}"
                )
            time.sleep(min(self.poll_interval, max(0.0, deadline - time.monotonic())))

    def route(self, service: str, version: str, *, preview: bool = False) -> None:
        check_version(check_service(service), version)
        deployment = m.deployment_name(service, version)
        self._get("deployments", deployment)  # NotFound names the missing version
        target = m.preview_service_name(service) if preview else service
        self._update("services", target, lambda s: m.route_patch(s, version))
        if not preview and self._get_or_none("horizontalpodautoscalers", service) is not None:
            # The autoscaler follows the active version.
            self._update("horizontalpodautoscalers", service, lambda h: m.hpa_target_patch(h, deployment))

    def remove(self, service: str, version: str, *, delete: bool = True) -> None:
        check_version(check_service(service), version)
        if self._routes(service).active == version:
            raise Conflict(
                f"version {version} of {service} takes the active route: route another version "
                "before removing it"
            )
        name = m.deployment_name(service, version)
        try:
            if delete:
                self._api("delete", "deployments", name)
            else:
                self._update("deployments", name, lambda d: m.scale_patch(d, 0))
        except NotFound:
            log.info("deployment %s/%s already gone", self.namespace, name)

    def _annotation_target(self, service: str, version: str | None) -> tuple[str, str]:
        check_service(service)
        if version is None:
            return "services", service
        check_version(service, version)
        return "deployments", m.deployment_name(service, version)

    def annotate(
        self, service: str, annotations: Mapping[str, str | None], *, version: str | None = None
    ) -> None:
        resource, name = self._annotation_target(service, version)
        prefixed = check_annotations(annotations)
        self._update(resource, name, lambda o: m.annotations_patch(o, prefixed))

    def restart(self, service: str, version: str) -> None:
        check_version(check_service(service), version)
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._update("deployments", m.deployment_name(service, version), lambda d: m.restart_patch(now))
