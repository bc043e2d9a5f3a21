"""Workload configuration checks on good and bad manifests, live-style object dicts, selectors,
and unreadable or invalid manifest files."""

from __future__ import annotations

from pathlib import Path

import pytest
from rpops.steps.security.config import CHECKS, K8sObject, check_objects, read_manifests, selector_matches
from security_helpers import DATA

MANIFESTS = DATA / "manifests"


def findings_for(name: str) -> list:
    objects, notices, _ = read_manifests([MANIFESTS / name], MANIFESTS)
    assert notices == []
    return check_objects(objects)


def test_good_manifest_passes_every_check() -> None:
    assert [f.message for f in findings_for("good.yaml")] == []


def test_bad_manifest_fails_every_check() -> None:
    findings = findings_for("bad.yaml")
    assert {f.rule_id for f in findings} == set(CHECKS)
    by = {(f.rule_id, f.properties["object"], f.properties["container"]) for f in findings}
    assert ("k8s-privileged", "Deployment/default/legacy", "main") in by
    assert ("k8s-image-pull-policy", "Deployment/default/legacy", "sidecar") in by
    assert ("k8s-image-latest", "CronJob/-/nightly", "job") in by
    assert ("k8s-pod-disruption-budget", "Deployment/default/legacy", "") in by
    assert ("k8s-pod-disruption-budget", "CronJob/-/nightly", "") not in by  # only long-running kinds
    privileged = next(f for f in findings if f.rule_id == "k8s-privileged")
    assert privileged.severity == "critical" and privileged.location.path == "bad.yaml"
    assert privileged.location.line == 23  # the `privileged: true` line
    assert privileged.properties["kubescape"] == "C-0057" and privileged.properties["checkov"] == "CKV_K8S_16"
    capabilities = next(f for f in findings if f.rule_id == "k8s-capabilities-added")
    assert capabilities.severity == "high"  # SYS_ADMIN is dangerous
    hosts = sorted(f.snippet for f in findings if f.rule_id == "k8s-host-namespace")
    assert hosts == ["hostIPC: true", "hostNetwork: true", "hostPID: true"]  # the manifest's own lines
    assert privileged.snippet == "privileged: true"
    assert privileged.properties["field"] == "spec.template.spec.containers.0.securityContext.privileged"


def test_live_objects_are_plain_dicts() -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "prod"},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{"name": "web", "image": "web:1", "securityContext": {"privileged": True}}]
                },
            }
        },
    }
    findings = check_objects([K8sObject(deployment, "live")])
    privileged = next(f for f in findings if f.rule_id == "k8s-privileged")
    assert (
        privileged.location.line == 0 and privileged.location.logical == "Deployment/prod/web container web"
    )


def test_pod_level_security_context_is_inherited_and_overridden() -> None:
    pod = {
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "x"},
        "spec": {
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {"name": "a", "image": "a:1"},
                {"name": "b", "image": "b:1", "securityContext": {"runAsUser": 0}},
            ],
        },
    }
    rules = {(f.rule_id, f.properties["container"]) for f in check_objects([K8sObject(pod, "live")])}
    assert ("k8s-run-as-root", "a") not in rules and ("k8s-run-as-root", "b") in rules
    assert not any(rule == "k8s-seccomp" for rule, _ in rules)


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ({}, {"app": "x"}, True),
        ({"matchLabels": {"app": "x"}}, {"app": "x", "tier": "web"}, True),
        ({"matchLabels": {"app": "y"}}, {"app": "x"}, False),
        ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["x"]}]}, {"app": "x"}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, {"app": "x"}, False),
        (None, {"app": "x"}, False),
    ],
)
def test_selector_semantics(selector: dict | None, labels: dict, matches: bool) -> None:
    assert selector_matches(selector, labels) is matches


def test_list_kind_and_bad_files(tmp_path: Path) -> None:
    (tmp_path / "list.yaml").write_text(
        "kind: List\nitems:\n- kind: Pod\n  metadata: {name: p, namespace: x}\n"
        "  spec:\n    containers:\n    - {name: c, image: 'c:1', securityContext: {privileged: true}}\n"
    )
    (tmp_path / "broken.yaml").write_text("kind: Pod\nspec: [unclosed\n")
    (tmp_path / "notk8s.yaml").write_text("just: data\n---\n- a list\n")
    (tmp_path / "binary.yml").write_bytes(b"\xff\xfe\x00bad")
    objects, notices, files = read_manifests([tmp_path], tmp_path)
    assert files == 4 and [o.ref for o in objects] == ["Pod/x/p"]
    privileged = next(f for f in check_objects(objects) if f.rule_id == "k8s-privileged")
    assert privileged.location.line == 7
    assert sorted((n.path, n.code) for n in notices) == [
        ("binary.yml", "unreadable"),
        ("broken.yaml", "invalid-yaml"),
        ("notk8s.yaml", "not-an-object"),
        ("notk8s.yaml", "not-an-object"),
    ]
