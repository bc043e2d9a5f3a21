"""Pure functions over Kubernetes objects (plain JSON dicts) for the kubernetes driver.

The model: service S has one Deployment per version V, named "S-V" and labelled
`app.kubernetes.io/name=S, version=V`; the Service "S" selects the active version by its
`version` label and the Service "S-preview" the preview version; the HPA "S" (autoscaling/v2)
targets the active Deployment. Nothing here does I/O, so the decisions are tested directly.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from typing import Any

from rpops.core.errors import UsageError
from rpops.platform.base import ANNOTATION_PREFIX, AutoscalingBounds, Resources, Workload, strip_annotations

NAME_LABEL = "app.kubernetes.io/name"
VERSION_LABEL = "version"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
# Set by the Deployment controller on a Deployment and on the ReplicaSet of each of its revisions.
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
DEFAULT_PORT = 8080

JsonPatch = list[dict[str, Any]]
Patch = dict[str, Any] | JsonPatch


def deployment_name(service: str, version: str) -> str:
    return f"{service}-{version}"


def preview_service_name(service: str) -> str:
    return f"{service}-preview"


def labels_match(obj: Mapping[str, Any], wanted: Mapping[str, str]) -> bool:
    """Client-side label filtering (the server filters too; this guards against servers that don't)."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in wanted.items())


def with_resource_version(obj: Mapping[str, Any], patch: Patch) -> Patch:
    """Make a patch conditional on the object not having changed since it was read.

    The API server answers 409 when the resourceVersion in a patch is stale; the driver then
    re-reads and recomputes. Objects without a resourceVersion get the patch unchanged.
    """
    rv = (obj.get("metadata") or {}).get("resourceVersion")
    if not rv:
        return patch
    if isinstance(patch, list):
        return [{"op": "replace", "path": "/metadata/resourceVersion", "value": rv}, *patch]
    out = copy.deepcopy(patch)
    out.setdefault("metadata", {})["resourceVersion"] = rv
    return out


def main_container_index(deployment: Mapping[str, Any], service: str) -> int:
    """The container named like the service, else the first one."""
    containers = deployment["spec"]["template"]["spec"].get("containers") or []
    if not containers:
        raise UsageError(f"deployment {deployment['metadata'].get('name')} has no containers to manage")
    for i, container in enumerate(containers):
        if container.get("name") in (service, "app"):
            return i
    return 0


def retag(image: str, version: str) -> str:
    """Replace an image's tag (or digest) with `version`: "reg:5000/app:v1" -> "reg:5000/app:v2"."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    return f"{name}:{version}"


def _annotations_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return strip_annotations((obj.get("metadata") or {}).get("annotations"))


def hpa_bounds(hpa: Mapping[str, Any] | None, deployment: str) -> AutoscalingBounds | None:
    """The HPA's bounds when it targets `deployment`, else None."""
    if not hpa:
        return None
    spec = hpa.get("spec") or {}
    target = spec.get("scaleTargetRef") or {}
    if target.get("kind", "Deployment") != "Deployment" or target.get("name") != deployment:
        return None
    return AutoscalingBounds(
        min_replicas=int(spec.get("minReplicas") or 1), max_replicas=int(spec["maxReplicas"])
    )


def route_of(service_obj: Mapping[str, Any] | None) -> str | None:
    if not service_obj:
        return None
    selector = (service_obj.get("spec") or {}).get("selector") or {}
    value = selector.get(VERSION_LABEL)
    return str(value) if value else None


def workload_from(
    deployment: Mapping[str, Any],
    service: str,
    hpa: Mapping[str, Any] | None,
    active: str | None,
    preview: str | None,
) -> Workload:
    labels = (deployment.get("metadata") or {}).get("labels") or {}
    version = str(labels.get(VERSION_LABEL) or deployment["metadata"]["name"][len(service) + 1 :])
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    index = main_container_index(deployment, service)
    container = spec["template"]["spec"]["containers"][index]
    return Workload(
        service=service,
        version=version,
        image=str(container.get("image") or ""),
        replicas=int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1),
        ready_replicas=int(status.get("readyReplicas") or 0),
        available_replicas=int(status.get("availableReplicas") or 0),
        resources=Resources.from_k8s(container.get("resources")),
        autoscaling=hpa_bounds(hpa, deployment["metadata"]["name"]),
        annotations=_annotations_of(deployment),
        active=active == version,
        preview=preview == version,
    )


def rollout_status(
    deployment: Mapping[str, Any], replicasets: Sequence[Mapping[str, Any]] | None = None
) -> tuple[bool, str]:
    """(complete, what is missing): the same test `kubectl rollout status` applies to the
    Deployment's status, then, when `replicasets` (the namespace's, or those the Deployment's
    selector matches) are given, the same test on its ReplicaSets (replicaset_status)."""
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    meta = deployment.get("metadata") or {}
    desired = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
    generation = meta.get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and observed is not None and int(observed) < int(generation):
        return False, f"the controller has not observed generation {generation} yet (at {observed})"
    updated = int(status.get("updatedReplicas") or 0)
    ready = int(status.get("readyReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    total = int(status.get("replicas") or 0)
    if desired == 0:
        if total:
            return False, f"{total} replicas still running, 0 desired"
    elif updated < desired:
        return False, f"{updated}/{desired} replicas updated"
    elif total > updated:
        return False, f"{total - updated} old replicas pending termination"
    elif ready < desired or available < desired:
        return False, f"{ready}/{desired} ready, {available}/{desired} available"
    if replicasets is not None:
        return replicaset_status(deployment, replicasets)
    return True, f"{desired}/{desired} ready" if desired else "0 desired, 0 replicas running"


def _revision(obj: Mapping[str, Any]) -> str | None:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION_ANNOTATION)
    return str(value) if value else None


def _count(section: Mapping[str, Any] | None, key: str) -> int:
    return int((section or {}).get(key) or 0)


def owned_by(replicaset: Mapping[str, Any], deployment: Mapping[str, Any]) -> bool:
    """The ReplicaSet's controller owner is this Deployment (by uid when the Deployment has one)."""
    meta = deployment.get("metadata") or {}
    for ref in (replicaset.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") != "Deployment" or ref.get("name") != meta.get("name"):
            continue
        if meta.get("uid") and ref.get("uid") != meta.get("uid"):
            continue  # a namesake: an earlier Deployment of that name, deleted and recreated
        return True
    return False


def replicaset_status(
    deployment: Mapping[str, Any], replicasets: Sequence[Mapping[str, Any]]
) -> tuple[bool, str]:
    """(complete, what is missing) from the Deployment's ReplicaSets: the ReplicaSet of its current
    revision (the `deployment.kubernetes.io/revision` annotation both carry) has every desired
    replica ready and available, and no older ReplicaSet of it still holds replicas.

    No ReplicaSet for the revision yet (or no revision yet) is "not ready yet", not an error: the
    controller creates it shortly after the Deployment changes.
    """
    spec = deployment.get("spec") or {}
    desired = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
    revision = _revision(deployment)
    owned = sorted(
        (rs for rs in replicasets if owned_by(rs, deployment)),
        key=lambda rs: str((rs.get("metadata") or {}).get("name")),
    )
    current = [rs for rs in owned if revision is not None and _revision(rs) == revision]
    new = current[0] if current else None
    if new is None and desired > 0:
        if revision is None:
            return False, "the controller has not given the Deployment a revision (and ReplicaSet) yet"
        return False, f"no ReplicaSet of revision {revision} yet"
    if new is not None:
        name = new["metadata"]["name"]
        status = new.get("status") or {}
        ready, available = _count(status, "readyReplicas"), _count(status, "availableReplicas")
        if ready < desired or available < desired:
            return False, (
                f"ReplicaSet {name} (revision {revision}): {ready}/{desired} ready, "
                f"{available}/{desired} available"
            )
    # An old ReplicaSet holds replicas until scaled down (spec) and its pods are gone (status).
    draining: list[str] = []
    for rs in owned:
        holding = max(_count(rs.get("spec"), "replicas"), _count(rs.get("status"), "replicas"))
        if rs is not new and holding:
            name = rs["metadata"]["name"]
            draining.append(
                f"old ReplicaSet {name} (revision {_revision(rs) or '?'}) still has {holding} replicas"
            )
    if draining:
        return False, "; ".join(draining)
    if new is None:
        return True, "0 desired, no ReplicaSet holds replicas"
    return True, f"ReplicaSet {new['metadata']['name']} (revision {revision}): {desired}/{desired} ready"


def scale_patch(deployment: Mapping[str, Any], replicas: int) -> Patch | None:
    if (deployment.get("spec") or {}).get("replicas") == replicas:
        return None
    return {"spec": {"replicas": replicas}}


def route_patch(service_obj: Mapping[str, Any], version: str) -> Patch | None:
    """One merge patch of the selector's version label: the switch is a single atomic write."""
    if route_of(service_obj) == version:
        return None
    return {"spec": {"selector": {VERSION_LABEL: version}}}


def hpa_target_patch(hpa: Mapping[str, Any], deployment: str) -> Patch | None:
    target = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
    if target.get("name") == deployment:
        return None
    return {"spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment}}}


def hpa_bounds_patch(hpa: Mapping[str, Any], bounds: AutoscalingBounds) -> Patch | None:
    spec = hpa.get("spec") or {}
    if spec.get("minReplicas") == bounds.min_replicas and spec.get("maxReplicas") == bounds.max_replicas:
        return None
    return {"spec": {"minReplicas": bounds.min_replicas, "maxReplicas": bounds.max_replicas}}


def new_hpa(
    service: str, namespace: str, deployment: str, bounds: AutoscalingBounds, cpu_utilization: int = 70
) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": service, "namespace": namespace, "labels": {NAME_LABEL: service}},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
            "minReplicas": bounds.min_replicas,
            "maxReplicas": bounds.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": cpu_utilization},
                    },
                }
            ],
        },
    }


def resources_patch(deployment: Mapping[str, Any], service: str, resources: Resources) -> Patch | None:
    """A JSON patch setting the main container's resources; fields left None keep their value.

    JSON patch (not merge) because a merge patch would replace the whole containers list.
    """
    index = main_container_index(deployment, service)
    container = deployment["spec"]["template"]["spec"]["containers"][index]
    current = copy.deepcopy(container.get("resources") or {})
    merged = copy.deepcopy(current)
    for section, key, value in (
        ("requests", "cpu", resources.cpu_request),
        ("limits", "cpu", resources.cpu_limit),
        ("requests", "memory", resources.memory_request),
        ("limits", "memory", resources.memory_limit),
    ):
        if value is not None:
            merged.setdefault(section, {})[key] = value
    Resources.from_k8s(merged)  # the merged result must still be coherent (request <= limit)
    if merged == current:
        return None
    base = f"/spec/template/spec/containers/{index}"
    return [
        {"op": "test", "path": f"{base}/name", "value": container.get("name")},
        {"op": "add", "path": f"{base}/resources", "value": merged},
    ]


def update_patch(
    deployment: Mapping[str, Any], service: str, replicas: int, image: str | None
) -> Patch | None:
    """Bring an existing version's deployment to `replicas` (and `image` when given)."""
    ops: JsonPatch = []
    index = main_container_index(deployment, service)
    container = deployment["spec"]["template"]["spec"]["containers"][index]
    base = f"/spec/template/spec/containers/{index}"
    if image is not None and container.get("image") != image:
        ops += [
            {"op": "test", "path": f"{base}/name", "value": container.get("name")},
            {"op": "replace", "path": f"{base}/image", "value": image},
        ]
    if (deployment.get("spec") or {}).get("replicas") != replicas:
        ops.append({"op": "add", "path": "/spec/replicas", "value": replicas})
    return ops or None


def annotations_patch(obj: Mapping[str, Any], prefixed: Mapping[str, str | None]) -> Patch | None:
    current = (obj.get("metadata") or {}).get("annotations") or {}
    changes = {k: v for k, v in prefixed.items() if current.get(k) != v}
    if not changes:
        return None
    return {"metadata": {"annotations": changes}}


def restart_patch(now_iso: str) -> Patch:
    return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now_iso}}}}}


def new_deployment(
    service: str,
    version: str,
    namespace: str,
    replicas: int,
    image: str | None,
    template: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """A Deployment for a new version: a copy of `template` (another version's Deployment) with the
    version's name, labels and image; or a minimal one for the reference workload when there is none."""
    name = deployment_name(service, version)
    labels = {NAME_LABEL: service, VERSION_LABEL: version}
    if template is None:
        if not image:
            raise UsageError(
                f"service {service} has no deployment to copy for version {version}: "
                "pass an image to create the first one"
            )
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": dict(labels)},
                "template": {
                    "metadata": {"labels": dict(labels)},
                    "spec": {
                        "containers": [
                            {
                                "name": service,
                                "image": image,
                                "ports": [{"name": "http", "containerPort": DEFAULT_PORT}],
                                "readinessProbe": {
                                    "httpGet": {"path": "/ready", "port": DEFAULT_PORT},
                                    "periodSeconds": 5,
                                },
                                "livenessProbe": {
                                    "httpGet": {"path": "/health", "port": DEFAULT_PORT},
                                    "periodSeconds": 10,
                                },
                            }
                        ]
                    },
                },
            },
        }
    src_meta = template.get("metadata") or {}
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {**(src_meta.get("labels") or {}), **labels},
    }
    foreign = {
        k: v
        for k, v in (src_meta.get("annotations") or {}).items()
        if not k.startswith(ANNOTATION_PREFIX)
        and k != "deployment.kubernetes.io/revision"
        and k != "kubectl.kubernetes.io/last-applied-configuration"
    }
    if foreign:
        meta["annotations"] = foreign
    spec = copy.deepcopy(dict(template["spec"]))
    spec["replicas"] = replicas
    spec["selector"] = {"matchLabels": {**((spec.get("selector") or {}).get("matchLabels") or {}), **labels}}
    tmeta = spec["template"].setdefault("metadata", {})
    tmeta["labels"] = {**(tmeta.get("labels") or {}), **labels}
    (tmeta.get("annotations") or {}).pop(RESTARTED_AT, None)
    obj = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec}
    index = main_container_index(obj, service)
    container = spec["template"]["spec"]["containers"][index]
    container["image"] = image or retag(str(container.get("image") or service), version)
    return obj


def pod_ready(pod: Mapping[str, Any]) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def pod_url(pod: Mapping[str, Any], service: str) -> str | None:
    ip = (pod.get("status") or {}).get("podIP")
    if not ip:
        return None
    containers = (pod.get("spec") or {}).get("containers") or []
    port = DEFAULT_PORT
    ordered = sorted(containers, key=lambda c: c.get("name") not in (service, "app"))
    for container in ordered:
        ports = container.get("ports") or []
        if ports:
            port = int(ports[0]["containerPort"])
            break
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{port}"


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def check_namespace(namespace: str) -> str:
    if not _DNS_LABEL.match(namespace or "") or len(namespace) > 63:
        raise UsageError(
            f"namespace {namespace!r} is invalid: use a Kubernetes namespace name "
            "(lowercase letters, digits and '-'); set RPOPS_NAMESPACE, or the kubeconfig context's namespace"
        )
    return namespace


# --- the shape of an answer --------------------------------------------------------------------
# The JSON types, at every place this module reads, that Kubernetes objects have. An answer that
# differs (a list where an object belongs, text where a number does) is malformed: the driver
# treats it as a failed call (retried, then exit 3) instead of failing deep inside the model.
_INT = (int, type(None))
_STR = (str, type(None))
_LABELS = {"*": str}
_META = {"name": _STR, "uid": _STR, "resourceVersion": _STR, "generation": _INT,
         "labels": _LABELS, "annotations": _LABELS, "ownerReferences": [{"kind": _STR, "name": _STR}]}
_RESOURCES = {"requests": {"*": (str, int, float)}, "limits": {"*": (str, int, float)}}
_CONTAINER = {"name": _STR, "image": _STR, "resources": _RESOURCES, "ports": [{"containerPort": int}]}
_COUNTS = {k: _INT for k in ("replicas", "readyReplicas", "availableReplicas", "updatedReplicas",
                             "observedGeneration")}
_OBJECT = {
    "metadata": _META,
    "spec": {
        "replicas": _INT, "minReplicas": _INT, "maxReplicas": _INT,
        "selector": {"matchLabels": _LABELS, "*": object},
        "scaleTargetRef": {"kind": _STR, "name": _STR},
        "template": {"metadata": _META, "spec": {"containers": [_CONTAINER]}},
        "containers": [_CONTAINER],
    },
    "status": {**_COUNTS, "podIP": _STR, "conditions": [{"type": _STR, "status": _STR}]},
}
_LIST = {"items": [_OBJECT]}


def answer_problem(doc: Any, is_list: bool) -> str | None:
    """Where an API answer differs from the shape of a Kubernetes object (or list of them), or
    None when it has that shape. Unknown fields are not checked: only what the model reads."""
    stack: list[tuple[Any, Any, str]] = [(doc, _LIST if is_list else _OBJECT, "the answer")]
    while stack:
        value, shape, where = stack.pop()
        if value is None:
            continue  # an absent section: the model reads `or {}` / `or []`
        if isinstance(shape, dict):
            if not isinstance(value, dict):
                return f"{where} is a {type(value).__name__}, not an object"
            for key, item in value.items():
                sub = shape.get(key, shape.get("*"))
                if sub is not None and sub is not object:
                    stack.append((item, sub, f"{where}.{key}"))
        elif isinstance(shape, list):
            if not isinstance(value, list):
                return f"{where} is a {type(value).__name__}, not a list"
            stack.extend((item, shape[0], f"{where}[{i}]") for i, item in enumerate(value))
        elif not isinstance(value, shape) or isinstance(value, bool) and bool not in (
                shape if isinstance(shape, tuple) else (shape,)):
            return f"{where} is a {type(value).__name__}, which Kubernetes does not send there"
    return None
