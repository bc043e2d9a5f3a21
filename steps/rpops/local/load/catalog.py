"""Loading Argo documents from YAML files, refusing what rpops cannot run, and resolving templates.

`load_documents` only reads YAML (safe loading, through libyaml's CSafeLoader where present).
Each document is checked against the supported subset when it is first needed (`Catalog.spec`),
so one unsupported template in a directory does not stop the others from running;
`Catalog.lint` checks them all.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rpops.core.durations import parse_duration
from rpops.core.errors import UsageError
from rpops.local.load import model, paths, schema
from rpops.local.load.model import Template, WorkflowSpec

API_VERSION = "argoproj.io/v1alpha1"
RUNNABLE = ("WorkflowTemplate", "Workflow", "CronWorkflow")
KNOWN_KINDS = (*RUNNABLE, "WorkflowEventBinding", "ClusterWorkflowTemplate")
RETRY_POLICIES = ("Always", "OnFailure", "OnError", "OnTransientError")
ARTIFACT_NAME = re.compile(r"[A-Za-z0-9_-]+")  # Argo's rule; an artifact's name is also its file name
SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: about 8x faster to start


@dataclass(frozen=True)
class Document:
    kind: str
    name: str
    raw: dict[str, Any]
    source: str

    @property
    def label(self) -> str:
        return f"{self.source} ({self.kind} {self.name})"

    @property
    def metadata(self) -> dict[str, Any]:
        return self.raw.get("metadata") or {}


@dataclass(frozen=True)
class Scope:
    """The templates a `template:` name resolves in (a document's own, or a merged spec's)."""

    name: str  # the WorkflowTemplate (or root) these templates belong to
    templates: dict[str, Template]


@dataclass
class Catalog:
    documents: list[Document] = field(default_factory=list)
    _specs: dict[tuple[str, str], WorkflowSpec] = field(default_factory=dict, repr=False)

    def add(self, doc: Document) -> None:
        """Add a document; one with the same kind and name replaces the earlier one."""
        self.documents = [d for d in self.documents if (d.kind, d.name) != (doc.kind, doc.name)] + [doc]
        self._specs.pop((doc.kind, doc.name), None)

    def find(self, kind: str, name: str) -> Document | None:
        return next((d for d in self.documents if d.kind == kind and d.name == name), None)

    def runnable(self) -> list[Document]:
        return [d for d in self.documents if d.kind in RUNNABLE]

    def bindings(self) -> list[Document]:
        return [d for d in self.documents if d.kind == "WorkflowEventBinding"]

    def cron_workflows(self) -> list[Document]:
        return [d for d in self.documents if d.kind == "CronWorkflow"]

    def resolve_target(self, target: str) -> Document:
        """A runnable document by name (WorkflowTemplate first, then CronWorkflow, then Workflow)."""
        for kind in ("WorkflowTemplate", "CronWorkflow", "Workflow"):
            doc = self.find(kind, target)
            if doc is not None:
                return doc
        names = sorted({d.name for d in self.runnable()})
        near = difflib.get_close_matches(target, names, n=1)
        hint = f" Did you mean '{near[0]}'?" if near else ""
        known = ", ".join(names) if names else "none loaded"
        raise UsageError(
            f"unknown template '{target}': no WorkflowTemplate, CronWorkflow or Workflow of that "
            f"name is loaded (known: {known}).{hint} Pass a name from --manifests or a YAML file."
        )

    def spec(self, doc: Document) -> WorkflowSpec:
        """The document's checked spec (CronWorkflow: its workflowSpec); UsageError lists every problem."""
        key = (doc.kind, doc.name)
        if key not in self._specs:
            self._specs[key] = _checked_spec(doc)
        return self._specs[key]

    def template_scope(self, name: str) -> Scope:
        """The templates of the WorkflowTemplate `name` (for templateRef)."""
        doc = self.find("WorkflowTemplate", name)
        if doc is None:
            known = (
                ", ".join(sorted(d.name for d in self.documents if d.kind == "WorkflowTemplate")) or "none"
            )
            raise UsageError(
                f"templateRef names WorkflowTemplate '{name}', which is not loaded (known: {known})"
            )
        spec = self.spec(doc)
        return Scope(name=name, templates={t.name: t for t in spec.templates})

    def lint(self) -> list[str]:
        """Check every runnable document; return one message per document that is refused."""
        errors = []
        for doc in self.runnable():
            try:
                self.spec(doc)
            except UsageError as exc:
                errors.append(str(exc))
        return errors


def load_documents(paths: Iterable[str | Path]) -> Catalog:
    """Read every YAML document under `paths` (files, or directories searched recursively)."""
    catalog = Catalog()
    for path in paths:
        p = Path(path)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.suffix in (".yaml", ".yml") and f.is_file())
        elif p.is_file():
            files = [p]
        else:
            raise UsageError(f"{p}: no such file or directory; pass a YAML file or a directory of manifests")
        for f in files:
            for doc in _read(f):
                catalog.add(doc)
    return catalog


def _read(path: Path) -> list[Document]:
    try:
        with path.open(encoding="utf-8") as fh:
            raw_docs = [d for d in yaml.load_all(fh, Loader=SafeLoader) if d is not None]
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"{path}: cannot read YAML: {exc}") from None
    docs = []
    for i, raw in enumerate(raw_docs):
        if not isinstance(raw, dict):
            raise UsageError(f"{path}: document {i + 1} is not a map")
        kind = raw.get("kind")
        if not str(raw.get("apiVersion", "")).startswith("argoproj.io/") or kind not in KNOWN_KINDS:
            continue  # Kubernetes objects beside the templates (RBAC, kustomization) are not ours
        meta: dict[str, Any] = raw["metadata"] if isinstance(raw.get("metadata"), dict) else {}
        name = meta.get("name") or str(meta.get("generateName") or "").rstrip("-") or f"{path.stem}-{i + 1}"
        docs.append(Document(kind=str(kind), name=str(name), raw=raw, source=str(path)))
    return docs


def _checked_spec(doc: Document) -> WorkflowSpec:
    raw = doc.raw
    problems = schema.check(raw, "obj:Document")
    if raw.get("apiVersion") != API_VERSION:
        problems.append(schema.Problem("apiVersion", f"must be {API_VERSION}"))
    if doc.kind == "ClusterWorkflowTemplate":
        problems.append(
            schema.Problem(
                "kind", "ClusterWorkflowTemplates are not supported locally; use a WorkflowTemplate"
            )
        )
    spec_raw = raw.get("spec")
    if doc.kind == "CronWorkflow":
        problems += schema.check(spec_raw, "obj:CronWorkflowSpec", "spec")
        spec_raw = (spec_raw or {}).get("workflowSpec") if isinstance(spec_raw, dict) else None
        prefix = "spec.workflowSpec"
    else:
        problems += schema.check(spec_raw, "obj:WorkflowSpec", "spec")
        prefix = "spec"
    if not problems and isinstance(spec_raw, dict):
        problems += _structure(spec_raw, prefix, doc.kind)
    if problems:
        lines = "\n".join(f"  - {p.render()}" for p in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        raise UsageError(
            f"{doc.label} is outside what rpops local runs; nothing was started:\n{lines}{more}\n"
            "Fix the document (or run it on a cluster)."
        )
    assert isinstance(spec_raw, dict)
    return model.parse_spec(spec_raw)


def _structure(spec: dict[str, Any], prefix: str, kind: str) -> list[schema.Problem]:
    """Checks across fields that a per-field schema cannot express."""
    P = schema.Problem
    problems: list[schema.Problem] = []
    ref = spec.get("workflowTemplateRef")
    if ref is not None:
        if kind == "WorkflowTemplate":
            problems.append(
                P(f"{prefix}.workflowTemplateRef", "a WorkflowTemplate cannot refer to another one")
            )
        if ref.get("clusterScope"):
            problems.append(
                P(
                    f"{prefix}.workflowTemplateRef.clusterScope",
                    "ClusterWorkflowTemplates are not supported locally",
                )
            )
    seen: set[str] = set()
    for t in spec.get("templates") or ():
        name = t["name"]
        if name in seen:
            problems.append(P("name", "is defined twice in this document", name))
        seen.add(name)
        problems += _template_structure(t)
    for key in ("activeDeadlineSeconds",):
        value = spec.get(key)
        if isinstance(value, str) and "{{" not in value and not value.strip().isdigit():
            problems.append(P(f"{prefix}.{key}", f"must be a whole number of seconds, got {value!r}"))
    problems += _windows(spec, f"{prefix}.nodeSelector", None)
    return problems


def _windows(owner: dict[str, Any], where: str, template: str | None) -> list[schema.Problem]:
    """Windows nodes are a cluster's: a step pinned to them cannot run on this machine."""
    selector = owner.get("nodeSelector")
    if isinstance(selector, dict) and str(selector.get("kubernetes.io/os", "")).lower() == "windows":
        return [
            schema.Problem(
                f"{where}.kubernetes.io/os",
                "not supported by rpops local: the step needs a Windows node of a cluster",
                template,
            )
        ]
    return []


def _template_structure(t: dict[str, Any]) -> list[schema.Problem]:
    name = t["name"]
    kinds = model.template_kind(t)
    if len(kinds) != 1:
        got = ", ".join(kinds) if kinds else "none"
        return [
            schema.Problem(
                "(template)",
                f"must have exactly one of container, script, steps, dag, suspend (has {got})",
                name,
            )
        ]
    kind = kinds[0]
    outputs = t.get("outputs") or {}
    out = _windows(t, "nodeSelector", name)
    out += _kind_fields(t, kind, name)
    out += _output_parameters(outputs.get("parameters") or (), kind, name)
    out += _output_artifacts(outputs.get("artifacts") or (), kind, name)
    out += _retry_fields(t.get("retryStrategy"), name)
    for group in t.get("steps") or ():
        for s in group:
            out += _step_structure(s, name, "steps")
    for task in (t.get("dag") or {}).get("tasks") or ():
        out += _step_structure(task, name, "dag.tasks")
    suspend = t.get("suspend")
    if suspend and isinstance(suspend.get("duration"), str) and "{{" not in suspend["duration"]:
        out += _duration(suspend["duration"], "suspend.duration", name)
    return out


def _kind_fields(t: dict[str, Any], kind: str, name: str) -> list[schema.Problem]:
    """What a template of this kind needs locally, and the fields Argo reads only on a leaf."""
    P = schema.Problem
    out: list[schema.Problem] = []
    leaf = kind in ("container", "script")
    if leaf and not (t[kind].get("command")):
        out.append(
            P(
                f"{kind}.command",
                "is required locally: the image's entrypoint is not known outside the "
                "cluster (write the command out, e.g. [rpops, health-check])",
                name,
            )
        )
    if kind == "script" and "source" not in t[kind]:
        out.append(P("script.source", "is required", name))
    if not leaf and "activeDeadlineSeconds" in t:
        out.append(
            P(
                "activeDeadlineSeconds",
                "Argo applies it only to container and script templates; set it "
                "on the leaf templates or the workflow's spec",
                name,
            )
        )
    if not leaf and "timeout" in t:
        out.append(P("timeout", "Argo applies it only to container and script templates", name))
    value = t.get("activeDeadlineSeconds")
    if isinstance(value, str) and "{{" not in value and not value.strip().isdigit():
        out.append(P("activeDeadlineSeconds", f"must be a whole number of seconds, got {value!r}", name))
    if isinstance(t.get("timeout"), str) and "{{" not in t["timeout"]:
        out += _duration(t["timeout"], "timeout", name)
    return out


def _output_parameters(parameters: Any, kind: str, name: str) -> list[schema.Problem]:
    """A leaf's outputs come from a path; a steps/dag template's from a parameter or expression."""
    P = schema.Problem
    out: list[schema.Problem] = []
    leaf = kind in ("container", "script")
    for i, o in enumerate(parameters):
        where = f"outputs.parameters[{i}]"
        vf = o.get("valueFrom")
        if vf is None:
            out.append(
                P(
                    f"{where}.valueFrom",
                    "is required (path for container/script templates, parameter for steps/dag templates)",
                    name,
                )
            )
            continue
        if leaf:
            path = vf.get("path")
            if path is None:
                out.append(
                    P(f"{where}.valueFrom.path", "is required for a container/script template's output", name)
                )
            else:
                out += _output_path(path, f"{where}.valueFrom.path", name)
            for key in ("parameter", "expression"):
                if key in vf:
                    out.append(P(f"{where}.valueFrom.{key}", "applies to steps/dag templates only", name))
        elif kind in ("steps", "dag"):
            if ("parameter" in vf) == ("expression" in vf):
                out.append(
                    P(
                        f"{where}.valueFrom.parameter",
                        "a steps/dag template's output needs exactly one of parameter or expression",
                        name,
                    )
                )
            if "path" in vf:
                out.append(P(f"{where}.valueFrom.path", "applies to container/script templates only", name))
        else:
            out.append(P(where, "suspend templates have no outputs locally", name))
    return out


def _output_artifacts(artifacts: Any, kind: str, name: str) -> list[schema.Problem]:
    P = schema.Problem
    out: list[schema.Problem] = []
    for i, a in enumerate(artifacts):
        if kind not in ("container", "script"):
            out.append(
                P(
                    f"outputs.artifacts[{i}]",
                    "output artifacts come from container/script templates only",
                    name,
                )
            )
        else:
            out += _output_path(a["path"], f"outputs.artifacts[{i}].path", name)
        if not ARTIFACT_NAME.fullmatch(str(a["name"])):
            out.append(
                P(
                    f"outputs.artifacts[{i}].name",
                    f"must be letters, digits, '-' and '_' only (got {a['name']!r})",
                    name,
                )
            )
    return out


def _retry_fields(retry: dict[str, Any] | None, name: str) -> list[schema.Problem]:
    if retry is None:
        return []
    out: list[schema.Problem] = []
    policy = retry.get("retryPolicy")
    if policy is not None and policy not in RETRY_POLICIES:
        out.append(
            schema.Problem("retryStrategy.retryPolicy", f"must be one of {', '.join(RETRY_POLICIES)}", name)
        )
    for key, value in (retry.get("backoff") or {}).items():
        if key in ("duration", "maxDuration", "cap") and isinstance(value, str) and "{{" not in value:
            out += _duration(value, f"retryStrategy.backoff.{key}", name)
    return out


def _output_path(path: str, where: str, template: str) -> list[schema.Problem]:
    """An output path stays inside the node's private /tmp: absolute, no '..' (checked again once
    `{{...}}` in it is substituted)."""
    if "{{" in path:
        return []
    try:
        paths.normalize(path, where, paths.PRIVATE_ROOT)
    except paths.PathRefused as exc:
        return [schema.Problem(where, str(exc).split(": ", 1)[1], template)]
    return []


def _step_structure(s: dict[str, Any], template: str, where: str) -> list[schema.Problem]:
    P = schema.Problem
    out = []
    at = f"{where}[{s['name']}]"
    if ("template" in s) == ("templateRef" in s):
        out.append(P(at, "needs exactly one of template or templateRef", template))
    if (s.get("templateRef") or {}).get("clusterScope"):
        out.append(
            P(
                f"{at}.templateRef.clusterScope",
                "ClusterWorkflowTemplates are not supported locally",
                template,
            )
        )
    loops = [k for k in ("withItems", "withParam", "withSequence") if k in s]
    if len(loops) > 1:
        out.append(P(at, f"has more than one of {', '.join(loops)}", template))
    if "depends" in s and "dependencies" in s:
        out.append(P(at, "has both depends and dependencies; use one", template))
    hooks = s.get("hooks") or {}
    if "onExit" in s and "exit" in hooks:
        out.append(P(f"{at}.onExit", "and hooks.exit both name an exit handler; use one", template))
    exit_hook = hooks.get("exit")
    if isinstance(exit_hook, dict) and ("template" in exit_hook) == ("templateRef" in exit_hook):
        out.append(P(f"{at}.hooks.exit", "needs exactly one of template or templateRef", template))
    return out


def _duration(value: str, where: str, template: str) -> list[schema.Problem]:
    try:
        parse_duration(value)
    except ValueError as exc:
        return [schema.Problem(where, str(exc), template)]
    return []
