"""`rpops validate` against a real reference workload on 127.0.0.1."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from rpops.workload.testing import RunningWorkload, start_workload
from step_runner import Runner, StepResult, run_subprocess, step_runner


@pytest.fixture(scope="module")
def shared() -> Iterator[RunningWorkload]:
    with start_workload(version="v2", admin_token="t") as workload:
        yield workload


@pytest.fixture()
def workload(shared: RunningWorkload) -> Iterator[RunningWorkload]:
    shared.clear_faults()
    yield shared
    shared.clear_faults()


@pytest.fixture()
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Runner:
    """`rpops validate ARGS` in-process, outputs under a fresh directory per call."""
    return step_runner("validate", tmp_path, monkeypatch, capsys)


def run_cli(tmp_path: Path, *args: str) -> StepResult:
    """`rpops validate ARGS` as a subprocess (the step as Argo runs it)."""
    return run_subprocess("validate", tmp_path / "cli-outputs", *args)


def table_rows(stdout: str) -> dict[str, list[str]]:
    lines = stdout.splitlines()
    assert lines[0].split() == ["CHECK", "RESULT", "ELAPSED", "DETAIL"]
    return {line.split()[0]: line.split() for line in lines[1:-1]}


def test_healthy_workload_passes_subprocess(workload: RunningWorkload, tmp_path: Path) -> None:
    result = run_cli(tmp_path, "--url", workload.url)
    assert result.code == 0, result.stderr
    rows = table_rows(result.stdout)
    assert list(rows) == ["health", "secure_eval", "monitoring", "response_time"]
    assert all(row[1] == "pass" for row in rows.values())
    assert result.stdout.splitlines()[-1] == "4/4 checks passed"
    assert result.output("passed") == "true"
    assert result.output("failed") == ""
    report = result.report
    assert report["passed"] is True and report["url"] == workload.url
    assert report["requests"]["secure_eval"]["method"] == "POST"
    assert all(c["elapsed_ms"] > 0 for c in report["checks"])


def test_json_output(workload: RunningWorkload, run: Runner) -> None:
    result = run("--url", workload.url, "--output", "json")
    assert result.code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["passed"] is True and doc["failed"] == []
    assert {c["name"]: c["passed"] for c in doc["checks"]} == {
        "health": True, "secure_eval": True, "monitoring": True, "response_time": True}
    assert doc["checks"][1]["detail"] == "1 + 1 = 2"


def test_unhealthy_fault_fails_health_only(workload: RunningWorkload, tmp_path: Path) -> None:
    workload.set_faults(unhealthy=True)
    result = run_cli(tmp_path, "--url", workload.url)
    assert result.code == 1
    rows = table_rows(result.stdout)
    assert rows["health"][1] == "FAIL"
    assert "status 'unhealthy' (unhealthy fault injected)" in result.stdout
    assert [rows[n][1] for n in ("secure_eval", "monitoring", "response_time")] == ["pass"] * 3
    assert result.output("passed") == "false"
    assert result.output("failed") == "health"
    assert f"validation of {workload.url} failed: health" in result.stderr


def test_latency_over_the_threshold_fails_response_time(workload: RunningWorkload, run: Runner) -> None:
    workload.set_faults(latency_ms=300)
    result = run("--url", workload.url, "--max-response-ms", "200", "--output", "json")
    assert result.code == 1
    doc = json.loads(result.stdout)
    assert doc["failed"] == ["response_time"]
    check = doc["checks"][3]
    assert check["elapsed_ms"] >= 300 and check["detail"].endswith("ms > 200 ms")
    assert result.output("failed") == "response_time"


def test_same_latency_under_a_looser_threshold_passes(workload: RunningWorkload, run: Runner) -> None:
    workload.set_faults(latency_ms=300)
    result = run("--url", workload.url, "--max-response-ms", "2000")
    assert result.code == 0, result.stdout


def test_error_rate_fails_every_request(workload: RunningWorkload, run: Runner) -> None:
    workload.set_faults(error_rate=1.0)
    result = run("--url", workload.url)
    assert result.code == 1
    assert result.output("failed") == "health,secure_eval,monitoring"
    details = {c["name"]: c["detail"] for c in result.report["checks"]}
    assert details["health"].startswith("HTTP 500")
    assert details["secure_eval"] == "HTTP 500: injected fault: error_rate"
    assert details["monitoring"].startswith("HTTP 500")


def test_slower_than_the_timeout_is_a_failure_not_unreachable(workload: RunningWorkload, run: Runner) -> None:
    workload.set_faults(latency_ms=1500)
    result = run("--url", workload.url, "--timeout", "0.3")
    assert result.code == 1
    assert result.output("failed") == "health,secure_eval,monitoring,response_time"
    assert "timeout: no answer within 0.3s" in result.stdout


def test_wrong_answers_from_another_service(httpserver: HTTPServer, run: Runner) -> None:
    httpserver.expect_request("/health").respond_with_json({"status": "healthy"})
    httpserver.expect_request("/api/secure-eval", method="POST").respond_with_json({"result": 11})
    httpserver.expect_request("/api/performance/status").respond_with_data("<html>", content_type="text/html")
    result = run("--url", httpserver.url_for("/"))
    assert result.code == 1
    assert result.output("failed") == "secure_eval,monitoring"
    details = {c["name"]: c["detail"] for c in result.report["checks"]}
    assert details["secure_eval"] == "1 + 1 gave 11, expected 2"
    assert details["monitoring"].startswith("HTTP 200, malformed JSON")
    request = next(r for r, _ in httpserver.log if r.path == "/api/secure-eval")
    assert request.get_json() == {"expression": "1 + 1"}


def test_unreachable_exits_3(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run_cli(tmp_path, "--url", f"http://127.0.0.1:{port}", "--retries", "1")
    assert result.code == 3
    assert "unreachable after 2 attempts" in result.stderr
    assert result.output("passed") == "false"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "127.0.0.1:8000"], "--url: '127.0.0.1:8000' is not an http(s) URL"),
        (["--url", "URL", "--output", "xml"], "--output: invalid choice: 'xml'"),
        (["--url", "URL", "--max-response-ms", "-5"], "--max-response-ms -5: must be a positive number"),
        (["--url", "URL", "--timeout", "0"], "--timeout 0: must be between 0 and 600"),
        (["--url", "URL", "--retries", "50"], "--retries 50: must be between 0 and 10"),
        (["--url", "URL", "--nope"], "unrecognized arguments: --nope"),
        ([], "the following arguments are required: --url"),
    ],
)
def test_bad_input_exits_2_before_any_request(httpserver: HTTPServer, run: Runner, args: list[str],
                                              message: str) -> None:
    result = run(*[a.replace("URL", httpserver.url_for("/")) for a in args])
    assert result.code == 2
    assert message in result.stderr
    assert httpserver.log == []
    assert not result.outputs.exists()
