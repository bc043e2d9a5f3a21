"""Every rendered template in manifests/argo/ runs end to end, unchanged, under `rpops local`,
against the local platform (real workload processes behind the proxy) and, where a template
reads history, a real Prometheus.

A template added without an entry in RUNS fails `test_every_template_has_a_run`, so nothing
rendered goes untested here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from rpops.local import load_documents, submit
from rpops.platform.local import LocalDriver

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
import prometheus_fixture  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests" / "argo"
SERVICE = "research-platform"


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


RUNS: dict[str, Case] = {
    "research-platform-health-check": Case(
        lambda e: {"targets": f"us-east={e.url}", "region": "us-east"}, _health
    ),
    "research-platform-validate": Case(lambda e: {"url": e.url}, _validate),
    "research-platform-scale": Case(lambda e: {"service": SERVICE, "dry-run": "true"}, _scale),
    "research-platform-optimize": Case(lambda e: {"service": SERVICE, "prometheus": e.prometheus}, _optimize),
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
    assert result.phase == "Succeeded", (result.message, failed)
    case.check(result.outputs, env)
