"""A real Prometheus (Debian's `/usr/bin/prometheus`) on 127.0.0.1 for tests, with a tmp dir.

    prom = start(["127.0.0.1:41234"])                 # scrape these targets every second
    prom = start({"scrape_configs": [...]})           # or a whole prometheus.yml as a dict
    prom = start(targets, backfill=openmetrics_text)  # history written with promtool first
    prom.query("up")                                  # the API's `data`, as a dict
    prom.stop()                                       # by PID; also at interpreter exit

It waits for readiness and, when it scrapes targets, for `up == 1` on each of them (the first
scrape comes about 5 s after start; readiness alone is not enough). Missing binaries raise
RuntimeError naming the Debian package: tests fail, never skip, without them.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

PROMETHEUS = os.environ.get("RPOPS_TEST_PROMETHEUS", "/usr/bin/prometheus")
PROMTOOL = os.environ.get("RPOPS_TEST_PROMTOOL", "/usr/bin/promtool")
_running: weakref.WeakSet[RunningPrometheus] = weakref.WeakSet()


def _binary(path: str) -> str:
    found = path if os.access(path, os.X_OK) else shutil.which(Path(path).name)
    if not found:
        raise RuntimeError(
            f"{path} not found: install Debian's prometheus package "
            "(apt-get install -y --no-install-recommends prometheus)"
        )
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RunningPrometheus:
    def __init__(self, process: subprocess.Popen[bytes], port: int, workdir: Path, targets: int) -> None:
        self.process = process
        self.pid = process.pid
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.workdir = workdir
        self.targets = targets
        self._client = httpx.Client(timeout=10.0, trust_env=False)

    def api(self, path: str, **params: Any) -> dict[str, Any]:
        response = self._client.get(f"{self.url}{path}", params=params)
        body: dict[str, Any] = response.json()
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus {path} {params}: {body}")
        data: dict[str, Any] = body["data"]
        return data

    def query(self, query: str, **params: Any) -> dict[str, Any]:
        return self.api("/api/v1/query", query=query, **params)

    def wait_for(self, query: str, count: int = 1, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Until an instant query returns at least `count` samples."""
        deadline = time.monotonic() + timeout
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                result = self.query(query)["result"]
            except (httpx.HTTPError, RuntimeError, ValueError):
                result = []
            if len(result) >= count:
                return result
            time.sleep(0.2)
        raise TimeoutError(
            f"Prometheus: {query!r} returned {len(result)} of {count} samples in {timeout:g}s\n{self.logs()}"
        )

    def _check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"Prometheus exited with {self.process.returncode}\n{self.logs()}")

    def logs(self) -> str:
        try:
            return (self.workdir / "prometheus.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait(timeout=timeout)
            except ProcessLookupError:
                pass
        self._client.close()
        shutil.rmtree(self.workdir, ignore_errors=True)
        _running.discard(self)

    def __enter__(self) -> RunningPrometheus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def config_for(
    targets: Sequence[str],
    *,
    job: str = "workload",
    interval: str = "1s",
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    static: dict[str, Any] = {"targets": list(targets)}
    if labels:
        static["labels"] = dict(labels)
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval, "scrape_timeout": interval},
        "scrape_configs": [{"job_name": job, "static_configs": [static]}],
    }


def backfill(openmetrics: str, data_dir: Path) -> None:
    """Write history into a TSDB directory with `promtool tsdb create-blocks-from openmetrics`."""
    source = data_dir.parent / "backfill.om"
    source.write_text(openmetrics if openmetrics.rstrip().endswith("# EOF") else openmetrics + "# EOF\n")
    done = subprocess.run(
        [_binary(PROMTOOL), "tsdb", "create-blocks-from", "openmetrics", str(source), str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"promtool backfill failed ({done.returncode}): {done.stderr[-2000:]}")


def start(
    config: Mapping[str, Any] | Sequence[str] = (),
    rule_files: Sequence[str | Path] | None = None,
    *,
    backfill_openmetrics: str | None = None,
    job: str = "workload",
    interval: str = "1s",
    labels: Mapping[str, str] | None = None,
    wait_up: bool = True,
    timeout: float = 30.0,
) -> RunningPrometheus:
    """Start Prometheus on a free 127.0.0.1 port; see the module docstring."""
    binary = _binary(PROMETHEUS)
    workdir = Path(tempfile.mkdtemp(prefix="rpops-prometheus-"))
    data_dir = workdir / "data"
    data_dir.mkdir()
    if isinstance(config, Mapping):
        doc = dict(config)
        targets = sum(
            len(sc.get("targets", []))
            for job_ in doc.get("scrape_configs", [])
            for sc in job_.get("static_configs", [])
        )
    else:
        doc = config_for(list(config), job=job, interval=interval, labels=labels)
        targets = len(config)
    if rule_files:
        doc["rule_files"] = [str(p) for p in rule_files]
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(doc))
    if backfill_openmetrics:
        backfill(backfill_openmetrics, data_dir)
    for _attempt in range(3):
        port = free_port()
        log = open(workdir / "prometheus.log", "wb")  # noqa: SIM115 - the child writes it
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--web.listen-address=127.0.0.1:{port}",
                f"--storage.tsdb.path={data_dir}",
                "--storage.tsdb.retention.time=30d",
                "--rules.alert.resend-delay=1s",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        running = RunningPrometheus(process, port, workdir, targets)
        _running.add(running)
        try:
            _wait_ready(running, timeout)
        except RuntimeError:
            if "address already in use" in running.logs():
                running.process.wait(timeout=5)
                _running.discard(running)
                continue
            running.stop()
            raise
        except BaseException:
            running.stop()
            raise
        if wait_up and targets:
            try:
                running.wait_for("up == 1", count=targets, timeout=timeout)
            except BaseException:
                running.stop()
                raise
        return running
    raise RuntimeError("Prometheus could not bind a free port in 3 attempts")


def _wait_ready(running: RunningPrometheus, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running._check_alive()
        try:
            if running._client.get(f"{running.url}/-/ready").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"Prometheus not ready in {timeout:g}s\n{running.logs()}")


@atexit.register
def _stop_all() -> None:
    for running in list(_running):
        running.stop()
