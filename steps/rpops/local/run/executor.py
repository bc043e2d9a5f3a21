"""Running a checked plan: the workflow, templates, retries, containers and suspends.

Steps and DAG templates are in `flow`. Each node runs in the thread of the step or task that
started it; parallel members of a step group and ready DAG tasks get their own threads.
Stops and the workflow's deadline set `cancel`: nothing new starts (except the exit
handler) and running process groups are killed.
"""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rpops.core.durations import parse_duration, parse_int
from rpops.core.errors import UsageError
from rpops.local.expr import exprlang
from rpops.local.expr.expressions import ExpressionError
from rpops.local.expr.substitute import deep_map, first_unresolved, render
from rpops.local.load.catalog import Scope
from rpops.local.load.model import Parameter, Template
from rpops.local.load.plan import Plan
from rpops.local.records.nodes import (
    ERROR,
    FAILED,
    FAILED_OR_ERROR,
    OMITTED,
    PENDING,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    Node,
    NodeStore,
    timestamp,
)
from rpops.local.run import dag, flow, leaves, locks, metrics
from rpops.local.run.process import LocalProcess
from rpops.local.run.secretstore import SecretStore

log = logging.getLogger("rpops.local")

NODE_TYPES = {"container": "Pod", "script": "Pod", "steps": "Steps", "dag": "DAG", "suspend": "Suspend"}
WORKFLOW_STATUS = {SUCCEEDED: SUCCEEDED, SKIPPED: SUCCEEDED, OMITTED: SUCCEEDED, FAILED: FAILED, ERROR: ERROR}
DEADLINE_MESSAGE = "Step exceeded its deadline"
_LATER = frozenset({"metrics", "steps", "tasks"})  # fields substituted when their part runs
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' generateName alphabet


@dataclass
class Options:
    runs_dir: Path = Path(".rpops/runs")
    locks_dir: Path | None = None  # default: beside runs_dir (.rpops/locks)
    secrets_file: Path | None = Path(".rpops/secrets.yaml")
    workdir: Path | None = None  # steps' working directory unless workingDir says otherwise
    kill_grace_s: float = 3.0
    name: str | None = None  # the workflow's name; default <template>-<5 random characters>
    # `rpops local retry`: the earlier attempt's folder and its Succeeded pods by node name,
    # which this run keeps (outputs, logs, artifacts) instead of running them again, as argo retry does.
    kept_from: Path | None = None
    kept: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Call:
    """Where a template runs: its node's name, and how it hangs in the tree."""

    name: str
    display: str
    boundary: str | None
    parent: str | None
    exit_handler: bool = False
    template_ref: dict[str, str] | None = None
    on_create: Callable[[Node], None] | None = field(default=None, compare=False)

    def child(
        self,
        name: str,
        display: str,
        boundary: str | None,
        parent: str | None,
        on_create: Callable[[Node], None] | None = None,
    ) -> Call:
        return Call(name, display, boundary, parent, self.exit_handler, None, on_create)


def generate_name(base: str, runs_dir: Path) -> str:
    rng = random.SystemRandom()
    for _ in range(100):
        name = f"{base}-{''.join(rng.choice(_NAME_CHARS) for _ in range(5))}"
        if not (runs_dir / name).exists():
            return name
    raise UsageError(f"cannot find a free run name under {runs_dir}")


class Run:
    """One workflow run; `execute()` blocks until it is over."""

    def __init__(self, plan: Plan, options: Options) -> None:
        self.plan, self.options = plan, options
        runs_dir = options.runs_dir
        self.name = options.name or generate_name(plan.name_base, runs_dir)
        self.dir = runs_dir / self.name
        if self.dir.exists():
            raise UsageError(f"a run named {self.name} already exists in {runs_dir}; choose another name")
        self.locks_dir = options.locks_dir or runs_dir.parent / "locks"
        self.uid = str(uuid.uuid4())
        self.store = NodeStore(self.name)
        self.created_at = time.time()
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.phase = PENDING
        self.message = ""
        self.outputs: dict[str, Any] | None = None
        self.metrics: list[dict[str, Any]] = []
        self.cancel = threading.Event()  # stop or deadline: the main templates end
        self.kill_all = threading.Event()  # terminate: the exit handler ends too
        self.cancel_reason = ""
        self.deadline_exceeded = False
        self.done = threading.Event()
        self.resumes = 0
        self.node_templates: dict[str, Template] = {}
        self.scopes: dict[str, dict[str, str]] = {}  # node ID -> the values its template was rendered with
        self.workflow_listeners: list[Callable[[Run], None]] = []
        self._procs: dict[LocalProcess, bool] = {}
        self._lock = threading.Lock()
        self.pod_slots = threading.BoundedSemaphore(plan.spec.parallelism) if plan.spec.parallelism else None
        self.secrets = SecretStore(options.secrets_file)
        self.globals = self._globals()
        self.exit_globals = dict(self.globals)

    # -- workflow ----------------------------------------------------------------------------------

    def _globals(self) -> dict[str, str]:
        plan = self.plan
        g = {
            "workflow.name": self.name,
            "workflow.namespace": plan.namespace,
            "workflow.uid": self.uid,
            "workflow.mainEntrypoint": plan.spec.entrypoint or "",
            "workflow.serviceAccountName": plan.spec.service_account or "",
            "workflow.creationTimestamp": (timestamp(self.created_at) or "")[:19] + "Z",
        }
        if plan.doc.kind == "CronWorkflow":  # Argo sets it on the workflows a schedule creates
            g["workflow.scheduledTime"] = g["workflow.creationTimestamp"]
        params = {k: v if k in plan.given else render(v, g, strict=False) for k, v in plan.parameters.items()}
        g["workflow.parameters"] = json.dumps([{"name": k, "value": v} for k, v in params.items()])
        g["workflow.parameters.json"] = g["workflow.parameters"]
        g.update({f"workflow.parameters.{k}": v for k, v in params.items()})
        g.update({f"workflow.labels.{k}": v for k, v in plan.labels.items()})
        g.update({f"workflow.annotations.{k}": v for k, v in plan.annotations.items()})
        return g

    def workflow_arguments(self) -> tuple[Parameter, ...]:
        """spec.arguments as Argo passes them to the entrypoint and exit handlers (values resolved)."""
        return tuple(Parameter(k, self.globals[f"workflow.parameters.{k}"]) for k in self.plan.parameters)

    def scope_of(self, node: Node, call: Call) -> dict[str, str]:
        """What a steps or DAG node's own `{{...}}` resolve against: globals, its inputs, names."""
        return self.scopes.get(node.id) or self.globals_for(call)

    def globals_for(self, call: Call) -> dict[str, str]:
        return self.exit_globals if call.exit_handler else self.globals

    def set_workflow(self, phase: str | None = None, message: str | None = None) -> None:
        if phase is not None:
            self.phase = phase
        if message is not None:
            self.message = message
        for listener in self.workflow_listeners:
            listener(self)

    def execute(self) -> None:
        try:
            self._execute()
        except Exception as exc:  # a bug here must still end the run with a record, not hang callers
            log.exception("rpops local: internal error in run %s", self.name)
            self._kill_processes(True, "internal error")
            self.phase, self.message = ERROR, f"internal error in rpops local: {exc}"
        finally:
            self.finished_at = time.time()
            self.done.set()
            self.set_workflow()

    def _execute(self) -> None:
        spec = self.plan.spec
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)
        self.started_at = time.time()
        self.set_workflow(PENDING if spec.mutexes else RUNNING)
        timer = None
        if spec.active_deadline:
            seconds = float(
                parse_int(
                    render(spec.active_deadline, self.globals, strict=False), "spec.activeDeadlineSeconds"
                )
            )
            timer = threading.Timer(seconds, self._deadline)
            timer.daemon = True
            timer.start()
        held: list[locks.Mutex] = []
        try:
            for raw in spec.mutexes:
                name = render(raw, self.globals, strict=False)

                def waiting(owner: str, name: str = name) -> None:
                    self.set_workflow(message=self.lock_message(name, owner))

                mutex = locks.acquire(
                    self.locks_dir, name, f"{self.name}", on_wait=waiting, cancelled=self.cancel
                )
                if mutex is None:
                    self.set_workflow(FAILED, self.cancel_reason)
                    return
                held.append(mutex)
            self.set_workflow(RUNNING, "")
            entry = self.plan.root.templates[spec.entrypoint or ""]
            root = self.execute_template(
                Call(self.name, self.name, None, None), entry, self.plan.root, self.workflow_arguments()
            )
            self._finish(root)
        finally:
            for mutex in held:
                mutex.release()
            if timer is not None:
                timer.cancel()

    def _finish(self, root: Node | None) -> None:
        spec = self.plan.spec
        status = WORKFLOW_STATUS.get(root.phase, FAILED) if root is not None else FAILED
        if root is not None and root.phase == SUCCEEDED:
            self.outputs = root.outputs
        failures = [
            {
                "displayName": n.display_name,
                "message": n.message,
                "templateName": n.template_name or "",
                "phase": n.phase,
                "podName": n.id,
                "finishedAt": timestamp(n.finished_at),
            }
            for n in self.store.values()
            if n.phase in FAILED_OR_ERROR
        ]
        self.exit_globals = {
            **self.globals,
            "workflow.status": status,
            "workflow.failures": json.dumps(failures),
            "workflow.duration": f"{time.time() - (self.started_at or time.time()):.6f}",
        }
        exit_node = None
        if spec.on_exit and not self.kill_all.is_set():
            call = Call(f"{self.name}.onExit", "onExit", None, None, exit_handler=True)
            exit_node = self.execute_template(
                call, self.plan.root.templates[spec.on_exit], self.plan.root, self.workflow_arguments()
            )
        if status == SUCCEEDED:
            if exit_node is not None and exit_node.phase in FAILED_OR_ERROR:
                self.set_workflow(exit_node.phase, exit_node.message)
            else:
                self.set_workflow(SUCCEEDED, "")
            return
        if self.cancel.is_set() and not self.deadline_exceeded:
            message = self.cancel_reason
        else:
            message = (root.message if root is not None else "") or self.cancel_reason
        self.set_workflow(status, message)

    def lock_message(self, name: str, owner: str) -> str:
        held = f" (held by {owner})" if owner else ""
        return f"Waiting for {self.plan.namespace}/Mutex/{name} lock. Lock status: 0/1{held}"

    # -- control ---------------------------------------------------------------------------------

    def _deadline(self) -> None:
        self.deadline_exceeded = True
        self._cancel(DEADLINE_MESSAGE, terminate=False)

    def stop(self, strategy: str = "Stop") -> None:
        """Argo's stop (exit handler still runs) or terminate (it does not)."""
        if strategy not in ("Stop", "Terminate"):
            raise UsageError(f"strategy must be Stop or Terminate, got {strategy!r}")
        self._cancel(f"Stopped with strategy '{strategy}'", terminate=strategy == "Terminate")

    def _cancel(self, reason: str, terminate: bool) -> None:
        with self._lock:
            if not self.cancel.is_set():
                self.cancel_reason = reason
            self.cancel.set()
            if terminate:
                self.kill_all.set()
        self._kill_processes(terminate, reason)

    def _kill_processes(self, include_exit: bool, reason: str) -> None:
        with self._lock:
            procs = [p for p, exit_ in self._procs.items() if include_exit or not exit_]
        for proc in procs:
            proc.kill(reason)

    def track(self, proc: LocalProcess, exit_handler: bool) -> None:
        with self._lock:
            self._procs[proc] = exit_handler

    def untrack(self, proc: LocalProcess) -> None:
        with self._lock:
            self._procs.pop(proc, None)

    def resume(self) -> None:
        with self._lock:
            self.resumes += 1

    def cancelled(self, call: Call) -> bool:
        return self.kill_all.is_set() if call.exit_handler else self.cancel.is_set()

    def cancel_event(self, call: Call) -> threading.Event:
        return self.kill_all if call.exit_handler else self.cancel

    # -- templates -------------------------------------------------------------------------------

    def execute_template(
        self, call: Call, template: Template, scope: Scope, arguments: tuple[Parameter, ...]
    ) -> Node | None:
        """Run `template` as node `call.name`; None when the run was cancelled before it started."""
        if self.cancelled(call):
            return None
        kind_type = NODE_TYPES[template.kind]
        node = self.store.create(
            call.name,
            call.display,
            "Retry" if template.retry else kind_type,
            template.name,
            boundary=call.boundary,
            parent=call.parent,
            exit_handler=call.exit_handler,
            template_ref=call.template_ref,
        )
        self.node_templates[node.id] = template
        if call.on_create is not None:
            call.on_create(node)
        inputs, problem = _inputs(template, arguments, self.globals_for(call))
        if inputs:
            node.inputs = {"parameters": [{"name": k, "value": v} for k, v in inputs.items()]}
        if problem:
            self.store.set_phase(node, ERROR, problem)
            return node
        values = {
            **self.globals_for(call),
            **{f"inputs.parameters.{k}": v for k, v in inputs.items()},
            "node.name": node.name,
            "pod.name": node.id,
        }
        self.scopes[node.id] = values
        # Steps and tasks are substituted when they run (once, with their siblings' results too).
        t = deep_map(template, lambda s: render(s, values, strict=False), skip=_LATER)
        held: list[locks.Mutex] = []
        try:
            for name in t.mutexes:

                def waiting(owner: str, name: str = name) -> None:
                    self.store.set_message(node, self.lock_message(name, owner))

                mutex = locks.acquire(
                    self.locks_dir,
                    name,
                    f"{self.name}/{node.name}",
                    on_wait=waiting,
                    cancelled=self.cancel_event(call),
                )
                if mutex is None:
                    self.store.set_phase(node, FAILED, self.cancel_reason)
                    return node
                held.append(mutex)
            if held:
                self.store.set_message(node, "")
            if t.retry is not None:
                self._retry(node, call, t, scope, template, values)
            elif not self._unresolved(node, template, values):
                self.body(node, call, t, scope)
        finally:
            for mutex in held:
                mutex.release()
        if template.metrics:
            recorded = metrics.evaluate(
                template, node, metrics.node_scope(node, inputs, self.globals_for(call))
            )
            with self._lock:
                self.metrics.extend(recorded)
        return node

    def body(self, node: Node, call: Call, t: Template, scope: Scope) -> None:
        if t.kind in ("container", "script"):
            leaves.run_pod(self, node, call, t)
        elif t.kind == "suspend":
            leaves.run_suspend(self, node, call, t)
        elif t.kind == "steps":
            flow.run_steps(self, node, call, t, scope)
        else:
            dag.run_dag(self, node, call, t, scope)

    def _unresolved(self, node: Node, template: Template, values: dict[str, str]) -> bool:
        """A leaf's `{{tag}}` that nothing resolves (checked as written): the node errors."""
        if template.kind not in ("container", "script"):
            return False
        fields = (
            template.container,
            template.active_deadline,
            template.timeout,
            template.outputs,
            template.artifacts,
        )
        tag = first_unresolved(fields, values)
        if tag is None:
            return False
        self.store.set_phase(node, ERROR, f"failed to resolve {{{{{tag}}}}}")
        return True

    def _retry(
        self, node: Node, call: Call, t: Template, scope: Scope, raw: Template, values: dict[str, str]
    ) -> None:
        strategy = t.retry
        assert strategy is not None
        self.store.set_phase(node, RUNNING)
        try:
            limit = parse_int(strategy.limit, "retryStrategy.limit") if strategy.limit else None
            backoff = strategy.backoff
            base = parse_duration(backoff.duration) if backoff and backoff.duration else 0.0
            factor = (
                parse_int(backoff.factor, "retryStrategy.backoff.factor") if backoff and backoff.factor else 0
            )
            cap = parse_duration(backoff.cap) if backoff and backoff.cap else None
            max_duration = parse_duration(backoff.max_duration) if backoff and backoff.max_duration else None
        except ValueError as exc:
            self.store.set_phase(node, ERROR, str(exc))
            return
        attempt, first_start = 0, None
        while True:
            attempt_values = {**values, "retries": str(attempt)}
            # from the template as written: a value holding `{{retries}}` stays as it is
            attempt_t = deep_map(raw, _renderer(attempt_values), skip=_LATER)
            child_call = call.child(
                f"{call.name}({attempt})", f"{call.display}({attempt})", call.boundary, node.id
            )
            child = self.store.create(
                child_call.name,
                child_call.display,
                NODE_TYPES[t.kind],
                t.name,
                boundary=call.boundary,
                parent=node.id,
                exit_handler=call.exit_handler,
                template_ref=call.template_ref,
            )
            self.node_templates[child.id] = t
            self.scopes[child.id] = attempt_values
            self.store.add_child(node.id, child.id)
            if node.inputs:
                child.inputs = node.inputs
            if not self._unresolved(child, raw, attempt_values):
                self.body(child, child_call, attempt_t, scope)
            first_start = first_start or child.started_at or time.time()
            node.outputs = child.outputs
            if child.phase == SUCCEEDED:
                self.store.set_phase(node, SUCCEEDED, "")
                return
            if self.cancelled(call):
                why = "retry exceeded workflow deadline" if self.deadline_exceeded else self.cancel_reason
                self.store.set_phase(node, child.phase, why)
                return
            stop = self._retry_verdict(strategy.effective_policy, strategy.expression, child, attempt, limit)
            if stop is not None:
                self.store.set_phase(node, child.phase, stop)
                return
            wait = base * (factor**attempt if factor > 0 else 1)
            wait = min(wait, cap) if cap is not None else wait
            if max_duration is not None:
                end = first_start + max_duration
                if time.time() > end:
                    self.store.set_phase(node, child.phase, "Max duration limit exceeded")
                    return
                if (child.finished_at or time.time()) + wait > end:
                    self.store.set_phase(node, child.phase, "Backoff would exceed max duration limit")
                    return
            if wait > 0:
                self.store.set_message(node, f"Backoff for {_human(wait)}")
                if self.cancel_event(call).wait(
                    max(0.0, (child.finished_at or time.time()) + wait - time.time())
                ):
                    self.store.set_phase(node, child.phase, self.cancel_reason)
                    return
                self.store.set_message(node, "")
            attempt += 1

    def _retry_verdict(
        self, policy: str, expression: str | None, child: Node, attempt: int, limit: int | None
    ) -> str | None:
        """None to retry, else the message the retry node ends with."""
        retry = (
            policy == "Always"
            or (policy == "OnFailure" and child.phase == FAILED)
            or (policy == "OnError" and child.phase == ERROR)
        )  # OnTransientError: nothing is transient here
        if not retry:
            return child.message
        if limit is not None and attempt + 1 > limit:
            return "No more retries left"
        if expression:
            try:
                if not exprlang.evaluate_bool(expression, retry_scope(child, attempt)):
                    return "retryStrategy.expression evaluated to false"
            except ExpressionError as exc:
                return f"retryStrategy.expression: {exc}"
        return None

    # -- leaves ----------------------------------------------------------------------------------


def retry_scope(child: Node, attempt: int) -> dict[str, str]:
    """Argo's buildRetryStrategyLocalScope: every value a string, as Argo's docs convert them
    (`asInt(lastRetry.exitCode) > 1`); the duration in whole seconds as the node's times hold it."""
    outs = child.outputs or {}
    seconds = int(child.finished_at or 0) - int(child.started_at or 0)
    return {
        "lastRetry.exitCode": str(outs.get("exitCode", "-1")),
        "lastRetry.status": child.phase,
        "lastRetry.duration": str(max(0, seconds)),
        "lastRetry.message": child.message,
        "retries": str(attempt),
    }


def _renderer(values: dict[str, str]) -> Callable[[str], str]:
    def fn(text: str) -> str:
        return render(text, values, strict=False)

    return fn


def _inputs(
    template: Template, arguments: tuple[Parameter, ...], globals_: dict[str, str]
) -> tuple[dict[str, str], str | None]:
    """The template's input values: an argument is data as given; a value or default the template
    itself declares is substituted with the workflow's variables first, as Argo does."""
    given = {p.name: p.value for p in arguments}
    values: dict[str, str] = {}
    for p in template.inputs:
        value = given.get(p.name)
        if value is None:
            value = p.value if p.value is not None else p.default
            if value is not None and "{{" in value:
                value = render(value, globals_, strict=False)
        if value is None:
            return values, f"inputs.parameters.{p.name} was not supplied"
        if p.enum and value not in p.enum:
            return values, f"inputs.parameters.{p.name} value '{value}' is not one of: {', '.join(p.enum)}"
        values[p.name] = value
    return values, None


def _human(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} milliseconds"
    if seconds < 60:
        return f"{math.ceil(seconds)} seconds" if seconds != 1 else "1 second"
    return f"{seconds / 60:.0f} minutes"
