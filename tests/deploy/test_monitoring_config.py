"""manifests/monitoring: the Prometheus scrape jobs and the Grafana dashboard.

The scrape configuration runs in a real Prometheus against a real reference workload: the
Kubernetes discovery is replaced by static targets that carry the same `__meta_kubernetes_*`
labels, so the relabelling, the job split and the dashboard's queries are exercised for real.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from rpops.workload.testing import RunningWorkload, start_workload

from .helpers import ARGO, MONITORING, build, validate_strict

SCRAPE = MONITORING / "prometheus-scrape.yaml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
POD_META = {
    "__meta_kubernetes_namespace": "research-platform",
    "__meta_kubernetes_pod_name": "research-platform-7d9f-abcde",
    "__meta_kubernetes_pod_label_app_kubernetes_io_name": "research-platform",
    "__meta_kubernetes_pod_container_port_name": "http",
    "__meta_kubernetes_pod_label_version": "v1",
    "__meta_kubernetes_pod_label_region": "eu-west",
    "__meta_kubernetes_pod_label_compliance": "gdpr",
}


def _jobs() -> dict[str, dict[str, Any]]:
    config = yaml.safe_load(SCRAPE.read_text())
    return {job["job_name"]: job for job in config["scrape_configs"]}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- static shape ----------------------------------------------------------------------------

def test_scrape_jobs_follow_the_deployment_guide() -> None:
    jobs = _jobs()
    assert set(jobs) == {"research-platform", "research-platform-performance", "argo-workflows"}
    main, perf = jobs["research-platform"], jobs["research-platform-performance"]
    assert (main["metrics_path"], main["scrape_interval"]) == ("/metrics", "10s")
    # /performance/metrics is JSON, which Prometheus cannot parse: the 5 s job reads /metrics.
    assert (perf["metrics_path"], perf["scrape_interval"]) == ("/metrics", "5s")
    for job in (main, perf):
        assert job["kubernetes_sd_configs"] == [
            {"role": "pod", "namespaces": {"names": ["research-platform"]}}]
    assert main["relabel_configs"] == perf["relabel_configs"]


# --- a real Prometheus -----------------------------------------------------------------------

def _static(job: dict[str, Any], targets: list[tuple[str, dict[str, str]]], interval: str) -> dict[str, Any]:
    """The job with Kubernetes discovery replaced by static targets carrying the meta labels."""
    job = copy.deepcopy(job)
    del job["kubernetes_sd_configs"]
    job["static_configs"] = [{"targets": [address], "labels": labels} for address, labels in targets]
    job["scrape_interval"] = interval
    job["scrape_timeout"] = min(job.get("scrape_timeout", "1s"), "1s") if interval == "1s" else "10s"
    return job


class Prometheus:
    def __init__(self, url: str, process: subprocess.Popen[bytes], workload: RunningWorkload) -> None:
        self.url, self.process, self.workload = url, process, workload
        self.http = httpx.Client(trust_env=False, timeout=5.0)

    def query(self, expr: str) -> list[dict[str, Any]]:
        response = self.http.get(f"{self.url}/api/v1/query", params={"query": expr})
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait_for(self, expr: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if result:
                return result
            assert time.monotonic() < deadline, f"no result for {expr} after {timeout}s"
            time.sleep(0.25)


@pytest.fixture(scope="module")
def prometheus() -> Iterator[Prometheus]:
    binary = shutil.which("prometheus")
    assert binary, "prometheus is missing: `make system-deps` installs Debian's prometheus"
    with start_workload(version="v1") as workload:
        address = f"127.0.0.1:{workload.port}"
        jobs = _jobs()
        # Distinct pod names: were they kept, they would be distinct targets, not deduplicated.
        dropped = {**POD_META, "__meta_kubernetes_pod_container_port_name": "admin",
                   "__meta_kubernetes_pod_name": "research-platform-admin-port"}
        other_app = {**POD_META, "__meta_kubernetes_pod_label_app_kubernetes_io_name": "something-else",
                     "__meta_kubernetes_pod_name": "something-else-0"}
        service_targets = [(address, POD_META), (address, dropped), (address, other_app)]
        controller = {"__meta_kubernetes_pod_label_app": "workflow-controller",
                      "__meta_kubernetes_pod_ip": "127.0.0.1",
                      "__meta_kubernetes_pod_name": "workflow-controller-0"}
        config = {
            "global": {"evaluation_interval": "1s"},
            "scrape_configs": [
                _static(jobs["research-platform"], service_targets, "1s"),
                _static(jobs["research-platform-performance"], service_targets, "1s"),
                # Never scraped during the test (1h): only its relabelled address is checked.
                _static(jobs["argo-workflows"], [("127.0.0.1:1", controller)], "1h"),
            ],
        }
        workdir = Path(tempfile.mkdtemp(prefix="rpops-prometheus-"))
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = _free_port()
        log = open(workdir / "prometheus.log", "wb")  # noqa: SIM115 - closed in teardown
        process = subprocess.Popen(
            [binary, f"--config.file={workdir / 'prometheus.yml'}", f"--web.listen-address=127.0.0.1:{port}",
             f"--storage.tsdb.path={workdir / 'data'}"], stdout=log, stderr=subprocess.STDOUT)
        try:
            server = Prometheus(f"http://127.0.0.1:{port}", process, workload)
            deadline = time.monotonic() + 20
            while True:
                try:
                    if server.http.get(f"{server.url}/-/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None, (workdir / "prometheus.log").read_text()
                assert time.monotonic() < deadline, "prometheus did not become ready"
                time.sleep(0.1)
            yield server
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()
            shutil.rmtree(workdir, ignore_errors=True)


def test_relabelling_keeps_only_the_service_pods_and_labels_them(prometheus: Prometheus) -> None:
    prometheus.wait_for('count(up{job=~"research-platform.*"} == 1) == 2')
    up = prometheus.query('up{job=~"research-platform.*"}')
    # One target per job: the admin-port and foreign-app targets are dropped.
    assert sorted(s["metric"]["job"] for s in up) == ["research-platform", "research-platform-performance"]
    for series in up:
        labels = series["metric"]
        assert (labels["region"], labels["compliance"], labels["version"]) == ("eu-west", "gdpr", "v1")
        assert (labels["namespace"], labels["pod"]) == ("research-platform", "research-platform-7d9f-abcde")
    targets = prometheus.http.get(f"{prometheus.url}/api/v1/targets").json()["data"]["activeTargets"]
    controller = [t for t in targets if t["labels"]["job"] == "argo-workflows"]
    assert [t["scrapeUrl"] for t in controller] == ["https://127.0.0.1:9090/metrics"]


def test_each_series_is_stored_by_one_job(prometheus: Prometheus) -> None:
    fast = prometheus.wait_for(
        "count by (job) (research_platform_memory_usage_mb or research_platform_cpu_usage_percent)")
    assert [s["metric"]["job"] for s in fast] == ["research-platform-performance"]
    rest = prometheus.wait_for("count by (job) (research_platform_requests_total)")
    assert [s["metric"]["job"] for s in rest] == ["research-platform"]


# --- the dashboard -----------------------------------------------------------------------------

def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def _panels() -> list[dict[str, Any]]:
    return [p for p in _dashboard()["panels"] if p["type"] != "row"]


def _exprs() -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in _panels() for t in p["targets"]]


def test_dashboard_picks_its_datasource_in_a_variable_so_provisioning_works() -> None:
    """No `${DS_...}` import input (grafana/grafana#10786: a provisioned or sidecar-loaded
    dashboard cannot resolve one), but a `datasource` variable every query goes through."""
    dashboard = _dashboard()
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["id"] is None and dashboard["uid"]
    assert "__inputs" not in dashboard and "${DS_" not in DASHBOARD.read_text()
    variables = dashboard["templating"]["list"]
    assert variables[0]["name"] == "datasource"  # first: the region query below resolves through it
    assert (variables[0]["type"], variables[0]["query"]) == ("datasource", "prometheus")
    ds = {"type": "prometheus", "uid": "${datasource}"}
    for panel in _panels():
        assert panel["datasource"] == ds, panel["title"]
        assert all(t["datasource"] == ds for t in panel["targets"]), panel["title"]
    by_name = {v["name"]: v for v in variables}
    assert by_name["region"]["datasource"] == ds and by_name["region"]["includeAll"] is True
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24


def test_dashboard_configmap_for_the_grafana_sidecar() -> None:
    docs = build(MONITORING)
    (configmap,) = docs
    assert configmap["kind"] == "ConfigMap" and configmap["metadata"]["namespace"] == "monitoring"
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"  # the sidecar's default label
    assert configmap["metadata"]["name"] == "research-platform-grafana-dashboard"  # no hash suffix
    assert json.loads(configmap["data"]["research-platform.json"]) == _dashboard()
    assert validate_strict(docs) == []


def test_promtool_checks_the_jobs_with_static_targets(tmp_path: Path) -> None:
    """What the file's header says: Debian's promtool rejects the Kubernetes discovery, and
    checks everything else once the jobs use static targets."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make system-deps` installs Debian's prometheus"
    plain = subprocess.run([promtool, "check", "config", str(SCRAPE)],
                           capture_output=True, text=True, timeout=60)
    if plain.returncode != 0:  # a build without Kubernetes discovery, as the header says
        assert "field kubernetes_sd_configs not found" in plain.stdout + plain.stderr
        assert "field kubernetes_sd_configs not found" in SCRAPE.read_text()
    target = [("127.0.0.1:8000", POD_META)]
    static = {"scrape_configs": [_static(job, target, "10s") for job in _jobs().values()]}
    copy_path = tmp_path / "prometheus-scrape.static.yaml"
    copy_path.write_text(yaml.safe_dump(static))
    checked = subprocess.run([promtool, "check", "config", str(copy_path)],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_dashboard_shows_the_required_metrics_filtered_by_region() -> None:
    text = " ".join(expr for _, expr in _exprs())
    for metric in ("research_platform_security_blocked_operations_total", "research_platform_memory_usage_mb",
                   "research_platform_cpu_usage_percent", "research_platform_scaling_events_total",
                   "argo_workflows_research_platform_scaling_events_total",
                   "argo_workflows_research_platform_health_status",
                   "research_platform_request_duration_seconds_bucket",
                   "research_platform_security_vulnerabilities_critical", "argo_workflows_total_count"):
        assert metric in text, metric
    assert "histogram_quantile(0.95" in text
    for title, expr in _exprs():
        if "argo_workflows_total_count" not in expr:  # the controller's own metric has no region
            assert 'region=~"$region"' in expr, title


def test_dashboard_reads_workflow_metrics_as_argo_exports_them() -> None:
    """Argo exports a template's metric `m` as `argo_workflows_m`: the bare name has no data."""
    declared = set()
    for path in ARGO.glob("research-platform-*.yaml"):
        declared |= set(re.findall(r"^\s*- name: (research_platform_\w+)$", path.read_text(), re.MULTILINE))
    assert "research_platform_security_vulnerabilities_critical" in declared, declared
    for title, expr in _exprs():
        for name in declared:
            bare = re.findall(rf"(?<![\w]){name}\b", expr)
            assert not bare, f"panel {title!r} reads {name}; Argo exports it as argo_workflows_{name}"


def test_health_panel_maps_the_values_the_health_check_template_emits() -> None:
    template = (ARGO / "research-platform-health-check.yaml").read_text()
    helps = set(re.findall(r"help: '?(Research Platform health[^'\n]*)", template))
    assert len(helps) == 1, helps
    emitted = dict(re.findall(r"(\d) (healthy|degraded|overloaded|unhealthy)", helps.pop()))
    (panel,) = [p for p in _panels() if p["title"] == "Health status by region"]
    (mapping,) = panel["fieldConfig"]["defaults"]["mappings"]
    assert {value: option["text"] for value, option in mapping["options"].items()} == emitted


def _grafana_to_promql(expr: str) -> str:
    return (expr.replace("$region", ".*").replace("$__rate_interval", "1m").replace("$__range", "1h"))


def test_dashboard_queries_run_and_service_panels_show_live_data(prometheus: Prometheus) -> None:
    workload = prometheus.workload
    with httpx.Client(trust_env=False, timeout=5.0) as http:
        for _ in range(5):
            http.get(f"{workload.url}/health")
        refused = http.post(f"{workload.url}/api/secure-eval", json={"expression": "__import__('os')"})
        assert refused.status_code == 400
    # Rates need two samples of the counters after the traffic.
    prometheus.wait_for("increase(research_platform_security_blocked_operations_total[1m]) > 0")
    live = {"Blocked operations", "p95 latency", "Request rate by status", "CPU usage", "Memory usage"}
    for title, expr in _exprs():
        result = prometheus.query(_grafana_to_promql(expr))  # every query parses and runs
        if title in live:
            assert result, f"panel {title!r} shows nothing: {expr}"
            assert all(s["metric"].get("region", "eu-west") == "eu-west" for s in result), title
