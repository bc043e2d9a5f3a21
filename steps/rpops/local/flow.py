"""Steps and DAG templates, with Argo's node names, children, phases and messages.

Steps: groups run in order; the members of a group run in parallel; a group fails when a
member fails or errors without continueOn, and the steps node fails with it.
DAG: a task starts once its dependencies are fulfilled and its depends logic holds (else it
is Omitted); the DAG's phase is Argo's assessDAGPhase over its target tasks.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from rpops.local.catalog import Scope
from rpops.local.expressions import ExpressionError, evaluate_when
from rpops.local.model import Step, Template
from rpops.local.nodes import (
    COMPLETED,
    ERROR,
    FAILED,
    FAILED_OR_ERROR,
    OMITTED,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    Node,
)
from rpops.local.plan import resolve
from rpops.local.refs import ancestors, dag_depends
from rpops.local.substitute import Unresolved, deep_map, render, strings, tags
from rpops.local.values import (
    aggregate_values,
    expand_sequence,
    item_label,
    item_values,
    node_values,
    parse_with_param,
)

if TYPE_CHECKING:
    from rpops.local.executor import Call, Run


class StepProblem(Exception):
    """A step or task that cannot start: unresolved reference, bad items, bad when."""


def _subst(step: Step, values: Mapping[str, str]) -> Step:
    return deep_map(step, lambda s: render(s, values, strict=False))


def _check_resolved(step: Step) -> None:
    for _, text in strings((step.arguments, step.when, step.with_param)):
        for tag in tags(text):
            raise Unresolved(tag)


def _items(step: Step) -> list[Any]:
    if step.with_items is not None:
        return list(step.with_items)
    if step.with_param is not None:
        return parse_with_param(step.with_param)
    assert step.with_sequence is not None
    return expand_sequence(step.with_sequence)


def expand(step: Step, values: Mapping[str, str]) -> list[tuple[str, Step]] | None:
    """[(name suffix, substituted step)]; None when the step does not loop. Raises StepProblem."""
    s = _subst(step, values)
    if not s.loops:
        try:
            _check_resolved(s)
        except Unresolved as exc:
            raise StepProblem(str(exc)) from None
        return None
    try:
        for _, text in strings(s.with_param):
            for tag in tags(text):
                raise Unresolved(tag)
        items = _items(s)
    except (Unresolved, ValueError) as exc:
        raise StepProblem(str(exc)) from None
    out = []
    for i, item in enumerate(items):
        si = _subst(s, item_values(item))
        try:
            _check_resolved(si)
        except Unresolved as exc:
            raise StepProblem(str(exc)) from None
        out.append((item_label(i, item), si))
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
    for o in t.outputs:
        try:
            value = render(o.parameter or "", values, strict=True)
        except Unresolved as exc:
            if o.default is None:
                return None, str(exc)
            value = o.default
        params.append({"name": o.name, "value": value})
    return ({"parameters": params} if params else None), None


def _skip_node(
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


def _limited(sem: threading.Semaphore | None, job: Callable[[], None]) -> Callable[[], None]:
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
        members = _run_group(run, node, sg, call, scope, group, {**run.globals_for(call), **values}, sem)
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
    outputs, problem = template_outputs(t, {**run.globals_for(call), **values})
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
) -> dict[str, list[str]]:
    """Run one step group; set its phase; return each step's node names (several when it loops)."""
    store = run.store
    members: dict[str, list[str]] = {}
    ready: list[tuple[str, str, Step, Template, Scope]] = []
    step_of: dict[str, Step] = {}

    def fail(name: str, display: str, template: Template | None, message: str) -> dict[str, list[str]]:
        skip = _skip_node(run, name, display, template, steps_node.id, sg.id, ERROR, message, call)
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
            skip = _skip_node(
                run, name, step.name, callee, steps_node.id, sg.id, SKIPPED, "Skipped, empty params", call
            )
            store.add_child(sg.id, skip.id)
            members[step.name] = [name]
            continue
        for suffix, s in expanded if expanded is not None else [("", _subst(step, values))]:
            child_name, display = name + suffix, step.name + suffix
            members.setdefault(step.name, []).append(child_name)
            step_of[child_name] = step
            try:
                go = when_holds(s)
            except StepProblem as exc:
                return fail(child_name, display, callee, str(exc))
            if not go:
                skip = _skip_node(
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
            child_call = call.child(child_name, display, steps_node.id, sg.id, on_create=link)
            if s.template_ref is not None:
                child_call = _with_ref(child_call, s)
            run.execute_template(child_call, callee, cscope, s.arguments)

        return _limited(sem, run_one)

    _in_threads([job(item) for item in ready])
    started = {n.name for c in sg.children if (n := store.get(c)) is not None}
    for cid in sg.children:
        child = store.get(cid)
        assert child is not None
        member = step_of.get(child.name)
        if child.phase in FAILED_OR_ERROR and not (member and member.continues_on(child.phase)):
            store.set_phase(sg, FAILED, f"child '{child.id}' failed")
            return members
    if any(item[0] not in started for item in ready):
        store.set_phase(sg, FAILED, run.cancel_reason or "steps did not start")
        return members
    store.set_phase(sg, SUCCEEDED)
    return members


def _with_ref(call: Call, step: Step) -> Call:
    from dataclasses import replace

    assert step.template_ref is not None
    return replace(
        call, template_ref={"name": step.template_ref.name, "template": step.template_ref.template}
    )


# ---------------------------------------------------------------------------------------------
# dag


def assess_dag_phase(
    nodes: Mapping[str, Node],
    boundary_id: str,
    targets: list[tuple[str, str]],
    fail_fast: bool,
    continues_on: Callable[[str, str], bool],
) -> str:
    """Argo's assessDAGPhase: an omitted or skipped target inherits the phase of its branch.

    `targets` are (task name, node ID). Failed or Error wins over Succeeded when a target is
    reached along several branches.
    """
    phases: dict[str, str] = {nid: "" for _, nid in targets}
    boundary = nodes[boundary_id]
    queue = deque((c, SUCCEEDED) for c in boundary.children)
    seen: set[tuple[str, str]] = set()
    while queue:
        nid, branch = queue.popleft()
        if (nid, branch) in seen:
            continue
        seen.add((nid, branch))
        node = nodes.get(nid)
        if node is None or not node.fulfilled:
            return RUNNING
        if node.phase in COMPLETED:
            branch = node.phase
        if nid in phases and phases[nid] not in FAILED_OR_ERROR:
            phases[nid] = branch
        if node.type == "Retry":
            last = nodes.get(node.children[-1]) if node.children else None
            kids = last.children if last is not None else []
        else:
            kids = node.children
        queue.extend((k, branch) for k in kids)
    result = SUCCEEDED
    for task, nid in targets:
        branch = phases[nid]
        if branch == "":
            result = RUNNING
            if not fail_fast:
                break
        elif branch in FAILED_OR_ERROR:
            if continues_on(task, branch):
                continue
            result = branch
            if fail_fast:
                break
    return result


class _Dag:
    """The scheduling state of one DAG node."""

    def __init__(self, run: Run, node: Node, call: Call, t: Template, scope: Scope) -> None:
        assert t.dag is not None
        self.run, self.node, self.call, self.t, self.scope = run, node, call, t, scope
        self.tasks = {task.name: task for task in t.dag.tasks}
        self.exprs = {name: dag_depends(task, self.tasks) for name, task in self.tasks.items()}
        self.deps = {name: (e.tasks if e else ()) for name, e in self.exprs.items()}
        depended = {d for ds in self.deps.values() for d in ds}
        self.targets = (t.dag.target or "").split() or sorted(n for n in self.tasks if n not in depended)
        needed = set(self.targets)
        for target in self.targets:
            needed.update(ancestors(target, self.deps))
        self.order = [task.name for task in t.dag.tasks if task.name in needed]
        self.created: dict[str, Node] = {}  # task name -> its node, once finished (or skipped/omitted)
        self.scheduled: set[str] = set()
        self.groups: dict[str, list[str]] = {}  # looped task -> child node names, in item order
        self.remaining: dict[str, int] = {}
        self.running = 0
        self.cond = threading.Condition()
        self.sem = threading.BoundedSemaphore(t.parallelism) if t.parallelism else None

    def result(self, dep: str, result: str) -> bool:
        n = self.created[dep]
        if result == "AnySucceeded" or result == "AllFailed":
            kids = (
                [c for cid in n.children if (c := self.run.store.get(cid))] if n.type == "TaskGroup" else []
            )
            if result == "AnySucceeded":
                return any(c.phase == SUCCEEDED for c in kids)
            return bool(kids) and all(c.phase == FAILED for c in kids)
        phase = {
            "Succeeded": SUCCEEDED,
            "Failed": FAILED,
            "Errored": ERROR,
            "Skipped": SKIPPED,
            "Omitted": OMITTED,
        }.get(result)
        return phase is not None and n.phase == phase

    def link(self, task: str, child: Node) -> None:
        """Argo's connectDependencies: a root task hangs from the DAG, others from their deps' ends."""
        store = self.run.store
        if not self.deps[task]:
            store.add_child(self.node.id, child.id)
            return
        for dep in self.deps[task]:
            for o in outbound(self.run, self.created[dep]):
                store.add_child(o, child.id)

    def values(self, task: str) -> dict[str, str]:
        v = dict(self.run.globals_for(self.call))
        for a in ancestors(task, self.deps):
            v.update(self.task_values(a))
        return v

    def task_values(self, name: str) -> dict[str, str]:
        n = self.created.get(name)
        if n is None:
            return {}
        if n.type == "TaskGroup":
            kids = [c for cname in self.groups.get(name, []) if (c := self.run.store.by_name(cname))]
            return {
                **aggregate_values(f"tasks.{name}", kids),
                f"tasks.{name}.status": n.phase,
                f"tasks.{name}.id": n.id,
            }
        return node_values(f"tasks.{name}", n, self.run.node_templates.get(n.id))

    def ready(self, name: str) -> bool:
        return all(d in self.created and self.created[d].fulfilled for d in self.deps[name])

    def schedule(self, name: str) -> None:
        """Decide and start one task whose dependencies are all fulfilled (holding cond)."""
        run, store, task = self.run, self.run.store, self.tasks[name]
        node_name = f"{self.node.name}.{name}"
        self.scheduled.add(name)
        callee, cscope = resolve(run.plan.catalog, self.scope, task)
        expr = self.exprs[name]
        if expr is not None and not expr.evaluate(self.result):
            self._finished(
                name,
                _skip_node(
                    run,
                    node_name,
                    name,
                    callee,
                    self.node.id,
                    self.node.id,
                    OMITTED,
                    "omitted: depends condition not met",
                    self.call,
                ),
                link=True,
            )
            return
        try:
            expanded = expand(task, self.values(name))
        except StepProblem as exc:
            self._finished(
                name,
                _skip_node(
                    run, node_name, name, callee, self.node.id, self.node.id, ERROR, str(exc), self.call
                ),
                link=True,
            )
            return
        if expanded is None:
            s = _subst(task, self.values(name))
            try:
                go = when_holds(s)
            except StepProblem as exc:
                self._finished(
                    name,
                    _skip_node(
                        run, node_name, name, callee, self.node.id, self.node.id, ERROR, str(exc), self.call
                    ),
                    link=True,
                )
                return
            if not go:
                self._finished(
                    name,
                    _skip_node(
                        run,
                        node_name,
                        name,
                        callee,
                        self.node.id,
                        self.node.id,
                        SKIPPED,
                        f"when '{s.when}' evaluated false",
                        self.call,
                    ),
                    link=True,
                )
                return
            self._start(name, node_name, name, s, callee, cscope, parent=self.node.id, group=None)
            return
        if not expanded:
            self._finished(
                name,
                _skip_node(
                    run,
                    node_name,
                    name,
                    callee,
                    self.node.id,
                    self.node.id,
                    SKIPPED,
                    "Skipped, empty params",
                    self.call,
                ),
                link=True,
            )
            return
        group = store.create(
            node_name,
            name,
            "TaskGroup",
            callee.name,
            boundary=self.node.id,
            parent=self.node.id,
            phase=RUNNING,
            exit_handler=self.call.exit_handler,
        )
        run.node_templates[group.id] = callee
        self.link(name, group)
        self.groups[name] = []
        self.remaining[name] = 0
        self.created[name] = group
        for suffix, s in expanded:
            child_name = node_name + suffix
            self.groups[name].append(child_name)
            try:
                go = when_holds(s)
            except StepProblem as exc:
                skip = _skip_node(
                    run, child_name, name + suffix, callee, self.node.id, group.id, ERROR, str(exc), self.call
                )
                store.add_child(group.id, skip.id)
                continue
            if not go:
                skip = _skip_node(
                    run,
                    child_name,
                    name + suffix,
                    callee,
                    self.node.id,
                    group.id,
                    SKIPPED,
                    f"when '{s.when}' evaluated false",
                    self.call,
                )
                store.add_child(group.id, skip.id)
                continue
            self.remaining[name] += 1
            self._start(name, child_name, name + suffix, s, callee, cscope, parent=group.id, group=group)
        if self.remaining[name] == 0:
            self._close_group(name)

    def _finished(self, name: str, node: Node, link: bool) -> None:
        if link:
            self.link(name, node)
        self.created[name] = node

    def _close_group(self, name: str) -> None:
        group = self.created[name]
        phase = SUCCEEDED
        for cname in self.groups[name]:
            child = self.run.store.by_name(cname)
            if child is not None and child.phase in FAILED_OR_ERROR:
                phase = child.phase
        self.run.store.set_phase(group, phase)

    def _start(
        self,
        task: str,
        name: str,
        display: str,
        s: Step,
        callee: Template,
        cscope: Scope,
        parent: str,
        group: Node | None,
    ) -> None:
        run = self.run
        self.running += 1

        def on_create(n: Node) -> None:
            if group is None:
                self.link(task, n)
            else:
                run.store.add_child(group.id, n.id)

        call = self.call.child(name, display, self.node.id, parent, on_create=on_create)
        if s.template_ref is not None:
            call = _with_ref(call, s)

        def work() -> None:
            child = None
            try:
                child = run.execute_template(call, callee, cscope, s.arguments)
            finally:
                with self.cond:
                    self.running -= 1
                    if group is None:
                        if child is not None:
                            self.created[task] = child
                    else:
                        self.remaining[task] -= 1
                        if self.remaining[task] == 0:
                            self._close_group(task)
                    self.cond.notify_all()

        th = threading.Thread(target=_limited(self.sem, work), daemon=True, name=f"rpops-task-{task}")
        th.start()

    def execute(self) -> None:
        with self.cond:
            while True:
                progressed = False
                if not self.run.cancelled(self.call):
                    for name in self.order:
                        if name not in self.scheduled and self.ready(name):
                            self.schedule(name)
                            progressed = True
                if progressed:
                    continue
                if self.running == 0:
                    return
                self.cond.wait()


def run_dag(run: Run, node: Node, call: Call, t: Template, scope: Scope) -> None:
    store = run.store
    store.set_phase(node, RUNNING)
    dag = _Dag(run, node, call, t, scope)
    dag.execute()
    assert t.dag is not None
    targets = [(name, dag.created[name].id) for name in dag.targets if name in dag.created]
    node.outbound = [
        o for name in dag.targets if name in dag.created for o in outbound(run, dag.created[name])
    ]
    if len(targets) < len(dag.targets):
        store.set_phase(node, FAILED, run.cancel_reason or "not every target task ran")
        return
    with store.lock:
        phase = assess_dag_phase(
            store.nodes, node.id, targets, t.dag.fail_fast, lambda task, p: dag.tasks[task].continues_on(p)
        )
    if phase == RUNNING:  # cannot happen once every task has finished; be explicit rather than hang
        phase = FAILED
    if phase in FAILED_OR_ERROR:
        failed = next(
            (
                n
                for n in store.values()
                if n.boundary_id == node.id and n.phase in FAILED_OR_ERROR and n.type != "TaskGroup"
            ),
            None,
        )
        store.set_phase(node, phase, f"child '{failed.id}' failed" if failed else "")
        return
    values = dict(run.globals_for(call))
    for name in dag.created:
        values.update(dag.task_values(name))
    outputs, problem = template_outputs(t, values)
    if problem:
        store.set_phase(node, ERROR, problem)
        return
    node.outputs = outputs
    store.set_phase(node, SUCCEEDED)
