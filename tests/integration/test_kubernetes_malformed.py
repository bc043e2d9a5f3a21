"""The kubernetes driver against an API server whose 200 answers are malformed (broken JSON, a
list where an object belongs, text where a number belongs): each is a failed call, retried a
bounded number of times, then exit 3 with a clear message and no traceback. The server is
pytest-httpserver speaking HTTP on 127.0.0.1, reached through the real `kubernetes` client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from rpops.platform.base import PlatformUnavailable
from rpops.platform.kubernetes import model as m
from rpops.platform.kubernetes.driver import KubernetesDriver
from werkzeug import Request, Response

ROOT = Path(__file__).resolve().parents[2]
NS = "research-platform"


def kubeconfig(directory: Path, url: str) -> Path:
    path = directory / "kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "fake", "cluster": {"server": url}}],
        "users": [{"name": "tester", "user": {"token": "t0ken"}}],
        "contexts": [{"name": "test", "context": {"cluster": "fake", "user": "tester", "namespace": NS}}],
    }))
    return path


def deployment(**override: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "metadata": {"name": "rp-v1", "labels": {m.NAME_LABEL: "rp", m.VERSION_LABEL: "v1"}},
        "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "rp", "image": "rp:v1"}]}}},
        "status": {"readyReplicas": 2},
    }
    doc.update(override)
    return doc


MALFORMED = {
    "broken-json": b'{"metadata": {"name": "rp-v1"',
    "not-utf8": b"\xff\xfe{}",
    "a-list": b"[1, 2, 3]",
    "a-string": b'"hello"',
    "nesting-bomb": b"[" * 100_000,
    "metadata-a-list": json.dumps(deployment(metadata=[1])).encode(),
    "containers-an-object": json.dumps(
        deployment(spec={"template": {"spec": {"containers": {"a": 1}}}})).encode(),
    "replicas-text": json.dumps(deployment(spec={"replicas": "two"})).encode(),
    "labels-not-text": json.dumps(
        deployment(metadata={"name": "rp-v1", "labels": {"version": ["v1"]}})).encode(),
}


def serve_everything(httpserver: HTTPServer, body: bytes) -> None:
    def handler(request: Request) -> Response:
        return Response(body, status=200, content_type="application/json")

    httpserver.expect_request("").respond_with_handler(handler)  # every path, every method


@pytest.mark.parametrize("name", MALFORMED)
def test_a_malformed_answer_is_retried_then_unavailable(httpserver: HTTPServer, tmp_path: Path,
                                                        name: str) -> None:
    serve_everything(httpserver, MALFORMED[name])
    driver = KubernetesDriver(kubeconfig=str(kubeconfig(tmp_path, httpserver.url_for("/").rstrip("/"))),
                              attempts=3, backoff=0.0)
    with pytest.raises(PlatformUnavailable) as info:
        driver.workload("rp", "v1")
    assert info.value.exit_code == 3
    message = str(info.value)
    assert "Deployment research-platform/rp-v1" in message
    assert "malformed answer" in message or "not JSON" in message
    assert len(httpserver.log) == 3  # bounded: exactly the attempts, no more


def test_a_well_formed_answer_still_reads(httpserver: HTTPServer, tmp_path: Path) -> None:
    serve_everything(httpserver, json.dumps(deployment()).encode())
    driver = KubernetesDriver(kubeconfig=str(kubeconfig(tmp_path, httpserver.url_for("/").rstrip("/"))),
                              attempts=3, backoff=0.0)
    assert driver.workload("rp", "v1").replicas == 2


@pytest.mark.parametrize("name", ["broken-json", "a-list"])
def test_bluegreen_status_exits_3_without_a_traceback(httpserver: HTTPServer, tmp_path: Path,
                                                      name: str) -> None:
    serve_everything(httpserver, MALFORMED[name])
    drop = ("RPOPS_", "KUBERNETES_SERVICE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(RPOPS_PLATFORM="kubernetes", RPOPS_OUTPUTS=str(tmp_path / "out"),
               KUBECONFIG=str(kubeconfig(tmp_path, httpserver.url_for("/").rstrip("/"))))
    done = subprocess.run([sys.executable, "-m", "rpops", "bluegreen", "status", "--service", "rp"],
                          env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    assert "malformed answer" in done.stderr or "not JSON" in done.stderr
    assert all(r.method == "GET" for r, _ in httpserver.log)  # nothing written
