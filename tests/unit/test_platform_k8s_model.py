"""The kubernetes driver's pure decisions over API objects (no I/O)."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest
from rpops.core.errors import UsageError
from rpops.platform import AutoscalingBounds, Resources
from rpops.platform.kubernetes import model as m


def dep(replicas: int = 2, rv: str | None = "5", **status: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": "rp-v1",
        "labels": {m.NAME_LABEL: "rp", m.VERSION_LABEL: "v1"},
        "annotations": {"rpops.research-platform.io/owner": "sre", "team": "x"},
        "generation": 3,
    }
    if rv:
        meta["resourceVersion"] = rv
    return {
        "metadata": meta,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {m.NAME_LABEL: "rp", m.VERSION_LABEL: "v1"}},
            "template": {
                "metadata": {"labels": {m.NAME_LABEL: "rp", m.VERSION_LABEL: "v1"}},
                "spec": {
                    "containers": [
                        {"name": "sidecar", "image": "proxy:1"},
                        {
                            "name": "rp",
                            "image": "reg.io:5000/team/rp:v1@sha256:abc",
                            "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "1Gi"}},
                        },
                    ]
                },
            },
        },
        "status": {
            "observedGeneration": 3,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            **status,
        },
    }


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("rp:v1", "rp:v2"),
        ("rp", "rp:v2"),
        ("reg.io:5000/team/rp:v1", "reg.io:5000/team/rp:v2"),
        ("reg.io:5000/team/rp", "reg.io:5000/team/rp:v2"),
        ("rp:v1@sha256:abc", "rp:v2"),
    ],
)
def test_retag(image: str, expected: str) -> None:
    assert m.retag(image, "v2") == expected


def test_main_container_is_the_one_named_like_the_service() -> None:
    assert m.main_container_index(dep(), "rp") == 1
    assert m.main_container_index(dep(), "unknown") == 0


def test_workload_from_a_deployment() -> None:
    hpa = {
        "spec": {
            "scaleTargetRef": {"kind": "Deployment", "name": "rp-v1"},
            "minReplicas": 2,
            "maxReplicas": 5,
        }
    }
    w = m.workload_from(dep(replicas=3, readyReplicas=2), "rp", hpa, active="v1", preview=None)
    assert (w.version, w.replicas, w.ready_replicas, w.ready) == ("v1", 3, 2, False)
    assert w.image == "reg.io:5000/team/rp:v1@sha256:abc"
    assert w.resources == Resources(cpu_request="100m", memory_limit="1Gi")
    assert w.autoscaling == AutoscalingBounds(2, 5) and w.active
    assert w.annotations == {"owner": "sre"}
    other = {"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "rp-v2"}, "maxReplicas": 5}}
    assert m.workload_from(dep(), "rp", other, None, None).autoscaling is None


@pytest.mark.parametrize(
    ("status", "spec_replicas", "complete", "detail"),
    [
        ({}, 2, True, "2/2 ready"),
        ({"observedGeneration": 2}, 2, False, "not observed generation 3"),
        ({"updatedReplicas": 1}, 2, False, "1/2 replicas updated"),
        ({"replicas": 3}, 2, False, "1 old replicas pending termination"),
        ({"readyReplicas": 1}, 2, False, "1/2 ready"),
        (
            {"replicas": 0, "updatedReplicas": 0, "readyReplicas": 0, "availableReplicas": 0},
            0,
            True,
            "0 desired",
        ),
        ({"replicas": 1}, 0, False, "1 replicas still running"),
    ],
)
def test_rollout_status(status: dict[str, Any], spec_replicas: int, complete: bool, detail: str) -> None:
    obj = dep()
    obj["spec"]["replicas"] = spec_replicas
    obj["status"].update(status)
    done, why = m.rollout_status(obj)
    assert done is complete and detail in why


def test_patches_are_none_when_nothing_changes() -> None:
    obj = dep()
    assert m.scale_patch(obj, 2) is None
    assert m.scale_patch(obj, 4) == {"spec": {"replicas": 4}}
    svc = {"spec": {"selector": {m.NAME_LABEL: "rp", "version": "v1"}}}
    assert m.route_patch(svc, "v1") is None
    assert m.route_patch(svc, "v2") == {"spec": {"selector": {"version": "v2"}}}
    assert m.hpa_bounds_patch({"spec": {"minReplicas": 2, "maxReplicas": 5}}, AutoscalingBounds(2, 5)) is None
    prefixed = {"rpops.research-platform.io/owner": "sre"}
    assert m.annotations_patch(obj, prefixed) is None
    assert m.annotations_patch(obj, {"rpops.research-platform.io/owner": None}) == {
        "metadata": {"annotations": {"rpops.research-platform.io/owner": None}}
    }
    assert m.update_patch(obj, "rp", 2, None) is None


def test_conditional_writes_carry_the_resource_version() -> None:
    assert m.with_resource_version(dep(), {"spec": {"replicas": 1}}) == {
        "spec": {"replicas": 1},
        "metadata": {"resourceVersion": "5"},
    }
    ops = m.with_resource_version(dep(), [{"op": "add", "path": "/spec/replicas", "value": 1}])
    assert isinstance(ops, list) and ops[0] == {
        "op": "replace",
        "path": "/metadata/resourceVersion",
        "value": "5",
    }
    assert m.with_resource_version(dep(rv=None), {"a": 1}) == {"a": 1}


def test_resources_patch_merges_into_the_main_container_only() -> None:
    obj = dep()
    patch = m.resources_patch(obj, "rp", Resources(cpu_limit="2", memory_request="512Mi"))
    assert isinstance(patch, list)
    result = jsonpatch.apply_patch(copy.deepcopy(obj), patch)
    containers = result["spec"]["template"]["spec"]["containers"]
    assert containers[0] == {"name": "sidecar", "image": "proxy:1"}
    assert containers[1]["resources"] == {
        "requests": {"cpu": "100m", "memory": "512Mi"},
        "limits": {"memory": "1Gi", "cpu": "2"},
    }
    assert m.resources_patch(result, "rp", Resources(cpu_limit="2")) is None
    with pytest.raises(UsageError, match="cpu request 3 is above the cpu limit 2"):
        m.resources_patch(result, "rp", Resources(cpu_request="3"))


def test_new_deployment_copies_a_template() -> None:
    new = m.new_deployment("rp", "v2", "ns", 3, None, dep())
    assert new["metadata"] == {
        "name": "rp-v2",
        "namespace": "ns",
        "labels": {m.NAME_LABEL: "rp", m.VERSION_LABEL: "v2"},
        "annotations": {"team": "x"},
    }
    assert new["spec"]["replicas"] == 3
    assert new["spec"]["selector"]["matchLabels"][m.VERSION_LABEL] == "v2"
    assert new["spec"]["template"]["spec"]["containers"][1]["image"] == "reg.io:5000/team/rp:v2"
    assert new["spec"]["template"]["spec"]["containers"][0]["image"] == "proxy:1"
    assert "status" not in new
    pinned = m.new_deployment("rp", "v2", "ns", 1, "other/rp:2.0", dep())
    assert pinned["spec"]["template"]["spec"]["containers"][1]["image"] == "other/rp:2.0"


def test_first_deployment_needs_an_image() -> None:
    with pytest.raises(UsageError, match="pass an image"):
        m.new_deployment("rp", "v1", "ns", 1, None, None)
    first = m.new_deployment("rp", "v1", "ns", 2, "rp:v1", None)
    container = first["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert first["spec"]["selector"]["matchLabels"] == {m.NAME_LABEL: "rp", m.VERSION_LABEL: "v1"}


def test_pod_urls_and_readiness() -> None:
    pod = {
        "spec": {
            "containers": [
                {"name": "sidecar", "ports": [{"containerPort": 9000}]},
                {"name": "rp", "ports": [{"containerPort": 8000}]},
            ]
        },
        "status": {"podIP": "fd00::5", "conditions": [{"type": "Ready", "status": "True"}]},
    }
    assert m.pod_url(pod, "rp") == "http://[fd00::5]:8000"
    assert m.pod_ready(pod)
    assert m.pod_url({"status": {}}, "rp") is None
    assert not m.pod_ready({"status": {"conditions": [{"type": "Ready", "status": "False"}]}})
