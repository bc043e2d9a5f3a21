"""From a loaded document and `-p` values to a checked plan the executor can run.

Everything that can be refused is refused here, before anything starts: an unknown template,
a parameter that is missing, unknown or outside its enum, an unsupported field, an unknown
reference (see `refs`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rpops.core.errors import UsageError
from rpops.local.load.catalog import Catalog, Document, Scope
from rpops.local.load.model import Parameter, Step, Template, WorkflowSpec


@dataclass(frozen=True)
class Plan:
    catalog: Catalog
    doc: Document
    spec: WorkflowSpec  # merged with the WorkflowTemplate it refers to, if any
    root: Scope
    parameters: dict[str, str]  # workflow.parameters.*, in declaration order
    name_base: str
    namespace: str = "default"
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    workflow_template: str | None = None
    given: frozenset[str] = frozenset()  # names passed with -p: their values are data, never substituted

    def resolve(self, scope: Scope, step: Step) -> tuple[Template, Scope]:
        return resolve(self.catalog, scope, step)


def resolve(catalog: Catalog, scope: Scope, step: Step) -> tuple[Template, Scope]:
    """The template a step calls, and the scope its own `template:` names resolve in."""
    if step.template_ref is not None:
        target = catalog.template_scope(step.template_ref.name)
        template = target.templates.get(step.template_ref.template)
        if template is None:
            raise UsageError(
                f"step '{step.name}': templateRef names template '{step.template_ref.template}', "
                f"which WorkflowTemplate '{step.template_ref.name}' does not define "
                f"(templates: {', '.join(sorted(target.templates))})"
            )
        return template, target
    assert step.template is not None
    template = scope.templates.get(step.template)
    if template is None:
        raise UsageError(
            f"step '{step.name}' calls template '{step.template}', which is not defined in "
            f"{scope.name} (templates: {', '.join(sorted(scope.templates))})"
        )
    return template, scope


def prepare(catalog: Catalog, target: str | Document, parameters: Mapping[str, str] | None = None) -> Plan:
    """Check a run of `target` with `parameters`; raise UsageError naming the first blocking problem."""
    from rpops.local.load.refs import validate  # a cycle-free import: refs needs Plan

    doc = catalog.resolve_target(target) if isinstance(target, str) else target
    spec = catalog.spec(doc)
    meta = doc.metadata
    labels = dict(meta.get("labels") or {})
    wf_template: str | None = doc.name if doc.kind == "WorkflowTemplate" else None
    wf_meta = _workflow_metadata(doc)
    if spec.template_ref is not None:
        base_doc = catalog.find("WorkflowTemplate", spec.template_ref)
        if base_doc is None:
            known = (
                ", ".join(sorted(d.name for d in catalog.documents if d.kind == "WorkflowTemplate")) or "none"
            )
            raise UsageError(
                f"{doc.label}: workflowTemplateRef names '{spec.template_ref}', which is not loaded "
                f"(known: {known})"
            )
        spec = _merge(catalog.spec(base_doc), spec)
        wf_template = spec.template_ref
        wf_meta = {**_workflow_metadata(base_doc), **wf_meta}
    labels.update(wf_meta)
    if not spec.entrypoint:
        raise UsageError(f"{doc.label}: spec.entrypoint is not set; name the template to start with")
    given = dict(parameters or {})
    entry = spec.template(spec.entrypoint)
    declared = {p.name for p in spec.arguments}
    # As `argo submit -p` does: a value for an entrypoint input the spec does not list is added to it.
    extra = tuple(
        Parameter(p.name)
        for p in (entry.inputs if entry else ())
        if p.name in given and p.name not in declared
    )
    values = _parameters(doc, spec.arguments + extra, given)
    name_base = (meta.get("generateName") or "").rstrip("-") or doc.name
    if doc.kind == "WorkflowTemplate":
        name_base = doc.name
    plan = Plan(
        catalog=catalog,
        doc=doc,
        spec=spec,
        root=Scope(doc.name, {t.name: t for t in spec.templates}),
        parameters=values,
        name_base=name_base,
        namespace=str(meta.get("namespace") or "default"),
        labels={str(k): str(v) for k, v in labels.items()},
        annotations={str(k): str(v) for k, v in (meta.get("annotations") or {}).items()},
        workflow_template=wf_template,
        given=frozenset(given),
    )
    validate(plan)
    return plan


def _workflow_metadata(doc: Document) -> dict[str, str]:
    spec: Any = doc.raw.get("spec") or {}
    if doc.kind == "CronWorkflow":
        spec = spec.get("workflowSpec") or {}
    return dict((spec.get("workflowMetadata") or {}).get("labels") or {})


def _merge(base: WorkflowSpec, over: WorkflowSpec) -> WorkflowSpec:
    """A Workflow's own fields over the WorkflowTemplate it refers to (Argo's merge)."""
    args = {p.name: p for p in base.arguments}
    for p in over.arguments:
        old = args.get(p.name)
        args[p.name] = (
            dataclasses.replace(old, value=p.value if p.value is not None else old.value) if old else p
        )
    templates = {t.name: t for t in base.templates}
    templates.update({t.name: t for t in over.templates})
    return WorkflowSpec(
        templates=tuple(templates.values()),
        entrypoint=over.entrypoint or base.entrypoint,
        arguments=tuple(args.values()),
        on_exit=over.on_exit or base.on_exit,
        parallelism=over.parallelism if over.parallelism is not None else base.parallelism,
        active_deadline=over.active_deadline or base.active_deadline,
        mutexes=over.mutexes or base.mutexes,
        template_ref=over.template_ref,
        service_account=over.service_account or base.service_account,
    )


def _parameters(doc: Document, declared: tuple[Parameter, ...], given: dict[str, str]) -> dict[str, str]:
    names = [p.name for p in declared]
    unknown = [k for k in given if k not in names]
    if unknown:
        raise UsageError(
            f"{doc.label}: unknown parameter '{unknown[0]}' "
            f"(parameters: {', '.join(names) if names else 'none'})"
        )
    values: dict[str, str] = {}
    for p in declared:
        value = given.get(p.name, p.value if p.value is not None else p.default)
        if value is None:
            about = f" ({p.description})" if p.description else ""
            raise UsageError(
                f"{doc.label}: missing required parameter '{p.name}'{about}; pass -p {p.name}=VALUE"
            )
        if p.enum and value not in p.enum:
            raise UsageError(
                f"{doc.label}: parameter '{p.name}' value '{value}' is not one of: {', '.join(p.enum)}"
            )
        values[p.name] = value
    return values
