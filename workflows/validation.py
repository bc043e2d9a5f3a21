"""Checks for rendered Argo documents, beyond what Argo's schemas can say.

Three layers, each returning a list of `Problem` (empty = fine):

- `ArgoSchemas.schema_problems(doc)`: Argo v4.1.2 `schema.json`, the definition for the kind.
- `ArgoSchemas.strict_problems(doc)`: the CRD's openAPIV3Schema with unknown fields rejected
  (catches typos and fields removed in Argo v4, which `schema.json` lets through).
- `reference_problems(docs)` and `convention_problems(docs)`: pure functions over plain dicts:
  every referenced template, task, step and parameter exists; every parameter is described;
  outputs have defaults; pod steps have a retryStrategy and a deadline; platform-changing steps
  hold a mutex; metric names are valid and keep one help text.

The schemas are read from `schemas/argo/` (vendored, see PROVENANCE.md). Nothing here imports Hera.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from rpops.local.expr.expressions import TASK_RESULTS

SCHEMAS_DIR = Path(__file__).resolve().parents[1] / "schemas" / "argo"
DESCRIPTION_ANNOTATION = "workflows.argoproj.io/description"
NAME_PREFIX = "research-platform-"

DEFINITIONS = {
    "WorkflowTemplate": "io.argoproj.workflow.v1alpha1.WorkflowTemplate",
    "CronWorkflow": "io.argoproj.workflow.v1alpha1.CronWorkflow",
    "WorkflowEventBinding": "io.argoproj.workflow.v1alpha1.WorkflowEventBinding",
}
CRD_FILES = {
    "WorkflowTemplate": "argoproj.io_workflowtemplates.yaml",
    "CronWorkflow": "argoproj.io_cronworkflows.yaml",
    "WorkflowEventBinding": "argoproj.io_workfloweventbindings.yaml",
}
# `rpops` steps that change the platform: their templates must hold a per-service mutex.
PLATFORM_CHANGING_STEPS = frozenset({"scale", "optimize", "bluegreen"})
# Template types that run a pod (and so touch the network): they need a retry and a deadline.
POD_TYPES = ("container", "script", "containerSet")

_METRIC_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TAG = re.compile(r"{{\s*([^{}]*?)\s*}}")
_DEPENDS_TOKEN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_DEPENDS_RESULTS = frozenset(TASK_RESULTS)  # the task results Argo's `depends` knows


@dataclass(frozen=True)
class Problem:
    document: str  # Kind/name
    path: str  # where in the document
    message: str

    def __str__(self) -> str:
        return f"{self.document}: {self.path}: {self.message}"


def doc_id(doc: Mapping[str, Any]) -> str:
    return f"{doc.get('kind', '?')}/{doc.get('metadata', {}).get('name', '?')}"


# --------------------------------------------------------------------------- schemas


def strict_schema(schema: Any) -> Any:
    """A copy of an openAPIV3Schema where every object that lists `properties` (and does not
    preserve unknown fields or declare its own `additionalProperties`) rejects other keys."""
    if isinstance(schema, list):
        return [strict_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict_schema(v) for k, v in schema.items()}
    if (
        "properties" in out
        and isinstance(out["properties"], dict)
        and not out.get("x-kubernetes-preserve-unknown-fields")
        and "additionalProperties" not in out
    ):
        out["additionalProperties"] = False
    return out


def _format_error(error: Any) -> tuple[str, str]:
    path = "/".join(str(p) for p in error.absolute_path) or "(document)"
    return path, error.message if len(error.message) < 400 else error.message[:400] + "..."


class ArgoSchemas:
    """Validators for Argo documents, loaded lazily from the vendored schemas (slow: seconds)."""

    def __init__(self, directory: Path = SCHEMAS_DIR) -> None:
        self.directory = directory
        self._schema_validators: dict[str, Any] = {}
        self._strict_validators: dict[str, Any] = {}

    @cached_property
    def _root(self) -> dict[str, Any]:
        root: dict[str, Any] = json.loads((self.directory / "schema.json").read_text())
        return root

    def _schema_validator(self, kind: str) -> Any:
        from jsonschema import Draft202012Validator  # dev dependency; keep it off import paths

        if kind not in self._schema_validators:
            schema = {k: v for k, v in self._root.items() if k != "oneOf"}
            schema["$ref"] = f"#/definitions/{DEFINITIONS[kind]}"
            self._schema_validators[kind] = Draft202012Validator(schema)
        return self._schema_validators[kind]

    def crd_schema(self, kind: str) -> dict[str, Any]:
        text = (self.directory / "crds" / CRD_FILES[kind]).read_text()
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader is 6x faster
        crd = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
        versions = {v["name"]: v for v in crd["spec"]["versions"]}
        schema: dict[str, Any] = versions["v1alpha1"]["schema"]["openAPIV3Schema"]
        return schema

    def _strict_validator(self, kind: str) -> Any:
        from jsonschema import Draft202012Validator

        if kind not in self._strict_validators:
            self._strict_validators[kind] = Draft202012Validator(strict_schema(self.crd_schema(kind)))
        return self._strict_validators[kind]

    def _unsupported(self, doc: Mapping[str, Any], table: Mapping[str, str]) -> list[Problem]:
        if doc.get("kind") in table:
            return []
        return [
            Problem(
                doc_id(doc),
                "kind",
                f"no vendored schema for kind {doc.get('kind')!r}; supported: {', '.join(sorted(table))}",
            )
        ]

    def schema_problems(self, doc: Mapping[str, Any]) -> list[Problem]:
        """Problems against Argo's `schema.json` (which allows unknown fields)."""
        if unsupported := self._unsupported(doc, DEFINITIONS):
            return unsupported
        errors = self._schema_validator(doc["kind"]).iter_errors(doc)
        return [Problem(doc_id(doc), *_format_error(e)) for e in sorted(errors, key=lambda e: list(e.path))]

    def strict_problems(self, doc: Mapping[str, Any]) -> list[Problem]:
        """Problems against the CRD's openAPIV3Schema with unknown fields rejected."""
        if unsupported := self._unsupported(doc, CRD_FILES):
            return unsupported
        errors = self._strict_validator(doc["kind"]).iter_errors(doc)
        return [Problem(doc_id(doc), *_format_error(e)) for e in sorted(errors, key=lambda e: list(e.path))]


# --------------------------------------------------------------------------- structure helpers


def workflow_spec(doc: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The WorkflowSpec inside a document, or None for kinds without one."""
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind in ("WorkflowTemplate", "ClusterWorkflowTemplate", "Workflow"):
        return spec
    if kind == "CronWorkflow":
        return spec.get("workflowSpec") or {}
    return None


def _templates(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(spec.get("templates") or [])


def _params(section: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    return list((section or {}).get("parameters") or [])


def _names(params: Iterable[Mapping[str, Any]]) -> set[str]:
    return {p.get("name", "") for p in params}


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _calls(template: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(path, step-or-task) for every call a steps or dag template makes."""
    calls: list[tuple[str, Mapping[str, Any]]] = []
    for i, group in enumerate(template.get("steps") or []):
        for j, step in enumerate(group or []):
            calls.append((f"steps/{i}/{j}", step))
    for i, task in enumerate((template.get("dag") or {}).get("tasks") or []):
        calls.append((f"dag/tasks/{i}", task))
    return calls


class _Index:
    """Templates of every rendered WorkflowTemplate, for templateRef resolution."""

    def __init__(self, docs: Sequence[Mapping[str, Any]]) -> None:
        self.workflow_templates: dict[str, Mapping[str, Any]] = {}
        for doc in docs:
            if doc.get("kind") == "WorkflowTemplate":
                self.workflow_templates[doc.get("metadata", {}).get("name", "")] = doc

    def template(self, name: str, template: str) -> Mapping[str, Any] | None:
        doc = self.workflow_templates.get(name)
        if doc is None:
            return None
        return next((t for t in _templates(doc.get("spec") or {}) if t.get("name") == template), None)


# --------------------------------------------------------------------------- references


def reference_problems(docs: Sequence[Mapping[str, Any]]) -> list[Problem]:
    """Every template, templateRef, task, step and parameter a document names must exist."""
    index = _Index(docs)
    problems: list[Problem] = []
    for doc in docs:
        problems += _document_references(doc, index)
    return problems


def _document_references(doc: Mapping[str, Any], index: _Index) -> list[Problem]:
    did = doc_id(doc)
    problems: list[Problem] = []

    def add(path: str, message: str) -> None:
        problems.append(Problem(did, path, message))

    if doc.get("kind") == "WorkflowEventBinding":
        submit = (doc.get("spec") or {}).get("submit") or {}
        ref = (submit.get("workflowTemplateRef") or {}).get("name", "")
        target = index.workflow_templates.get(ref)
        if target is None:
            add("spec/submit/workflowTemplateRef", f"WorkflowTemplate {ref!r} is not rendered here")
        else:
            declared = _names(_params((target.get("spec") or {}).get("arguments")))
            for p in _params(submit.get("arguments")):
                if p.get("name") not in declared:
                    add("spec/submit/arguments", f"parameter {p.get('name')!r} is not an argument of {ref}")
        return problems

    spec = workflow_spec(doc)
    if spec is None:
        return problems
    spec_path = "spec/workflowSpec" if doc.get("kind") == "CronWorkflow" else "spec"
    templates = _templates(spec)
    local = {t.get("name", ""): t for t in templates}
    if len(local) != len(templates):
        add(f"{spec_path}/templates", "template names are not unique")
    workflow_params = _names(_params(spec.get("arguments")))

    ref = spec.get("workflowTemplateRef")
    if ref:
        if ref.get("name") not in index.workflow_templates:
            add(f"{spec_path}/workflowTemplateRef", f"WorkflowTemplate {ref.get('name')!r} is not rendered")
    elif spec.get("entrypoint") not in local:
        add(f"{spec_path}/entrypoint", f"entrypoint {spec.get('entrypoint')!r} is not a template here")
    if spec.get("onExit") and spec["onExit"] not in local:
        add(f"{spec_path}/onExit", f"onExit template {spec['onExit']!r} does not exist")

    def resolve(call: Mapping[str, Any], path: str) -> Mapping[str, Any] | None:
        if "template" in call:
            target = local.get(call["template"])
            if target is None:
                add(path, f"template {call['template']!r} does not exist in this document")
            return target
        if "templateRef" in call:
            tref = call["templateRef"]
            if tref.get("clusterScope"):
                add(
                    path,
                    "a clusterScope templateRef cannot be checked: no ClusterWorkflowTemplate is rendered",
                )
                return None
            target = index.template(tref.get("name", ""), tref.get("template", ""))
            if target is None:
                add(path, f"templateRef {tref.get('name')!r}/{tref.get('template')!r} does not exist")
            return target
        if "inline" not in call:
            add(path, "names no template, templateRef or inline template")
        return None

    for t_index, template in enumerate(templates):
        t_path = f"{spec_path}/templates/{t_index}({template.get('name')})"
        inputs = _names(_params(template.get("inputs")))
        outputs = _names(_params(template.get("outputs")))
        calls = _calls(template)
        callees: dict[str, Mapping[str, Any] | None] = {}
        for c_path, call in calls:
            path = f"{t_path}/{c_path}({call.get('name')})"
            target = resolve(call, path)
            callees[call.get("name", "")] = target
            if target is not None:
                problems.extend(_argument_problems(did, path, call, target))
            for hook_name, hook in (call.get("hooks") or {}).items():
                if isinstance(hook, Mapping):
                    resolve(hook, f"{path}/hooks/{hook_name}")
            if call.get("onExit") and call["onExit"] not in local:
                add(path, f"onExit template {call['onExit']!r} does not exist")
        tasks = {call.get("name", "") for _, call in calls}
        for c_path, call in calls:
            for dep in call.get("dependencies") or []:
                if dep not in tasks:
                    add(f"{t_path}/{c_path}", f"dependency {dep!r} is not a task of this DAG")
            for token in _DEPENDS_TOKEN.findall(call.get("depends") or ""):
                name, _, result = token.partition(".")
                if result and result not in _DEPENDS_RESULTS:
                    name = token  # a task name that contains a dot
                if name not in tasks:
                    add(f"{t_path}/{c_path}", f"depends names {name!r}, not a task of this DAG")
        for text in _strings(template):
            for tag in _TAG.findall(text):
                if tag.startswith("="):
                    continue  # expression tags are checked by Argo at run time
                message = _tag_problem(tag, inputs, outputs, workflow_params, callees)
                if message:
                    add(t_path, message)
    return problems


def _argument_problems(
    did: str, path: str, call: Mapping[str, Any], target: Mapping[str, Any]
) -> list[Problem]:
    problems = []
    declared = {p.get("name"): p for p in _params(target.get("inputs"))}
    given = _names(_params(call.get("arguments")))
    callee = target.get("name")
    for name in sorted(given - set(declared)):
        problems.append(Problem(did, path, f"argument {name!r} is not an input of template {callee!r}"))
    for input_name, p in declared.items():
        if input_name not in given and not {"value", "default", "valueFrom"} & set(p):
            problems.append(Problem(did, path, f"required input {input_name!r} of {callee!r} is not passed"))
    return problems


def _tag_problem(
    tag: str,
    inputs: set[str],
    outputs: set[str],
    workflow_params: set[str],
    callees: Mapping[str, Mapping[str, Any] | None],
) -> str | None:
    parts = tag.split(".")
    if parts[:2] == ["inputs", "parameters"] and len(parts) >= 3:
        name = ".".join(parts[2:])
        return None if name in inputs else f"{{{{{tag}}}}} is not a declared input parameter"
    if parts[:2] == ["outputs", "parameters"] and len(parts) >= 3:
        name = ".".join(parts[2:])
        return None if name in outputs else f"{{{{{tag}}}}} is not a declared output parameter"
    if parts[:2] == ["workflow", "parameters"] and len(parts) >= 3:
        name = ".".join(parts[2:])
        return None if name in workflow_params else f"{{{{{tag}}}}} is not a workflow argument"
    if parts[0] in ("tasks", "steps") and len(parts) >= 3:
        name = parts[1]
        if name not in callees:
            return f"{{{{{tag}}}}} names {parts[0]} {name!r}, which this template does not call"
        callee = callees[name]
        if callee is not None and parts[2:4] == ["outputs", "parameters"] and len(parts) >= 5:
            output = ".".join(parts[4:])
            if output not in _names(_params(callee.get("outputs"))):
                return f"{{{{{tag}}}}}: template {callee.get('name')!r} has no output parameter {output!r}"
    return None


# --------------------------------------------------------------------------- conventions


def convention_problems(docs: Sequence[Mapping[str, Any]]) -> list[Problem]:
    """The project's conventions (DESIGN.md, Workflows)."""
    problems: list[Problem] = []
    metric_help: dict[str, tuple[str, str]] = {}
    for doc in docs:
        did = doc_id(doc)

        def add(path: str, message: str, did: str = did, problems: list[Problem] = problems) -> None:
            problems.append(Problem(did, path, message))

        meta = doc.get("metadata") or {}
        if not str(meta.get("name", "")).startswith(NAME_PREFIX):
            add("metadata/name", f"name {meta.get('name')!r} does not start with {NAME_PREFIX!r}")
        if not (meta.get("annotations") or {}).get(DESCRIPTION_ANNOTATION, "").strip():
            add("metadata/annotations", f"missing the {DESCRIPTION_ANNOTATION} annotation")
        if doc.get("kind") == "CronWorkflow" and not (doc.get("spec") or {}).get("schedules"):
            add("spec/schedules", "a CronWorkflow needs `schedules: [...]` (Argo v4 form)")
        spec = workflow_spec(doc)
        if spec is None:
            continue
        for i, p in enumerate(_params(spec.get("arguments"))):
            problems += _parameter_problems(did, f"spec/arguments/parameters/{i}", p, output=False)
        for t_index, template in enumerate(_templates(spec)):
            t_path = f"templates/{t_index}({template.get('name')})"
            problems += _template_problems(did, t_path, template)
            for m_index, metric in enumerate((template.get("metrics") or {}).get("prometheus") or []):
                m_path = f"{t_path}/metrics/prometheus/{m_index}"
                name, help_text = metric.get("name", ""), metric.get("help", "")
                if not _METRIC_NAME.match(name):
                    add(m_path, f"metric name {name!r} may hold only letters, digits and _")
                first = metric_help.setdefault(name, (help_text, did))
                if first[0] != help_text:
                    add(m_path, f"metric {name!r} has a different help text than in {first[1]}")
    return problems


def _parameter_problems(did: str, path: str, p: Mapping[str, Any], *, output: bool) -> list[Problem]:
    problems = []
    if not str(p.get("description", "")).strip():
        problems.append(Problem(did, path, f"parameter {p.get('name')!r} has no description"))
    enum = p.get("enum")
    if enum and "value" in p and p["value"] not in enum:
        problems.append(Problem(did, path, f"value {p['value']!r} of {p.get('name')!r} is not in its enum"))
    if output and "default" not in (p.get("valueFrom") or {}):
        problems.append(Problem(did, path, f"output parameter {p.get('name')!r} has no valueFrom.default"))
    return problems


def _template_problems(did: str, path: str, template: Mapping[str, Any]) -> list[Problem]:
    problems = []
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    if not str(annotations.get(DESCRIPTION_ANNOTATION, "")).strip():
        problems.append(Problem(did, path, f"template has no {DESCRIPTION_ANNOTATION} annotation"))
    for i, p in enumerate(_params(template.get("inputs"))):
        problems += _parameter_problems(did, f"{path}/inputs/parameters/{i}", p, output=False)
    for i, p in enumerate(_params(template.get("outputs"))):
        problems += _parameter_problems(did, f"{path}/outputs/parameters/{i}", p, output=True)
    if any(t in template for t in POD_TYPES):
        if not template.get("retryStrategy"):
            problems.append(Problem(did, path, "a pod step has no retryStrategy"))
        if not template.get("activeDeadlineSeconds"):
            problems.append(Problem(did, path, "a pod step has no activeDeadlineSeconds"))
    if "http" in template:
        if not template.get("retryStrategy"):
            problems.append(Problem(did, path, "an HTTP step has no retryStrategy"))
        if not (template.get("http") or {}).get("timeoutSeconds"):
            problems.append(Problem(did, path, "an HTTP step has no http.timeoutSeconds"))
    container = template.get("container") or {}
    args = list(container.get("args") or [])
    if container.get("command") == ["rpops"] and args and args[0] in PLATFORM_CHANGING_STEPS:
        if not ((template.get("synchronization") or {}).get("mutexes")):
            problems.append(Problem(did, path, f"`rpops {args[0]}` changes the platform but holds no mutex"))
    return problems


def all_problems(docs: Sequence[Mapping[str, Any]], schemas: ArgoSchemas | None = None) -> list[Problem]:
    """Every check at once: schema, strict CRD, references, conventions."""
    schemas = schemas or ArgoSchemas()
    problems: list[Problem] = []
    for doc in docs:
        problems += schemas.schema_problems(doc)
        problems += schemas.strict_problems(doc)
    return problems + reference_problems(docs) + convention_problems(docs)


def load_documents(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Argo documents from YAML files (kustomizations and empty documents skipped)."""
    docs = []
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and str(doc.get("apiVersion", "")).startswith("argoproj.io/"):
                docs.append(copy.deepcopy(doc))
    return docs
