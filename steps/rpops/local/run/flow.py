"""Steps templates, and what steps and DAG tasks share: substitution, loops, `when`, outbound nodes.

Steps: groups run in order; the members of a group run in parallel; a group fails when a
member fails or errors without continueOn, and the steps node fails with it. Node names,
children and messages are Argo's. DAG templates are in `dag`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from rpops.local.expr import exprlang
from rpops.local.expr.expressions import ExpressionError, evaluate_when
from rpops.local.expr.substitute import Unresolved, deep_map, first_unresolved, render
from rpops.local.load.catalog import Scope
from rpops.local.load.model import Step, Template
from rpops.local.load.plan import resolve
from rpops.local.records.nodes import (
    ERROR,
    FAILED,
    FAILED_OR_ERROR,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    Node,
)
from rpops.local.run.values import (
    aggregate_values,
    expand_sequence,
    item_label,
    item_values,
    node_values,
    parse_with_param,
)

if TYPE_CHECKING:
    from rpops.local.run.executor import Call, Run


class StepProblem(Exception):
    """A step or task that cannot start: unresolved reference, bad items, bad when."""


def subst(step: Step, values: Mapping[str, str]) -> Step:
    return deep_map(step, lambda s: render(s, values, strict=False))


def _check_resolved(obj: Any, values: Mapping[str, str]) -> None:
    tag = first_unresolved(obj, values)
    if tag is not None:
        raise StepProblem(str(Unresolved(tag)))


def _items(step: Step) -> list[Any]:
    if step.with_items is not None:
        return list(step.with_items)
    if step.with_param is not None:
        return parse_with_param(step.with_param)
    assert step.with_sequence is not None
    return expand_sequence(step.with_sequence)


def expand(step: Step, values: Mapping[str, str]) -> list[tuple[str, Step]] | None:
    """[(name suffix, substituted step)]; None when the step does not loop. Raises StepProblem.

    Each item's step is substituted once, from the step as written, with the item's values and
    the others together: a value that holds `{{` stays as it is.
    """
    if not step.loops:
        _check_resolved((step.arguments, step.when, step.with_param), values)
        return None
    _check_resolved((step.with_param, step.with_items, step.with_sequence), values)
    try:
        items = _items(subst(step, values))
    except ValueError as exc:
        raise StepProblem(str(exc)) from None
    out = []
    for i, item in enumerate(items):
        merged = {**values, **item_values(item)}
        _check_resolved((step.arguments, step.when), merged)
        out.append((item_label(i, item), subst(step, merged)))
    return out


def when_holds(step: Step) -> bool:
    """Raises StepProblem with Argo's message when the expression is invalid."""
    if not step.when:
        return True
    try:
        return evaluate_when(step.when)
    except ExpressionError as exc:
        raise StepProblem(str(exc)) from None


def outbound(run: Run, node: Node) -> list[str]:
    """Argo's getOutboundNodes: the nodes a following step or task hangs from."""
    store = run.store
    if node.type in ("Pod", "Skipped", "Suspend"):
        return [node.id]
    if node.type == "TaskGroup":
        if not node.children:
            return [node.id]
        return [o for c in node.children if (child := store.get(c)) for o in outbound(run, child)]
    if node.type == "Retry":
        return [node.children[-1]] if node.children else []
    return [o for nid in node.outbound if (n := store.get(nid)) for o in outbound(run, n)]


def template_outputs(t: Template, values: Mapping[str, str]) -> tuple[dict[str, Any] | None, str | None]:
    """A steps/dag template's outputs from its children (valueFrom.parameter, else the default)."""
    params = []
    env: dict[str, Any] | None = None
    for o in t.outputs:
        try:
            if o.expression is not None:
                env = env if env is not None else exprlang.expand(values)
                value = expression_value(o.expression, env)
            else:
                value = render(o.parameter or "", values, strict=True)
        except Unresolved as exc:
            if o.default is None:
                return None, str(exc)
            value = o.default
        params.append({"name": o.name, "value": value})
    return ({"parameters": params} if params else None), None


def expression_value(source: str, env: dict[str, Any]) -> str:
    """valueFrom.expression of a steps/dag output (Argo's getTemplateOutputsFromScope)."""
    try:
        return exprlang.go_string(exprlang.compile_expression(source, exprlang.FULL).evaluate(env))
    except exprlang.ExprError as exc:
        raise Unresolved(f"={source}", str(exc)) from None


def skip_node(
    run: Run,
    name: str,
    display: str,
    template: Template | None,
    boundary: str,
    parent: str,
    phase: str,
    message: str,
    call: Call,
) -> Node:
    node = run.store.create(
        name,
        display,
        "Skipped",
        template.name if template else None,
        boundary=boundary,
        parent=parent,
        phase=phase,
        message=message,
        exit_handler=call.exit_handler,
    )
    if template is not None:
        run.node_templates[node.id] = template
    return node


def _in_threads(jobs: list[Callable[[], None]]) -> None:
    if len(jobs) == 1:
        jobs[0]()
        return
    threads = [threading.Thread(target=job, daemon=True, name="rpops-step") for job in jobs]
    for th in threads:
        th.start()
    for th in threads:
        th.join()


def limited(sem: threading.Semaphore | None, job: Callable[[], None]) -> Callable[[], None]:
    if sem is None:
        return job

    def run() -> None:
        with sem:
            job()

    return run


# ---------------------------------------------------------------------------------------------
# steps


def run_steps(run: Run, node: Node, call: Call, t: Template, scope: Scope) -> None:
    store = run.store
    store.set_phase(node, RUNNING)
    values: dict[str, str] = {}
    previous = [node.id]
    sem = threading.BoundedSemaphore(t.parallelism) if t.parallelism else None
    for i, group in enumerate(t.steps):
        if run.cancelled(call):
            node.outbound = previous if previous != [node.id] else []
            store.set_phase(node, FAILED, run.cancel_reason)
            return
        sg = store.create(
            f"{node.name}[{i}]",
            f"[{i}]",
            "StepGroup",
            t.name,
            boundary=node.id,
            parent=node.id,
            phase=RUNNING,
            exit_handler=call.exit_handler,
        )
        for p in previous:
            store.add_child(p, sg.id)
        members = _run_group(
            run, node, sg, call, scope, group, {**run.scope_of(node, call), **values}, sem, t.fail_fast
        )
        ends = [o for c in sg.children if (child := store.get(c)) for o in outbound(run, child)]
        previous = ends or [sg.id]
        if sg.phase in FAILED_OR_ERROR:
            node.outbound = previous
            store.set_phase(node, FAILED, sg.message)
            return
        for step in group:
            names = members.get(step.name, [])
            children = [n for name in names if (n := store.by_name(name))]
            if len(children) == 1 and children[0].name == f"{sg.name}.{step.name}":
                child = children[0]
                values.update(node_values(f"steps.{step.name}", child, run.node_templates.get(child.id)))
            elif children:
                values.update(aggregate_values(f"steps.{step.name}", children))
    node.outbound = previous
    outputs, problem = template_outputs(t, {**run.scope_of(node, call), **values})
    if problem:
        store.set_phase(node, ERROR, problem)
        return
    node.outputs = outputs
    store.set_phase(node, SUCCEEDED)


def _run_group(
    run: Run,
    steps_node: Node,
    sg: Node,
    call: Call,
    scope: Scope,
    group: tuple[Step, ...],
    values: dict[str, str],
    sem: threading.Semaphore | None,
    fail_fast: bool = False,
) -> dict[str, list[str]]:
    """Run one step group; set its phase; return each step's node names (several when it loops)."""
    store = run.store
    members: dict[str, list[str]] = {}
    ready: list[tuple[str, str, Step, Template, Scope]] = []
    stop_group = threading.Event()
    step_of: dict[str, Step] = {}

    def fail(name: str, display: str, template: Template | None, message: str) -> dict[str, list[str]]:
        skip = skip_node(run, name, display, template, steps_node.id, sg.id, ERROR, message, call)
        store.add_child(sg.id, skip.id)
        store.set_phase(sg, ERROR, message)
        return members

    for step in group:
        name = f"{sg.name}.{step.name}"
        callee, cscope = resolve(run.plan.catalog, scope, step)
        try:
            expanded = expand(step, values)
        except StepProblem as exc:
            return fail(name, step.name, callee, str(exc))
        if expanded is not None and not expanded:
            skip = skip_node(
                run, name, step.name, callee, steps_node.id, sg.id, SKIPPED, "Skipped, empty params", call
            )
            store.add_child(sg.id, skip.id)
            members[step.name] = [name]
            continue
        for suffix, s in expanded if expanded is not None else [("", subst(step, values))]:
            child_name, display = name + suffix, step.name + suffix
            members.setdefault(step.name, []).append(child_name)
            step_of[child_name] = step
            try:
                go = when_holds(s)
            except StepProblem as exc:
                return fail(child_name, display, callee, str(exc))
            if not go:
                skip = skip_node(
                    run,
                    child_name,
                    display,
                    callee,
                    steps_node.id,
                    sg.id,
                    SKIPPED,
                    f"when '{s.when}' evaluated false",
                    call,
                )
                store.add_child(sg.id, skip.id)
                continue
            ready.append((child_name, display, s, callee, cscope))

    def job(item: tuple[str, str, Step, Template, Scope]) -> Callable[[], None]:
        child_name, display, s, callee, cscope = item

        def link(n: Node) -> None:
            store.add_child(sg.id, n.id)

        def run_one() -> None:
            if stop_group.is_set():
                return  # failFast: a member failed, the rest of the group does not start
            child_call = call.child(child_name, display, steps_node.id, sg.id, on_create=link)
            if s.template_ref is not None:
                child_call = with_ref(child_call, s)
            child = run.execute_template(child_call, callee, cscope, s.arguments)
            run_exit_hook(run, child_call, scope, s, child, "steps", values)
            member = step_of.get(child_name)
            if (
                fail_fast
                and child is not None
                and child.phase in FAILED_OR_ERROR
                and not (member and member.continues_on(child.phase))
            ):
                stop_group.set()

        return limited(sem, run_one)

    _in_threads([job(item) for item in ready])
    _settle_group(run, sg, [item[0] for item in ready], step_of)
    return members


def _settle_group(run: Run, sg: Node, ready: list[str], step_of: dict[str, Step]) -> None:
    """The group's phase once its members ended: failed when one failed (unless it continues on
    that phase) or when one never started (the run was stopped), else succeeded."""
    store = run.store
    started = {n.name for c in sg.children if (n := store.get(c)) is not None}
    for cid in sg.children:
        child = store.get(cid)
        assert child is not None
        member = step_of.get(child.name)
        if child.phase in FAILED_OR_ERROR and not (member and member.continues_on(child.phase)):
            store.set_phase(sg, FAILED, f"child '{child.id}' failed")
            return
    if any(name not in started for name in ready):
        store.set_phase(sg, FAILED, run.cancel_reason or "steps did not start")
        return
    store.set_phase(sg, SUCCEEDED)


def run_exit_hook(
    run: Run, call: Call, scope: Scope, step: Step, node: Node | None, prefix: str, values: Mapping[str, str]
) -> None:
    """A step's or task's exit handler, once its node is over: node `<node>.onExit`, a child of it.

    Its arguments may read the step's own outputs (`{{steps.NAME.outputs...}}`); without
    arguments it gets the workflow's, as Argo's LifecycleHook.WithArgs. Its phase does not change
    the step's.
    """
    from rpops.local.load.refs import exit_step  # refs imports this module's callers

    if step.on_exit is None or node is None:
        return
    hook = exit_step(step)
    own = {**values, **node_values(f"{prefix}.{step.name}", node, run.node_templates.get(node.id))}
    if hook.arguments:
        arguments = subst(hook, own).arguments
    else:
        arguments = run.workflow_arguments()
    template, hscope = resolve(run.plan.catalog, scope, hook)

    def link(n: Node) -> None:
        run.store.add_child(node.id, n.id)

    hook_call = replace(
        call.child(f"{node.name}.onExit", f"{node.display_name}.onExit", call.boundary, node.id, link),
        exit_handler=True,  # a Stop still runs it; a Terminate does not (Argo's ShouldExecute(true))
    )
    if hook.template_ref is not None:
        hook_call = with_ref(hook_call, hook)
    run.execute_template(hook_call, template, hscope, arguments)


def with_ref(call: Call, step: Step) -> Call:
    assert step.template_ref is not None
    return replace(
        call, template_ref={"name": step.template_ref.name, "template": step.template_ref.template}
    )
