"""The optional kustomize component manifests/components/prometheus-operator: the ServiceMonitor
and the PrometheusRule, kept out of the platform base (whose `kubectl apply -k` must work on a
cluster without the operator's CRDs) and added per region by overlays/with-prometheus-operator."""

from __future__ import annotations

import pytest
import yaml

from workflows import prometheusrule

from .helpers import MANIFESTS, OVERLAYS, PLATFORM, REGIONS, build, load, one

COMPONENT = MANIFESTS / "components" / "prometheus-operator"
APP = "research-platform"
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}


def test_component_holds_the_operator_objects_and_the_base_none() -> None:
    component = load(COMPONENT / "kustomization.yaml")[0]
    assert component["kind"] == "Component" and component["apiVersion"] == "kustomize.config.k8s.io/v1alpha1"
    assert sorted(component["resources"]) == ["prometheusrule.yaml", "servicemonitor.yaml"]
    assert not {d["kind"] for d in build(PLATFORM)} & OPERATOR_KINDS
    assert "release" in (COMPONENT / "kustomization.yaml").read_text()  # documented where it is set


@pytest.mark.parametrize("region", sorted(REGIONS))
def test_each_region_with_the_component_adds_exactly_the_two_objects(region: str) -> None:
    plain = build(OVERLAYS / region)
    full = build(OVERLAYS / "with-prometheus-operator" / region)
    key = lambda d: (d["kind"], d["metadata"]["name"])  # noqa: E731
    added = [d for d in full if key(d) not in {key(p) for p in plain}]
    assert sorted(key(d) for d in added) == [("PrometheusRule", APP), ("ServiceMonitor", APP)]
    # the region's own objects are unchanged (the release label goes on the two objects only)
    assert sorted((d for d in full if d not in added), key=key) == sorted(plain, key=key)
    for doc in added:
        assert doc["apiVersion"] == "monitoring.coreos.com/v1"
        assert doc["metadata"]["namespace"] == APP
        assert doc["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    rule = one(full, "PrometheusRule", APP)
    # kube-prometheus (jsonnet) selects on these; kube-prometheus-stack on `release`
    labels = rule["metadata"]["labels"]
    assert labels["prometheus"] == "k8s" and labels["role"] == "alert-rules"


def test_the_rule_is_generated_into_the_component() -> None:
    # tests/unit/test_monitoring_rules.py checks its content against the rules file
    assert prometheusrule.PROMETHEUS_RULE == COMPONENT / "prometheusrule.yaml"
    assert yaml.safe_load(prometheusrule.PROMETHEUS_RULE.read_text())["kind"] == "PrometheusRule"
    assert not (MANIFESTS / "platform" / "servicemonitor.yaml").exists()
