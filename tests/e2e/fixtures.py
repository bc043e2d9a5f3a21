"""Processes for the alert loop: the local platform, Prometheus, Alertmanager, `rpops local serve`.

Everything binds 127.0.0.1 on a free port and is stopped by PID. The production files are used
with only what a test environment must change, each change made by a function here:

- Prometheus: the two research-platform jobs of manifests/monitoring/prometheus-scrape.yaml, with
  Kubernetes discovery replaced by a file (`file_sd_configs`) that `Discovery` keeps in step with
  the local platform's instances (carrying the same `__meta_kubernetes_*` labels a pod has, so the
  production relabelling runs), 1 s intervals, and the rules with `for` capped at 1 s
  (workflows.prometheusrule.shortened);
- Alertmanager: manifests/monitoring/alertmanager.yaml with the webhook pointed at `rpops local
  serve` over plain HTTP, the token file of the test, and `group_wait: 0s` (`alertmanager_config`);
- `rpops local serve`: the rendered manifests/argo with the binding's two cluster addresses
  (targets, prometheus) replaced by the local ones, the recovery's security scan pointed at
  this checkout instead of the step image's paths, as a kustomize overlay would, and the
  recovery's `settle` (how long its second check waits for the alert to clear) sized to the
  1 s intervals (`local_manifests`).

`CpuHogs` starts busy processes beside the loop: the loop must hold on a busy machine.

scripts/demo.py (`make run`) starts the same stack.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import prometheus_fixture  # noqa: E402
from prometheus_fixture import RunningPrometheus, free_port  # noqa: E402

from workflows import alerts_binding, recovery  # noqa: E402
from workflows.prometheusrule import load_rules, shortened  # noqa: E402

MONITORING = ROOT / "manifests" / "monitoring"
MANIFESTS = ROOT / "manifests" / "argo"
# The recovery's security scan, on this machine: this checkout and venv instead of the image's
# /opt/rpops paths, the vendored advisories (old on purpose: no age check), and the platform's
# manifests instead of live objects (the local platform has none).
LOCAL_SCAN = {
    "target": str(ROOT / "steps"),
    "installed": sys.prefix,
    "manifests": str(ROOT / "manifests" / "platform"),
    "db": str(ROOT / "tests" / "data" / "advisories"),
    "sync-db": "false",  # no network: the vendored snapshot as it is
    "max-db-age": "0",
    "live": "false",
}
ALERTMANAGER = os.environ.get("RPOPS_TEST_ALERTMANAGER", "/usr/bin/prometheus-alertmanager")
# Seconds the recovery's second check waits for an alert to clear, with 1 s scrapes and evaluations.
LOCAL_SETTLE = "20"
SERVICE = "research-platform"
VERSION = "v1"
REGION = "us-east"


def _binary(path: str, package: str) -> str:
    found = path if os.access(path, os.X_OK) else shutil.which(Path(path).name)
    if not found:
        raise RuntimeError(f"{path} not found: install Debian's {package} package")
    return found


def stop_pid(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM the process by PID, SIGKILL after `timeout`."""
    if process.poll() is not None:
        return
    try:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)
    except ProcessLookupError:
        pass


def wait_until(check: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} (waited {timeout:g} s)")
        time.sleep(interval)


# --------------------------------------------------------------------------------------------- platform


def platform_dir(name: str) -> Path:
    """A fresh folder for the local platform's state under the project's .rpops/tests/ (remove it
    with shutil.rmtree). Not under /tmp: each step of a run gets a private /tmp, as in a pod, and
    the steps that act on the platform must still find its state."""
    base = ROOT / ".rpops" / "tests"
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=base))


def platform_targets(root: Path) -> list[dict[str, Any]]:
    """The local platform's workload instances as file_sd target groups with a pod's meta labels.
    Read from the state file without its lock: discovery must not wait for a scaling to finish."""
    from rpops.platform.local.state import StateStore

    groups = []
    for svc in StateStore(root).load().services.values():
        for version, ver in svc.versions.items():
            for inst in ver.instances:
                groups.append(
                    {
                        "targets": [f"127.0.0.1:{inst.port}"],
                        "labels": {
                            "__meta_kubernetes_namespace": "research-platform",
                            "__meta_kubernetes_pod_name": inst.name,
                            "__meta_kubernetes_pod_label_app_kubernetes_io_name": svc.name,
                            "__meta_kubernetes_pod_container_port_name": "http",
                            "__meta_kubernetes_pod_label_version": version,
                            "__meta_kubernetes_pod_label_region": REGION,
                            "__meta_kubernetes_pod_label_compliance": "sox",
                        },
                    }
                )
    return groups


class Discovery:
    """Rewrites Prometheus's file_sd targets whenever the platform's instances change."""

    def __init__(self, root: Path, path: Path, interval: float = 0.25) -> None:
        self.root, self.path, self.interval = root, path, interval
        self._stop = threading.Event()
        self._last = ""
        self.refresh()
        self._thread = threading.Thread(target=self._loop, name="file-sd", daemon=True)
        self._thread.start()

    def refresh(self) -> None:
        text = json.dumps(platform_targets(self.root), sort_keys=True)
        if text != self._last:
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            tmp.write_text(text)
            tmp.replace(self.path)
            self._last = text

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.refresh()
            except (OSError, ValueError):
                continue  # a state file being replaced; next tick

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class Load:
    """Steady traffic on the service, as users and the kubelet's probes make it: `rate` requests a
    second, alternating the status API and /health, whatever the latency (requests overlap)."""

    def __init__(self, url: str, rate: float = 8.0) -> None:
        self.url, self.period = url, 1.0 / rate
        self._client = httpx.Client(timeout=10.0, trust_env=False)
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="load")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="load", daemon=True)
        self._thread.start()

    def _get(self, path: str) -> None:
        try:
            self._client.get(self.url + path)
        except httpx.HTTPError:
            pass

    def _loop(self) -> None:
        paths = ("/api/performance/status", "/health")
        i = 0
        while not self._stop.wait(self.period):
            self._pool.submit(self._get, paths[i % 2])
            i += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()


class CpuHogs:
    """`count` processes that each keep a core busy (`while True: pass`), as other programs on the
    machine would; stopped by PID. RPOPS_TEST_CPU_HOGS overrides the count (0: none)."""

    def __init__(self, count: int | None = None) -> None:
        if count is None:
            count = int(os.environ.get("RPOPS_TEST_CPU_HOGS", "2"))
        self.processes = [
            subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
            for _ in range(count)
        ]

    def stop(self) -> None:
        for process in self.processes:
            stop_pid(process, timeout=5.0)


# --------------------------------------------------------------------------------------------- Prometheus


def prometheus_config(targets_file: Path, rules_file: Path, alertmanager_port: int) -> dict[str, Any]:
    """The production research-platform jobs with file discovery, 1 s intervals and the alerting target."""
    scrape = yaml.safe_load((MONITORING / "prometheus-scrape.yaml").read_text())
    jobs = []
    for job in scrape["scrape_configs"]:
        if not job["job_name"].startswith("research-platform"):
            continue  # the Argo controller's metrics: no controller here
        job = copy.deepcopy(job)
        del job["kubernetes_sd_configs"]
        job["file_sd_configs"] = [{"files": [str(targets_file)], "refresh_interval": "1s"}]
        job["scrape_interval"], job["scrape_timeout"] = "1s", "1s"
        jobs.append(job)
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": jobs,
        "rule_files": [str(rules_file)],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]
        },
    }


def write_test_rules(path: Path, longest_for: str = "1s") -> Path:
    path.write_text(yaml.safe_dump(shortened(load_rules(), longest_for), sort_keys=False))
    return path


def start_prometheus(config: Mapping[str, Any]) -> RunningPrometheus:
    rules = list(config.get("rule_files") or [])
    doc = {k: v for k, v in config.items() if k != "rule_files"}
    return prometheus_fixture.start(doc, rule_files=rules, wait_up=False)


# --------------------------------------------------------------------------------------------- Alertmanager


def alertmanager_config(webhook_url: str, token_file: Path, group_wait: str = "0s") -> dict[str, Any]:
    """manifests/monitoring/alertmanager.yaml with the webhook at `webhook_url` (plain HTTP),
    the test's token file, and no waiting before a new group's first notification."""
    config = yaml.safe_load((MONITORING / "alertmanager.yaml").read_text())
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs") or ():
            hook["url"] = webhook_url
            http = hook.setdefault("http_config", {})
            http.pop("tls_config", None)
            http["authorization"]["credentials_file"] = str(token_file)
    for route in config["route"].get("routes") or ():
        if "group_wait" in route:
            route["group_wait"] = group_wait
    return config


@dataclass
class RunningAlertmanager:
    process: subprocess.Popen[bytes]
    port: int
    workdir: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alerts(self) -> list[dict[str, Any]]:
        body: list[dict[str, Any]] = httpx.get(f"{self.url}/api/v2/alerts", timeout=5, trust_env=False).json()
        return body

    def logs(self) -> str:
        try:
            return (self.workdir / "alertmanager.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self) -> None:
        stop_pid(self.process)
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_alertmanager(
    config: Mapping[str, Any], port: int | None = None, timeout: float = 20.0
) -> RunningAlertmanager:
    binary = _binary(ALERTMANAGER, "prometheus-alertmanager")
    workdir = Path(tempfile.mkdtemp(prefix="rpops-alertmanager-"))
    (workdir / "alertmanager.yml").write_text(yaml.safe_dump(dict(config)))
    port = port or free_port()
    log = open(workdir / "alertmanager.log", "wb")  # noqa: SIM115 - the child writes it
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={workdir / 'alertmanager.yml'}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.external-url=http://127.0.0.1:{port}",
            "--cluster.listen-address=",  # no gossip: the first notification would wait for it
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    am = RunningAlertmanager(process, port, workdir)
    try:
        wait_until(lambda: _ready(am), timeout, f"Alertmanager not ready\n{am.logs()}", 0.1)
    except BaseException:
        am.stop()
        raise
    return am


def _ready(am: RunningAlertmanager) -> bool:
    if am.process.poll() is not None:
        raise RuntimeError(f"Alertmanager exited with {am.process.returncode}\n{am.logs()}")
    try:
        return httpx.get(f"{am.url}/-/ready", timeout=1, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


# ----------------------------------------------------------------------------------- rpops local serve


def local_manifests(
    directory: Path, targets: str, prometheus: str, scale: Mapping[str, str] | None = None
) -> Path:
    """A copy of manifests/argo whose binding points at the local service and Prometheus, and
    whose recovery scans this checkout (LOCAL_SCAN); `scale` overrides arguments of the
    recovery's scale task (e.g. max-replicas 1, to see a remediation that cannot act)."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in MANIFESTS.glob("*.yaml"):
        shutil.copyfile(path, directory / path.name)
    binding_file = directory / f"{alerts_binding.NAME}.yaml"
    doc = yaml.safe_load(binding_file.read_text())
    local = {"targets": json.dumps(targets), "prometheus": json.dumps(prometheus)}
    for p in doc["spec"]["submit"]["arguments"]["parameters"]:
        if p["name"] in local:
            p["valueFrom"]["event"] = local[p["name"]]
    binding_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    recovery_file = directory / f"{recovery.NAME}.yaml"
    doc = yaml.safe_load(recovery_file.read_text())
    (main,) = (t for t in doc["spec"]["templates"] if t["name"] == doc["spec"]["entrypoint"])
    (scan,) = (t for t in main["dag"]["tasks"] if t["name"] == "security-scan")
    for p in scan["arguments"]["parameters"]:
        p["value"] = LOCAL_SCAN.get(p["name"], p["value"])
    for p in doc["spec"]["arguments"]["parameters"]:
        if p["name"] == "settle":
            p["value"] = LOCAL_SETTLE
    (scaling,) = (t for t in main["dag"]["tasks"] if t["name"] == "scale")
    for p in scaling["arguments"]["parameters"]:
        p["value"] = (scale or {}).get(p["name"], p["value"])
    recovery_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    return directory


@dataclass
class RunningServe:
    process: subprocess.Popen[bytes]
    port: int
    token: str
    log_path: Path
    runs_dir: Path
    _client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10.0, trust_env=False))

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def post_event(
        self, payload: Any, discriminator: str = "alertmanager", token: str | None = None, **kw: Any
    ) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if token != "":
            headers["Authorization"] = f"Bearer {token or self.token}"
        headers.update(kw.pop("headers", {}))
        content = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self._client.post(
            f"{self.url}/api/v1/events/argo/{discriminator}", content=content, headers=headers, **kw
        )

    def workflows(self, selector: str = "") -> list[dict[str, Any]]:
        params = {"listOptions.labelSelector": selector} if selector else {}
        response = self._client.get(
            f"{self.url}/api/v1/workflows/argo",
            params=params,
            headers={"Authorization": f"Bearer {self.token}"},
        )
        response.raise_for_status()
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def stop(self) -> None:
        stop_pid(self.process, timeout=15.0)
        self._client.close()


def start_serve(
    manifests: Path,
    workdir: Path,
    env: Mapping[str, str] | None = None,
    extra: tuple[str, ...] = (),
    timeout: float = 30.0,
) -> RunningServe:
    """`python -m rpops.local.server.serve` on a free port (the same code as `rpops local serve`)."""
    workdir.mkdir(parents=True, exist_ok=True)
    token_file, port_file, log_path = workdir / "token", workdir / "port", workdir / "serve.log"
    runs_dir = workdir / "runs"
    log = open(log_path, "wb")  # noqa: SIM115 - the child writes it
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rpops.local.server.serve",
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--token-file",
            str(token_file),
            "--manifests",
            str(manifests),
            "--runs-dir",
            str(runs_dir),
            "--secrets",
            str(workdir / "secrets.yaml"),
            *extra,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
        start_new_session=True,
    )
    log.close()

    def started() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"rpops local serve exited with {process.returncode}\n{log_path.read_text()}")
        return port_file.exists()

    try:
        wait_until(started, timeout, "rpops local serve did not start", 0.05)
    except BaseException:
        stop_pid(process)
        raise
    port = int(port_file.read_text())
    return RunningServe(process, port, token_file.read_text().strip(), log_path, runs_dir)


# --------------------------------------------------------------------------------------------- the stack


@dataclass
class Stack:
    """Prometheus, Alertmanager and `rpops local serve` around the local platform, wired as in
    production (Prometheus -> Alertmanager -> the events API -> the binding)."""

    prometheus: RunningPrometheus
    alertmanager: RunningAlertmanager
    serve: RunningServe
    stops: list[Any]

    def stop(self) -> None:
        for stop in reversed(self.stops):
            stop()


def start_stack(
    root: Path,
    tmp: Path,
    service_url: str,
    discovery_interval: float = 0.25,
    scale: Mapping[str, str] | None = None,
) -> Stack:
    """The whole stack for the platform state under `root` serving at `service_url`; files under `tmp`.

    Prometheus is told Alertmanager's port first (the binding needs Prometheus's URL, and
    Alertmanager needs serve's), then serve starts, then Alertmanager on that port."""
    stops: list[Any] = []
    try:
        discovery = Discovery(root, tmp / "targets.json", interval=discovery_interval)
        stops.append(discovery.stop)
        am_port = free_port()
        rules = write_test_rules(tmp / "rules.yaml")
        prom = start_prometheus(prometheus_config(tmp / "targets.json", rules, am_port))
        stops.append(prom.stop)
        prom.wait_for('up{job=~"research-platform.*"} == 1', count=2, timeout=30)  # both jobs
        manifests = local_manifests(tmp / "manifests", f"{REGION}={service_url}", prom.url, scale)
        serve = start_serve(manifests, tmp / "serve", env={"RPOPS_PLATFORM_DIR": str(root)})
        stops.append(serve.stop)
        hook = f"{serve.url}/api/v1/events/argo/alertmanager"
        am = start_alertmanager(alertmanager_config(hook, tmp / "serve" / "token"), port=am_port)
        stops.append(am.stop)
    except BaseException:
        for stop in reversed(stops):
            stop()
        raise
    return Stack(prom, am, serve, stops)


# --------------------------------------------------------------------------------------------- payloads


def alertmanager_payload(
    alertname: str = "HighCPU",
    labels: Mapping[str, str] | None = None,
    status: str = "firing",
    fingerprint: str = "0123456789abcdef",
    starts_at: str = "2026-01-01T00:00:00.000Z",
) -> dict[str, Any]:
    """A webhook body as Alertmanager 0.25 sends it (version 4), one alert in the group."""
    common = {
        "alertname": alertname,
        "service": SERVICE,
        "region": REGION,
        "remediation": "research-platform-recovery",
        "severity": "warning",
        **(labels or {}),
    }
    return {
        "receiver": "argo-remediation",
        "status": status,
        "alerts": [
            {
                "status": status,
                "labels": dict(common),
                "annotations": {"summary": "test"},
                "startsAt": starts_at,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://127.0.0.1:9090/graph",
                "fingerprint": fingerprint,
            }
        ],
        "groupLabels": {k: common[k] for k in ("alertname", "service", "region") if k in common},
        "commonLabels": common,
        "commonAnnotations": {"summary": "test"},
        "externalURL": "http://127.0.0.1:9093",
        "version": "4",
        "groupKey": '{}/{remediation="research-platform-recovery"}:' + f'{{alertname="{alertname}"}}',
        "truncatedAlerts": 0,
    }
