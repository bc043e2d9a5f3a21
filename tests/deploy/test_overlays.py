"""The regional overlays: each builds offline with kubectl's kustomize, validates for Kubernetes
1.37, and carries its region's HPA bounds, compliance label and ingress host."""

from __future__ import annotations

from typing import Any

import pytest

from .helpers import OVERLAYS, PLATFORM, REGIONS, build, load, one, validate_strict

APP = "research-platform"
EXAMPLE = OVERLAYS / "examples" / "multi-region-ingress"


def test_overlays_are_exactly_the_three_regions_plus_examples() -> None:
    folders = sorted(p.name for p in OVERLAYS.iterdir() if p.is_dir())
    assert folders == sorted([*REGIONS, "examples", "with-prometheus-operator"])
    # the variants with the optional Prometheus Operator component: one per region, no other
    variants = sorted(p.name for p in (OVERLAYS / "with-prometheus-operator").iterdir() if p.is_dir())
    assert variants == sorted(REGIONS)
    for region in REGIONS:
        kustomization = load(OVERLAYS / region / "kustomization.yaml")[0]
        assert "../../platform" in kustomization["resources"], f"{region} must build on the platform base"


@pytest.mark.parametrize("region", sorted(REGIONS))
def test_overlay_builds_and_validates_strictly(region: str) -> None:
    docs = build(OVERLAYS / region)
    assert validate_strict(docs) == []  # no CRD kinds: applies without the Prometheus Operator
    base = {(d["kind"], d["metadata"]["name"]) for d in build(PLATFORM)}
    # The region adds its Ingress and drops nothing from the base.
    assert {(d["kind"], d["metadata"]["name"]) for d in docs} == base | {("Ingress", APP)}


@pytest.mark.parametrize("region", sorted(REGIONS))
def test_overlay_hpa_bounds_follow_the_regional_matrix(region: str) -> None:
    low, high, _ = REGIONS[region]
    hpa = one(build(OVERLAYS / region), "HorizontalPodAutoscaler", APP)
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (low, high)
    # Everything else of the autoscaler is the base's.
    base = one(build(PLATFORM), "HorizontalPodAutoscaler", APP)
    for key in ("metrics", "behavior", "scaleTargetRef"):
        assert hpa["spec"][key] == base["spec"][key]


@pytest.mark.parametrize("region", sorted(REGIONS))
def test_overlay_labels_every_object_and_pod_but_no_selector(region: str) -> None:
    _, _, compliance = REGIONS[region]
    expected = {"region": region, "compliance": compliance}
    docs = build(OVERLAYS / region)
    for doc in docs:
        labels = doc["metadata"].get("labels", {})
        assert {k: labels.get(k) for k in expected} == expected, f"{doc['kind']}/{doc['metadata']['name']}"
    deployment = one(docs, "Deployment", f"{APP}-v1")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert {k: pod_labels.get(k) for k in expected} == expected
    # Selectors are immutable and shared by the blue-green colours: left as in the base.
    base = build(PLATFORM)
    assert deployment["spec"]["selector"] == one(base, "Deployment", f"{APP}-v1")["spec"]["selector"]
    for service in (d for d in docs if d["kind"] == "Service"):
        same = one(base, "Service", service["metadata"]["name"])
        assert service["spec"]["selector"] == same["spec"]["selector"]


@pytest.mark.parametrize("region", sorted(REGIONS))
def test_overlay_ingress_serves_the_regional_host_over_tls(region: str) -> None:
    docs = build(OVERLAYS / region)
    ingress = one(docs, "Ingress", APP)
    host = f"{region}.research-platform.example.com"
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == host
    (tls,) = ingress["spec"]["tls"]
    assert tls["hosts"] == [host] and tls["secretName"]
    (path,) = rule["http"]["paths"]
    backend = path["backend"]["service"]
    service = one(docs, "Service", backend["name"])
    assert backend["name"] == APP  # the active colour, never the preview
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}


def _example_docs() -> list[dict[str, Any]]:
    return build(EXAMPLE)


def test_multi_region_example_is_labelled_and_outside_every_overlay() -> None:
    assert "EXAMPLE ONLY" in (EXAMPLE / "README.md").read_text()
    for region in REGIONS:
        rendered = {(d["kind"], d["metadata"]["name"]) for d in build(OVERLAYS / region)}
        assert ("Certificate", "research-platform-global") not in rendered
        assert ("Ingress", "research-platform-global") not in rendered
    docs = _example_docs()
    assert all(d["metadata"]["labels"]["example"] == "multi-region-ingress" for d in docs)
    assert validate_strict(docs) == ["Certificate/research-platform-global"]


def test_multi_region_example_certificate_covers_the_global_and_regional_hosts() -> None:
    docs = _example_docs()
    certificate = one(docs, "Certificate", "research-platform-global")
    assert certificate["apiVersion"] == "cert-manager.io/v1"
    hosts = {"research-platform.example.com", *(f"{r}.research-platform.example.com" for r in REGIONS)}
    assert set(certificate["spec"]["dnsNames"]) == hosts
    ingress = one(docs, "Ingress", "research-platform-global")
    assert ingress["spec"]["tls"][0]["secretName"] == certificate["spec"]["secretName"]
    # The global Ingress claims only the global name; regional names stay with the overlays.
    assert [r["host"] for r in ingress["spec"]["rules"]] == ["research-platform.example.com"]
