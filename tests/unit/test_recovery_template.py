"""research-platform-recovery, as rendered: the health check picks exactly one remediation, each
a templateRef to the step's own template, and a second check gives the workflow's outputs."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from workflows import health_check, optimize, recovery, scale, security_scan
from workflows.render import DEFAULT_OUT_DIR

Doc = dict[str, Any]


@pytest.fixture(scope="module")
def spec() -> Doc:
    doc: Doc = yaml.safe_load((DEFAULT_OUT_DIR / f"{recovery.NAME}.yaml").read_text())
    return doc["spec"]


@pytest.fixture(scope="module")
def tasks(spec: Doc) -> dict[str, Doc]:
    (main,) = [t for t in spec["templates"] if t["name"] == spec["entrypoint"]]
    return {t["name"]: t for t in main["dag"]["tasks"]}


def args(task: Doc) -> dict[str, str]:
    return {p["name"]: p["value"] for p in task["arguments"]["parameters"]}


def test_one_remediation_per_status_each_by_template_ref(tasks: dict[str, Doc]) -> None:
    status = "{{tasks.check-health.outputs.parameters.status}}"
    assert tasks["check-health"]["templateRef"] == {"name": health_check.NAME, "template": "check-health"}
    expected = {
        "security-scan": (security_scan.NAME, "unhealthy"),
        "optimize": (optimize.NAME, "degraded"),
        "scale": (scale.NAME, "overloaded"),
    }
    for name, (template, when) in expected.items():
        task = tasks[name]
        assert task["templateRef"]["name"] == template, name
        assert task["when"] == f"{status} == {when}" and task["depends"] == "check-health", name
    assert tasks["verify-health"]["templateRef"]["name"] == health_check.NAME
    assert tasks["verify-health"]["depends"] == "security-scan && optimize && scale"


def test_the_scan_reads_todays_advisories_and_the_live_service(tasks: dict[str, Doc]) -> None:
    scan = args(tasks["security-scan"])
    assert {k: scan[k] for k in ("db", "sync-db", "live")} == {
        "db": "/tmp/rpops-advisories",
        "sync-db": "true",
        "live": "true",
    }
    assert scan["service"] == "{{workflow.parameters.service}}"


def test_remediations_act_and_runs_queue_per_service(spec: Doc, tasks: dict[str, Doc]) -> None:
    assert args(tasks["optimize"])["apply"] == "true"
    assert args(tasks["scale"])["dry-run"] == "false"
    assert spec["synchronization"]["mutexes"] == [
        {"name": "research-platform-recovery-{{workflow.parameters.service}}"}
    ]
    params = {p["name"]: p.get("value") for p in spec["arguments"]["parameters"]}
    assert params["alertname"] == "" and params["alert-labels"] == "{}"


def test_every_step_reads_the_alerts_own_evidence(tasks: dict[str, Doc]) -> None:
    """The alert reaches check-health, scale and verify-health as arguments (never a `when`):
    the first check reads its onset, the second waits for its latest evaluation to clear."""
    alert = {
        "alert": "{{workflow.parameters.alertname}}",
        "alert-labels": "{{workflow.parameters.alert-labels}}",
    }
    for name in ("check-health", "scale", "verify-health"):
        assert {k: args(tasks[name])[k] for k in alert} == alert, name
    assert args(tasks["check-health"])["alert-reading"] == "onset"
    assert args(tasks["verify-health"])["alert-reading"] == "latest"
    assert args(tasks["verify-health"])["alert-settle"] == "{{workflow.parameters.settle}}"
    for name in ("security-scan", "optimize"):
        assert not any("alert" in v for v in args(tasks[name]).values()), name
    for task in tasks.values():
        assert "alert" not in task.get("when", ""), task["name"]
