"""manifests/argo/rbac.yaml: least privilege, checked against what the code really does.

The kubernetes driver records every API call it makes (verb, group, resource, namespace) as a
JSON line in the file named by $RPOPS_K8S_CALL_LOG. This test runs the driver's own tests with
that variable set, then checks both directions: every call is allowed by the steps' Role, and the
Role allows nothing the driver never does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .helpers import ARGO, ROOT, load, one, validate_strict

RBAC = ARGO / "rbac.yaml"
Grant = tuple[str, str, str]  # (apiGroup, resource, verb)


def _docs() -> list[dict[str, Any]]:
    return load(RBAC)


def _grants(role: dict[str, Any]) -> set[Grant]:
    grants: set[Grant] = set()
    for rule in role["rules"]:
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    assert "*" not in (group, resource, verb), (
                        f"wildcard in {role['metadata']['name']}: {rule}")
                    grants.add((group, resource, verb))
    return grants


def _driver_test_files() -> list[Path]:
    """Test modules that exercise the kubernetes driver (outside this folder)."""
    files = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        if path.parent == Path(__file__).parent:
            continue
        text = path.read_text()
        if "rpops.platform.kubernetes.driver" in text or "KubernetesDriver" in text:
            files.append(path)
    return files


_CALL_KEYS = {"verb", "group", "resource", "namespace"}


def _read_calls(path: Path) -> list[dict[str, Any]]:
    calls = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and _CALL_KEYS <= record.keys():
            calls.append(record)
    return calls


@pytest.fixture(scope="module")
def driver_calls(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Every call the driver made while its own tests ran.

    $RPOPS_K8S_CALL_LOG is set for the run; tests that point it at a file of their own (under
    their tmp_path) are covered too: the run's temporary root is ours, and every JSON-lines call
    log below it is read.
    """
    files = _driver_test_files()
    assert files, ("no tests exercise rpops.platform.kubernetes.driver: the RBAC check needs the driver's "
                   "tests to record its API calls")
    work = tmp_path_factory.mktemp("driver-calls")
    log = work / "calls.jsonl"
    result = subprocess.run(
        # The crash-and-rerun promotions make the same calls as the other promotions, eight times
        # over in fresh processes: left out here, they would double this test's time.
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", f"--basetemp={work / 'tmp'}",
         "-k", "not a_killed_runner_is_finished_by_a_rerun", *map(str, files)],
        env={**os.environ, "RPOPS_K8S_CALL_LOG": str(log)}, cwd=ROOT, capture_output=True, text=True,
        timeout=600, check=False)
    assert result.returncode == 0, (
        f"the driver's tests failed, so their calls prove nothing:\n{result.stdout[-3000:]}")
    logs = [log] if log.exists() else []
    logs += sorted((work / "tmp").rglob("*.jsonl"))
    calls = [call for path in logs for call in _read_calls(path)]
    assert calls, "the driver's tests ran but no API call was recorded (RPOPS_K8S_CALL_LOG)"
    return calls


def test_every_driver_call_is_allowed_and_the_role_grants_nothing_more(
        driver_calls: list[dict[str, Any]]) -> None:
    role = one(_docs(), "Role", "rpops-steps")
    assert role["metadata"]["namespace"] == "research-platform"
    granted = _grants(role)
    used: set[Grant] = set()
    for call in driver_calls:
        assert call["namespace"], f"a cluster-scoped call needs a ClusterRole, which we do not grant: {call}"
        used.add((call["group"], call["resource"], call["verb"]))
    missing = sorted(used - granted)
    assert not missing, f"the driver makes calls the Role does not allow (group, resource, verb): {missing}"
    unused = sorted(granted - used)
    assert not unused, f"the Role grants what the driver never does (group, resource, verb): {unused}"


def test_steps_account_is_bound_in_both_namespaces() -> None:
    docs = _docs()
    account = one(docs, "ServiceAccount", "rpops-steps")
    assert account["metadata"]["namespace"] == "argo"
    subject = [{"kind": "ServiceAccount", "name": "rpops-steps", "namespace": "argo"}]
    for name, namespace in (("rpops-steps", "research-platform"), ("rpops-steps-executor", "argo")):
        binding = one(docs, "RoleBinding", name)
        assert binding["metadata"]["namespace"] == namespace
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}
        assert binding["subjects"] == subject
        assert one(docs, "Role", name)["metadata"]["namespace"] == namespace
    # Argo's executor needs exactly this in the workflow's namespace.
    assert _grants(one(docs, "Role", "rpops-steps-executor")) == {
        ("argoproj.io", "workflowtaskresults", "create"), ("argoproj.io", "workflowtaskresults", "patch")}


def test_every_rendered_template_runs_as_the_steps_account() -> None:
    templates = sorted(ARGO.glob("research-platform-*.yaml"))
    assert templates
    for path in templates:
        for doc in load(path):
            if doc["kind"] in ("WorkflowTemplate", "Workflow"):
                assert doc["spec"].get("serviceAccountName") == "rpops-steps", path.name
            elif doc["kind"] == "CronWorkflow":
                assert doc["spec"]["workflowSpec"].get("serviceAccountName") == "rpops-steps", path.name


def test_every_step_acts_in_the_namespace_its_role_is_granted_in() -> None:
    """Steps run in argo; without RPOPS_NAMESPACE the driver would act there, where it may not."""
    namespace = one(_docs(), "Role", "rpops-steps")["metadata"]["namespace"]
    containers = 0
    for path in sorted(ARGO.glob("research-platform-*.yaml")):
        for doc in load(path):
            spec = doc["spec"].get("workflowSpec", doc["spec"])
            for template in spec.get("templates", []):
                if "container" in template:
                    containers += 1
                    env = {e["name"]: e.get("value") for e in template["container"].get("env", [])}
                    assert env.get("RPOPS_NAMESPACE") == namespace, (path.name, template["name"])
    assert containers


def test_alertmanager_submitter_can_only_submit_through_the_events_api() -> None:
    docs = _docs()
    assert one(docs, "ServiceAccount", "rpops-alertmanager-submitter")["metadata"]["namespace"] == "argo"
    assert _grants(one(docs, "Role", "rpops-alertmanager-submitter")) == {
        ("argoproj.io", "workfloweventbindings", "list"),
        ("argoproj.io", "workflowtemplates", "get"),
        ("argoproj.io", "workflows", "create"),
    }
    binding = one(docs, "RoleBinding", "rpops-alertmanager-submitter")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "rpops-alertmanager-submitter",
                                    "namespace": "argo"}]
    secret = one(docs, "Secret", "rpops-alertmanager-submitter-token")
    assert secret["type"] == "kubernetes.io/service-account-token"
    annotations = secret["metadata"]["annotations"]
    assert annotations["kubernetes.io/service-account.name"] == "rpops-alertmanager-submitter"
    assert "data" not in secret and "stringData" not in secret  # Kubernetes fills in the token


def test_rbac_objects_validate_strictly() -> None:
    assert validate_strict(_docs()) == []
