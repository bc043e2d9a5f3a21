"""The rendered security-scan WorkflowTemplate and the daily CronWorkflow: what they run, with
which arguments, the gate, the gauge, and the schedule (Argo v4 forms)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # `workflows/` is not an installed package
    sys.path.insert(0, str(REPO_ROOT))

from rpops.steps.security.model import SEVERITIES  # noqa: E402

from workflows import daily_security_scan, security_scan  # noqa: E402
from workflows.common import RenderConfig  # noqa: E402
from workflows.render import DEFAULT_OUT_DIR, render_all  # noqa: E402
from workflows.validation import ArgoSchemas, all_problems, load_documents  # noqa: E402

Doc = dict[str, Any]


@pytest.fixture(scope="module")
def docs() -> dict[str, Doc]:
    paths = [DEFAULT_OUT_DIR / f"{name}.yaml" for name in (security_scan.NAME, daily_security_scan.NAME)]
    return {d["metadata"]["name"]: d for d in load_documents(paths)}


def template(doc: Doc, name: str) -> Doc:
    return next(t for t in doc["spec"]["templates"] if t["name"] == name)


def arguments(spec: Doc) -> dict[str, str | None]:
    return {p["name"]: p.get("value") for p in spec["arguments"]["parameters"]}


def test_scan_runs_rpops_security_scan_with_every_argument(docs: dict[str, Doc]) -> None:
    scan = template(docs[security_scan.NAME], "security-scan")
    assert scan["container"]["command"] == ["rpops"]
    assert scan["container"]["args"] == [
        "security-scan",
        "--target", "{{inputs.parameters.target}}",
        "--installed", "{{inputs.parameters.installed}}",
        "--manifests", "{{inputs.parameters.manifests}}",
        "--db", "{{inputs.parameters.db}}",
        "--sync-db", "{{inputs.parameters.sync-db}}",
        "--max-db-age", "{{inputs.parameters.max-db-age}}",
        "--fail-on", "{{inputs.parameters.fail-on}}",
        "--threshold", "{{inputs.parameters.threshold}}",
        "--live", "{{inputs.parameters.live}}",
        "--service", "{{inputs.parameters.service}}",
        "--region", "{{inputs.parameters.region}}",
        "--jobs", "2",
    ]  # fmt: skip
    assert "synchronization" not in scan  # it only reads


def test_scan_defaults_point_into_the_step_image(docs: dict[str, Doc]) -> None:
    spec = docs[security_scan.NAME]["spec"]
    assert arguments(spec) == {
        "target": "/opt/rpops/src",
        "installed": "/opt/rpops",
        "manifests": "",
        "db": "/opt/rpops/advisories",
        "sync-db": "false",
        "max-db-age": "7d",
        "fail-on": "critical",
        "threshold": "1",
        "live": "false",
        "service": "",
        "region": "",
    }
    enums = {p["name"]: p.get("enum") for p in spec["arguments"]["parameters"] if p.get("enum")}
    assert enums == {
        "fail-on": list(SEVERITIES),  # the CLI's choices, in its order
        "live": ["false", "true"],
        "sync-db": ["false", "true"],
        "region": ["", "us-east", "eu-west", "asia-pacific"],
    }
    dockerfile = (REPO_ROOT / "images" / "steps" / "Dockerfile").read_text()
    for path in ("/opt/rpops/src", "/opt/rpops/advisories"):
        assert f" {path}\n" in dockerfile, f"the step image does not carry {path}"


def test_scan_outputs_have_defaults_and_the_entrypoint_forwards_them(docs: dict[str, Doc]) -> None:
    doc = docs[security_scan.NAME]
    outputs = {p["name"]: p["valueFrom"] for p in template(doc, "security-scan")["outputs"]["parameters"]}
    assert outputs == {
        name: {"default": default, "path": f"/tmp/outputs/{name}"}
        for name, default in (
            ("critical", "0"),
            ("high", "0"),
            ("total", "0"),
            ("fixes", "0"),
            ("status", "error"),
        )
    }
    main = template(doc, "main")
    assert [t["template"] for t in main["dag"]["tasks"]] == ["security-scan"]
    assert "continueOn" not in main["dag"]["tasks"][0]  # the scan's exit code is the alert
    forwarded = {p["name"]: p["valueFrom"]["default"] for p in main["outputs"]["parameters"]}
    assert forwarded == {k: v["default"] for k, v in outputs.items()}


def test_gate_is_not_retried_but_unreachable_data_is(docs: dict[str, Doc]) -> None:
    scan = template(docs[security_scan.NAME], "security-scan")
    retry = scan["retryStrategy"]
    assert retry["retryPolicy"] == "Always" and retry["limit"] == "2"
    assert retry["expression"] == (
        'lastRetry.status == "Error" || (lastRetry.exitCode != "1" && lastRetry.exitCode != "2")'
    )
    assert scan["activeDeadlineSeconds"] == "600"


def test_critical_gauge_is_set_from_completed_scans_only(docs: dict[str, Doc]) -> None:
    (metric,) = template(docs[security_scan.NAME], "security-scan")["metrics"]["prometheus"]
    assert metric["name"] == "research_platform_security_vulnerabilities_critical"
    assert metric["gauge"] == {"realtime": False, "value": "{{outputs.parameters.critical}}"}
    assert metric["when"] == "{{outputs.parameters.status}} != error"
    assert metric["labels"] == [
        {"key": "service", "value": "{{inputs.parameters.service}}"},
        {"key": "region", "value": "{{inputs.parameters.region}}"},
    ]


def test_scan_files_are_artifacts_when_the_cluster_has_a_repository() -> None:
    rendered = {
        r.document["metadata"]["name"]: r.document
        for r in render_all(RenderConfig(report_artifact=True))
        if "metadata" in r.document  # not the kustomization
    }
    scan = template(rendered[security_scan.NAME], "security-scan")
    assert {a["name"]: a["path"] for a in scan["outputs"]["artifacts"]} == {
        "report": "/tmp/outputs/report.json",
        "fix-patch": "/tmp/outputs/fix.patch",
        "sarif": "/tmp/outputs/results.sarif",
        "summary": "/tmp/outputs/summary.md",
    }
    assert all(a["optional"] and a["archive"] == {"none": {}} for a in scan["outputs"]["artifacts"])
    assert all_problems([rendered[security_scan.NAME], rendered[daily_security_scan.NAME]]) == []


def test_daily_cron_schedule_in_argo_v4_form(docs: dict[str, Doc]) -> None:
    cron = docs[daily_security_scan.NAME]
    assert cron["kind"] == "CronWorkflow"
    spec = cron["spec"]
    assert spec["schedules"] == ["0 3 * * *"] and "schedule" not in spec
    assert spec["timezone"] == "UTC"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] == 3600
    assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (3, 5)
    assert ArgoSchemas().strict_problems(cron) == []


def test_daily_cron_submits_the_template_with_the_security_configuration(docs: dict[str, Doc]) -> None:
    workflow = docs[daily_security_scan.NAME]["spec"]["workflowSpec"]
    assert workflow["workflowTemplateRef"] == {"name": security_scan.NAME}
    assert workflow["serviceAccountName"] == "rpops-steps"
    assert "templates" not in workflow and "entrypoint" not in workflow  # all in the template
    given = arguments(workflow)
    defaults = arguments(docs[security_scan.NAME]["spec"])
    assert set(given) == set(defaults)  # nothing the template does not declare
    changed = {k: v for k, v in given.items() if v != defaults[k]}
    assert changed == {
        "live": "true",
        "service": "research-platform",
        # Today's advisories, downloaded into a directory the step can write.
        "sync-db": "true",
        "db": "/tmp/rpops-advisories",
    }
    # Alert on one critical finding.
    assert (given["fail-on"], given["threshold"]) == ("critical", "1")
