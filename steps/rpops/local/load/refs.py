"""Load-time checks of everything a run will reach: references, arguments, DAG shape, expressions.

Walks the templates reachable from the entrypoint (and from onExit) and checks each `{{tag}}`
against what will exist when it is substituted: a step's own earlier groups, a task's
ancestors, the template's declared inputs and the outputs the referenced template declares.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from rpops.core.errors import UsageError
from rpops.local.expr import exprlang
from rpops.local.expr.expressions import ExpressionError, dependencies_expr, parse_depends, parse_when
from rpops.local.expr.substitute import blank_tags, strings, tags
from rpops.local.load import paths
from rpops.local.load.catalog import Scope
from rpops.local.load.model import Step, Template
from rpops.local.load.plan import Plan, resolve

WORKFLOW_VARS = (
    "name",
    "namespace",
    "uid",
    "mainEntrypoint",
    "serviceAccountName",
    "creationTimestamp",
    "parameters",
)
EXIT_VARS = ("status", "failures", "duration")
NODE_FIELDS = (
    "id",
    "status",
    "startedAt",
    "finishedAt",
    "exitCode",
    "outputs.result",
    "outputs.exitCode",
    "outputs.parameters",
)
SEQUENCE_FORMAT = re.compile(r"[^%]*(%[-+ 0#]*\d*[dxXo])?[^%]*")


@dataclass(frozen=True)
class Visible:
    template: Template
    loops: bool


@dataclass(frozen=True)
class RefScope:
    exit: bool
    inputs: frozenset[str]
    prefix: str = "steps"
    visible: dict[str, Visible] = field(default_factory=dict)
    item: Any = None  # None: no loop; "any"; or a frozenset of map keys every item has
    retries: bool = False
    leaf: bool = False


class _Checker:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.problems: list[str] = []
        self.visited: set[tuple[str, str, bool]] = set()
        self.labels = set(plan.labels)
        self.annotations = set(plan.annotations)

    def add(self, scope: Scope, template: str, where: str, message: str) -> None:
        self.problems.append(f"{scope.name}: template '{template}'{where}: {message}")

    # -- references ------------------------------------------------------------------------------

    def tag_problem(self, tag: str, rs: RefScope) -> str | None:
        if tag.startswith("="):
            return self.expression_problem(tag[1:], rs)
        parts = tag.split(".")
        head = parts[0]
        if tag == "item" or head == "item":
            if rs.item is None:
                return "{{item}} is only set in a step with withItems, withParam or withSequence"
            if len(parts) > 1 and rs.item != "any":
                key = ".".join(parts[1:])
                if key not in rs.item:
                    have = ", ".join(sorted(rs.item)) or "none (items are not maps)"
                    return f"not every item has the key '{key}' (keys every item has: {have})"
            return None
        if tag == "retries":
            return None if rs.retries else "{{retries}} is only set in a template with a retryStrategy"
        if tag in ("pod.name", "node.name"):
            return None if rs.leaf else f"{{{{{tag}}}}} is only set in container and script templates"
        if head == "inputs":
            if len(parts) == 3 and parts[1] == "parameters":
                if parts[2] in rs.inputs:
                    return None
                return (
                    f"the template declares no input parameter '{parts[2]}' "
                    f"(inputs: {', '.join(sorted(rs.inputs)) or 'none'})"
                )
            return "only inputs.parameters.NAME is supported"
        if head == "workflow":
            return self.workflow_problem(parts[1:], rs)
        if head in ("steps", "tasks"):
            return self.node_problem(head, parts[1:], rs)
        return "unknown variable"

    def expression_problem(self, source: str, rs: RefScope) -> str | None:
        """`{{= expr}}`: valid expr-lang, reading only names that exist where it is substituted."""
        try:
            expr = exprlang.compile_expression(source.strip(), exprlang.FULL)
        except exprlang.ExprError as exc:
            return str(exc)
        for path in exprlang.name_paths(expr):
            problem = self.tag_problem(path, rs) if path.split(".")[0] not in ("sprig",) else None
            if (
                problem
                and not problem.startswith("only inputs.parameters")
                and path not in ("inputs", "workflow")
            ):
                return f"'{path}': {problem}"
        return None

    def workflow_problem(self, rest: list[str], rs: RefScope) -> str | None:
        if not rest:
            return "unknown variable"
        key = rest[0]
        if key in EXIT_VARS and len(rest) == 1:
            return None if rs.exit else f"{{{{workflow.{key}}}}} is only set in the onExit handler"
        if key == "parameters":
            if len(rest) == 1 or (len(rest) == 2 and rest[1] == "json"):
                return None
            name = ".".join(rest[1:])
            if name in self.plan.parameters:
                return None
            known = ", ".join(self.plan.parameters) or "none"
            return f"'{name}' is not a workflow parameter (parameters: {known})"
        if key in ("labels", "annotations") and len(rest) >= 2:
            keys = self.labels if key == "labels" else self.annotations
            name = ".".join(rest[1:])
            return None if name in keys else f"the workflow has no {key[:-1]} '{name}'"
        if key in WORKFLOW_VARS and len(rest) == 1:
            return None
        if key == "scheduledTime" and len(rest) == 1:
            if self.plan.doc.kind == "CronWorkflow":
                return None
            return "{{workflow.scheduledTime}} is only set in a CronWorkflow's runs"
        return "unknown workflow variable"

    def node_problem(self, kind: str, rest: list[str], rs: RefScope) -> str | None:
        if kind != rs.prefix:
            return f"{{{{{kind}.*}}}} is only available in a {'steps' if kind == 'steps' else 'dag'} template"
        if not rest:
            return "name a step"
        name = rest[0]
        seen = rs.visible.get(name)
        if seen is None:
            if kind == "steps":
                where = "in an earlier step group of this template"
            else:
                where = "among this task's dependencies (add it to depends)"
            have = ", ".join(sorted(rs.visible)) or "none"
            return f"no {kind[:-1]} '{name}' {where} (visible: {have})"
        field_ = ".".join(rest[1:])
        if field_ in ("id", "status", "startedAt", "finishedAt", "exitCode", "outputs.exitCode"):
            return None
        if field_ == "outputs.result":
            if seen.template.kind in ("container", "script"):
                return None
            return f"template '{seen.template.name}' is a {seen.template.kind} template and has no result"
        if field_ == "outputs.parameters":
            return None if seen.loops else "outputs.parameters (all of them, as JSON) needs a looped step"
        if len(rest) == 4 and rest[1:3] == ["outputs", "parameters"]:
            if seen.template.output(rest[3]) is not None:
                return None
            declared = ", ".join(o.name for o in seen.template.outputs) or "none"
            tname = seen.template.name
            return f"template '{tname}' declares no output parameter '{rest[3]}' (outputs: {declared})"
        return f"unknown field '{field_}' (use one of {', '.join(NODE_FIELDS)})"

    def check_strings(self, scope: Scope, t: Template, where: str, obj: Any, rs: RefScope, path: str) -> None:
        for fpath, text in ((argo_path(p), s) for p, s in strings(obj, path)):
            for tag in tags(text):
                problem = self.tag_problem(tag, rs)
                if problem:
                    self.add(
                        scope,
                        t.name,
                        f"{where}, field '{fpath}'",
                        f"unknown reference {{{{{tag}}}}}: {problem}",
                    )

    # -- templates -------------------------------------------------------------------------------

    def visit(self, scope: Scope, t: Template, exit_: bool) -> None:
        key = (scope.name, t.name, exit_)
        if key in self.visited:
            return
        self.visited.add(key)
        base = RefScope(exit=exit_, inputs=frozenset(p.name for p in t.inputs))
        self.check_strings(scope, t, "", t.inputs, base, "inputs")
        self.check_strings(scope, t, "", t.mutexes, base, "synchronization.mutexes")
        self.check_strings(scope, t, "", t.active_deadline, base, "activeDeadlineSeconds")
        self.check_strings(scope, t, "", t.timeout, base, "timeout")
        self.check_strings(scope, t, "", t.suspend_duration, base, "suspend.duration")
        if t.kind in ("container", "script"):
            self.check_fallback_paths(scope, t)
            leaf = replace(base, retries=t.retry is not None, leaf=True)
            self.check_strings(scope, t, "", t.container, leaf, t.kind)
            self.check_strings(scope, t, "", t.outputs, leaf, "outputs")
            self.check_strings(scope, t, "", t.retry, leaf, "retryStrategy")
        else:
            self.check_strings(scope, t, "", t.retry, replace(base, retries=True), "retryStrategy")
        if t.retry is not None and t.retry.expression:
            try:
                # `{{...}}` in it is substituted before it runs: check the rest of the syntax now
                expr = exprlang.compile_expression(blank_tags(t.retry.expression, "nil"), exprlang.FULL)
                for path in exprlang.name_paths(expr):
                    if path not in RETRY_NAMES:
                        raise exprlang.ExprError(f"unknown name '{path}' (known: {', '.join(RETRY_NAMES)})")
            except ExpressionError as exc:
                self.add(scope, t.name, ", field 'retryStrategy.expression'", str(exc))
        if t.kind == "steps":
            self.visit_steps(scope, t, base)
        elif t.kind == "dag":
            self.visit_dag(scope, t, base)

    def check_output_expressions(self, scope: Scope, t: Template, rs: RefScope) -> None:
        for i, o in enumerate(t.outputs):
            if o.expression is not None:
                problem = self.expression_problem(o.expression, rs)
                if problem:
                    where = f", field 'outputs.parameters[{i}].valueFrom.expression'"
                    self.add(scope, t.name, where, problem)

    def check_fallback_paths(self, scope: Scope, t: Template) -> None:
        """Without a mount namespace only /tmp/outputs/ is the node's own: refuse other paths now."""
        declared = [
            (f"outputs.parameters[{i}].valueFrom.path", o.path or "") for i, o in enumerate(t.outputs)
        ]
        declared += [(f"outputs.artifacts[{i}].path", a.path) for i, a in enumerate(t.artifacts)]
        fallback_root = paths.FALLBACK_ROOT
        if all(p.startswith(fallback_root + "/") or "{{" in p for _, p in declared):
            return  # no probe needed: valid in both modes
        view = paths.mode()
        for where, path in declared:
            if "{{" in path:
                continue
            try:
                paths.normalize(path, where, view.root)
            except paths.PathRefused as exc:
                why = f" (no private /tmp here: {view.reason})" if not view.namespace else ""
                self.add(scope, t.name, f", field '{where}'", str(exc).split(": ", 1)[1] + why)

    def callee(self, scope: Scope, t: Template, step: Step, where: str) -> tuple[Template, Scope] | None:
        try:
            return resolve(self.plan.catalog, scope, step)
        except UsageError as exc:
            self.add(scope, t.name, where, str(exc))
            return None

    def quiet_callee(self, scope: Scope, step: Step) -> tuple[Template, Scope] | None:
        try:
            return resolve(self.plan.catalog, scope, step)
        except UsageError:
            return None  # reported where the step itself is checked

    def check_step(self, scope: Scope, t: Template, step: Step, rs: RefScope, where: str, kind: str) -> None:
        rs = replace(rs, item=_item_keys(step))
        for path, value in (
            ("arguments", step.arguments),
            ("when", step.when),
            ("withParam", step.with_param),
            ("withItems", step.with_items),
        ):
            self.check_strings(scope, t, where, value, rs, path)
        if step.when:
            try:
                parse_when(blank_tags(step.when, "x"))
            except ExpressionError as exc:
                self.add(scope, t.name, where, f"invalid when '{step.when}': {exc}")
        seq = step.with_sequence
        if seq is not None:
            if seq.count is None and seq.end is None:
                self.add(scope, t.name, where, "withSequence needs count or end")
            if seq.format and not SEQUENCE_FORMAT.fullmatch(seq.format):
                self.add(
                    scope,
                    t.name,
                    where,
                    f"withSequence.format {seq.format!r} must hold one printf "
                    "integer verb such as %d or %02d",
                )
        found = self.callee(scope, t, step, where)
        if found is None:
            return
        callee, cscope = found
        given = {p.name: p for p in step.arguments}
        declared = {p.name: p for p in callee.inputs}
        for name, p in given.items():
            if name not in declared:
                continue  # Argo ignores an argument the template does not declare
            if p.value is None:
                self.add(scope, t.name, where, f"argument '{name}' has no value")
            elif declared[name].enum and "{{" not in p.value and p.value not in declared[name].enum:
                self.add(
                    scope,
                    t.name,
                    where,
                    f"argument '{name}' value '{p.value}' is not one of: {', '.join(declared[name].enum)}",
                )
        for name, p in declared.items():
            if name not in given and p.value is None and p.default is None:
                self.add(
                    scope,
                    t.name,
                    where,
                    f"does not pass input parameter '{name}' that template '{callee.name}' requires",
                )
        self.visit(cscope, callee, rs.exit)
        if step.on_exit is not None:
            self.check_exit_hook(scope, t, step, callee, rs, where, kind)

    def check_exit_hook(
        self, scope: Scope, t: Template, step: Step, callee: Template, rs: RefScope, where: str, kind: str
    ) -> None:
        """A step's or task's exit handler: its arguments may read the step's own outputs."""
        hook_step = exit_step(step)
        prefix = "steps" if kind == "steps" else "tasks"
        own = replace(rs, prefix=prefix, visible={**rs.visible, step.name: Visible(callee, step.loops)})
        self.check_strings(scope, t, where, hook_step.arguments, own, "hooks.exit.arguments")
        found = self.callee(scope, t, hook_step, f"{where} exit handler")
        if found is None:
            return
        handler, hscope = found
        given = {p.name for p in hook_step.arguments} or set(self.plan.parameters)
        for p in handler.inputs:
            if p.name not in given and p.value is None and p.default is None:
                self.add(
                    scope,
                    t.name,
                    where,
                    f"exit handler '{handler.name}' needs input parameter '{p.name}', which nothing passes",
                )
        self.visit(hscope, handler, rs.exit)

    def visit_steps(self, scope: Scope, t: Template, base: RefScope) -> None:
        visible: dict[str, Visible] = {}
        names: set[str] = set()
        for gi, group in enumerate(t.steps):
            rs = replace(base, prefix="steps", visible=dict(visible))
            for step in group:
                where = f" (step '{step.name}' in group {gi})"
                if step.name in names:
                    self.add(scope, t.name, where, "step name is used twice in this template")
                names.add(step.name)
                self.check_step(scope, t, step, rs, where, "steps")
            for step in group:
                found = self.quiet_callee(scope, step) if step.name not in visible else None
                if found is not None:
                    visible[step.name] = Visible(found[0], step.loops)
        self.check_strings(scope, t, "", t.outputs, replace(base, prefix="steps", visible=visible), "outputs")
        self.check_output_expressions(scope, t, replace(base, prefix="steps", visible=visible))

    def visit_dag(self, scope: Scope, t: Template, base: RefScope) -> None:
        assert t.dag is not None
        tasks = {task.name: task for task in t.dag.tasks}
        if len(tasks) != len(t.dag.tasks):
            self.add(scope, t.name, "", "a task name is used twice in this dag")
        deps: dict[str, tuple[str, ...]] = {}
        for task in t.dag.tasks:
            where = f" (task '{task.name}')"
            try:
                expr = dag_depends(task, tasks)
            except ExpressionError as exc:
                self.add(scope, t.name, where, str(exc))
                continue
            missing = [d for d in (expr.tasks if expr else ()) if d not in tasks]
            for d in missing:
                self.add(
                    scope,
                    t.name,
                    where,
                    f"depends on task '{d}', which this dag does not define (tasks: {', '.join(tasks)})",
                )
            deps[task.name] = tuple(d for d in (expr.tasks if expr else ()) if d in tasks)
        cycle = find_cycle(deps)
        if cycle:
            self.add(scope, t.name, "", f"the dag is cyclic: {' -> '.join(cycle)} (each depends on the next)")
            return
        target = t.dag.target or ""
        self.check_strings(scope, t, "", target, base, "dag.target")
        for name in [] if "{{" in target else target.split():  # else resolved at run time
            if name not in tasks:
                self.add(scope, t.name, "", f"dag target '{name}' is not a task (tasks: {', '.join(tasks)})")
        callees = {}
        for task in t.dag.tasks:
            found = self.quiet_callee(scope, task)
            if found is not None:
                callees[task.name] = Visible(found[0], task.loops)
        for task in t.dag.tasks:
            visible = {a: callees[a] for a in ancestors(task.name, deps) if a in callees}
            rs = replace(base, prefix="tasks", visible=visible)
            self.check_step(scope, t, task, rs, f" (task '{task.name}')", "dag")
        self.check_strings(scope, t, "", t.outputs, replace(base, prefix="tasks", visible=callees), "outputs")
        self.check_output_expressions(scope, t, replace(base, prefix="tasks", visible=callees))


RETRY_NAMES = (
    "lastRetry.exitCode",
    "lastRetry.status",
    "lastRetry.duration",
    "lastRetry.message",
    "retries",
)

_ARGO_PATHS = (
    (re.compile(r"^(inputs|arguments)\["), r"\1.parameters["),
    (re.compile(r"^outputs\[(\d+)\]\.(path|default|parameter)"), r"outputs.parameters[\1].valueFrom.\2"),
    (re.compile(r"working_dir"), "workingDir"),
    (re.compile(r"^container\.source"), "script.source"),
    (re.compile(r"\.max_duration"), ".maxDuration"),
    (re.compile(r"^retryStrategy\.policy"), "retryStrategy.retryPolicy"),
)


def argo_path(path: str) -> str:
    """A model field path as the field is spelt in the YAML."""
    for pattern, repl in _ARGO_PATHS:
        path = pattern.sub(repl, path)
    return path


def dag_depends(task: Step, tasks: dict[str, Step]) -> Any:
    def continue_on(name: str) -> tuple[bool, bool]:
        other = tasks.get(name)
        return (other.continue_on_failed, other.continue_on_error) if other else (False, False)

    if task.depends:
        return parse_depends(task.depends, continue_on)
    return dependencies_expr(task.dependencies, continue_on)


def exit_step(step: Step) -> Step:
    """A step's exit handler as a step of its own (Argo's LifecycleHook as a WorkflowStep)."""
    hook = step.on_exit
    assert hook is not None
    return Step(
        name=f"{step.name}.onExit",
        template=hook.template,
        template_ref=hook.template_ref,
        arguments=hook.arguments or (),
    )


def ancestors(name: str, deps: dict[str, tuple[str, ...]]) -> list[str]:
    seen: list[str] = []
    stack = list(deps.get(name, ()))
    while stack:
        d = stack.pop()
        if d not in seen:
            seen.append(d)
            stack.extend(deps.get(d, ()))
    return seen


def find_cycle(deps: dict[str, tuple[str, ...]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def dfs(n: str) -> list[str] | None:
        state[n] = 1
        path.append(n)
        for d in deps.get(n, ()):
            if state.get(d) == 1:
                return path[path.index(d) :] + [d]
            if state.get(d) is None and (found := dfs(d)):
                return found
        path.pop()
        state[n] = 2
        return None

    for n in deps:
        if state.get(n) is None and (found := dfs(n)):
            return found
    return None


def _item_keys(step: Step) -> Any:
    if step.with_items is not None:
        if all(isinstance(i, dict) for i in step.with_items) and step.with_items:
            keys = set(step.with_items[0])
            for i in step.with_items[1:]:
                keys &= set(i)
            return frozenset(keys)
        if any(isinstance(i, dict) for i in step.with_items):
            return "any"
        return frozenset()
    if step.with_param is not None:
        return "any"
    if step.with_sequence is not None:
        return frozenset()
    return None


def validate(plan: Plan) -> None:
    """Raise UsageError listing every problem in what `plan` will run."""
    checker = _Checker(plan)
    spec = plan.spec
    for role, name in (("entrypoint", spec.entrypoint), ("onExit", spec.on_exit)):
        if name is None:
            continue
        template = plan.root.templates.get(name)
        if template is None:
            checker.problems.append(
                f"{plan.doc.label}: {role} '{name}' is not a template "
                f"(templates: {', '.join(sorted(plan.root.templates))})"
            )
            continue
        missing = [
            p.name
            for p in template.inputs
            if p.value is None and p.default is None and p.name not in plan.parameters
        ]
        if missing:
            checker.problems.append(
                f"{plan.doc.label}: {role} template '{name}' needs input parameter "
                f"'{missing[0]}', which nothing passes; give it a default or pass "
                f"-p {missing[0]}=VALUE (the workflow's arguments reach the {role} template)"
            )
        checker.visit(plan.root, template, role == "onExit")
    fields = (spec.mutexes, spec.active_deadline, tuple(spec.arguments))
    for fpath, text in strings(fields):
        for tag in tags(text):
            problem = (
                checker.workflow_problem(tag.split(".")[1:], RefScope(exit=False, inputs=frozenset()))
                if tag.startswith("workflow.")
                else "only workflow variables are set here"
            )
            if problem:
                checker.problems.append(
                    f"{plan.doc.label}: spec field '{fpath}': unknown reference {{{{{tag}}}}}: {problem}"
                )
    if checker.problems:
        lines = "\n".join(f"  - {p}" for p in checker.problems[:50])
        raise UsageError(f"{plan.doc.label} cannot run; nothing was started:\n{lines}")
