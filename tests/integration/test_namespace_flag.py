"""`--namespace` on the steps that act through a driver: the real CLI (a subprocess,
RPOPS_PLATFORM=kubernetes) against kmock's API emulator, with the kubeconfig context pointing
at another namespace. The flag wins over $RPOPS_NAMESPACE and the context."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kmock_fixture import DEPLOYMENTS, SERVICES, ApiServer, deployment_obj, service_obj

NS = "team-a"
SERVICE = "research-platform"


@pytest.fixture
def api() -> Iterator[ApiServer]:
    server = ApiServer(NS)
    try:
        server.put(DEPLOYMENTS, f"{SERVICE}-v1", deployment_obj(NS, SERVICE, "v1", 2))
        server.put(SERVICES, SERVICE, service_obj(NS, SERVICE, SERVICE, "v1"))
        yield server
    finally:
        server.close()


def rpops(
    api: ApiServer, tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "kubeconfig"
    config.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "ctx",
                "clusters": [{"name": "kmock", "cluster": {"server": api.url}}],
                "users": [{"name": "sre", "user": {"token": "t0ken"}}],
                "contexts": [
                    {"name": "ctx", "context": {"cluster": "kmock", "user": "sre", "namespace": "elsewhere"}}
                ],
            }
        )
    )
    environ = {k: v for k, v in os.environ.items() if k not in ("RPOPS_NAMESPACE", "KUBERNETES_SERVICE_HOST")}
    environ |= {
        "RPOPS_PLATFORM": "kubernetes",
        "KUBECONFIG": str(config),
        "RPOPS_OUTPUTS": str(tmp_path / "out"),
    }
    return subprocess.run(
        [sys.executable, "-m", "rpops", *args],
        env=environ | (env or {}),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_flag_picks_the_namespace(api: ApiServer, tmp_path: Path) -> None:
    done = rpops(api, tmp_path, "bluegreen", "status", "--service", SERVICE, "--namespace", NS)
    assert done.returncode == 0, done.stderr
    assert "active    v1" in done.stdout and "v1 2/2 ready" in done.stdout


def test_without_the_flag_the_context_namespace_is_used(api: ApiServer, tmp_path: Path) -> None:
    done = rpops(api, tmp_path, "bluegreen", "status", "--service", SERVICE)
    assert done.returncode != 0
    assert "elsewhere" in done.stderr, done.stderr


def test_the_flag_wins_over_the_environment(api: ApiServer, tmp_path: Path) -> None:
    done = rpops(
        api, tmp_path, "bluegreen", "status", "--service", SERVICE, "--namespace", NS,
        env={"RPOPS_NAMESPACE": "from-env"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = rpops(api, tmp_path, "bluegreen", "status", "--service", SERVICE, env={"RPOPS_NAMESPACE": NS})
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("step", ["scale", "optimize", "bluegreen", "security-scan"])
def test_a_bad_namespace_is_bad_input(api: ApiServer, tmp_path: Path, step: str) -> None:
    args = {
        "scale": ["scale", "--service", SERVICE, "--dry-run"],
        "optimize": ["optimize", "--service", SERVICE, "--prometheus", "http://127.0.0.1:9"],
        "bluegreen": ["bluegreen", "status", "--service", SERVICE],
        "security-scan": ["security-scan", "--target", str(tmp_path), "--live", "--max-db-age", "0"],
    }[step]
    done = rpops(api, tmp_path, *args, "--namespace", "Bad_NS")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "namespace 'Bad_NS' is invalid" in done.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
