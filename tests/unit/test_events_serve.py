"""`rpops local serve` over HTTP, as a real process on 127.0.0.1: the events endpoint's checks
(token, namespace, size, JSON, Alertmanager payloads, de-duplication, rate limit), bindings
submitting real runs, the workflow list, and refusals at start-up."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from fixtures import RunningServe, alertmanager_payload, start_serve, wait_until  # noqa: E402
from test_events_bindings import BINDING, ECHO  # noqa: E402

ALERTS_BINDING: dict[str, Any] = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "WorkflowEventBinding",
    "metadata": {"name": "alerts-to-echo"},
    "spec": {
        "event": {
            "selector": 'discriminator == "alertmanager" && payload.version == "4"'
            ' && payload.status == "firing" && payload.commonLabels.remediation != nil'
        },
        "submit": {
            "workflowTemplateRef": {"name": "echo"},
            "arguments": {
                "parameters": [
                    {"name": "who", "valueFrom": {"event": "payload.commonLabels.alertname"}},
                    {"name": "labels", "valueFrom": {"event": "payload.commonLabels"}},
                ]
            },
        },
    },
}


def write_manifests(directory: Path, *docs: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "echo.yaml").write_text(ECHO)
    (directory / "bindings.yaml").write_text(yaml.safe_dump_all(docs))
    return directory


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServe]:
    tmp = tmp_path_factory.mktemp("serve")
    manifests = write_manifests(tmp / "manifests", BINDING, ALERTS_BINDING)
    running = start_serve(manifests, tmp / "serve", extra=("--max-body", "4KiB", "--dedup-window", "300"))
    try:
        yield running
    finally:
        running.stop()


def finished(serve: RunningServe, name: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        for wf in serve.workflows():
            if wf["metadata"]["name"] == name and wf["status"]["phase"] not in ("Pending", "Running"):
                return wf
        return None

    wf: dict[str, Any] = wait_until(done, 30, f"{name} did not finish\n{serve.logs()}")
    return wf


def test_the_token_file_was_created_private(serve: RunningServe) -> None:
    mode = stat.S_IMODE(os.stat(serve.runs_dir.parent / "token").st_mode)
    assert mode == 0o600 and len(serve.token) >= 32


def test_an_event_submits_a_run_and_the_list_shows_it(serve: RunningServe) -> None:
    response = serve.post_event({"who": "ann", "labels": {"a": "1"}}, discriminator="test")
    assert response.status_code == 200 and response.json() == {}
    (name,) = response.headers["X-Rpops-Workflows"].split(",")
    wf = finished(serve, name)
    assert wf["status"]["phase"] == "Succeeded"
    assert wf["metadata"]["labels"]["workflows.argoproj.io/workflow-event-binding"] == "echo-binding"
    assert wf["status"]["startedAt"] and wf["status"]["finishedAt"]
    node = wf["status"]["nodes"][name]
    assert node["outputs"]["result"] == str(["ann", '{"a":"1"}'])
    only = serve.workflows("workflows.argoproj.io/workflow-event-binding=echo-binding")
    assert name in {w["metadata"]["name"] for w in only}
    assert serve.workflows("workflows.argoproj.io/workflow-event-binding!=echo-binding") == [
        w
        for w in serve.workflows()
        if w["metadata"]["labels"].get("workflows.argoproj.io/workflow-event-binding") != "echo-binding"
    ]


def test_an_event_no_binding_wants_starts_nothing(serve: RunningServe) -> None:
    response = serve.post_event({"nobody": True}, discriminator="test")
    assert response.status_code == 200 and response.headers["X-Rpops-Workflows"] == ""


def test_alertmanager_groups_are_deduplicated_by_fingerprint(serve: RunningServe) -> None:
    payload = alertmanager_payload("HighCPU", fingerprint="aaaa0001")
    first = serve.post_event(payload)
    assert first.status_code == 200 and first.headers["X-Rpops-Workflows"]
    again = serve.post_event(payload)  # Alertmanager's retry after a timeout
    assert again.status_code == 200 and again.headers["X-Rpops-Workflows"] == ""
    assert again.headers["X-Rpops-Duplicate"] == "true"
    other = serve.post_event(alertmanager_payload("HighMemory", fingerprint="aaaa0002"))
    assert (
        other.headers["X-Rpops-Workflows"]
        and other.headers["X-Rpops-Workflows"] != first.headers["X-Rpops-Workflows"]
    )
    resolved = serve.post_event(alertmanager_payload("HighCPU", status="resolved", fingerprint="aaaa0001"))
    assert resolved.status_code == 200 and resolved.headers["X-Rpops-Workflows"] == ""


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        ({"payload": {"who": "x"}, "discriminator": "test", "token": ""}, 401, "missing bearer token"),
        ({"payload": {"who": "x"}, "discriminator": "test", "token": "wrong"}, 401, "not valid"),
        ({"payload": b"{not json", "discriminator": "test"}, 400, "not JSON"),
        ({"payload": {"who": "x" * 5000}, "discriminator": "test"}, 413, "4096 bytes"),
        ({"payload": {"version": "4"}}, 400, "not an Alertmanager webhook payload: status"),
        ({"payload": ["x"], "discriminator": "test"}, 422, "binding echo-binding: selector"),
        (
            {"payload": {"who": "x", "level": "medium"}, "discriminator": "test"},
            422,
            "'medium' is not one of",
        ),
    ],
)
def test_bad_requests_are_refused_with_a_reason(
    serve: RunningServe, kwargs: dict[str, Any], status: int, message: str
) -> None:
    before = len(serve.workflows())
    response = serve.post_event(**kwargs)
    assert response.status_code == status, response.text
    assert message in response.json()["message"]
    assert "X-Rpops-Workflows" not in response.headers
    assert len(serve.workflows()) == before


def test_a_chunked_body_over_the_limit_is_refused(serve: RunningServe) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"who": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    response = serve._client.post(
        f"{serve.url}/api/v1/events/argo/test",
        content=chunks(),
        headers={"Authorization": f"Bearer {serve.token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 413


def test_other_namespaces_are_not_served(serve: RunningServe) -> None:
    headers = {"Authorization": f"Bearer {serve.token}"}
    response = serve._client.post(f"{serve.url}/api/v1/events/default/test", content=b"{}", headers=headers)
    assert response.status_code == 404 and "not served here" in response.json()["message"]
    assert serve._client.get(f"{serve.url}/api/v1/workflows/default", headers=headers).status_code == 404
    assert serve._client.get(f"{serve.url}/api/v1/workflows/argo").status_code == 401
    bad = serve._client.get(
        f"{serve.url}/api/v1/workflows/argo",
        params={"listOptions.labelSelector": "a in (b)"},
        headers=headers,
    )
    assert bad.status_code == 400


def test_rate_limit(tmp_path: Path) -> None:
    manifests = write_manifests(tmp_path / "manifests", BINDING)
    serve = start_serve(manifests, tmp_path / "serve", extra=("--rate-limit", "2/min"))
    try:
        codes = [serve.post_event({"nobody": 1}, discriminator="test").status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        limited = serve.post_event({"nobody": 1}, discriminator="test")
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        assert "--rate-limit" in limited.json()["message"]
    finally:
        serve.stop()


def test_stopping_the_server_terminates_its_runs(tmp_path: Path) -> None:
    slow = yaml.safe_load(ECHO)
    slow["metadata"]["name"] = "echo"
    slow["spec"]["templates"][0]["container"]["command"] = ["python", "-c", "import time; time.sleep(60)"]
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "echo.yaml").write_text(yaml.safe_dump(slow))
    (manifests / "bindings.yaml").write_text(yaml.safe_dump(BINDING))
    serve = start_serve(manifests, tmp_path / "serve")
    try:
        (name,) = (
            serve.post_event({"who": "slow"}, discriminator="test").headers["X-Rpops-Workflows"].split(",")
        )
        wait_until(
            lambda: any(
                n["type"] == "Pod" and n["phase"] == "Running"
                for w in serve.workflows()
                for n in w["status"]["nodes"].values()
            ),
            20,
            "no step ran",
        )
    finally:
        started = time.monotonic()
        serve.stop()
    assert time.monotonic() - started < 15
    status = json.loads((serve.runs_dir / name / "status.json").read_text())
    assert status["status"]["phase"] == "Failed" and "Terminate" in status["status"]["message"]


@pytest.mark.parametrize(
    ("binding", "error"),
    [
        (
            {**BINDING, "spec": {**BINDING["spec"], "event": {"selector": "payload.a + 1"}}},
            "outside the supported subset",
        ),
        (
            {**BINDING, "spec": {**BINDING["spec"], "submit": {"workflowTemplateRef": {"name": "ghost"}}}},
            "'ghost' is not loaded",
        ),
    ],
)
def test_a_bad_binding_stops_the_server_at_start(tmp_path: Path, binding: dict[str, Any], error: str) -> None:
    manifests = write_manifests(tmp_path / "manifests", binding)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rpops.local.server.serve",
            "--port",
            "0",
            "--manifests",
            str(manifests),
            "--token-file",
            str(tmp_path / "token"),
            "--runs-dir",
            str(tmp_path / "runs"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 2, done.stderr
    assert error in done.stderr and "echo-binding" in done.stderr


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        (("--max-body", "huge"), "--max-body 'huge' is not a size"),
        (("--rate-limit", "10"), "--rate-limit '10' is not a rate"),
        (("--port", "70000"), "--port 70000 is out of range"),
        (("--manifests", "/nonexistent"), "--manifests /nonexistent: no such file"),
        (("--dedup-window", "-1"), "--dedup-window -1 must be >= 0"),
    ],
)
def test_bad_flags_exit_2(tmp_path: Path, flags: tuple[str, ...], error: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "rpops.local.server.serve", "--token-file", str(tmp_path / "token"), *flags],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 2 and error in done.stderr, done.stderr
    assert not (tmp_path / "token").exists()  # nothing changed
