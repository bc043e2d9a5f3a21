"""Every rendered template in manifests/argo/ runs end to end, unchanged, under `rpops local`,
against the local platform (real workload processes behind the proxy) and, where a template
reads history, a real Prometheus.

A template added without an entry in RUNS fails `test_every_template_has_a_run`, so nothing
rendered goes untested here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from rpops.local import RunResult, load_documents, submit
from rpops.platform.local.driver import LocalDriver

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
import prometheus_fixture  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests" / "argo"
SERVICE = "research-platform"
SAMPLE_PROJECT = ROOT / "tests" / "security" / "data" / "sample-project"
ADVISORIES = ROOT / "tests" / "data" / "advisories"  # an old snapshot: max-db-age 0 turns the age check off


@dataclass
class Env:
    url: str
    driver: LocalDriver
    prometheus: str
    tmp: Path


@dataclass(frozen=True)
class Case:
    parameters: Callable[[Env], dict[str, str]]
    check: Callable[[dict[str, str], Env], None]
    # A gate that fails its run (the security scan's alert) expects "Failed" and checks the nodes.
    phase: str = "Succeeded"
    check_run: Callable[[RunResult, Env], None] | None = None


def _rendered_templates() -> list[str]:
    names = []
    for path in sorted(MANIFESTS.glob("research-platform-*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") in ("WorkflowTemplate", "CronWorkflow"):
                names.append(doc["metadata"]["name"])
    return names


def _health(out: dict[str, str], env: Env) -> None:
    assert out["status"] == "healthy", out


def _validate(out: dict[str, str], env: Env) -> None:
    assert out["passed"] == "true", out


def _scale(out: dict[str, str], env: Env) -> None:
    assert out["decision"] in ("hold", "scale-up", "scale-down"), out
    assert int(out["replicas"]) == env.driver.workload(SERVICE, "v1").replicas


def _optimize(out: dict[str, str], env: Env) -> None:
    # Seconds of history are below the production minimum: the step says so and changes nothing.
    assert out["applied"] == "false", out
    assert "not enough" in out["reason"], out


def _scan_local(**overrides: str) -> dict[str, str]:
    """The scan's arguments with this machine's paths instead of the step image's."""
    return {
        "target": str(ROOT / "steps"),  # the image's /opt/rpops/src holds the same source
        "installed": sys.prefix,  # the image's /opt/rpops: this venv
        "manifests": str(ROOT / "manifests" / "platform"),
        "db": str(ADVISORIES),
        "sync-db": "false",  # no network here: the vendored snapshot
        "max-db-age": "0",
        **overrides,
    }


def _scan_alert(out: dict[str, str], env: Env) -> None:
    # Argo drops a DAG's outputs when the DAG fails: the counts are on the scan's node.
    assert out == {}, out


def _scan_alert_run(result: RunResult, env: Env) -> None:
    """The sample project's critical findings fail the gate: the scan node fails with exit 1,
    keeps its outputs, says why on stdout, and the critical gauge carries the count."""
    node = result.nodes["security-scan(0)"]
    assert (node.phase, node.message, node.exit_code) == ("Failed", "Error (exit code 1)", "1")
    assert result.nodes["security-scan"].phase == "Failed"  # exit 1 is a verdict: not retried
    critical = int(node.outputs["critical"])
    assert critical >= 1 and node.outputs["status"] == "fail" and int(node.outputs["fixes"]) >= 1
    assert int(node.outputs["total"]) >= int(node.outputs["high"]) + critical
    assert node.result is not None
    assert re.match(rf"security-scan FAIL: {critical} critical, {node.outputs['high']} high", node.result)
    assert f"gate: {critical} at or above critical (threshold 1)" in node.result
    (gauge,) = result.status["status"]["metrics"]
    assert gauge["name"] == "research_platform_security_vulnerabilities_critical"
    assert (gauge["value"], gauge["labels"]) == (critical, {"service": SERVICE, "region": "us-east"})


def _daily_scan(out: dict[str, str], env: Env) -> None:
    # This repository's own code, environment and platform manifests pass the daily gate.
    assert out["status"] == "pass" and out["critical"] == "0", out
    assert int(out["total"]) >= int(out["high"]) >= 0


def _daily_scan_run(result: RunResult, env: Env) -> None:
    (gauge,) = result.status["status"]["metrics"]
    assert (gauge["value"], gauge["labels"]) == (0, {"service": SERVICE, "region": ""})


def _bluegreen(out: dict[str, str], env: Env) -> None:
    assert (out["phase"], out["result"], out["rolled_back"]) == ("complete", "promoted", "false"), out
    assert (out["active_version"], out["previous_version"]) == ("v2", "v1"), out
    assert env.driver.routes(SERVICE).active == "v2"
    # Back to v1 (kept at 0 replicas for this), so the other templates find the platform as it was.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "rpops",
            "bluegreen",
            "rollback",
            "--service",
            SERVICE,
            "--reason",
            "restore",
        ],
        check=True,
        capture_output=True,
    )
    assert env.driver.routes(SERVICE).active == "v1"


def _recovery(out: dict[str, str], env: Env) -> None:
    assert (out["initial-status"], out["status"]) == ("healthy", "healthy"), out


RUNS: dict[str, Case] = {
    "research-platform-blue-green": Case(
        lambda e: {
            "service": SERVICE,
            "version": "v2",
            "verify-seconds": "1",
            "scale-down-delay-seconds": "0",
        },
        _bluegreen,
    ),
    "research-platform-recovery": Case(
        lambda e: {
            "targets": f"us-east={e.url}",
            "service": SERVICE,
            "prometheus": e.prometheus,
            "region": "us-east",
        },
        _recovery,
    ),
    "research-platform-health-check": Case(
        lambda e: {"targets": f"us-east={e.url}", "region": "us-east"}, _health
    ),
    "research-platform-validate": Case(lambda e: {"url": e.url}, _validate),
    "research-platform-scale": Case(lambda e: {"service": SERVICE, "dry-run": "true"}, _scale),
    "research-platform-optimize": Case(lambda e: {"service": SERVICE, "prometheus": e.prometheus}, _optimize),
    "research-platform-security-scan": Case(
        lambda e: {
            "target": str(SAMPLE_PROJECT),
            "installed": "",
            "manifests": str(SAMPLE_PROJECT / "manifests"),
            "db": str(ADVISORIES),
            "max-db-age": "0",
            "service": SERVICE,
            "region": "us-east",
        },
        _scan_alert,
        phase="Failed",
        check_run=_scan_alert_run,
    ),
    # The CronWorkflow's workflowSpec, run once; live objects need a cluster (see below).
    "research-platform-daily-security-scan": Case(
        lambda e: _scan_local(live="false"), _daily_scan, check_run=_daily_scan_run
    ),
}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("rendered")
    mp = pytest.MonkeyPatch()
    mp.setenv("RPOPS_PLATFORM_DIR", str(tmp / "platform"))
    driver = LocalDriver(root=tmp / "platform")
    status = driver.up(SERVICE, "v1", replicas=1, port=0)
    targets = [inst.url.removeprefix("http://") for v in status.versions for inst in v.instances]
    prom = prometheus_fixture.start(targets)
    try:
        yield Env(url=status.url, driver=driver, prometheus=prom.url, tmp=tmp)
    finally:
        prom.stop()
        driver.down()
        mp.undo()


def test_every_template_has_a_run() -> None:
    rendered = _rendered_templates()
    assert rendered, "no rendered templates found"
    missing = sorted(set(rendered) - set(RUNS))
    assert not missing, f"add a run for {missing} to RUNS in {__file__}"


@pytest.mark.parametrize("template", sorted(RUNS))
def test_rendered_template_runs(template: str, env: Env) -> None:
    assert template in _rendered_templates(), f"{template} is in RUNS but not rendered"
    catalog = load_documents([MANIFESTS])
    case = RUNS[template]
    result = submit(catalog, template, case.parameters(env), env.tmp / "runs")
    failed = {n.name: n.message for n in result.nodes.values() if n.phase not in ("Succeeded", "Skipped")}
    assert result.phase == case.phase, (result.message, failed)
    case.check(result.outputs, env)
    if case.check_run is not None:
        case.check_run(result, env)


def test_daily_security_scan_unchanged_refuses_live_objects_on_the_local_platform(env: Env) -> None:
    """The cron checks live objects; the local platform has none, and says so (exit 2, no retry)."""
    catalog = load_documents([MANIFESTS])
    result = submit(catalog, "research-platform-daily-security-scan", _scan_local(), env.tmp / "runs")
    assert result.phase == "Failed"
    node = result.nodes["security-scan(0)"]
    assert (node.message, node.outputs["status"]) == ("Error (exit code 2)", "error")  # the default
    assert "security-scan(1)" not in result.nodes
    logs = "".join(p.read_text() for p in (result.run_dir / "logs").glob("*.log"))
    assert "--live: the local platform runs the workload as processes" in logs
    assert not result.status["status"].get("metrics")  # no count from a scan that did not complete
