"""DAG templates: tasks start once their dependencies are fulfilled and their depends logic
holds (else they are Omitted); the DAG's phase is Argo's assessDAGPhase over its targets."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from rpops.local.load.catalog import Scope
from rpops.local.load.model import Step, Template
from rpops.local.load.plan import resolve
from rpops.local.load.refs import ancestors, dag_depends
from rpops.local.records.nodes import (
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
from rpops.local.run.flow import (
    StepProblem,
    expand,
    limited,
    outbound,
    run_exit_hook,
    skip_node,
    subst,
    template_outputs,
    when_holds,
    with_ref,
)
from rpops.local.run.values import aggregate_values, node_values

if TYPE_CHECKING:
    from rpops.local.run.executor import Call, Run


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
        v = dict(self.run.scope_of(self.node, self.call))
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
            self._ended(name, node_name, callee, OMITTED, "omitted: depends condition not met")
            return
        try:
            expanded = expand(task, self.values(name))
        except StepProblem as exc:
            self._ended(name, node_name, callee, ERROR, str(exc))
            return
        if expanded is None:
            s = subst(task, self.values(name))
            try:
                go = when_holds(s)
            except StepProblem as exc:
                self._ended(name, node_name, callee, ERROR, str(exc))
                return
            if not go:
                self._ended(name, node_name, callee, SKIPPED, f"when '{s.when}' evaluated false")
                return
            self._start(name, node_name, name, s, callee, cscope, parent=self.node.id, group=None)
            return
        if not expanded:
            self._ended(name, node_name, callee, SKIPPED, "Skipped, empty params")
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
                skip = skip_node(
                    run, child_name, name + suffix, callee, self.node.id, group.id, ERROR, str(exc), self.call
                )
                store.add_child(group.id, skip.id)
                continue
            if not go:
                skip = skip_node(
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

    def _ended(self, name: str, node_name: str, callee: Template | None, phase: str, message: str) -> None:
        """A task that ends before it runs (omitted, skipped, or an error in its own fields)."""
        boundary = self.node.id
        node = skip_node(self.run, node_name, name, callee, boundary, boundary, phase, message, self.call)
        self._finished(name, node, link=True)

    def _finished(self, name: str, node: Node, link: bool) -> None:
        if link:
            self.link(name, node)
        self.created[name] = node

    def _close_group(self, name: str) -> None:
        group = self.created[name]
        phase, message = SUCCEEDED, None
        for cname in self.groups[name]:
            child = self.run.store.by_name(cname)
            if child is None:  # never started: the run was stopped or hit its deadline
                phase, message = FAILED, self.run.cancel_reason
            elif child.phase in FAILED_OR_ERROR:
                phase = child.phase
        self.run.store.set_phase(group, phase, message)

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
            call = with_ref(call, s)

        def work() -> None:
            child = None
            try:
                child = run.execute_template(call, callee, cscope, s.arguments)
                if s.on_exit is not None:
                    with self.cond:
                        values = self.values(task)
                    run_exit_hook(run, call, self.scope, s, child, "tasks", values)
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

        th = threading.Thread(target=limited(self.sem, work), daemon=True, name=f"rpops-task-{task}")
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
    if run.cancelled(call):  # Argo: a DAG that is shut down fails, whatever its targets did
        store.set_phase(node, FAILED, run.cancel_reason)
        return
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
    values = dict(run.scope_of(node, call))
    for name in dag.created:
        values.update(dag.task_values(name))
    outputs, problem = template_outputs(t, values)
    if problem:
        store.set_phase(node, ERROR, problem)
        return
    node.outputs = outputs
    store.set_phase(node, SUCCEEDED)
