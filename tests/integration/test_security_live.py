"""`rpops security-scan --live`: the kubernetes driver's `list_objects` with the real `kubernetes`
client against kmock's API emulator, and the real CLI (a subprocess, RPOPS_PLATFORM=kubernetes)
checking what it lists. The local platform refuses `--live` as bad input.

The driver records every call (RPOPS_K8S_CALL_LOG), so tests/deploy/test_rbac.py sees the
list calls made here and checks that the steps' Role grants exactly those.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from kmock_fixture import DEPLOYMENTS, SERVICES, ApiServer, deployment_obj, service_obj
from rpops.core.errors import UsageError
from rpops.platform.base import LISTABLE_KINDS
from rpops.platform.kubernetes.driver import KubernetesDriver
from rpops.platform.local.driver import LocalDriver

NS = "rp-security"
SERVICE = "research-platform"
NETPOLS = "networking.k8s.io/v1/networkpolicies"
PDBS = "policy/v1/poddisruptionbudgets"
REPO = Path(__file__).resolve().parents[2]
SARIF_SCHEMA = REPO / "schemas" / "sarif" / "sarif-schema-2.1.0.json"


def hardened(service: str, version: str) -> dict[str, Any]:
    """A Deployment that passes every high and critical configuration check."""
    obj = deployment_obj(
        NS,
        service,
        version,
        2,
        {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
    )
    pod = obj["spec"]["template"]["spec"]
    pod["automountServiceAccountToken"] = False
    pod["securityContext"] = {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container = pod["containers"][0]
    container["securityContext"] = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    container["readinessProbe"] = {"httpGet": {"path": "/ready", "port": 8080}}
    container["livenessProbe"] = {"httpGet": {"path": "/health", "port": 8080}}
    return obj


def privileged(service: str, version: str) -> dict[str, Any]:
    obj = hardened(service, version)
    obj["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = True
    return obj


def network_policy(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"podSelector": {"matchLabels": labels}, "policyTypes": ["Ingress"]},
    }


def disruption_budget(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}},
    }


@pytest.fixture
def api() -> Iterator[ApiServer]:
    server = ApiServer(NS)
    try:
        server.put(DEPLOYMENTS, f"{SERVICE}-v1", hardened(SERVICE, "v1"))
        server.put(SERVICES, SERVICE, service_obj(NS, SERVICE, SERVICE, "v1"))
        server.put(DEPLOYMENTS, "batch-v1", privileged("batch", "v1"))  # another team's workload
        server.put(NETPOLS, SERVICE, network_policy(SERVICE, {"app.kubernetes.io/name": SERVICE}))
        server.put(PDBS, SERVICE, disruption_budget(SERVICE, {"app.kubernetes.io/name": SERVICE}))
        yield server
    finally:
        server.close()


@pytest.fixture
def kubeconfig(api: ApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return api.kubeconfig(tmp_path)


@pytest.fixture
def driver(kubeconfig: Path) -> Iterator[KubernetesDriver]:
    drv = KubernetesDriver(kubeconfig=str(kubeconfig), namespace=NS, attempts=2, backoff=0.0)
    yield drv
    drv.close()


# --------------------------------------------------------------------------- the driver


def test_list_objects_returns_plain_dicts_of_every_kind(driver: KubernetesDriver) -> None:
    objects = driver.list_objects(list(LISTABLE_KINDS))
    assert [(o["kind"], o["apiVersion"], o["metadata"]["name"]) for o in objects] == [
        ("Deployment", "apps/v1", "batch-v1"),
        ("Deployment", "apps/v1", f"{SERVICE}-v1"),
        ("Service", "v1", SERVICE),
        ("NetworkPolicy", "networking.k8s.io/v1", SERVICE),
        ("PodDisruptionBudget", "policy/v1", SERVICE),
    ]
    # Plain JSON all the way down (what the configuration checks and json.dumps take).
    assert json.loads(json.dumps(objects)) == objects
    deployment = objects[1]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"] == {
        "drop": ["ALL"]
    }
    assert [(c.verb, c.group, c.resource, c.namespace, c.name, c.status) for c in driver.calls] == [
        ("list", "apps", "deployments", NS, None, 200),
        ("list", "", "services", NS, None, 200),
        ("list", "networking.k8s.io", "networkpolicies", NS, None, 200),
        ("list", "policy", "poddisruptionbudgets", NS, None, 200),
    ]


def test_list_objects_reads_every_page(driver: KubernetesDriver, api: ApiServer) -> None:
    pages: dict[str, dict[str, Any]] = {
        "": {"metadata": {"continue": "page-2"}, "items": [hardened(SERVICE, "v1")]},
        "page-2": {"metadata": {"continue": "page-3"}, "items": [hardened(SERVICE, "v2")]},
        "page-3": {"metadata": {}, "items": [hardened(SERVICE, "v3")]},
    }
    tokens: list[str] = []

    def pager(request: Any) -> dict[str, Any]:
        token = request.params.get("continue", "")
        tokens.append(token)
        assert request.params.get("limit") == "250"
        return {"apiVersion": "apps/v1", "kind": "DeploymentList", **pages[token]}

    api.kmock["get", f"/apis/apps/v1/namespaces/{NS}/deployments"] << pager
    names = [o["metadata"]["name"] for o in driver.list_objects(["Deployment"])]
    assert names == [f"{SERVICE}-v1", f"{SERVICE}-v2", f"{SERVICE}-v3"]
    assert tokens == ["", "page-2", "page-3"]


def test_list_objects_refuses_unknown_kinds_before_any_call(driver: KubernetesDriver) -> None:
    with pytest.raises(UsageError, match="'Secret' cannot be listed: use Deployment, Service"):
        driver.list_objects(["Deployment", "Secret"])
    with pytest.raises(UsageError, match="pass a list"):
        driver.list_objects("Deployment")
    assert driver.calls == []


def test_the_local_platform_refuses_listing_objects(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not as Kubernetes objects.*--manifests manifests/platform"):
        LocalDriver(root=tmp_path / "platform").list_objects(list(LISTABLE_KINDS))
    assert not (tmp_path / "platform").exists()  # nothing started, nothing written


# --------------------------------------------------------------------------- the CLI


def scan(
    tmp_path: Path, *args: str, platform: str = "kubernetes", kubeconfig: Path | None = None
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """`rpops security-scan --live` on an empty project: only configuration is checked."""
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    out = tmp_path / "outputs"
    env = {
        **os.environ,
        "RPOPS_OUTPUTS": str(out),
        "RPOPS_PLATFORM": platform,
        "RPOPS_NAMESPACE": NS,
        "RPOPS_PLATFORM_DIR": str(tmp_path / "platform"),
    }
    env.pop("KUBERNETES_SERVICE_HOST", None)
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    result = subprocess.run(
        [sys.executable, "-m", "rpops", "security-scan", "--target", str(project), "--no-deps",
         "--no-code", "--no-cache", "--live", *args],
        capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path, check=False,
    )  # fmt: skip
    return result, out


def findings(out: Path) -> list[tuple[str, str, str]]:
    report = json.loads((out / "report.json").read_text())
    return sorted((f["severity"], f["rule_id"], f["properties"]["object"]) for f in report["findings"])


def test_live_scan_checks_every_workload_in_the_namespace(tmp_path: Path, kubeconfig: Path) -> None:
    result, out = scan(tmp_path, kubeconfig=kubeconfig)
    assert result.returncode == 1, result.stderr  # the privileged container is critical
    assert result.stdout.startswith("security-scan FAIL: 1 critical")
    assert "5 Kubernetes objects" in result.stdout
    found = findings(out)
    assert ("critical", "k8s-privileged", f"Deployment/{NS}/batch-v1") in found
    # No NetworkPolicy or PodDisruptionBudget selects batch; research-platform's do select it.
    assert ("medium", "k8s-network-policy", f"Deployment/{NS}/batch-v1") in found
    assert ("low", "k8s-pod-disruption-budget", f"Deployment/{NS}/batch-v1") in found
    assert not [f for f in found if f[2] == f"Deployment/{NS}/{SERVICE}-v1" and f[0] in ("high", "critical")]
    report = json.loads((out / "report.json").read_text())
    assert report["scanned"]["config"]["live"] == {
        "platform": "kubernetes",
        "namespace": NS,
        "objects": 5,
        "read": 5,
        "service": None,
    }
    assert report["settings"]["live"] is True
    assert (out / "critical").read_text() == "1" and (out / "status").read_text() == "fail"
    sarif = json.loads((out / "results.sarif").read_text())
    validator = jsonschema.Draft4Validator(json.loads(SARIF_SCHEMA.read_text()))
    assert list(validator.iter_errors(sarif)) == []
    logical = {
        loc["fullyQualifiedName"]
        for r in sarif["runs"][0]["results"]
        for loc in r["locations"][0].get("logicalLocations", [])
    }
    assert f"Deployment/{NS}/batch-v1 container batch" in logical


def test_live_scan_of_one_service(tmp_path: Path, kubeconfig: Path) -> None:
    result, out = scan(tmp_path, "--service", SERVICE, "--region", "eu-west", kubeconfig=kubeconfig)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("security-scan PASS: 0 critical")
    objects = {f[2].split(" ")[0] for f in findings(out)}
    assert objects <= {f"Deployment/{NS}/{SERVICE}-v1"}  # batch is another service's
    report = json.loads((out / "report.json").read_text())
    assert report["scanned"]["config"]["live"]["objects"] == 4  # batch-v1 left out
    assert report["scanned"]["config"]["live"]["read"] == 5
    assert report["scanned"]["config"]["kinds"] == {
        "Deployment": 1, "Service": 1, "NetworkPolicy": 1, "PodDisruptionBudget": 1}  # fmt: skip
    assert (report["settings"]["service"], report["settings"]["region"]) == (SERVICE, "eu-west")


def test_live_scan_of_an_unknown_service_is_bad_input(tmp_path: Path, kubeconfig: Path) -> None:
    result, out = scan(tmp_path, "--service", "research-platfrom", kubeconfig=kubeconfig)
    assert result.returncode == 2
    assert "--service research-platfrom: no Deployment labelled" in result.stderr
    assert f"(services with Deployments there: batch, {SERVICE})" in result.stderr
    assert not out.exists()  # nothing written


def test_live_scan_with_an_unreachable_api_exits_3_and_writes_nothing(
    tmp_path: Path, kubeconfig: Path, api: ApiServer
) -> None:
    api.kmock["get", f"/apis/apps/v1/namespaces/{NS}/deployments"] << 503 << {"kind": "Status", "code": 503}
    result, out = scan(tmp_path, kubeconfig=kubeconfig)
    assert result.returncode == 3, result.stderr
    assert "Kubernetes API unreachable for list Deployment list in rp-security" in result.stderr
    assert not out.exists()


def test_live_scan_on_the_local_platform_is_refused(tmp_path: Path) -> None:
    result, out = scan(tmp_path, platform="local")
    assert result.returncode == 2
    assert "--live: the local platform runs the workload as processes" in result.stderr
    assert not out.exists() and not (tmp_path / "platform").exists()


def test_live_scan_without_configuration_checks_is_refused(tmp_path: Path) -> None:
    result, out = scan(tmp_path, "--no-config", platform="local")
    assert result.returncode == 2
    assert "--live checks workload configuration" in result.stderr
    assert not out.exists()


def test_live_false_as_a_template_passes_it_leaves_the_platform_alone(tmp_path: Path) -> None:
    # `--live false` and empty `--manifests ''` / `--installed ''` are what the template passes.
    result, out = scan(tmp_path, "false", "--manifests", "", "--installed", "", platform="local")
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["scanned"]["config"] == {
        "objects": 0, "files": 0, "skipped": "no --manifests given and no --live"}  # fmt: skip
    assert report["settings"]["live"] is False and report["settings"]["manifests"] == []
