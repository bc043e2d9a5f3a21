"""The platform base (manifests/platform) and the argo folder: valid for Kubernetes 1.37, and
saying what the deployment guide says (replicas, resources, probes, security, autoscaling)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from rpops.core.cli import build_parser
from rpops.workload.testing import start_workload

from .helpers import (
    ARGO,
    OVERLAYS,
    PLATFORM,
    REGIONS,
    ROOT,
    build,
    load,
    one,
    pod_spec,
    selector_matches,
    validate_strict,
)

APP = "research-platform"


@pytest.fixture()
def docs() -> list[dict[str, Any]]:
    return build(PLATFORM)


@pytest.fixture()
def deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return one(docs, "Deployment", f"{APP}-v1")


@pytest.fixture()
def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = pod_spec(deployment)["containers"]
    assert len(containers) == 1
    return containers[0]


def _port_number(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert port in named, f"port name {port!r} is not declared by the container ({sorted(named)})"
    return named[port]


def test_platform_builds_and_every_core_object_validates_strictly(docs: list[dict[str, Any]]) -> None:
    skipped = validate_strict(docs)
    assert skipped == []  # only core kinds: applies on a cluster without the Prometheus Operator
    assert set((d["kind"], d["metadata"]["name"]) for d in docs) == {
        ("Namespace", APP), ("ServiceAccount", APP), ("Deployment", f"{APP}-v1"),
        ("Service", APP), ("Service", f"{APP}-preview"), ("Service", f"{APP}-metrics"),
        ("HorizontalPodAutoscaler", APP), ("PodDisruptionBudget", APP),
        ("NetworkPolicy", APP), ("NetworkPolicy", "default-deny-ingress"),
    }
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == APP, f"{doc['kind']}/{doc['metadata']['name']}"


def test_deployment_size_probes_and_port_follow_the_guide(deployment: dict[str, Any],
                                                         container: dict[str, Any]) -> None:
    assert deployment["spec"]["replicas"] == 3
    assert container["resources"] == {"requests": {"cpu": "250m", "memory": "512Mi"},
                                      "limits": {"cpu": "1000m", "memory": "2Gi"}}
    assert _port_number(container, "http") == 8000
    liveness, readiness = container["livenessProbe"]["httpGet"], container["readinessProbe"]["httpGet"]
    assert liveness["path"] == "/health" and _port_number(container, liveness["port"]) == 8000
    assert readiness["path"] == "/ready" and _port_number(container, readiness["port"]) == 8000
    startup = container["startupProbe"]["httpGet"]
    assert startup["path"] == "/health" and _port_number(container, startup["port"]) == 8000


def test_container_runs_the_reference_workload_on_all_interfaces(container: dict[str, Any]) -> None:
    env = {e["name"]: e for e in container["env"]}
    # The served version is the pod's `version` label, through the downward API.
    assert env["SERVICE_VERSION"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['version']"
    args = [a.replace("$(SERVICE_VERSION)", "v1") for a in container["args"]]
    assert all("$(" not in a for a in args), f"undeclared variable reference in {container['args']}"
    # The real CLI parses the arguments the pod passes (the image's ENTRYPOINT is `rpops`).
    parsed = build_parser(args[0]).parse_args(args[1:])
    assert (parsed.action, parsed.host, parsed.port, parsed.version) == ("serve", "0.0.0.0", 8000, "v1")


def test_probe_paths_answer_on_the_reference_workload(container: dict[str, Any]) -> None:
    """The probes hit real endpoints: 200 when healthy/ready, 503 when not (so the kubelet acts)."""
    paths = {probe: container[probe]["httpGet"]["path"]
             for probe in ("livenessProbe", "readinessProbe", "startupProbe")}
    with start_workload(version="v1") as workload, httpx.Client(trust_env=False, timeout=5.0) as http:
        for probe, path in paths.items():
            assert http.get(workload.url + path).status_code == 200, probe
        workload.set_faults(unhealthy=True, not_ready=True)
        assert http.get(workload.url + paths["livenessProbe"]).status_code == 503
        assert http.get(workload.url + paths["readinessProbe"]).status_code == 503


def test_pod_meets_the_restricted_pod_security_profile(docs: list[dict[str, Any]],
                                                       deployment: dict[str, Any],
                                                       container: dict[str, Any]) -> None:
    namespace = one(docs, "Namespace", APP)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    pod = pod_spec(deployment)
    assert pod["securityContext"]["runAsNonRoot"] is True
    # above the host's UID range (checkov CKV_K8S_40), the platform image's own user
    assert pod["securityContext"]["runAsUser"] == 10001 == container["securityContext"]["runAsUser"]
    assert pod["securityContext"]["fsGroup"] == 10001
    dockerfile = (ROOT / "images" / "platform" / "Dockerfile").read_text()
    assert "USER 10001:10001" in dockerfile.splitlines()
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    account = one(docs, "ServiceAccount", pod["serviceAccountName"])
    assert account["automountServiceAccountToken"] is False
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["runAsNonRoot"] is True and sc.get("privileged", False) is False
    # A read-only root needs a writable /tmp: an emptyDir mounted there.
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")


def test_image_is_pinned_and_pulled_if_not_present(container: dict[str, Any]) -> None:
    image: str = container["image"]
    name, _, digest = image.partition("@")
    tag = name.rsplit("/", 1)[-1].partition(":")[2]
    assert digest.startswith("sha256:") or (tag and tag != "latest"), f"{image} is not pinned"
    assert container["imagePullPolicy"] == "IfNotPresent"


def test_rolling_update_and_blue_green_selection(docs: list[dict[str, Any]], deployment: dict[str, Any],
                                                  container: dict[str, Any]) -> None:
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector == {"app.kubernetes.io/name": APP, "version": "v1"}
    assert selector_matches(selector, pod_labels)
    assert deployment["metadata"]["labels"]["version"] == "v1"
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    # Active and preview select app + version: promotion re-points `version`.
    for name in (APP, f"{APP}-preview"):
        assert services[name]["spec"]["selector"] == {"app.kubernetes.io/name": APP, "version": "v1"}
    # The metrics Service reaches every colour.
    assert services[f"{APP}-metrics"]["spec"]["selector"] == {"app.kubernetes.io/name": APP}
    for service in services.values():
        assert selector_matches(service["spec"]["selector"], pod_labels)
        for port in service["spec"]["ports"]:
            assert _port_number(container, port["targetPort"]) == 8000


def test_autoscaler_bounds_targets_and_behaviour(docs: list[dict[str, Any]]) -> None:
    hpa = one(docs, "HorizontalPodAutoscaler", APP)
    assert hpa["apiVersion"] == "autoscaling/v2"
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"{APP}-v1"}
    assert (spec["minReplicas"], spec["maxReplicas"]) == (3, 100)
    targets = {m["resource"]["name"]: m["resource"]["target"] for m in spec["metrics"]}
    assert targets == {"cpu": {"type": "Utilization", "averageUtilization": 70},
                       "memory": {"type": "Utilization", "averageUtilization": 80}}
    assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert spec["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 0
    for direction in ("scaleUp", "scaleDown"):
        policies = spec["behavior"][direction]["policies"]
        assert policies and all(p["value"] > 0 and p["periodSeconds"] > 0 for p in policies)


def test_disruption_budget_covers_every_colour(docs: list[dict[str, Any]],
                                               deployment: dict[str, Any]) -> None:
    pdb = one(docs, "PodDisruptionBudget", APP)
    # maxUnavailable, not minAvailable: a region at its minimum of 2 can still be drained.
    assert pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]
    assert pdb["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": APP}
    assert selector_matches(pdb["spec"]["selector"]["matchLabels"],
                            deployment["spec"]["template"]["metadata"]["labels"])


def test_network_policy_admits_only_ingress_monitoring_and_workflows_on_8000(
        docs: list[dict[str, Any]], deployment: dict[str, Any]) -> None:
    policy = one(docs, "NetworkPolicy", APP)
    spec = policy["spec"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector_matches(spec["podSelector"]["matchLabels"], pod_labels)
    assert spec["policyTypes"] == ["Ingress"]
    assert len(spec["ingress"]) == 1
    rule = spec["ingress"][0]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8000}]
    sources = {peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]: peer
               for peer in rule["from"]}
    assert set(sources) == {"ingress-nginx", "monitoring", "argo"}
    assert all("podSelector" not in sources[ns] for ns in ("ingress-nginx", "monitoring"))
    # From argo, only workflow pods (the steps that probe the Services).
    assert sources["argo"]["podSelector"]["matchExpressions"] == [
        {"key": "workflows.argoproj.io/workflow", "operator": "Exists"}]
    deny = one(docs, "NetworkPolicy", "default-deny-ingress")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}


def test_service_monitor_scrapes_metrics_once_per_pod() -> None:
    docs = build(OVERLAYS / "with-prometheus-operator" / "us-east")  # the optional component
    monitor = one(docs, "ServiceMonitor", APP)
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    services = [d for d in docs if d["kind"] == "Service"]
    chosen = [s for s in services if selector_matches(monitor["spec"]["selector"]["matchLabels"],
                                                      s["metadata"]["labels"])]
    # One Service, the headless one over all colours: no pod scraped twice.
    assert [s["metadata"]["name"] for s in chosen] == [f"{APP}-metrics"]
    assert chosen[0]["spec"]["clusterIP"] == "None"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [APP]}
    assert monitor["spec"]["podTargetLabels"] == ["region", "compliance", "version"]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in chosen[0]["spec"]["ports"]}
    assert (endpoint["path"], endpoint["interval"]) == ("/metrics", "10s")


def test_argo_kustomization_lists_rbac_and_every_rendered_template() -> None:
    kustomization = load(ARGO / "kustomization.yaml")[0]
    rendered = sorted(p.name for p in ARGO.glob("research-platform-*.yaml"))
    assert rendered, "no rendered templates in manifests/argo (run `make render`)"
    assert kustomization["resources"] == ["rbac.yaml", *rendered], (
        "manifests/argo/kustomization.yaml must list rbac.yaml and every research-platform-*.yaml")
    docs = build(ARGO)
    by_file_kind = {(d["kind"], d["metadata"]["name"]): d["metadata"].get("namespace") for d in docs}
    # Templates, which name no namespace, land in argo; the RBAC objects keep their own.
    for path in rendered:
        for doc in load(ARGO / path):
            assert by_file_kind[(doc["kind"], doc["metadata"]["name"])] == "argo"
    for doc in load(ARGO / "rbac.yaml"):
        assert by_file_kind[(doc["kind"], doc["metadata"]["name"])] == doc["metadata"]["namespace"]
    validate_strict(docs)


def test_our_workload_configuration_scan_finds_nothing_high(tmp_path: Path) -> None:
    """rpops's own configuration checks (the security-scan step) over what we ship: the files,
    and what kubectl kustomize builds from them for each region and for argo."""
    from rpops.steps.security.config import check_objects, read_manifests
    from rpops.steps.security.model import at_least

    built = []
    for folder in [*(OVERLAYS / region for region in REGIONS), ARGO]:
        path = tmp_path / f"{folder.name}.yaml"
        path.write_text(yaml.safe_dump_all(build(folder)))
        built.append(path)
    objects, notices, files = read_manifests([PLATFORM, OVERLAYS, ARGO / "rbac.yaml", *built], ROOT)
    assert not notices, notices
    assert files >= 20 and len(objects) >= 60
    serious = [f"{f.severity} {f.rule_id} {f.location.display()}: {f.message}"
               for f in check_objects(objects, default_namespace="research-platform")
               if at_least(f.severity, "high")]
    assert not serious, "\n".join(serious)
