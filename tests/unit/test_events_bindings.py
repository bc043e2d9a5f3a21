"""rpops.local.server.bindings: checking WorkflowEventBindings at load, matching events, starting runs
(the real executor, in-process), and the rendered research-platform-alerts binding."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from rpops.core.errors import UsageError
from rpops.local.expr.eventexpr import ExprError
from rpops.local.load.catalog import Catalog, Document, load_documents
from rpops.local.run.executor import Options
from rpops.local.server.bindings import (
    BINDING_LABEL,
    Dispatcher,
    Submission,
    check_binding,
    event_env,
    load_bindings,
    match,
)

from workflows import alerts_binding, recovery

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from fixtures import alertmanager_payload  # noqa: E402

ECHO = """
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {name: echo}
spec:
  entrypoint: main
  arguments:
    parameters:
      - {name: who}
      - {name: level, value: low, enum: [low, high]}
      - {name: labels, value: "{}"}
  synchronization:
    mutexes: [{name: "echo-{{workflow.parameters.who}}"}]
  templates:
    - name: main
      container:
        image: python
        command: [python, -c, "import sys; print(sys.argv[1:])"]
        args: ["{{workflow.parameters.who}}", "{{workflow.parameters.labels}}"]
"""

BINDING: dict[str, Any] = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "WorkflowEventBinding",
    "metadata": {"name": "echo-binding"},
    "spec": {
        "event": {"selector": 'discriminator == "test" && payload.who != nil'},
        "submit": {
            "workflowTemplateRef": {"name": "echo"},
            "arguments": {
                "parameters": [
                    {"name": "who", "valueFrom": {"event": "payload.who"}},
                    {"name": "level", "valueFrom": {"event": 'payload.level ?? "low"'}},
                    {"name": "labels", "valueFrom": {"event": "payload.labels"}},
                ]
            },
        },
    },
}


def catalog_with(*bindings: dict[str, Any]) -> Catalog:
    catalog = Catalog()
    catalog.add(Document("WorkflowTemplate", "echo", yaml.safe_load(ECHO), "echo.yaml"))
    for b in bindings:
        catalog.add(Document("WorkflowEventBinding", b["metadata"]["name"], b, "binding.yaml"))
    return catalog


def variant(change: Any) -> dict[str, Any]:
    b = copy.deepcopy(BINDING)
    change(b)
    return b


def env(payload: Any, discriminator: str = "test") -> dict[str, Any]:
    return event_env("argo", discriminator, payload, {"X-Sender": "t", "Authorization": "Bearer secret"})


def test_a_binding_matches_and_maps_parameters() -> None:
    (b,) = load_bindings(catalog_with(BINDING), "argo")
    subs = match([b], env({"who": "ann", "labels": {"b": "2", "a": "1"}}))
    assert subs == [
        Submission("echo-binding", "echo", {"who": "ann", "level": "low", "labels": '{"a":"1","b":"2"}'})
    ]
    assert match([b], env({"who": "ann"}, discriminator="other")) == []
    assert match([b], env({"nobody": 1})) == []


def test_only_x_headers_reach_the_expressions() -> None:
    e = env({})
    assert e["metadata"] == {"x-sender": ["t"]}
    assert "authorization" not in json.dumps(e).lower()


def test_an_evaluation_error_refuses_the_whole_event_naming_the_binding() -> None:
    good = variant(lambda b: b["metadata"].update(name="a-first"))
    bad = variant(lambda b: b["spec"]["event"].update(selector="payload.who.name == 1"))
    bindings = load_bindings(catalog_with(good, bad), "argo")
    with pytest.raises(ExprError, match="binding echo-binding: selector: .*cannot fetch .name from a string"):
        match(bindings, env({"who": "ann"}))


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda b: b["spec"]["event"].update(selector="len(payload) > 0"), "unknown name 'len'"),
        (lambda b: b["spec"]["submit"]["workflowTemplateRef"].update(name="nope"), "'nope' is not loaded"),
        (lambda b: b["spec"]["submit"]["workflowTemplateRef"].update(clusterScope=True), "clusterScope"),
        (lambda b: b["spec"]["submit"].update(metadata={"labels": {"a": "b"}}), "spec.submit.metadata"),
        (lambda b: b["spec"].update(extra=1), "spec.extra"),
        (
            lambda b: b["spec"]["submit"]["arguments"]["parameters"][0].update(value="x"),
            r"parameters\[0\].value",
        ),
        (
            lambda b: b["spec"]["submit"]["arguments"]["parameters"].append(
                {"name": "ghost", "valueFrom": {"event": "1"}}
            ),
            "'ghost' is not a parameter of echo",
        ),
        (lambda b: b["spec"]["submit"]["arguments"]["parameters"].pop(0), "required parameter 'who'"),
        (
            lambda b: b["spec"]["submit"]["arguments"]["parameters"][1]["valueFrom"].update(
                event="payload.a ? 1 : 2"
            ),
            r"parameters\[1\].valueFrom.event",
        ),
    ],
)
def test_bindings_outside_the_subset_are_refused_at_load(change: Any, error: str) -> None:
    catalog = catalog_with(variant(change))
    with pytest.raises(UsageError, match=error):
        load_bindings(catalog, "argo")


def test_other_namespaces_bindings_are_not_loaded() -> None:
    other = variant(lambda b: b["metadata"].update(namespace="elsewhere"))
    assert load_bindings(catalog_with(other), "argo") == []


def test_dispatcher_starts_real_runs_with_arguments_passed_as_argv(tmp_path: Path) -> None:
    catalog = catalog_with(BINDING)
    (b,) = load_bindings(catalog, "argo")
    dispatcher = Dispatcher(
        catalog, "argo", lambda name=None: Options(runs_dir=tmp_path / "runs", secrets_file=None)
    )
    hostile = '$(touch pwned); "quoted" `x`'
    names = dispatcher.submit(match([b], env({"who": hostile, "labels": {"k": "v"}})))
    (name,) = names
    assert name.startswith("echo-")
    result = dispatcher.handles[-1].wait(30)
    assert result is not None and result.phase == "Succeeded", result
    # Argo's string of the value (JSON escapes kept inside), as one argv item: no shell saw it.
    assert result.nodes[name].result == str(['$(touch pwned); \\"quoted\\" `x`', '{"k":"v"}'])
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
    status = json.loads((tmp_path / "runs" / name / "status.json").read_text())
    assert status["metadata"]["labels"][BINDING_LABEL] == "echo-binding"
    assert status["metadata"]["namespace"] == "argo"
    assert status["spec"]["workflowTemplateRef"] == {"name": "echo"}


def test_dispatcher_checks_every_run_before_starting_any(tmp_path: Path) -> None:
    catalog = catalog_with(BINDING)
    dispatcher = Dispatcher(
        catalog, "argo", lambda name=None: Options(runs_dir=tmp_path / "runs", secrets_file=None)
    )
    good = Submission("echo-binding", "echo", {"who": "a", "level": "low", "labels": "{}"})
    bad = Submission("echo-binding", "echo", {"who": "a", "level": "medium", "labels": "{}"})
    with pytest.raises(UsageError, match="binding echo-binding: .*'medium' is not one of: low, high"):
        dispatcher.submit([good, bad])
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------------------------ the rendered binding


@pytest.fixture(scope="module")
def production() -> tuple[Catalog, list[Any]]:
    catalog = load_documents([ROOT / "manifests" / "argo"])
    return catalog, load_bindings(catalog, "argo")


def test_the_rendered_binding_loads_with_the_rendered_recovery(production: tuple[Catalog, list[Any]]) -> None:
    _, bindings = production
    assert [b.name for b in bindings] == [alerts_binding.NAME]
    assert bindings[0].template == recovery.NAME


def test_the_rendered_binding_submits_firing_remediation_groups(
    production: tuple[Catalog, list[Any]],
) -> None:
    _, bindings = production
    payload = alertmanager_payload("HighCPU", {"instance": "a:1"})
    (sub,) = match(bindings, env(payload, "alertmanager"))
    assert sub.template == recovery.NAME
    p = sub.parameters
    assert (p["service"], p["region"], p["alertname"]) == ("research-platform", "us-east", "HighCPU")
    assert json.loads(p["alert-labels"]) == payload["commonLabels"]
    assert p["targets"] == alerts_binding.TARGETS and p["prometheus"] == alerts_binding.PROMETHEUS


@pytest.mark.parametrize(
    ("payload", "discriminator"),
    [
        (alertmanager_payload(status="resolved"), "alertmanager"),
        ({**alertmanager_payload(), "version": "3"}, "alertmanager"),
        (alertmanager_payload(labels={"remediation": "something-else"}), "alertmanager"),
        (alertmanager_payload(), "github"),
        (["a", "foreign", "payload"], "github"),
    ],
)
def test_the_rendered_binding_ignores_other_events(
    production: tuple[Catalog, list[Any]], payload: Any, discriminator: str
) -> None:
    assert match(production[1], env(payload, discriminator)) == []


def test_a_group_without_region_gets_an_empty_one(production: tuple[Catalog, list[Any]]) -> None:
    payload = alertmanager_payload()
    del payload["commonLabels"]["region"]
    (sub,) = match(production[1], env(payload, "alertmanager"))
    assert sub.parameters["region"] == ""


def test_check_binding_names_the_document() -> None:
    doc = Document("WorkflowEventBinding", "x", {"apiVersion": "v1", "spec": {}}, "x.yaml")
    with pytest.raises(UsageError, match=r"x.yaml \(WorkflowEventBinding x\) cannot be served") as info:
        check_binding(doc, Catalog())
    assert "apiVersion: must be argoproj.io/v1alpha1" in str(info.value)
    assert "spec.event: must be a map" in str(info.value)
