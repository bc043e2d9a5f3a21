"""Rendered Argo manifests: golden files, Argo v4.1.2 schemas, references and conventions."""

from __future__ import annotations

import copy
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # `workflows/` is not an installed package
    sys.path.insert(0, str(REPO_ROOT))

from hera.workflows import Container  # noqa: E402
from rpops.core.errors import UsageError  # noqa: E402
from rpops.core.settings import REGIONS, setting  # noqa: E402
from rpops.core.step import Output as StepOutput  # noqa: E402
from rpops.core.step import Step  # noqa: E402

from workflows import (  # noqa: E402
    alerts_binding,
    bluegreen,
    daily_security_scan,
    health_check,
    optimize,
    recovery,
    scale,
    security_scan,
    template_modules,
    validate,
)
from workflows.common import (  # noqa: E402
    DEFAULT_IMAGE,
    RenderConfig,
    StepSpec,
    entry_dag,
    gate_retry,
    service_mutex,
    step_container,
    workflow_template,
)
from workflows.render import (  # noqa: E402
    DEFAULT_OUT_DIR,
    MARKER,
    differences,
    main,
    render_all,
    render_files,
    write,
)
from workflows.validation import (  # noqa: E402
    ArgoSchemas,
    Problem,
    all_problems,
    convention_problems,
    load_documents,
    reference_problems,
)

Doc = dict[str, Any]


@pytest.fixture(scope="session")
def schemas() -> ArgoSchemas:
    return ArgoSchemas()


@pytest.fixture(scope="module")
def docs() -> list[Doc]:
    """The committed manifests, as `kubectl apply` would read them."""
    return load_documents(sorted(DEFAULT_OUT_DIR.glob("*.yaml")))


def by_name(docs: list[Doc], name: str) -> Doc:
    return next(d for d in docs if d["metadata"]["name"] == name)


def template(doc: Doc, name: str) -> Doc:
    return next(t for t in doc["spec"]["templates"] if t["name"] == name)


def messages(problems: list[Problem]) -> str:
    return "\n".join(str(p) for p in problems)


# --------------------------------------------------------------------------- golden files and rendering


def test_committed_manifests_equal_a_fresh_render() -> None:
    diff = differences(DEFAULT_OUT_DIR, render_files(RenderConfig()))
    assert diff == "", f"manifests/argo is stale; run `make render`:\n{diff}"


def test_every_registered_module_is_committed_and_in_the_kustomization(docs: list[Doc]) -> None:
    assert len(docs) == len(template_modules())
    names = {
        health_check.NAME,
        validate.NAME,
        scale.NAME,
        optimize.NAME,
        recovery.NAME,
        alerts_binding.NAME,
        bluegreen.NAME,
        security_scan.NAME,
        daily_security_scan.NAME,
    }
    assert {d["metadata"]["name"] for d in docs} == names
    kustomization = yaml.safe_load((DEFAULT_OUT_DIR / "kustomization.yaml").read_text())
    assert kustomization["resources"] == ["rbac.yaml", *sorted(f"{d['metadata']['name']}.yaml" for d in docs)]


def test_region_enum_matches_the_overlays() -> None:
    overlays = REPO_ROOT / "manifests" / "overlays"
    regions = {d.name for d in overlays.iterdir() if (d / "kustomization.yaml").is_file()}
    assert set(REGIONS) == regions
    assert health_check.REGION.enum == ("", *REGIONS)


def test_render_is_deterministic_and_headed() -> None:
    first, second = render_all(RenderConfig()), render_all(RenderConfig())
    assert [(r.filename, r.text) for r in first] == [(r.filename, r.text) for r in second]
    for r in first:
        assert r.text.startswith(MARKER)


def test_check_mode_fails_with_a_diff_then_write_repairs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rendered = render_files(RenderConfig())
    write(tmp_path, rendered)
    assert main(["--check", "--out-dir", str(tmp_path)]) == 0

    target = tmp_path / f"{health_check.NAME}.yaml"
    target.write_text(target.read_text().replace("limit: '2'", "limit: '9'"))
    stale = tmp_path / "research-platform-gone.yaml"
    stale.write_text(f"{MARKER} from workflows/gone.py.\n")
    hand_written = tmp_path / "notes.yaml"
    hand_written.write_text("kept: true\n")
    capsys.readouterr()

    assert main(["--check", "--out-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert any(line.startswith("-") and line.strip("- ") == "limit: '9'" for line in lines)
    assert any(line.startswith("+") and line.strip("+ ") == "limit: '2'" for line in lines)
    assert "research-platform-gone.yaml: generated file that no module renders any more" in out

    assert main(["--out-dir", str(tmp_path)]) == 0
    assert not stale.exists() and hand_written.exists()
    assert differences(tmp_path, rendered) == ""


def test_render_cli_check_on_committed_files_exits_0() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "workflows.render", "--check"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_render_cli_refuses_a_bad_env_value(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "workflows.render", "--out-dir", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "RPOPS_REPORT_ARTIFACT": "maybe"},
    )
    assert proc.returncode == 2
    assert "RPOPS_REPORT_ARTIFACT" in proc.stderr and "1/true" in proc.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_render_config_from_env() -> None:
    assert RenderConfig.from_env({}) == RenderConfig(image=DEFAULT_IMAGE, report_artifact=False)
    cfg = RenderConfig.from_env({"RPOPS_IMAGE": "registry.local/rpops:dev", "RPOPS_REPORT_ARTIFACT": "true"})
    assert cfg == RenderConfig(image="registry.local/rpops:dev", report_artifact=True)
    with pytest.raises(UsageError, match="RPOPS_IMAGE"):
        RenderConfig.from_env({"RPOPS_IMAGE": "two words"})


def test_image_is_configurable_at_render_time() -> None:
    rendered = render_all(RenderConfig(image="registry.local/rpops:dev"))
    doc = next(r.document for r in rendered if r.filename == f"{validate.NAME}.yaml")
    assert template(doc, "validate")["container"]["image"] == "registry.local/rpops:dev"
    assert DEFAULT_IMAGE.startswith("ghcr.io/research-platform/rpops-steps:")


# --------------------------------------------------------------------------- Argo schemas


def test_documents_validate_against_argo_schema_json(docs: list[Doc], schemas: ArgoSchemas) -> None:
    for doc in docs:
        assert schemas.schema_problems(doc) == [], messages(schemas.schema_problems(doc))


def test_documents_validate_against_strict_crds(docs: list[Doc], schemas: ArgoSchemas) -> None:
    for doc in docs:
        assert schemas.strict_problems(doc) == [], messages(schemas.strict_problems(doc))


def test_report_artifact_variant_validates_too(schemas: ArgoSchemas) -> None:
    rendered = [r.document for r in render_all(RenderConfig(report_artifact=True))]
    check = template(by_name(rendered, health_check.NAME), "check-health")
    assert check["outputs"]["artifacts"] == [
        {"name": "report", "optional": True, "path": "/tmp/outputs/report.json", "archive": {"none": {}}}
    ]
    assert all_problems(rendered, schemas) == []


def test_strict_check_rejects_a_misspelt_field_that_schema_json_lets_through(
    docs: list[Doc], schemas: ArgoSchemas
) -> None:
    doc = copy.deepcopy(by_name(docs, health_check.NAME))
    check = template(doc, "check-health")
    check["retyStrategy"] = check.pop("retryStrategy")
    assert schemas.schema_problems(doc) == []  # why the strict check exists
    problems = schemas.strict_problems(doc)
    assert len(problems) == 1 and "'retyStrategy' was unexpected" in problems[0].message


def test_strict_check_rejects_the_v3_singular_mutex(docs: list[Doc], schemas: ArgoSchemas) -> None:
    doc = copy.deepcopy(by_name(docs, validate.NAME))
    template(doc, "validate")["synchronization"] = {"mutex": {"name": "research-platform-api"}}
    assert "'mutex' was unexpected" in messages(schemas.strict_problems(doc))
    template(doc, "validate")["synchronization"] = {"mutexes": [{"name": "research-platform-api"}]}
    assert schemas.strict_problems(doc) == []


def _cron(**spec: Any) -> Doc:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "CronWorkflow",
        "metadata": {
            "name": "research-platform-daily",
            "annotations": {"workflows.argoproj.io/description": "Daily health check."},
        },
        "spec": {
            **spec,
            "workflowSpec": {"workflowTemplateRef": {"name": health_check.NAME}},
        },
    }


def test_strict_check_rejects_the_v3_cron_schedule(docs: list[Doc], schemas: ArgoSchemas) -> None:
    good = _cron(schedules=["0 6 * * *"])
    assert schemas.strict_problems(good) == [] and schemas.schema_problems(good) == []
    assert reference_problems([*docs, good]) == [] and convention_problems([good]) == []
    bad = _cron(schedule="0 6 * * *")
    assert "'schedule' was unexpected" in messages(schemas.strict_problems(bad))
    assert "schedules" in messages(convention_problems([bad]))


def test_a_kind_without_a_vendored_crd_is_refused_not_skipped(schemas: ArgoSchemas) -> None:
    doc = {"apiVersion": "argoproj.io/v1alpha1", "kind": "ClusterWorkflowTemplate", "metadata": {"name": "x"}}
    assert "no vendored schema" in messages(schemas.strict_problems(doc))
    assert "no vendored schema" in messages(schemas.schema_problems(doc))


# --------------------------------------------------------------------------- references and conventions


def test_rendered_set_has_no_reference_or_convention_problems(docs: list[Doc]) -> None:
    assert reference_problems(docs) == [], messages(reference_problems(docs))
    assert convention_problems(docs) == [], messages(convention_problems(docs))


def _caller(task: Doc) -> Doc:
    """A WorkflowTemplate calling other templates the way later modules will."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {
            "name": "research-platform-caller",
            "annotations": {"workflows.argoproj.io/description": "Calls check-health."},
        },
        "spec": {
            "entrypoint": "main",
            "templates": [
                {
                    "name": "main",
                    "metadata": {"annotations": {"workflows.argoproj.io/description": "d"}},
                    "dag": {"tasks": [task]},
                }
            ],
        },
    }


HEALTH_REF = {"name": health_check.NAME, "template": "check-health"}
HEALTH_ARGS = {
    "parameters": [
        {"name": n, "value": "x"}
        for n in (
            "targets", "samples", "timeout", "prometheus", "region",
            "alert", "alert-labels", "alert-reading", "alert-settle",
        )
    ]
}


def test_template_ref_across_documents_resolves(docs: list[Doc]) -> None:
    caller = _caller({"name": "health", "templateRef": HEALTH_REF, "arguments": HEALTH_ARGS})
    assert reference_problems([*docs, caller]) == []


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        (
            {"name": "h", "templateRef": {**HEALTH_REF, "template": "check-helth"}, "arguments": HEALTH_ARGS},
            "templateRef 'research-platform-health-check'/'check-helth' does not exist",
        ),
        (
            {
                "name": "h",
                "templateRef": {**HEALTH_REF, "name": "research-platform-nope"},
                "arguments": HEALTH_ARGS,
            },
            "does not exist",
        ),
        ({"name": "h", "template": "missing"}, "template 'missing' does not exist in this document"),
        (
            {
                "name": "h",
                "templateRef": HEALTH_REF,
                "arguments": {"parameters": [*HEALTH_ARGS["parameters"], {"name": "sampels", "value": "3"}]},
            },
            "argument 'sampels' is not an input",
        ),
        (
            {
                "name": "h",
                "templateRef": HEALTH_REF,
                "arguments": {"parameters": HEALTH_ARGS["parameters"][1:]},
            },
            "required input 'targets'",
        ),
        (
            {"name": "h", "templateRef": HEALTH_REF, "arguments": HEALTH_ARGS, "depends": "build.Succeeded"},
            "depends names 'build'",
        ),
        (
            {
                "name": "h",
                "templateRef": HEALTH_REF,
                "arguments": HEALTH_ARGS,
                "when": "{{tasks.h.outputs.parameters.p99}} > 1",
            },
            "has no output parameter 'p99'",
        ),
        (
            {
                "name": "h",
                "templateRef": HEALTH_REF,
                "arguments": HEALTH_ARGS,
                "when": "{{tasks.other.status}} == Failed",
            },
            "names tasks 'other'",
        ),
    ],
)
def test_reference_check_catches(docs: list[Doc], task: Doc, expected: str) -> None:
    problems = reference_problems([*docs, _caller(task)])
    assert expected in messages(problems)
    assert all(p.document == "WorkflowTemplate/research-platform-caller" for p in problems)


def _mutate(docs: list[Doc], name: str, change: Any) -> list[Doc]:
    changed = copy.deepcopy(docs)
    change(by_name(changed, name))
    return changed


def _set(path: list[Any], value: Any) -> Any:
    """A change at `path`: from the document root ("spec", "metadata") or from a template's name."""

    def change(doc: Doc) -> None:
        first, *rest = path
        node: Any = doc if first in ("spec", "metadata") else template(doc, first)
        keys = path if first in ("spec", "metadata") else rest
        for key in keys[:-1]:
            node = node[key]
        if value is _DELETE:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value

    return change


_DELETE = object()


@pytest.mark.parametrize(
    ("name", "path", "value", "expected"),
    [
        (
            health_check.NAME,
            ["check-health", "container", "args", 2],
            "{{inputs.parameters.target}}",
            "{{inputs.parameters.target}} is not a declared input parameter",
        ),
        (
            health_check.NAME,
            ["main", "dag", "tasks", 0, "arguments", "parameters", 0, "value"],
            "{{workflow.parameters.target}}",
            "{{workflow.parameters.target}} is not a workflow argument",
        ),
        (
            health_check.NAME,
            ["check-health", "metrics", "prometheus", 0, "when"],
            "{{outputs.parameters.state}} == healthy",
            "{{outputs.parameters.state}} is not a declared output",
        ),
        (
            health_check.NAME,
            ["main", "outputs", "parameters", 0, "valueFrom", "parameter"],
            "{{tasks.check-health.outputs.parameters.verdict}}",
            "has no output parameter 'verdict'",
        ),
        (health_check.NAME, ["spec", "entrypoint"], "start", "entrypoint 'start' is not a template"),
    ],
)
def test_reference_check_catches_bad_parameter_uses(
    docs: list[Doc], name: str, path: list[Any], value: Any, expected: str
) -> None:
    assert expected in messages(reference_problems(_mutate(docs, name, _set(path, value))))


@pytest.mark.parametrize(
    ("name", "path", "value", "expected"),
    [
        (
            validate.NAME,
            ["spec", "arguments", "parameters", 0, "description"],
            _DELETE,
            "parameter 'url' has no description",
        ),
        (
            validate.NAME,
            ["validate", "inputs", "parameters", 1, "description"],
            " ",
            "parameter 'max-response-ms' has no description",
        ),
        (
            validate.NAME,
            ["validate", "outputs", "parameters", 0, "valueFrom", "default"],
            _DELETE,
            "output parameter 'passed' has no valueFrom.default",
        ),
        (validate.NAME, ["validate", "retryStrategy"], _DELETE, "a pod step has no retryStrategy"),
        (
            validate.NAME,
            ["validate", "activeDeadlineSeconds"],
            _DELETE,
            "a pod step has no activeDeadlineSeconds",
        ),
        (
            validate.NAME,
            ["validate", "metadata"],
            _DELETE,
            "template has no workflows.argoproj.io/description",
        ),
        (
            validate.NAME,
            ["metadata", "annotations"],
            {},
            "missing the workflows.argoproj.io/description annotation",
        ),
        (validate.NAME, ["metadata", "name"], "validate", "does not start with 'research-platform-'"),
        (
            validate.NAME,
            ["validate", "container", "args", 0],
            "scale",
            "`rpops scale` changes the platform but",
        ),
        (
            health_check.NAME,
            ["check-health", "metrics", "prometheus", 1, "name"],
            "research-platform:health",
            "may hold only letters, digits and _",
        ),
        (
            health_check.NAME,
            ["check-health", "metrics", "prometheus", 2, "help"],
            "Another text.",
            "has a different help text",
        ),
        (health_check.NAME, ["spec", "arguments", "parameters", 1, "enum"], ["1", "3"], "is not in its enum"),
    ],
)
def test_convention_check_catches(
    docs: list[Doc], name: str, path: list[Any], value: Any, expected: str
) -> None:
    assert expected in messages(convention_problems(_mutate(docs, name, _set(path, value))))


# --------------------------------------------------------------------------- what the templates run


def test_health_check_runs_rpops_health_check_with_the_contract_flags(docs: list[Doc]) -> None:
    doc = by_name(docs, health_check.NAME)
    check = template(doc, "check-health")
    assert check["container"]["command"] == ["rpops"]
    assert check["container"]["args"] == [
        "health-check",
        "--target", "{{inputs.parameters.targets}}",
        "--samples", "{{inputs.parameters.samples}}",
        "--timeout", "{{inputs.parameters.timeout}}",
        "--prometheus", "{{inputs.parameters.prometheus}}",
        "--region", "{{inputs.parameters.region}}",
        "--alert", "{{inputs.parameters.alert}}",
        "--alert-labels", "{{inputs.parameters.alert-labels}}",
        "--alert-reading", "{{inputs.parameters.alert-reading}}",
        "--alert-settle", "{{inputs.parameters.alert-settle}}",
    ]  # fmt: skip
    env = {e["name"]: e["value"] for e in check["container"]["env"]}
    assert env == {
        "RPOPS_LOG_FORMAT": "json",
        "RPOPS_PLATFORM": "kubernetes",
        "RPOPS_NAMESPACE": "research-platform",
    }
    assert check["container"]["image"] == DEFAULT_IMAGE
    outputs = {p["name"]: p["valueFrom"] for p in check["outputs"]["parameters"]}
    assert outputs == {
        "status": {"default": "unknown", "path": "/tmp/outputs/status"},
        "reason": {"default": "the health check did not run", "path": "/tmp/outputs/reason"},
        "p95_ms": {"default": "-1", "path": "/tmp/outputs/p95_ms"},
        "outcome": {"default": "not-run", "path": "/tmp/outputs/outcome"},
    }
    arguments = {p["name"]: p.get("value") for p in doc["spec"]["arguments"]["parameters"]}
    assert arguments == {
        "targets": None,
        "samples": "5",
        "timeout": "2",
        "prometheus": "",
        "region": "",
        "alert": "",
        "alert-labels": "{}",
        "alert-reading": "onset",
        "alert-settle": "60",
    }
    assert doc["spec"]["entrypoint"] == "main"
    assert doc["spec"]["serviceAccountName"] == "rpops-steps"


def test_health_gauge_encodes_each_status_exactly_once(docs: list[Doc]) -> None:
    metrics = template(by_name(docs, health_check.NAME), "check-health")["metrics"]["prometheus"]
    assert {m["name"] for m in metrics} == {"research_platform_health_status"}
    assert len({m["help"] for m in metrics}) == 1
    whens = {m["when"]: m["gauge"]["value"] for m in metrics}
    assert whens == {
        "{{outputs.parameters.status}} == healthy": "0",
        "{{outputs.parameters.status}} == degraded": "1",
        "{{outputs.parameters.status}} == overloaded": "2",
        "{{outputs.parameters.status}} == unhealthy": "3",
    }
    assert all(m["labels"] == [{"key": "region", "value": "{{inputs.parameters.region}}"}] for m in metrics)


def test_validate_runs_rpops_validate_and_is_a_gate(docs: list[Doc]) -> None:
    check = template(by_name(docs, validate.NAME), "validate")
    assert check["container"]["args"] == [
        "validate",
        "--url", "{{inputs.parameters.url}}",
        "--max-response-ms", "{{inputs.parameters.max-response-ms}}",
        "--timeout", "{{inputs.parameters.timeout}}",
        "--output", "json",
    ]  # fmt: skip
    assert {p["name"]: p["valueFrom"]["default"] for p in check["outputs"]["parameters"]} == {
        "passed": "false",
        "failed": "not-run",
    }
    # A failed gate (exit 1) is a verdict: only Argo-level errors are retried.
    assert check["retryStrategy"] == {
        "limit": "2",
        "retryPolicy": "OnError",
        "backoff": {"duration": "5s", "factor": "2", "maxDuration": "1m"},
    }


def test_health_check_retries_errors_but_not_usage_or_verdicts(docs: list[Doc]) -> None:
    retry = template(by_name(docs, health_check.NAME), "check-health")["retryStrategy"]
    assert retry["retryPolicy"] == "Always" and retry["limit"] == "2"
    assert (
        retry["expression"]
        == 'lastRetry.status == "Error" || (lastRetry.exitCode != "1" && lastRetry.exitCode != "2")'
    )


def test_entrypoints_forward_outputs_with_defaults(docs: list[Doc]) -> None:
    for name, task in ((health_check.NAME, "check-health"), (validate.NAME, "validate")):
        doc = by_name(docs, name)
        main_t, step = template(doc, "main"), template(doc, task)
        assert [t["template"] for t in main_t["dag"]["tasks"]] == [task]
        forwarded = {p["name"]: p["valueFrom"] for p in main_t["outputs"]["parameters"]}
        for p in step["outputs"]["parameters"]:
            assert forwarded[p["name"]] == {
                "default": p["valueFrom"]["default"],
                "parameter": f"{{{{tasks.{task}.outputs.parameters.{p['name']}}}}}",
            }


def test_platform_changing_template_built_from_common_holds_a_valid_mutex(schemas: ArgoSchemas) -> None:
    """What a later module (e.g. scale) gets from common.py validates, and the mutex is required."""
    @dataclass(frozen=True)
    class ExampleSettings:
        service: str = setting(help="Service to scale.", parameter=True)
        replicas: int = setting(2, help="Replica count.", parameter=True)
        dry_run: bool = setting(False, help="Change nothing.")

    example = Step(
        name="scale",
        summary="Scale.",
        settings=ExampleSettings,
        outputs=(StepOutput("replicas", "-1", "Replicas after scaling."),),
        run=lambda s: 0,
    )

    def build(with_mutex: bool) -> Doc:
        spec = StepSpec(
            name="scale",
            step=example,
            description="Scale.",
            retry=gate_retry(),
            deadline_seconds=60,
            mutex=service_mutex() if with_mutex else None,
        )
        with workflow_template(purpose="scale-example", description="Example.", arguments=spec.inputs) as wt:
            step: Container = step_container(RenderConfig(), spec)
            entry_dag(
                description="Scale once.", task="scale", template=step, inputs=spec.inputs,
                outputs=example.outputs,
            )
        return wt.to_dict()

    # The template's inputs and arguments are the settings marked as parameters, nothing else.
    container = template(build(with_mutex=False), "scale")
    assert container["container"]["args"] == [
        "scale", "--service", "{{inputs.parameters.service}}", "--replicas", "{{inputs.parameters.replicas}}"
    ]
    assert [p["name"] for p in container["inputs"]["parameters"]] == ["service", "replicas"]
    doc = build(with_mutex=True)
    assert template(doc, "scale")["synchronization"] == {
        "mutexes": [{"name": "research-platform-{{workflow.parameters.service}}"}]
    }
    assert all_problems([doc], schemas) == []
    assert "`rpops scale` changes the platform but holds no mutex" in messages(
        convention_problems([build(with_mutex=False)])
    )


def test_every_step_found_by_the_cli_has_a_template_that_runs_it(docs: list[Doc]) -> None:
    """One list of steps: the packages under rpops/steps/. Each is a command and has a template;
    every container of the rendered templates runs one of them."""
    from rpops.core.cli import commands
    from rpops.core.step import discover

    steps = discover()
    assert {"health-check", "validate", "scale", "optimize", "bluegreen", "security-scan"} <= set(steps)
    assert set(steps) <= set(commands())
    run = {
        t["container"]["args"][0]
        for doc in docs
        for t in doc.get("spec", {}).get("templates", []) + doc.get("spec", {}).get("workflowSpec", {}).get(
            "templates", []
        )
        if "container" in t and t["container"].get("command") == ["rpops"]
    }
    assert run == set(steps), "a step without a template, or a template running something that is not a step"
