"""scripts/deploy.sh: refuses bad input and unreachable clusters before applying anything, then
applies the region's overlay and the argo folder, in that order."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from .helpers import OVERLAYS, REGIONS, ROOT, build, kubectl

SCRIPT = ROOT / "scripts" / "deploy.sh"


def _run(args: list[str], env: dict[str, str], timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"], "HOME": env.get("HOME", "/nonexistent")}
    return subprocess.run(["bash", str(SCRIPT), *args], env={**base, **env}, capture_output=True, text=True,
                          timeout=timeout, check=False)


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture()
def kubeconfig(tmp_path: Path) -> Path:
    """A kubeconfig whose only context points at a closed loopback port."""
    path = tmp_path / "kubeconfig"
    path.write_text(f"""apiVersion: v1
kind: Config
clusters:
- name: nowhere
  cluster:
    server: https://127.0.0.1:{_closed_port()}
contexts:
- name: nowhere
  context: {{cluster: nowhere, user: someone}}
current-context: nowhere
users:
- name: someone
  user: {{token: not-a-real-token}}
""")
    return path


def test_unknown_overlay_exits_2_listing_the_overlays(kubeconfig: Path) -> None:
    result = _run(["mars"], {"KUBECTL": kubectl(), "KUBECONFIG": str(kubeconfig), "KUBECONTEXT": "nowhere"})
    assert result.returncode == 2
    assert "unknown overlay 'mars'" in result.stderr
    listed = result.stderr.split("choose one of:")[1].splitlines()[0].split()
    assert sorted(listed) == sorted(REGIONS)
    assert "examples" not in listed


def test_missing_overlay_argument_exits_2_with_usage() -> None:
    result = _run([], {"KUBECTL": kubectl()})
    assert result.returncode == 2 and "usage:" in result.stderr


def test_missing_kubectl_exits_2_before_anything(tmp_path: Path) -> None:
    result = _run(["us-east"], {"KUBECTL": str(tmp_path / "no-kubectl"), "KUBECONTEXT": "x"})
    assert result.returncode == 2 and "kubectl not found" in result.stderr


def test_unset_or_unknown_context_exits_2_naming_the_contexts(kubeconfig: Path) -> None:
    unset = _run(["eu-west"], {"KUBECTL": kubectl(), "KUBECONFIG": str(kubeconfig)})
    assert unset.returncode == 2
    assert "KUBECONTEXT is not set" in unset.stderr and "nowhere" in unset.stderr
    unknown = _run(["eu-west"], {"KUBECTL": kubectl(), "KUBECONFIG": str(kubeconfig), "KUBECONTEXT": "prod"})
    assert unknown.returncode == 2
    assert "context 'prod' is not in your kubeconfig" in unknown.stderr and "nowhere" in unknown.stderr


def test_unreachable_cluster_exits_3_and_applies_nothing(kubeconfig: Path) -> None:
    # The real kubectl against a closed loopback port: connection refused at once.
    result = _run(["asia-pacific"], {"KUBECTL": kubectl(), "KUBECONFIG": str(kubeconfig),
                                     "KUBECONTEXT": "nowhere"})
    assert result.returncode == 3
    assert "cannot reach the API server of context 'nowhere'; nothing was applied" in result.stderr
    assert "applying" not in result.stderr


CRD_QUERY = (
    "--context prod-us-east get crd servicemonitors.monitoring.coreos.com "
    "prometheusrules.monitoring.coreos.com -o name --ignore-not-found --request-timeout=10s"
)


def _recording_kubectl(tmp_path: Path, crds: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """A stand-in for kubectl (a cluster cannot run here) that records its arguments and
    answers the read-only questions the script asks: contexts, version, and which of the
    Prometheus Operator's CRDs exist (`crds`, as `get crd -o name --ignore-not-found` prints)."""
    log = tmp_path / "kubectl.log"
    fake = tmp_path / "kubectl"
    found = "".join(f"echo customresourcedefinition.apiextensions.k8s.io/{c}; " for c in crds)
    fake.write_text(f"""#!/usr/bin/env bash
printf '%s\\n' "$*" >> {log}
case "$*" in
  "config get-contexts -o name") echo staging; echo prod-us-east ;;
  *" version --request-timeout=5s") echo "Server Version: v1.37.1" ;;
  *" get crd "*) {found}: ;;
esac
""")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    return fake, log


def test_valid_request_applies_the_overlay_then_the_workflows(tmp_path: Path) -> None:
    fake, log = _recording_kubectl(tmp_path)
    result = _run(["us-east"], {"KUBECTL": str(fake), "KUBECONTEXT": "prod-us-east"})
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    assert calls == [
        "config get-contexts -o name",
        "--context prod-us-east version --request-timeout=5s",
        CRD_QUERY,
        f"--context prod-us-east apply -k {OVERLAYS / 'us-east'}",
        f"--context prod-us-east apply -k {ROOT / 'manifests' / 'argo'}",
    ]
    assert "no Prometheus Operator CRDs" in result.stderr
    # What it applies builds: the same folders kubectl kustomize renders offline.
    for folder in (OVERLAYS / "us-east", ROOT / "manifests" / "argo"):
        assert subprocess.run([kubectl(), "kustomize", str(folder)], capture_output=True,
                              timeout=60, check=False).returncode == 0


OPERATOR_CRDS = ("servicemonitors.monitoring.coreos.com", "prometheusrules.monitoring.coreos.com")


@pytest.mark.parametrize(
    ("crds", "setting", "with_operator"),
    [
        (OPERATOR_CRDS, None, True),  # both CRDs: the component comes along
        (OPERATOR_CRDS[:1], None, False),  # one missing: applying it would fail
        (OPERATOR_CRDS, "no", False),
        ((), "yes", True),
    ],
)
def test_prometheus_operator_component_only_where_its_crds_exist(
    tmp_path: Path, crds: tuple[str, ...], setting: str | None, with_operator: bool
) -> None:
    fake, log = _recording_kubectl(tmp_path, crds)
    env = {"KUBECTL": str(fake), "KUBECONTEXT": "prod-us-east"}
    if setting:
        env["PROMETHEUS_OPERATOR"] = setting
    result = _run(["us-east"], env)
    assert result.returncode == 0, result.stderr
    applied = [c.split(" apply -k ")[1] for c in log.read_text().splitlines() if " apply -k " in c]
    folder = OVERLAYS / "with-prometheus-operator" / "us-east" if with_operator else OVERLAYS / "us-east"
    assert applied == [str(folder), str(ROOT / "manifests" / "argo")]
    assert (CRD_QUERY in log.read_text()) is (setting is None)
    kinds = {d["kind"] for d in build(folder)}
    assert ({"ServiceMonitor", "PrometheusRule"} <= kinds) is with_operator


def test_bad_prometheus_operator_setting_exits_2_and_applies_nothing(tmp_path: Path) -> None:
    fake, log = _recording_kubectl(tmp_path)
    env = {"KUBECTL": str(fake), "KUBECONTEXT": "prod-us-east", "PROMETHEUS_OPERATOR": "maybe"}
    result = _run(["us-east"], env)
    assert result.returncode == 2 and "use auto, yes or no" in result.stderr
    assert " apply " not in log.read_text()
