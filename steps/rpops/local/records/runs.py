"""Run records under `.rpops/runs/<workflow>/`: an Argo-like `status.json` and one log per node.

Layout of a run directory:
    status.json            the Workflow object with its status (phase, message, nodes, ...)
    logs/<node-id>.log     a container's stdout and stderr
    nodes/<node-id>/       RPOPS_OUTPUTS (outputs/), ARGO_PROGRESS_FILE (progress), artifacts/
    stop, resume           requests from `rpops local stop|resume` to the process running it
"""

from __future__ import annotations

import difflib
import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rpops.core.errors import UsageError
from rpops.local.records.nodes import FULFILLED, timestamp

if TYPE_CHECKING:
    from rpops.local.run.executor import Run

ACTIVE = ("Pending", "Running")


def status_doc(run: Run) -> dict[str, Any]:
    """The run as an Argo Workflow object (apiVersion, metadata, spec, status)."""
    plan = run.plan
    nodes = run.store.snapshot()
    done = total = 0
    for n in nodes.values():
        if n["type"] == "Pod" and n.get("progress"):
            d, t = n["progress"].split("/")
            done, total = done + int(d), total + int(t)
    labels = dict(plan.labels)
    if plan.workflow_template:
        labels["workflows.argoproj.io/workflow-template"] = plan.workflow_template
    labels["workflows.argoproj.io/phase"] = run.phase
    labels["workflows.argoproj.io/completed"] = "true" if run.done.is_set() else "false"
    spec: dict[str, Any] = {
        "entrypoint": plan.spec.entrypoint,
        "arguments": {"parameters": [{"name": k, "value": v} for k, v in plan.parameters.items()]},
    }
    if plan.workflow_template:
        spec["workflowTemplateRef"] = {"name": plan.workflow_template}
    if plan.spec.on_exit:
        spec["onExit"] = plan.spec.on_exit
    status: dict[str, Any] = {
        "phase": run.phase,
        "startedAt": timestamp(run.started_at),
        "finishedAt": timestamp(run.finished_at),
        "progress": f"{done}/{total}",
        "nodes": nodes,
    }
    if run.message:
        status["message"] = run.message
    if run.outputs:
        status["outputs"] = run.outputs
    if run.metrics:
        status["metrics"] = list(run.metrics)  # what Argo would export for the templates' metrics
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            "name": run.name,
            "namespace": plan.namespace,
            "uid": run.uid,
            "creationTimestamp": timestamp(run.created_at),
            "labels": labels,
            "annotations": {**plan.annotations, "rpops.local/source": plan.doc.source},
        },
        "spec": spec,
        "status": status,
    }


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(doc, indent=2))
    tmp.replace(path)


class Recorder:
    """Writes status.json when something changed (at most every tick) and when the run ends."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.path = run.dir / "status.json"
        self._dirty = threading.Event()
        self._lock = threading.Lock()
        run.store.listeners.append(lambda node, before: self._dirty.set())
        run.workflow_listeners.append(lambda r: self._dirty.set())

    def flush(self, force: bool = False) -> None:
        if not (force or self._dirty.is_set()):
            return
        with self._lock:
            self._dirty.clear()
            write_json(self.path, status_doc(self.run))


# ---------------------------------------------------------------------------------------------
# reading records


def run_names(runs_dir: Path) -> list[str]:
    if not runs_dir.is_dir():
        return []
    return sorted(p.name for p in runs_dir.iterdir() if (p / "status.json").is_file())


def read_status(runs_dir: Path, name: str) -> dict[str, Any]:
    path = runs_dir / name / "status.json"
    if not path.is_file():
        names = run_names(runs_dir)
        near = difflib.get_close_matches(name, names, n=1)
        hint = f" Did you mean '{near[0]}'?" if near else ""
        raise UsageError(f"no run named '{name}' in {runs_dir}.{hint} See `rpops local list`.")
    try:
        doc: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot read the run record: {exc}") from None
    return doc


def list_runs(runs_dir: Path) -> list[dict[str, Any]]:
    """Every readable record, newest first."""
    docs = []
    for name in run_names(runs_dir):
        try:
            docs.append(read_status(runs_dir, name))
        except UsageError:
            continue
    return sorted(docs, key=lambda d: d["metadata"].get("creationTimestamp") or "", reverse=True)


def find_node(doc: dict[str, Any], key: str) -> dict[str, Any]:
    """A node by ID, full name or display name."""
    nodes = doc["status"].get("nodes") or {}
    for n in nodes.values():
        if key in (n["id"], n["name"]):
            return n
    matches = [n for n in nodes.values() if n["displayName"] == key]
    if len(matches) == 1:
        return matches[0]
    names = sorted({n["displayName"] for n in nodes.values() if n["type"] == "Pod"})
    if matches:
        raise UsageError(
            f"node '{key}' is ambiguous; use its full name: {', '.join(n['name'] for n in matches)}"
        )
    raise UsageError(
        f"run {doc['metadata']['name']} has no node '{key}' (steps: {', '.join(names) or 'none'})"
    )


def log_files(
    runs_dir: Path, doc: dict[str, Any], node: str | None = None
) -> list[tuple[dict[str, Any], Path]]:
    """(node, log path) for one node, or for every container node in start order."""
    base = runs_dir / doc["metadata"]["name"] / "logs"
    if node is not None:
        n = find_node(doc, node)
        if n["type"] == "Pod":
            return [(n, base / f"{n['id']}.log")]
        pods = [
            m
            for m in doc["status"]["nodes"].values()
            if m["type"] == "Pod" and m["name"].startswith(n["name"])
        ]
    else:
        pods = [m for m in doc["status"]["nodes"].values() if m["type"] == "Pod"]
    pods.sort(key=lambda m: m.get("startedAt") or "")
    return [(m, base / f"{m['id']}.log") for m in pods]


def request(runs_dir: Path, name: str, what: str, value: str = "") -> dict[str, Any]:
    """Ask the process running `name` to stop or resume; refuse when it is not running."""
    doc = read_status(runs_dir, name)
    phase = doc["status"].get("phase")
    if phase not in ACTIVE:
        raise UsageError(f"run {name} is not running (it is {phase}); nothing to {what}")
    path = runs_dir / name / what
    if what == "resume":
        try:
            count = int(path.read_text().strip() or "0")
        except (OSError, ValueError):
            count = 0
        value = str(count + 1)
    path.write_text(value)
    return doc


def is_fulfilled(phase: str) -> bool:
    return phase in FULFILLED
