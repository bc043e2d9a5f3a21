"""The reference workload, served for real: every endpoint, every fault, admin auth, the CLI."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from rpops.workload.faults import FaultError
from rpops.workload.testing import RunningWorkload, WorkloadError, start_workload

TOKEN = "test-token"


@pytest.fixture(scope="module")
def shared() -> Iterator[RunningWorkload]:
    with start_workload(version="v7", admin_token=TOKEN) as workload:
        yield workload


@pytest.fixture()
def workload(shared: RunningWorkload) -> Iterator[RunningWorkload]:
    """The module's workload, with no faults before and after each test."""
    shared.clear_faults()
    yield shared
    shared.clear_faults()


@pytest.fixture()
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0, trust_env=False) as c:
        yield c


def admin(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Prometheus text -> {(sample name, labels): value}."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def metric(client: httpx.Client, url: str, name: str, **labels: str) -> float:
    return samples(client.get(f"{url}/metrics").text).get((name, frozenset(labels.items())), 0.0)


def wait_for(predicate: Callable[[], bool], timeout: float = 8.0, every: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return predicate()


# --- the contract ---------------------------------------------------------------------------

def test_health_and_ready(workload: RunningWorkload, client: httpx.Client) -> None:
    health = client.get(f"{workload.url}/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "healthy"
    assert body["version"] == "v7"
    assert body["checks"] == {"security": True, "performance": True}
    ready = client.get(f"{workload.url}/ready")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "version": "v7"}


def test_metrics_exposition(workload: RunningWorkload, client: httpx.Client) -> None:
    before = metric(client, workload.url, "research_platform_requests_total",
                    route="/health", method="GET", status="200")
    for _ in range(3):
        client.get(f"{workload.url}/health")
    client.get(f"{workload.url}/no-such-page")
    response = client.get(f"{workload.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)
    names = {name for name, _ in found}

    def value(name: str, **labels: str) -> float:
        return found[(name, frozenset(labels.items()))]

    health_ok = value("research_platform_requests_total", route="/health", method="GET", status="200")
    assert health_ok == before + 3
    # Unknown paths share one label value: the series count stays bounded.
    assert value("research_platform_requests_total", route="unmatched", method="GET", status="404") >= 1
    assert value("research_platform_request_duration_seconds_count", route="/health") >= 3
    assert ("research_platform_request_duration_seconds_bucket",
            frozenset({"route": "/health", "le": "+Inf"}.items())) in found
    assert value("research_platform_info", version="v7") == 1.0
    assert value("research_platform_memory_usage_mb") > 1
    assert "research_platform_cpu_usage_percent" in names
    assert "research_platform_security_blocked_operations_total" in names
    assert value("process_resident_memory_bytes") > 1e6
    assert "process_cpu_seconds_total" in names
    assert not any(name.endswith("_created") for name in names)


def test_performance_metrics_summarises_routes(workload: RunningWorkload, client: httpx.Client) -> None:
    for _ in range(5):
        client.get(f"{workload.url}/ready")
    body = client.get(f"{workload.url}/performance/metrics").json()
    assert body["version"] == "v7"
    assert body["monitoring_active"] is True
    assert body["memory_mb"] > 1
    ready = body["routes"]["/ready"]
    assert ready["count"] >= 5
    assert 0 < ready["p50_ms"] <= ready["p95_ms"] <= ready["p99_ms"] <= ready["max_ms"]
    assert body["requests_total"] >= ready["count"]


def test_performance_status(workload: RunningWorkload, client: httpx.Client) -> None:
    first = client.get(f"{workload.url}/api/performance/status").json()
    assert set(first) == {"monitoring_active", "cpu_percent", "memory_mb", "uptime_s", "request_rate"}
    assert first["monitoring_active"] is True
    assert first["memory_mb"] > 1
    assert first["cpu_percent"] >= 0

    # Probes and status reads are the platform's traffic, not load: they leave request_rate at 0.
    for _ in range(40):
        client.get(f"{workload.url}/ready")
        client.get(f"{workload.url}/api/performance/status")
    time.sleep(1.1)  # two monitor samples (every 0.5 s): the last covers only these requests
    assert client.get(f"{workload.url}/api/performance/status").json()["request_rate"] == 0

    # Keep the service's own API busy until a monitor sample has counted it.
    def rate_seen() -> bool:
        for _ in range(20):
            client.get(f"{workload.url}/health")
        return bool(client.get(f"{workload.url}/api/performance/status").json()["request_rate"] > 0)

    assert wait_for(rate_seen)
    later = client.get(f"{workload.url}/api/performance/status").json()
    assert later["uptime_s"] > first["uptime_s"]


def test_openapi_lists_every_route(workload: RunningWorkload, client: httpx.Client) -> None:
    doc = client.get(f"{workload.url}/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["version"] == "v7"
    paths = doc["paths"]
    expected = {
        "/health": {"get"}, "/ready": {"get"}, "/metrics": {"get"}, "/performance/metrics": {"get"},
        "/api/secure-eval": {"post"}, "/api/performance/status": {"get"},
        "/admin/faults": {"get", "post", "delete"}, "/openapi.json": {"get"},
    }
    assert {path: set(ops) for path, ops in paths.items()} == expected
    # Every documented GET really answers (no path in the document is a dead link).
    for path, ops in expected.items():
        if "get" in ops and path != "/admin/faults":
            assert client.get(f"{workload.url}{path}").status_code == 200, path


# --- secure-eval ----------------------------------------------------------------------------

def test_secure_eval_evaluates_with_context(workload: RunningWorkload, client: httpx.Client) -> None:
    url = f"{workload.url}/api/secure-eval"
    response = client.post(url, json={"expression": "cpu * 100 > threshold and replicas < 10",
                                      "context": {"cpu": 0.9, "threshold": 80, "replicas": 3}})
    assert response.status_code == 200
    assert response.json() == {"result": True}
    assert client.post(url, json={"expression": "x * 2 + 1", "context": {"x": 20}}).json() == {"result": 41}
    assert client.post(url, json={"expression": "'a' + 'b'"}).json() == {"result": "ab"}
    assert client.post(url, json={"expression": "[n * n for n in xs]", "context": {"xs": [1, 2, 3]}}).json() \
        == {"result": [1, 4, 9]}


@pytest.mark.parametrize("expression", [
    "__import__('os').system('true')",
    "().__class__.__mro__[1].__subclasses__()",
    "open('/etc/passwd').read()",
    "9 ** 9 ** 9",
])
def test_secure_eval_refuses_and_counts(workload: RunningWorkload, client: httpx.Client,
                                        expression: str) -> None:
    name = "research_platform_security_blocked_operations_total"
    before = metric(client, workload.url, name)
    response = client.post(f"{workload.url}/api/secure-eval", json={"expression": expression, "context": {}})
    assert response.status_code == 400
    assert response.json()["error"].startswith("expression refused:")
    assert metric(client, workload.url, name) == before + 1
    blocked = client.get(f"{workload.url}/performance/metrics").json()["security_blocked_operations"]
    assert blocked >= 1


@pytest.mark.parametrize(("body", "message"), [
    (b"", "empty"),
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b'{"context": {}}', "'expression' is required"),
    (b'{"expression": 42}', "'expression' is required and must be a string"),
    (b'{"expression": "x", "context": [1]}', "'context' must be a JSON object"),
    (b'{"expression": "1", "extra": 1}', "unknown field(s) extra"),
])
def test_secure_eval_malformed_requests(workload: RunningWorkload, client: httpx.Client,
                                        body: bytes, message: str) -> None:
    name = "research_platform_security_blocked_operations_total"
    before = metric(client, workload.url, name)
    response = client.post(f"{workload.url}/api/secure-eval", content=body,
                           headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert metric(client, workload.url, name) == before  # a malformed request is not a blocked operation


def test_secure_eval_result_must_be_json(workload: RunningWorkload, client: httpx.Client) -> None:
    response = client.post(f"{workload.url}/api/secure-eval", json={"expression": "{1, 2}"})
    assert response.status_code == 400
    assert "cannot be returned as JSON" in response.json()["error"]
    inf = client.post(f"{workload.url}/api/secure-eval", json={"expression": "1e308 * 10"})
    assert inf.status_code == 400
    assert "cannot be returned as JSON" in inf.json()["error"]


def test_secure_eval_body_size_is_limited(workload: RunningWorkload, client: httpx.Client) -> None:
    big = b'{"expression": "1", "context": {"x": "' + b"a" * 100_000 + b'"}}'
    response = client.post(f"{workload.url}/api/secure-eval", content=big,
                           headers={"content-type": "application/json"})
    assert response.status_code == 413


# --- admin ----------------------------------------------------------------------------------

def test_admin_requires_the_token(workload: RunningWorkload, client: httpx.Client) -> None:
    url = f"{workload.url}/admin/faults"
    for headers in ({}, admin("wrong"), {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}):
        for method in ("GET", "POST", "DELETE"):
            response = client.request(method, url, json={"unhealthy": True}, headers=headers)
            assert response.status_code == 401, (method, headers)
            assert response.headers["www-authenticate"].startswith("Bearer")
    # Nothing was changed by the refused requests.
    assert client.get(f"{workload.url}/health").status_code == 200
    shown = client.get(url, headers=admin()).json()
    assert shown["active"] is False
    assert shown["faults"]["unhealthy"] is False


def test_admin_disabled_without_token(client: httpx.Client) -> None:
    with start_workload(admin_token=None) as workload:
        response = client.post(f"{workload.url}/admin/faults", json={"unhealthy": True}, headers=admin())
        assert response.status_code == 404
        assert "--admin-token" in response.json()["error"]
        assert client.get(f"{workload.url}/health").status_code == 200
        with pytest.raises(WorkloadError):
            workload.set_faults(unhealthy=True)


@pytest.mark.parametrize(("change", "field"), [
    ({"error_rate": 1.5}, "error_rate"),
    ({"error_rate": -0.1}, "error_rate"),
    ({"latency_ms": "100"}, "latency_ms"),
    ({"cpu_burn": True}, "cpu_burn"),
    ({"unhealthy": "yes"}, "unhealthy"),
    ({"memory_growth_mb_per_s": 5000}, "memory_growth_mb_per_s"),
    ({"latency": 100}, "latency"),
])
def test_admin_validates_fault_values(workload: RunningWorkload, client: httpx.Client,
                                      change: dict[str, Any], field: str) -> None:
    url = f"{workload.url}/admin/faults"
    # A valid fault first, sent together with the bad one: the whole change must be refused.
    response = client.post(url, json={"unhealthy": True, **change} if field != "unhealthy" else change,
                           headers=admin())
    assert response.status_code == 400
    assert repr(field) in response.json()["error"]
    assert client.get(url, headers=admin()).json()["active"] is False


def test_admin_merges_shows_and_clears(workload: RunningWorkload, client: httpx.Client) -> None:
    url = f"{workload.url}/admin/faults"
    client.post(url, json={"latency_ms": 5}, headers=admin())
    merged = client.post(url, json={"not_ready": True}, headers=admin()).json()
    assert merged["faults"]["latency_ms"] == 5 and merged["faults"]["not_ready"] is True
    assert client.get(url, headers=admin()).json()["faults"] == merged["faults"]
    cleared = client.delete(url, headers=admin()).json()
    assert cleared["active"] is False
    assert client.get(f"{workload.url}/ready").status_code == 200


def test_start_workload_refuses_bad_faults_before_starting() -> None:
    with pytest.raises(FaultError, match="error_rate"):
        start_workload(error_rate=3)


# --- faults ---------------------------------------------------------------------------------

def test_latency_fault_delays_requests_without_blocking(workload: RunningWorkload,
                                                        client: httpx.Client) -> None:
    workload.set_faults(latency_ms=400)
    began = time.perf_counter()
    assert client.get(f"{workload.url}/health").status_code == 200
    assert time.perf_counter() - began >= 0.4

    async def concurrent() -> float:
        async with httpx.AsyncClient(timeout=10.0, trust_env=False) as aclient:
            start = time.perf_counter()
            answers = await asyncio.gather(*(aclient.get(f"{workload.url}/health") for _ in range(10)))
            assert all(a.status_code == 200 for a in answers)
            return time.perf_counter() - start

    # Ten delayed requests overlap (asyncio.sleep); a blocking sleep would need 4 s.
    assert asyncio.run(concurrent()) < 2.5
    # The scrape and the admin endpoint are never delayed (a 5 s delay would miss this timeout).
    workload.set_faults(latency_ms=5000)
    assert client.get(f"{workload.url}/metrics", timeout=2.5).status_code == 200
    assert client.get(f"{workload.url}/ready", timeout=2.5).status_code == 200
    workload.clear_faults()
    summary = client.get(f"{workload.url}/performance/metrics").json()["routes"]["/health"]
    assert summary["max_ms"] >= 400


def test_error_rate_fault_proportion(workload: RunningWorkload, client: httpx.Client) -> None:
    workload.set_faults(error_rate=0.5)
    codes = [client.get(f"{workload.url}/health").status_code for _ in range(400)]
    errors = codes.count(500)
    assert set(codes) <= {200, 500}
    assert 140 <= errors <= 260  # p = 0.5, n = 400: sd 10; this is +/- 6 sd

    workload.set_faults(error_rate=1.0)
    failed = client.get(f"{workload.url}/health")
    assert failed.status_code == 500
    assert failed.headers["x-fault"] == "error_rate"
    assert client.get(f"{workload.url}/metrics").status_code == 200
    assert client.get(f"{workload.url}/admin/faults", headers=admin()).status_code == 200
    assert client.get(f"{workload.url}/ready").status_code == 200
    count = metric(client, workload.url, "research_platform_requests_total",
                   route="/health", method="GET", status="500")
    assert count >= 1
    workload.clear_faults()
    assert all(client.get(f"{workload.url}/ready").status_code == 200 for _ in range(20))


def test_unhealthy_fault(workload: RunningWorkload, client: httpx.Client) -> None:
    workload.set_faults(unhealthy=True)
    response = client.get(f"{workload.url}/health")
    assert response.status_code == 503
    assert response.json()["status"] == "unhealthy"
    assert response.json()["version"] == "v7"
    assert client.get(f"{workload.url}/ready").status_code == 200  # unhealthy is not unready
    workload.clear_faults()
    restored = client.get(f"{workload.url}/health")
    assert restored.status_code == 200 and restored.json()["status"] == "healthy"


def test_not_ready_fault(workload: RunningWorkload, client: httpx.Client) -> None:
    workload.set_faults(not_ready=True)
    response = client.get(f"{workload.url}/ready")
    assert response.status_code == 503
    assert response.json()["ready"] is False
    assert client.get(f"{workload.url}/health").status_code == 200
    workload.clear_faults()
    assert client.get(f"{workload.url}/ready").status_code == 200


def test_faults_given_at_start(client: httpx.Client) -> None:
    with start_workload(version="v9", not_ready=True, unhealthy=True) as workload:
        assert client.get(f"{workload.url}/ready").status_code == 503
        assert client.get(f"{workload.url}/health").json()["status"] == "unhealthy"
        assert workload.faults()["not_ready"] is True
        workload.clear_faults()
        assert client.get(f"{workload.url}/ready").status_code == 200


def _status(client: httpx.Client, workload: RunningWorkload) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"{workload.url}/api/performance/status").json()
    return body


def test_cpu_burn_raises_cpu_figure(client: httpx.Client) -> None:
    with start_workload(admin_token=TOKEN) as workload:
        workload.set_faults(cpu_burn=0.9)
        assert wait_for(lambda: _status(client, workload)["cpu_percent"] > 40)
        assert metric(client, workload.url, "research_platform_cpu_usage_percent") > 40
        assert client.get(f"{workload.url}/health").status_code == 200  # burning, still serving
        workload.clear_faults()
        assert wait_for(lambda: _status(client, workload)["cpu_percent"] < 25)


def test_memory_growth_raises_memory_figure(client: httpx.Client) -> None:
    with start_workload(admin_token=TOKEN) as workload:
        baseline = _status(client, workload)["memory_mb"]
        workload.set_faults(memory_growth_mb_per_s=200)
        assert wait_for(lambda: _status(client, workload)["memory_mb"] > baseline + 150)
        held = client.get(f"{workload.url}/admin/faults", headers=admin()).json()["effects"]["memory_held_mb"]
        assert held >= 150
        assert metric(client, workload.url, "research_platform_memory_usage_mb") > baseline + 150
        workload.clear_faults()
        assert wait_for(lambda: _status(client, workload)["memory_mb"] < baseline + 50)
        effects = client.get(f"{workload.url}/admin/faults", headers=admin()).json()["effects"]
        assert effects["memory_held_mb"] == 0


# --- the process and the CLI ----------------------------------------------------------------

def test_sigterm_stops_gracefully() -> None:
    workload = start_workload()
    assert workload.running
    os.kill(workload.pid, signal.SIGTERM)
    workload.process.wait(timeout=10)
    assert workload.process.returncode in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in workload.logs()
    workload.stop()


def _serve(*flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rpops", "workload", "serve", *flags],
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(("flags", "message"), [
    (("--port", "abc"), "--port"),
    (("--port", "70000"), "--port 70000"),
    (("--fault", "latency=5"), "unknown fault 'latency'"),
    (("--fault", "error_rate=2"), "error_rate"),
    (("--fault", "unhealthy=maybe"), "unhealthy"),
    (("--version", "bad version"), "--version"),
    (("--port-file", "/nonexistent-dir/port"), "--port-file"),
])
def test_cli_bad_flags_exit_2(flags: tuple[str, ...], message: str) -> None:
    result = _serve("--port", "0", *flags)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


def test_cli_port_in_use_exits_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _serve("--port", str(port))
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
