"""`rpops health-check` against real reference-workload processes on 127.0.0.1.

Each status is reached for the right reason through injected faults; failures of one target
(unreachable, slower than the timeout, malformed /health, HTTP 500) are classified, not crashes.
Some tests run the CLI as a subprocess (exit codes, stdout, output files), others call
`rpops.core.cli.main` in-process (faster, same code).
"""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer
from rpops.steps.health.rulefile import load_rules
from rpops.workload.testing import RunningWorkload, start_workload
from step_runner import Runner, StepResult, run_subprocess, step_runner
from werkzeug import Request, Response


@pytest.fixture(scope="module")
def shared() -> Iterator[RunningWorkload]:
    with start_workload(version="v1", admin_token="t") as workload:
        yield workload


@pytest.fixture()
def workload(shared: RunningWorkload) -> Iterator[RunningWorkload]:
    """The module's workload with no faults, and settled: its CPU figure (sampled every 0.5 s)
    no longer shows start-up work or an earlier test's CPU burn."""
    shared.clear_faults()
    wait_cpu(shared, lambda cpu: cpu < 15, "settle under 15%")
    yield shared
    shared.clear_faults()


@pytest.fixture()
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Runner:
    """`rpops health-check ARGS` in-process, outputs under a fresh directory per call."""
    return step_runner("health-check", tmp_path, monkeypatch, capsys)


def run_cli(tmp_path: Path, *args: str, timeout: float = 60) -> StepResult:
    """`rpops health-check ARGS` as a subprocess (the step as Argo runs it)."""
    return run_subprocess("health-check", tmp_path / "cli-outputs", *args, timeout=timeout)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rules_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def wait_cpu(workload: RunningWorkload, done: Callable[[float], bool], what: str,
             timeout: float = 15.0) -> float:
    """Wait until the workload's own CPU figure satisfies `done` (it is sampled every 0.5 s)."""
    deadline = time.monotonic() + timeout
    cpu = math.nan
    while time.monotonic() < deadline:
        status = httpx.get(f"{workload.url}/api/performance/status", trust_env=False).json()
        cpu = float(status["cpu_percent"])
        if done(cpu):
            return cpu
        time.sleep(0.2)
    raise AssertionError(f"the workload's cpu_percent did not {what} within {timeout:g}s (last {cpu})")


def wait_cpu_at_least(workload: RunningWorkload, percent: float) -> float:
    return wait_cpu(workload, lambda cpu: cpu >= percent, f"reach {percent:g}%")


# --- each status, for the right reason --------------------------------------------------------

def test_healthy_subprocess(workload: RunningWorkload, tmp_path: Path) -> None:
    result = run_cli(tmp_path, "--target", f"eu-1={workload.url}", "--region", "eu-west", "--samples", "3")
    assert result.code == 0, result.stderr
    assert result.stdout == "healthy\n"
    assert result.output("status") == "healthy"
    assert result.output("reason").startswith("1 of 1 targets healthy; p95 ")
    assert float(result.output("p95_ms")) > 0
    report = result.report
    assert report["status"] == "healthy" and report["region"] == "eu-west"
    assert report["rule"] == {"name": "default", "when": None, "evidence": {}}
    builtin = [r.name for r in load_rules(None).rules]
    assert [r["name"] for r in report["rules_evaluated"]] == builtin
    assert not any(r["matched"] for r in report["rules_evaluated"])
    target = report["targets"][0]
    assert target["name"] == "eu-1" and target["condition"] == "healthy" and target["version"] == "v1"
    assert target["checks"] == {"security": True, "performance": True}
    assert len(target["latencies_ms"]) == 3 and target["ready"] is True
    assert target["probes"]["health"]["status"] == 200
    assert target["cpu_percent"] is not None and target["memory_mb"] > 0
    assert report["signals"]["region"] == "eu-west" and report["signals"]["cpu_percent"] is not None
    assert report["prometheus"] is None


def test_latency_over_acceptable_is_degraded(workload: RunningWorkload, run: Runner) -> None:
    workload.set_faults(latency_ms=1050)
    result = run("--target", f"a={workload.url}", "--samples", "1", "--timeout", "5")
    assert result.code == 0, result.stderr
    assert result.stdout == "degraded\n"
    report = result.report
    assert report["rule"]["name"] == "slow"
    assert report["rule"]["evidence"]["p95_ms"] >= 1050
    assert report["rule"]["evidence"]["response_acceptable_ms"] == 1000
    assert float(result.output("p95_ms")) >= 1050
    assert result.output("reason").endswith("ms > acceptable 1000 ms")


def test_cpu_burn_is_overloaded(workload: RunningWorkload, run: Runner, tmp_path: Path) -> None:
    workload.set_faults(cpu_burn=1.0)
    cpu = wait_cpu_at_least(workload, 25)
    # The threshold sits under what the burn reliably shows on a shared 2-core machine, and well
    # over what an idle workload shows while probed.
    rules = rules_file(tmp_path, "thresholds: {cpu_critical_percent: 20}\n")
    result = run("--target", f"a={workload.url}", "--rules", rules, "--samples", "1")
    assert result.code == 0, result.stderr
    assert result.stdout == "overloaded\n"
    report = result.report
    assert report["rule"]["name"] == "cpu-critical"
    assert report["rule"]["evidence"]["cpu_percent"] >= 20
    assert report["rule"]["evidence"]["cpu_critical_percent"] == 20
    assert cpu >= 25


def test_slow_and_busy_is_overloaded(workload: RunningWorkload, run: Runner, tmp_path: Path) -> None:
    workload.set_faults(cpu_burn=1.0, latency_ms=250)
    wait_cpu_at_least(workload, 25)
    rules = rules_file(tmp_path, """
        thresholds:
          response_acceptable_ms: 150
          response_critical_ms: 200
          cpu_acceptable_percent: 20
          cpu_critical_percent: 1000
    """)
    result = run("--target", f"a={workload.url}", "--rules", rules, "--samples", "2")
    assert result.stdout == "overloaded\n", result.stderr
    assert result.report["rule"]["name"] == "slow-and-busy"
    assert result.report["rule"]["evidence"]["p95_ms"] >= 200


def test_unhealthy_fault_is_unhealthy(workload: RunningWorkload, run: Runner) -> None:
    workload.set_faults(unhealthy=True)
    result = run("--target", f"eu-1={workload.url}")
    assert result.code == 0
    assert result.stdout == "unhealthy\n"
    report = result.report
    assert report["rule"]["name"] == "target-unhealthy"
    assert result.output("reason") == "1 of 1 targets failing /health: eu-1"
    assert report["targets"][0]["reason"] == "/health HTTP 503; status 'unhealthy'"


def test_not_ready_is_degraded(workload: RunningWorkload, run: Runner) -> None:
    workload.set_faults(not_ready=True)
    result = run("--target", f"a={workload.url}")
    assert result.stdout == "degraded\n"
    assert result.report["rule"]["name"] == "not-ready"


def test_http_500_from_health_is_unhealthy(workload: RunningWorkload, run: Runner) -> None:
    workload.set_faults(error_rate=1.0)
    result = run("--target", f"a={workload.url}", "--samples", "2")
    assert result.stdout == "unhealthy\n"
    target = result.report["targets"][0]
    assert target["condition"] == "unhealthy"
    assert target["reason"].startswith("/health HTTP 500")
    assert target["sample_errors"] == 2
    assert result.report["signals"]["probe_error_rate"] == 1.0


# --- one target failing among several ---------------------------------------------------------

def test_unreachable_target_among_regions(workload: RunningWorkload, tmp_path: Path) -> None:
    port = closed_port()
    result = run_cli(tmp_path, "--target", f"us-east={workload.url},eu-west={workload.url}",
                     "--target", f"ap-south=http://127.0.0.1:{port}", "--retries", "1")
    assert result.code == 0, result.stderr  # a classification, not an error
    assert result.stdout == "unhealthy\n"
    report = result.report
    assert report["rule"]["name"] == "target-unreachable"
    assert result.output("reason") == "1 of 3 targets unreachable: ap-south"
    by_name = {t["name"]: t for t in report["targets"]}
    assert by_name["ap-south"]["condition"] == "unreachable"
    assert by_name["ap-south"]["probes"]["health"]["attempts"] == 2  # retried once
    assert by_name["ap-south"]["probes"]["samples"] == []  # no samples from a dead target
    assert by_name["us-east"]["condition"] == by_name["eu-west"]["condition"] == "healthy"
    assert report["signals"]["unreachable_names"] == ["ap-south"]


def test_all_targets_unreachable_is_unhealthy_exit_0(run: Runner) -> None:
    result = run("--target", f"a=http://127.0.0.1:{closed_port()},b=http://127.0.0.1:{closed_port()}",
                 "--retries", "0")
    assert result.code == 0
    assert result.stdout == "unhealthy\n"
    assert result.output("p95_ms") == ""  # nothing measured
    assert result.report["signals"]["unreachable_targets"] == 2


def test_target_slower_than_the_timeout(workload: RunningWorkload, run: Runner) -> None:
    workload.set_faults(latency_ms=1500)
    result = run("--target", f"slow={workload.url}", "--timeout", "0.3")
    assert result.stdout == "unhealthy\n"
    report = result.report
    target = report["targets"][0]
    assert target["condition"] == "unreachable" and target["timed_out"] is True
    assert target["reason"] == "/health timeout: no answer within 0.3s"
    assert target["probes"]["health"]["attempts"] == 1  # a timeout is not retried
    assert report["signals"]["timeout_targets"] == 1


def test_malformed_json_from_health(httpserver: HTTPServer, workload: RunningWorkload, run: Runner) -> None:
    httpserver.expect_request("/health").respond_with_data('{"status": "healthy", "checks": {',
                                                           content_type="application/json")
    httpserver.expect_request("/ready").respond_with_json({"ready": True})
    result = run("--target", f"good={workload.url},broken={httpserver.url_for('/')}", "--samples", "1")
    assert result.stdout == "unhealthy\n"
    by_name = {t["name"]: t for t in result.report["targets"]}
    assert by_name["broken"]["condition"] == "unhealthy"
    assert by_name["broken"]["reason"].startswith("/health malformed JSON")
    assert by_name["good"]["condition"] == "healthy"
    assert result.output("reason") == "1 of 2 targets failing /health: broken"


# --- bad input: exit 2, nothing probed ---------------------------------------------------------

@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "a=URL", "--bogus"], "unrecognized arguments: --bogus"),
        ([], "the following arguments are required: --target"),
        (["--target", "a"], "--target 'a': 'a' is not NAME=URL"),
        (["--target", "a=URL", "--samples", "0"], "--samples 0: must be between 1 and 1000"),
        (["--target", "a=URL", "--samples", "many"], "argument --samples: 'many' is not a whole number"),
        (["--target", "a=URL", "--prometheus", "localhost:9090"], "--prometheus: 'localhost:9090' is not"),
        (["--target", "a=URL", "--prometheus", "http://127.0.0.1:9", "--window", "5 min"],
         "--window: '5 min' is not a Prometheus duration"),
        (["--target", "a=URL", "--rules", "RULES:missing"], "cannot read the rules file"),
        (["--target", "a=URL", "--rules", "RULES:thresholds: [1"], "invalid YAML"),
        (["--target", "a=URL", "--rules", "RULES:rules:\n  - {name: x, when: 'nope > 1', status: degraded}\n"
                                           "default: {status: healthy}\n"], "rule 'x'"),
        (["--target", "a=URL", "--rules", "RULES:rules:\n  - {name: x, when: 'open(\"/etc/passwd\")', "
                                           "status: degraded}\ndefault: {status: healthy}\n"],
         "rule 'x': 'when: open(\"/etc/passwd\")' cannot be evaluated"),
        (["--target", "a=URL", "--rules", "RULES:rules:\n  - {name: x, when: '().__class__', "
                                           "status: degraded}\ndefault: {status: healthy}\n"],
         "rule #1 ('x'): 'when' was refused"),
    ],
)
def test_bad_input_exits_2_before_any_request(httpserver: HTTPServer, tmp_path: Path, run: Runner,
                                              args: list[str], message: str) -> None:
    host = httpserver.url_for("/").rstrip("/")
    resolved = []
    for arg in args:
        arg = arg.replace("URL", host)
        if arg.startswith("RULES:"):
            content = arg.removeprefix("RULES:")
            path = tmp_path / "rules.yaml"
            if content != "missing":
                path.write_text(content)
            arg = str(path)
        resolved.append(arg)
    result = run(*resolved)
    assert result.code == 2
    assert message in result.stderr
    assert httpserver.log == []  # nothing probed
    assert not result.outputs.exists()  # nothing written


def test_bad_input_subprocess_exit_code_and_message(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "--target", "us-east=10.0.0.1:8000")
    assert result.code == 2
    assert result.stdout == ""
    assert "--target 'us-east=10.0.0.1:8000'" in result.stderr and "http://127.0.0.1:8000" in result.stderr


# --- Prometheus signals ---------------------------------------------------------------------------

def prom_vector(value: str) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "vector",
                                          "result": [{"metric": {}, "value": [time.time(), value]}]}}


def test_prometheus_signals_decide(httpserver: HTTPServer, workload: RunningWorkload, run: Runner) -> None:
    queries: list[str] = []

    def answer(request: Request) -> Response:
        query = request.form["query"]
        queries.append(query)
        values = {"cpu": "97.5", "memory_usage": "812", "histogram": "NaN", "requests_total": "0.001"}
        value = next((v for k, v in values.items() if k in query), None)
        doc = prom_vector(value) if value else {"status": "success",
                                                 "data": {"resultType": "vector", "result": []}}
        return Response(json.dumps(doc), content_type="application/json")

    httpserver.expect_request("/api/v1/query", method="POST").respond_with_handler(answer)
    result = run("--target", f"a={workload.url}", "--prometheus", httpserver.url_for("/"), "--window", "30s",
                 "--status-path", "")
    assert result.code == 0, result.stderr
    assert result.stdout == "overloaded\n"
    report = result.report
    assert report["rule"]["name"] == "cpu-critical"
    signals = report["signals"]
    assert signals["prom_cpu_percent"] == 97.5 and signals["target_cpu_percent"] is None
    assert signals["prom_memory_mb"] == 812 and signals["prom_p95_ms"] is None  # NaN: no value
    assert signals["prom_memory_limit_mb"] is None and signals["prometheus_missing"] == 2
    assert len(queries) == 5 and all("$window" not in q for q in queries)
    assert any("[30s]" in q for q in queries)
    outcomes = {name: q["outcome"] for name, q in report["prometheus"]["queries"].items()}
    assert outcomes == {"p95_ms": "nan", "error_rate": "ok", "cpu_percent": "ok", "memory_mb": "ok",
                        "memory_limit_mb": "empty"}


def test_query_flag_overrides_and_bad_query_exits_2(httpserver: HTTPServer, workload: RunningWorkload,
                                                    run: Runner) -> None:
    def answer(request: Request) -> Response:
        if request.form["query"] == "max(my_cpu":
            refused = {"status": "error", "errorType": "bad_data", "error": "1:11: unclosed paren"}
            return Response(json.dumps(refused), status=400, content_type="application/json")
        empty = {"status": "success", "data": {"resultType": "vector", "result": []}}
        return Response(json.dumps(empty), content_type="application/json")

    httpserver.expect_request("/api/v1/query", method="POST").respond_with_handler(answer)
    result = run("--target", f"a={workload.url}", "--prometheus", httpserver.url_for("/"),
                 "--query-cpu-percent", "max(my_cpu", "--query-memory-limit-mb", "")
    assert result.code == 2
    assert "--query-cpu-percent: Prometheus refused the query 'max(my_cpu'" in result.stderr
    assert "fix the PromQL" in result.stderr
    sent = [r.form["query"] for r, _ in httpserver.log]
    assert len(sent) == 4  # the empty memory-limit query was skipped


def test_prometheus_unreachable_exits_3(workload: RunningWorkload, tmp_path: Path) -> None:
    port = closed_port()
    result = run_cli(tmp_path, "--target", f"a={workload.url}", "--prometheus", f"http://127.0.0.1:{port}",
                     "--retries", "1")
    assert result.code == 3
    assert f"--prometheus http://127.0.0.1:{port}: unreachable after 2 attempts" in result.stderr


PROMETHEUS = shutil.which("prometheus")


def test_default_queries_against_a_real_prometheus(workload: RunningWorkload, run: Runner) -> None:
    """Debian's prometheus scrapes the workload every second; the built-in queries must answer."""
    assert PROMETHEUS, "prometheus is missing: install Debian's 'prometheus' package (make system-deps)"
    port = closed_port()
    workdir = Path(tempfile.mkdtemp(prefix="rpops-prom-"))
    (workdir / "prometheus.yml").write_text(textwrap.dedent(f"""
        global: {{scrape_interval: 1s, evaluation_interval: 1s}}
        scrape_configs:
          - job_name: research-platform
            static_configs: [{{targets: ["127.0.0.1:{workload.port}"]}}]
    """))
    process = subprocess.Popen(
        [PROMETHEUS, f"--config.file={workdir / 'prometheus.yml'}", f"--web.listen-address=127.0.0.1:{port}",
         f"--storage.tsdb.path={workdir / 'data'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        workload.set_faults(latency_ms=20)
        deadline = time.monotonic() + 40
        with httpx.Client(trust_env=False, timeout=5) as client:
            while True:  # the first scrape comes a few seconds after start; wait for data, not readiness
                for _ in range(5):
                    client.get(f"{workload.url}/health")
                try:
                    doc = client.get(f"{url}/api/v1/query", params={
                        "query": "count_over_time(research_platform_cpu_usage_percent[30s])"}).json()
                    scrapes = float(doc["data"]["result"][0]["value"][1]) if doc["data"]["result"] else 0
                except (httpx.TransportError, ValueError, KeyError):
                    scrapes = 0
                if scrapes >= 3:
                    break
                assert time.monotonic() < deadline, "prometheus never scraped the workload"
                time.sleep(0.5)
        result = run("--target", f"a={workload.url}", "--prometheus", url, "--window", "30s",
                     "--query-memory-limit-mb", "")
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
    assert result.code == 0, result.stderr
    queries = result.report["prometheus"]["queries"]
    for name in ("p95_ms", "error_rate", "cpu_percent", "memory_mb"):
        assert queries[name]["outcome"] == "ok", (name, queries[name])
    signals = result.report["signals"]
    assert 20 <= signals["prom_p95_ms"] <= 1000  # the 20 ms fault lands in the 25-50 ms buckets
    assert signals["prom_error_rate"] == 0
    assert signals["prom_memory_mb"] > 10
    assert signals["prom_cpu_percent"] >= 0
