"""The Python API: load documents, run one in the foreground or a background thread.

catalog = load_documents(["manifests/argo"])
result = submit(catalog, "research-platform-health-check", {"targets": "api=http://..."})
result.phase, result.outputs["status"], result.nodes["check-health"].phase

handle = start(catalog, name, params)   # returns at once; UsageError before anything starts
handle.wait(timeout=60); handle.stop(); handle.resume()
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rpops.local.load.catalog import Catalog, Document, load_documents
from rpops.local.load.plan import prepare
from rpops.local.records.nodes import Node
from rpops.local.records.runs import Recorder, status_doc
from rpops.local.run import leaves
from rpops.local.run.executor import Options, Run

TICK_S = 0.2

__all__ = ["Catalog", "NodeView", "Options", "RunHandle", "RunResult", "load_documents", "start", "submit"]


@dataclass(frozen=True)
class NodeView:
    name: str
    display_name: str
    type: str
    phase: str
    message: str
    outputs: dict[str, str]  # output parameters
    result: str | None
    exit_code: str | None


@dataclass(frozen=True)
class RunResult:
    name: str
    phase: str
    message: str
    outputs: dict[str, str]  # the entrypoint's output parameters
    nodes: dict[str, NodeView]  # by display name (the last one when a name repeats) and by full name
    status: dict[str, Any]  # the whole status.json document
    run_dir: Path

    @property
    def succeeded(self) -> bool:
        return self.phase == "Succeeded"


def _view(n: dict[str, Any]) -> NodeView:
    outs = n.get("outputs") or {}
    return NodeView(
        name=n["name"],
        display_name=n["displayName"],
        type=n["type"],
        phase=n["phase"],
        message=n.get("message", ""),
        outputs={p["name"]: p.get("value", "") for p in outs.get("parameters") or ()},
        result=outs.get("result"),
        exit_code=outs.get("exitCode"),
    )


class RunHandle:
    """A run in a background thread."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.recorder = Recorder(run)
        self._thread = threading.Thread(target=self._main, name=f"rpops-run-{run.name}", daemon=True)
        self._ticker = threading.Thread(target=self._tick, name=f"rpops-tick-{run.name}", daemon=True)

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def run_dir(self) -> Path:
        return self.run.dir

    def _main(self) -> None:
        try:
            self.run.execute()
        finally:
            self.recorder.flush(force=True)

    def _begin(self) -> None:
        self.run.dir.mkdir(parents=True, exist_ok=True)
        self.recorder.flush(force=True)
        self._thread.start()
        self._ticker.start()

    def _tick(self) -> None:
        run = self.run
        stop_file, resume_file = run.dir / "stop", run.dir / "resume"
        while not run.done.wait(TICK_S):
            if stop_file.exists():
                strategy = stop_file.read_text().strip() or "Stop"
                stop_file.unlink(missing_ok=True)
                run.stop(strategy if strategy in ("Stop", "Terminate") else "Stop")
            if resume_file.exists():
                try:
                    wanted = int(resume_file.read_text().strip() or "0")
                except (OSError, ValueError):
                    wanted = 0
                while run.resumes < wanted:
                    run.resume()
            for node in run.store.values():
                if node.type == "Pod" and node.phase == "Running":
                    leaves.read_progress(run, node)
            self.recorder.flush()

    def wait(self, timeout: float | None = None) -> RunResult | None:
        """The result once the run is over; None if `timeout` passed first."""
        if not self.run.done.wait(timeout):
            return None
        self._thread.join()
        return self.result()

    def result(self) -> RunResult:
        doc = status_doc(self.run)
        nodes: dict[str, NodeView] = {}
        for n in sorted(doc["status"]["nodes"].values(), key=lambda n: n.get("startedAt") or ""):
            view = _view(n)
            nodes[view.display_name] = view
            nodes[view.name] = view
        outs = {p["name"]: p.get("value", "") for p in (self.run.outputs or {}).get("parameters") or ()}
        return RunResult(
            name=self.run.name,
            phase=self.run.phase,
            message=self.run.message,
            outputs=outs,
            nodes=nodes,
            status=doc,
            run_dir=self.run.dir,
        )

    def stop(self, strategy: str = "Stop") -> None:
        self.run.stop(strategy)

    def resume(self) -> None:
        self.run.resume()

    def status(self) -> dict[str, Any]:
        return status_doc(self.run)


def start(
    catalog: Catalog,
    target: str | Document,
    parameters: Mapping[str, str] | None = None,
    runs_dir: str | Path | None = None,
    *,
    options: Options | None = None,
    node_listeners: Iterable[Callable[[Node, str | None], None]] = (),
    workflow_listeners: Iterable[Callable[[Run], None]] = (),
) -> RunHandle:
    """Check and start a run in a background thread; UsageError (nothing started) on bad input."""
    plan = prepare(catalog, target, parameters)
    opts = options or Options()
    if runs_dir is not None:
        opts = replace(opts, runs_dir=Path(runs_dir))
    run = Run(plan, opts)
    run.store.listeners.extend(node_listeners)
    run.workflow_listeners.extend(workflow_listeners)
    handle = RunHandle(run)
    handle._begin()
    return handle


def submit(
    catalog: Catalog,
    target: str | Document,
    parameters: Mapping[str, str] | None = None,
    runs_dir: str | Path | None = None,
    *,
    options: Options | None = None,
) -> RunResult:
    """Run to the end in the foreground and return the result."""
    result = start(catalog, target, parameters, runs_dir, options=options).wait()
    assert result is not None
    return result
