"""WorkflowEventBindings for `rpops local serve`: load and check them, match events, submit runs.

load:   `load_bindings(catalog, namespace)` checks every binding of the namespace before the
        server starts: known fields only, selector and parameter expressions inside the subset of
        rpops.local.expr.eventexpr, the WorkflowTemplate loaded, each parameter one of its arguments and
        every required argument bound. One bad binding stops the server, naming the problem.
decide: `match(bindings, env)` (pure): every selector first, then the matched bindings'
        parameters, as Argo turns them into strings. Any evaluation error refuses the whole event
        (no binding submits), unlike Argo, where bindings before the failing one already submitted.
act:    `Dispatcher.submit(submissions)` checks each run as `rpops local run` would (parameters in
        their enums, ...) and only then starts them all in background threads of the executor,
        which holds the templates' mutexes. A run is the Workflow Argo would create: a
        `workflowTemplateRef` with the arguments, labelled with the binding's name.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rpops.core.errors import UsageError
from rpops.local.expr.eventexpr import ExprError, Expression, argo_string, compile_expression
from rpops.local.load.catalog import API_VERSION, Catalog, Document

log = logging.getLogger("rpops.local.server.serve")

BINDING_LABEL = "workflows.argoproj.io/workflow-event-binding"
_FIELDS = {
    "": {"apiVersion", "kind", "metadata", "spec"},
    "spec": {"event", "submit"},
    "spec.event": {"selector"},
    "spec.submit": {"workflowTemplateRef", "arguments"},
    "spec.submit.workflowTemplateRef": {"name", "clusterScope"},
    "spec.submit.arguments": {"parameters"},
    "parameter": {"name", "valueFrom"},
    "valueFrom": {"event"},
}


@dataclass(frozen=True)
class Binding:
    name: str
    selector: Expression
    template: str | None  # None: a binding without `submit` matches and does nothing
    parameters: tuple[tuple[str, Expression], ...]
    source: str


@dataclass(frozen=True)
class Submission:
    binding: str
    template: str
    parameters: dict[str, str]


def _unknown(value: Mapping[str, Any], where: str, allowed: str) -> list[str]:
    extra = sorted(set(value) - _FIELDS[allowed])
    return [
        f"{where}.{k}: not supported by rpops local serve" if where else f"{k}: unknown field" for k in extra
    ]


def _map(value: Any, where: str, problems: list[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        problems.append(f"{where}: must be a map")
        return {}
    return value


def check_binding(doc: Document, catalog: Catalog) -> Binding:
    """The binding, ready to match; UsageError listing every problem, naming the document."""
    raw = doc.raw
    problems: list[str] = []
    if raw.get("apiVersion") != API_VERSION:
        problems.append(f"apiVersion: must be {API_VERSION}")
    problems += _unknown(raw, "", "")
    spec = _map(raw.get("spec"), "spec", problems)
    problems += _unknown(spec, "spec", "spec")
    event = _map(spec.get("event"), "spec.event", problems)
    problems += _unknown(event, "spec.event", "spec.event")
    selector: Expression | None = None
    try:
        selector = compile_expression(event.get("selector", ""))
    except ExprError as exc:
        problems.append(f"spec.event.selector: {exc}")
    template: str | None = None
    parameters: list[tuple[str, Expression]] = []
    if spec.get("submit") is not None:
        submit = _map(spec.get("submit"), "spec.submit", problems)
        problems += _unknown(submit, "spec.submit", "spec.submit")
        ref = _map(submit.get("workflowTemplateRef"), "spec.submit.workflowTemplateRef", problems)
        problems += _unknown(ref, "spec.submit.workflowTemplateRef", "spec.submit.workflowTemplateRef")
        if ref.get("clusterScope"):
            problems.append(
                "spec.submit.workflowTemplateRef.clusterScope: ClusterWorkflowTemplates are not loaded"
            )
        template = str(ref.get("name") or "")
        declared: dict[str, Any] = {}
        target = catalog.find("WorkflowTemplate", template)
        if target is None:
            known = (
                ", ".join(sorted(d.name for d in catalog.documents if d.kind == "WorkflowTemplate")) or "none"
            )
            problems.append(
                f"spec.submit.workflowTemplateRef.name: WorkflowTemplate '{template}' is not loaded "
                f"(known: {known})"
            )
        else:
            declared = {p.name: p for p in catalog.spec(target).arguments}
        arguments = _map(submit.get("arguments") or {}, "spec.submit.arguments", problems)
        problems += _unknown(arguments, "spec.submit.arguments", "spec.submit.arguments")
        for i, p in enumerate(arguments.get("parameters") or ()):
            where = f"spec.submit.arguments.parameters[{i}]"
            p = _map(p, where, problems)
            problems += _unknown(p, where, "parameter")
            name = str(p.get("name") or "")
            value_from = _map(p.get("valueFrom"), f"{where}.valueFrom", problems)
            problems += _unknown(value_from, f"{where}.valueFrom", "valueFrom")
            if not name:
                problems.append(f"{where}.name: is required")
            elif target is not None and name not in declared:
                problems.append(f"{where}: '{name}' is not a parameter of {template} ({', '.join(declared)})")
            try:
                parameters.append((name, compile_expression(value_from.get("event", ""))))
            except ExprError as exc:
                problems.append(f"{where}.valueFrom.event: {exc}")
        bound = {name for name, _ in parameters}
        for name, p in declared.items():
            if name not in bound and p.value is None and p.default is None:
                problems.append(
                    f"spec.submit.arguments: required parameter '{name}' of {template} is not bound; "
                    "add it with valueFrom.event"
                )
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise UsageError(f"{doc.label} cannot be served:\n{lines}")
    assert selector is not None
    return Binding(doc.name, selector, template, tuple(parameters), doc.source)


def check_runnable(binding: Binding, catalog: Catalog, namespace: str) -> None:
    """Check the run the binding would start as `rpops local lint` does (placeholder values: an enum's
    first value, else "x"), so that a template outside the local subset stops the server at load."""
    from rpops.local.load.plan import prepare

    if binding.template is None:
        return
    target = catalog.find("WorkflowTemplate", binding.template)
    assert target is not None  # check_binding made sure
    declared = {p.name: p for p in catalog.spec(target).arguments}
    values = {name: (p.enum[0] if (p := declared[name]).enum else "x") for name, _ in binding.parameters}
    doc = workflow_document(Submission(binding.name, binding.template, values), namespace)
    try:
        prepare(catalog, doc)
    except UsageError as exc:
        raise UsageError(
            f"{binding.source} (WorkflowEventBinding {binding.name}) cannot be served: {exc}"
        ) from None


def load_bindings(catalog: Catalog, namespace: str) -> list[Binding]:
    """Every binding of `namespace` (a binding naming no namespace belongs to every one), checked."""
    docs = [d for d in catalog.bindings() if str(d.metadata.get("namespace") or namespace) == namespace]
    bindings = [check_binding(d, catalog) for d in docs]
    for b in bindings:
        check_runnable(b, catalog, namespace)
    return bindings


def event_env(namespace: str, discriminator: str, payload: Any, headers: Mapping[str, str]) -> dict[str, Any]:
    """What Argo's expressions see; `metadata` holds only the `X-` headers (never Authorization)."""
    meta = {k.lower(): [v] for k, v in headers.items() if k.lower().startswith("x-")}
    return {"namespace": namespace, "discriminator": discriminator, "payload": payload, "metadata": meta}


def match(bindings: Sequence[Binding], env: Mapping[str, Any]) -> list[Submission]:
    """The runs an event asks for. ExprError (naming the binding) when any expression fails."""
    matched = []
    for b in bindings:
        try:
            if b.selector.evaluate_bool(env):
                matched.append(b)
        except ExprError as exc:
            raise ExprError(f"binding {b.name}: selector: {exc}") from None
    out = []
    for b in matched:
        if b.template is None:
            continue
        values = {}
        for name, expression in b.parameters:
            try:
                values[name] = argo_string(expression.evaluate(env))
            except ExprError as exc:
                raise ExprError(f"binding {b.name}: parameter {name}: {exc}") from None
        out.append(Submission(b.name, b.template, values))
    return out


def workflow_document(sub: Submission, namespace: str) -> Document:
    """The Workflow Argo creates for a submission (its name comes from generateName)."""
    raw = {
        "apiVersion": API_VERSION,
        "kind": "Workflow",
        "metadata": {
            "generateName": f"{sub.template}-",
            "namespace": namespace,
            "labels": {BINDING_LABEL: sub.binding},
        },
        "spec": {
            "workflowTemplateRef": {"name": sub.template},
            "arguments": {"parameters": [{"name": k, "value": v} for k, v in sub.parameters.items()]},
        },
    }
    # One fixed key per binding: Catalog.add replaces the previous event's document (and its
    # cached spec), so the catalog does not grow with every event.
    return Document(kind="Workflow", name=f"{sub.binding}-event", raw=raw, source=f"binding {sub.binding}")


@dataclass
class Dispatcher:
    """Starts runs in the local executor and keeps their handles (for stopping them on shutdown)."""

    catalog: Catalog
    namespace: str
    options_factory: Callable[[], Any]  # -> rpops.local.run.executor.Options
    node_listeners: Sequence[Callable[..., None]] = ()
    handles: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)  # shared with the cron scheduler

    def submit(self, submissions: Sequence[Submission]) -> list[str]:
        """Check every run, then start them all; UsageError (nothing started) on a bad one."""
        from rpops.local.api import start
        from rpops.local.load.plan import prepare

        if not submissions:
            return []
        docs = [workflow_document(s, self.namespace) for s in submissions]
        with self.lock:
            for doc, sub in zip(docs, submissions, strict=True):
                self.catalog.add(doc)
                try:
                    prepare(self.catalog, doc)
                except UsageError as exc:
                    raise UsageError(f"binding {sub.binding}: {exc}") from None
            names = []
            for doc in docs:
                self.catalog.add(doc)
                handle = start(
                    self.catalog, doc, options=self.options_factory(), node_listeners=self.node_listeners
                )
                self.handles.append(handle)
                names.append(handle.name)
            self.handles = [h for h in self.handles if not h.run.done.is_set()]
        for name, sub in zip(names, submissions, strict=True):
            log.info("binding %s submitted %s from %s", sub.binding, name, sub.template)
        return names

    def active(self) -> list[Any]:
        with self.lock:
            return [h for h in self.handles if not h.run.done.is_set()]
