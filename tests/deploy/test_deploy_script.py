"""scripts/deploy.sh: refuses bad input and unreachable clusters before applying anything, then
applies the region's overlay and the argo folder, in that order."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from .helpers import OVERLAYS, REGIONS, ROOT, kubectl

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


def _recording_kubectl(tmp_path: Path) -> tuple[Path, Path]:
    """A stand-in for kubectl (a cluster cannot run here) that records its arguments and
    answers the two read-only questions the script asks."""
    log = tmp_path / "kubectl.log"
    fake = tmp_path / "kubectl"
    fake.write_text(f"""#!/usr/bin/env bash
printf '%s\\n' "$*" >> {log}
case "$*" in
  "config get-contexts -o name") echo staging; echo prod-us-east ;;
  *" version --request-timeout=5s") echo "Server Version: v1.37.1" ;;
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
        f"--context prod-us-east apply -k {OVERLAYS / 'us-east'}",
        f"--context prod-us-east apply -k {ROOT / 'manifests' / 'argo'}",
    ]
    # What it applies builds: the same folders kubectl kustomize renders offline.
    for folder in (OVERLAYS / "us-east", ROOT / "manifests" / "argo"):
        assert subprocess.run([kubectl(), "kustomize", str(folder)], capture_output=True,
                              timeout=60, check=False).returncode == 0
