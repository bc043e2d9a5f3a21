"""Node status, as Argo records it in `status.nodes`: phases, types, names and IDs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

PENDING, RUNNING, SUCCEEDED, FAILED, ERROR, SKIPPED, OMITTED = (
    "Pending",
    "Running",
    "Succeeded",
    "Failed",
    "Error",
    "Skipped",
    "Omitted",
)
FULFILLED = frozenset({SUCCEEDED, FAILED, ERROR, SKIPPED, OMITTED})
COMPLETED = frozenset({SUCCEEDED, FAILED, ERROR})
FAILED_OR_ERROR = frozenset({FAILED, ERROR})


def node_id(workflow: str, name: str) -> str:
    """Argo's node ID: the workflow name for the root, else `<workflow>-<fnv32a(name)>`."""
    if name == workflow:
        return workflow
    h = 0x811C9DC5
    for byte in name.encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return f"{workflow}-{h}"


def timestamp(epoch: float | None) -> str | None:
    """RFC 3339 in UTC with milliseconds (Argo writes seconds; local steps are often faster)."""
    if epoch is None:
        return None
    return (
        datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(epoch * 1000) % 1000:03d}Z"
    )


@dataclass
class Node:
    id: str
    name: str
    display_name: str
    type: str  # Pod, Steps, StepGroup, DAG, TaskGroup, Retry, Skipped, Suspend
    template_name: str | None
    phase: str
    boundary_id: str | None
    parent: str | None  # the node it is drawn under in the tree
    message: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    children: list[str] = field(default_factory=list)
    outputs: dict[str, Any] | None = None
    inputs: dict[str, Any] | None = None
    progress: str | None = None
    template_ref: dict[str, str] | None = None
    exit_handler: bool = False
    outbound: list[str] = field(default_factory=list)  # Steps/DAG: the nodes that end them

    @property
    def fulfilled(self) -> bool:
        return self.phase in FULFILLED

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "displayName": self.display_name,
            "type": self.type,
            "phase": self.phase,
        }
        if self.template_name:
            d["templateName"] = self.template_name
        if self.template_ref:
            d["templateRef"] = dict(self.template_ref)
        if self.boundary_id:
            d["boundaryID"] = self.boundary_id
        if self.message:
            d["message"] = self.message
        d["startedAt"] = timestamp(self.started_at)
        d["finishedAt"] = timestamp(self.finished_at)
        if self.children:
            d["children"] = list(self.children)
        if self.inputs:
            d["inputs"] = self.inputs
        if self.outputs:
            d["outputs"] = self.outputs
        if self.progress:
            d["progress"] = self.progress
        if self.outbound:
            d["outboundNodes"] = list(self.outbound)
        return d


Listener = Callable[[Node, str | None], None]  # (node, previous phase or None when created)


class NodeStore:
    """Every node of one run; thread-safe; tells listeners about each creation and phase change."""

    def __init__(self, workflow: str) -> None:
        self.workflow = workflow
        self.lock = threading.RLock()
        self.nodes: dict[str, Node] = {}
        self.listeners: list[Listener] = []

    def create(
        self,
        name: str,
        display: str,
        type_: str,
        template: str | None,
        *,
        boundary: str | None,
        parent: str | None,
        phase: str = PENDING,
        message: str = "",
        exit_handler: bool = False,
        template_ref: dict[str, str] | None = None,
    ) -> Node:
        with self.lock:
            nid = node_id(self.workflow, name)
            now = time.time()
            node = Node(
                id=nid,
                name=name,
                display_name=display,
                type=type_,
                template_name=template,
                phase=phase,
                boundary_id=boundary,
                parent=parent,
                message=message,
                started_at=now,
                exit_handler=exit_handler,
                template_ref=template_ref,
            )
            if phase in FULFILLED:
                node.finished_at = now
            self.nodes[nid] = node
            self._notify(node, None)
            return node

    def add_child(self, parent_id: str | None, child_id: str) -> None:
        if parent_id is None:
            return
        with self.lock:
            parent = self.nodes[parent_id]
            if child_id not in parent.children:
                parent.children.append(child_id)

    def set_phase(self, node: Node, phase: str, message: str | None = None) -> None:
        with self.lock:
            before = node.phase
            node.phase = phase
            if message is not None:
                node.message = message
            if phase in FULFILLED and node.finished_at is None:
                node.finished_at = time.time()
            if before != phase or message is not None:
                self._notify(node, before)

    def set_message(self, node: Node, message: str) -> None:
        with self.lock:
            if node.message != message:
                node.message = message
                self._notify(node, node.phase)

    def set_progress(self, node: Node, progress: str) -> None:
        with self.lock:
            if node.progress != progress:
                node.progress = progress
                self._notify(node, node.phase)

    def get(self, nid: str) -> Node | None:
        with self.lock:
            return self.nodes.get(nid)

    def by_name(self, name: str) -> Node | None:
        return self.get(node_id(self.workflow, name))

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return {nid: n.to_dict() for nid, n in self.nodes.items()}

    def values(self) -> list[Node]:
        with self.lock:
            return list(self.nodes.values())

    def _notify(self, node: Node, before: str | None) -> None:
        for listener in self.listeners:
            listener(node, before)
