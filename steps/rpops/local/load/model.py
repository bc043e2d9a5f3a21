"""Typed model of the supported Argo subset, built from documents that passed `schema.check`.

The executor reads only these values. They are frozen, so a substituted copy of a template
(`substitute.deep_map`) never changes the loaded one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

TemplateKind = Literal["container", "script", "steps", "dag", "suspend"]


def scalar_str(value: Any) -> str:
    """A YAML scalar as Argo's AnyString holds it (booleans lower-case, 3.0 as 3)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else scalar_str(value)


@dataclass(frozen=True)
class Parameter:
    """An argument, an input parameter or a workflow parameter."""

    name: str
    value: str | None = None
    default: str | None = None
    enum: tuple[str, ...] = ()
    description: str | None = None


@dataclass(frozen=True)
class OutputParameter:
    name: str
    path: str | None = None  # container/script: a file the step writes
    parameter: str | None = None  # steps/dag: "{{steps.x.outputs.parameters.y}}"
    default: str | None = None
    expression: str | None = None  # steps/dag: expr-lang over the children's values


@dataclass(frozen=True)
class OutputArtifact:
    name: str
    path: str
    optional: bool = False


@dataclass(frozen=True)
class SecretRef:
    name: str
    key: str
    optional: bool = False


@dataclass(frozen=True)
class EnvVar:
    name: str
    value: str | None = None
    secret: SecretRef | None = None


@dataclass(frozen=True)
class Container:
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[EnvVar, ...] = ()
    working_dir: str | None = None
    source: str | None = None  # script templates only


@dataclass(frozen=True)
class Backoff:
    duration: str | None = None
    factor: str | None = None
    max_duration: str | None = None
    cap: str | None = None


@dataclass(frozen=True)
class RetryStrategy:
    limit: str | None = None
    policy: str | None = None  # None: OnFailure, or Always when an expression is set (as Argo)
    backoff: Backoff | None = None
    expression: str | None = None

    @property
    def effective_policy(self) -> str:
        if self.policy:
            return self.policy
        return "Always" if self.expression else "OnFailure"


@dataclass(frozen=True)
class TemplateRef:
    name: str
    template: str


@dataclass(frozen=True)
class Sequence:
    count: str | None = None
    start: str | None = None
    end: str | None = None
    format: str | None = None


@dataclass(frozen=True)
class ExitHook:
    """A step's or task's exit handler (`onExit: name` or `hooks: {exit: ...}`)."""

    template: str | None = None
    template_ref: TemplateRef | None = None
    arguments: tuple[Parameter, ...] | None = None  # None: the workflow's arguments (Argo's WithArgs)


@dataclass(frozen=True)
class Step:
    """A step of a steps template or a task of a DAG (the fields they share, plus DAG's own)."""

    name: str
    template: str | None = None
    template_ref: TemplateRef | None = None
    arguments: tuple[Parameter, ...] = ()
    when: str | None = None
    with_items: tuple[Any, ...] | None = None
    with_param: str | None = None
    with_sequence: Sequence | None = None
    continue_on_failed: bool = False
    continue_on_error: bool = False
    depends: str | None = None
    dependencies: tuple[str, ...] = ()
    on_exit: ExitHook | None = None

    @property
    def loops(self) -> bool:
        return self.with_items is not None or self.with_param is not None or self.with_sequence is not None

    def continues_on(self, phase: str) -> bool:
        return (phase == "Failed" and self.continue_on_failed) or (
            phase == "Error" and self.continue_on_error
        )


@dataclass(frozen=True)
class Dag:
    tasks: tuple[Step, ...]
    target: str | None = None
    fail_fast: bool = True


@dataclass(frozen=True)
class Template:
    name: str
    kind: TemplateKind
    inputs: tuple[Parameter, ...] = ()
    outputs: tuple[OutputParameter, ...] = ()
    artifacts: tuple[OutputArtifact, ...] = ()
    container: Container | None = None
    steps: tuple[tuple[Step, ...], ...] = ()
    dag: Dag | None = None
    suspend_duration: str | None = None
    active_deadline: str | None = None
    timeout: str | None = None
    parallelism: int | None = None
    retry: RetryStrategy | None = None
    mutexes: tuple[str, ...] = ()
    fail_fast: bool = False  # template-level failFast: a failed member stops the rest of its group
    metrics: tuple[dict[str, Any], ...] = field(default=(), compare=False)

    def output(self, name: str) -> OutputParameter | None:
        return next((o for o in self.outputs if o.name == name), None)


@dataclass(frozen=True)
class WorkflowSpec:
    templates: tuple[Template, ...] = ()
    entrypoint: str | None = None
    arguments: tuple[Parameter, ...] = ()
    on_exit: str | None = None
    parallelism: int | None = None
    active_deadline: str | None = None
    mutexes: tuple[str, ...] = ()
    template_ref: str | None = None  # workflowTemplateRef.name
    service_account: str | None = None

    def template(self, name: str) -> Template | None:
        return next((t for t in self.templates if t.name == name), None)


# ---------------------------------------------------------------------------------------------
# Parsing (from dicts that passed schema.check, so shapes are known to be right)


def parse_parameter(d: dict[str, Any]) -> Parameter:
    return Parameter(
        name=d["name"],
        value=_opt_str(d.get("value")),
        default=_opt_str(d.get("default")),
        enum=tuple(scalar_str(v) for v in d.get("enum") or ()),
        description=d.get("description"),
    )


def _parameters(d: dict[str, Any] | None) -> tuple[Parameter, ...]:
    return tuple(parse_parameter(p) for p in ((d or {}).get("parameters") or ()))


def _container(d: dict[str, Any]) -> Container:
    env = []
    for e in d.get("env") or ():
        ref = (e.get("valueFrom") or {}).get("secretKeyRef")
        secret = SecretRef(ref["name"], ref["key"], bool(ref.get("optional"))) if ref else None
        env.append(EnvVar(name=e["name"], value=e.get("value"), secret=secret))
    return Container(
        command=tuple(d.get("command") or ()),
        args=tuple(d.get("args") or ()),
        env=tuple(env),
        working_dir=d.get("workingDir"),
        source=d.get("source"),
    )


def _exit_hook(d: dict[str, Any]) -> ExitHook | None:
    if d.get("onExit"):
        return ExitHook(template=d["onExit"])
    hook = (d.get("hooks") or {}).get("exit")
    if hook is None:
        return None
    ref = hook.get("templateRef")
    args = hook.get("arguments")
    return ExitHook(
        template=hook.get("template"),
        template_ref=TemplateRef(ref["name"], ref["template"]) if ref else None,
        arguments=_parameters(args) if args and args.get("parameters") else None,
    )


def _step(d: dict[str, Any]) -> Step:
    ref = d.get("templateRef")
    seq = d.get("withSequence")
    cont = d.get("continueOn") or {}
    items = d.get("withItems")
    return Step(
        name=d["name"],
        template=d.get("template"),
        template_ref=TemplateRef(ref["name"], ref["template"]) if ref else None,
        arguments=_parameters(d.get("arguments")),
        when=d.get("when"),
        with_items=tuple(items) if items is not None else None,
        with_param=d.get("withParam"),
        with_sequence=Sequence(
            count=_opt_str(seq.get("count")),
            start=_opt_str(seq.get("start")),
            end=_opt_str(seq.get("end")),
            format=seq.get("format"),
        )
        if seq is not None
        else None,
        continue_on_failed=bool(cont.get("failed")),
        continue_on_error=bool(cont.get("error")),
        depends=d.get("depends"),
        dependencies=tuple(d.get("dependencies") or ()),
        on_exit=_exit_hook(d),
    )


def _retry(d: dict[str, Any] | None) -> RetryStrategy | None:
    if d is None:
        return None
    b = d.get("backoff")
    backoff = (
        Backoff(*(_opt_str(b.get(k)) for k in ("duration", "factor", "maxDuration", "cap"))) if b else None
    )
    return RetryStrategy(
        limit=_opt_str(d.get("limit")),
        policy=d.get("retryPolicy"),
        backoff=backoff,
        expression=d.get("expression"),
    )


def mutex_names(sync: dict[str, Any] | None) -> tuple[str, ...]:
    return tuple(m["name"] for m in ((sync or {}).get("mutexes") or ()))


def template_kind(d: dict[str, Any]) -> list[str]:
    return [k for k in ("container", "script", "steps", "dag", "suspend") if k in d]


def parse_template(d: dict[str, Any]) -> Template:
    kinds = template_kind(d)
    kind: TemplateKind = kinds[0]  # type: ignore[assignment]  # exactly one, checked by catalog
    outputs = d.get("outputs") or {}
    outs = []
    for o in outputs.get("parameters") or ():
        vf = o.get("valueFrom") or {}
        outs.append(
            OutputParameter(
                name=o["name"],
                path=vf.get("path"),
                parameter=vf.get("parameter"),
                default=_opt_str(vf.get("default")),
                expression=vf.get("expression"),
            )
        )
    arts = tuple(
        OutputArtifact(a["name"], a["path"], bool(a.get("optional"))) for a in outputs.get("artifacts") or ()
    )
    dag = d.get("dag")
    return Template(
        name=d["name"],
        kind=kind,
        inputs=_parameters(d.get("inputs")),
        outputs=tuple(outs),
        artifacts=arts,
        container=_container(d[kind]) if kind in ("container", "script") else None,
        steps=tuple(tuple(_step(s) for s in group) for group in d.get("steps") or ()),
        dag=Dag(
            tasks=tuple(_step(t) for t in dag["tasks"]),
            target=dag.get("target"),
            fail_fast=dag.get("failFast", True),
        )
        if dag is not None
        else None,
        suspend_duration=_opt_str((d.get("suspend") or {}).get("duration")),
        active_deadline=_opt_str(d.get("activeDeadlineSeconds")),
        timeout=d.get("timeout"),
        parallelism=d.get("parallelism"),
        retry=_retry(d.get("retryStrategy")),
        mutexes=mutex_names(d.get("synchronization")),
        fail_fast=bool(d.get("failFast")),
        metrics=tuple((d.get("metrics") or {}).get("prometheus") or ()),
    )


def parse_spec(d: dict[str, Any]) -> WorkflowSpec:
    ref = d.get("workflowTemplateRef")
    return WorkflowSpec(
        templates=tuple(parse_template(t) for t in d.get("templates") or ()),
        entrypoint=d.get("entrypoint"),
        arguments=_parameters(d.get("arguments")),
        on_exit=d.get("onExit"),
        parallelism=d.get("parallelism"),
        active_deadline=_opt_str(d.get("activeDeadlineSeconds")),
        mutexes=mutex_names(d.get("synchronization")),
        template_ref=ref["name"] if ref else None,
        service_account=d.get("serviceAccountName"),
    )
