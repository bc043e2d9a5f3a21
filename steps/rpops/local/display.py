"""Showing a run: a tree like `argo get`/`argo watch`, redrawn in place on a terminal, or one
plain line per node change when stdout is not a terminal."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import threading
import time
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

from rpops.local.records.nodes import Node

if TYPE_CHECKING:
    from rpops.local.run.executor import Run

ICONS = {
    "Succeeded": "✔",
    "Failed": "✖",
    "Error": "⚠",
    "Skipped": "○",
    "Omitted": "○",
    "Running": "●",
    "Pending": "◷",
}
COLORS = {
    "Succeeded": "32",
    "Failed": "31",
    "Error": "31",
    "Skipped": "90",
    "Omitted": "90",
    "Running": "36",
    "Pending": "33",
}
REDRAW_S = 0.25
RESULT_CHARS = 160  # a failed step's result line in the tree, cut to stay on one line


def _epoch(ts: str | None) -> float | None:
    if not ts:
        return None
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def duration(start: str | None, end: str | None, now: float) -> str:
    s = _epoch(start)
    if s is None:
        return ""
    e = _epoch(end) or now
    secs = max(0.0, e - s)
    if secs < 1:
        return f"{secs * 1000:.0f}ms"
    if secs < 60:
        return f"{secs:.1f}s"
    m, sec = divmod(int(secs), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m}m{sec}s" if h else f"{m}m{sec}s"


def failure_line(result: str) -> str:
    """One short line from what a failed container printed: for a JSON report (the steps print
    one), its message or its failed checks with their details; else the last non-blank line."""
    text = result.strip()
    line = _json_summary(text) if text[:1] == "{" else None
    if line is None:
        line = next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), "")
    return line if len(line) <= RESULT_CHARS else line[: RESULT_CHARS - 1] + "…"


def _json_summary(text: str) -> str | None:
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    for key in ("message", "reason", "error", "summary"):
        if isinstance(doc.get(key), str) and doc[key].strip():
            return " ".join(doc[key].split())
    checks = doc.get("checks")
    if isinstance(checks, list):
        failed = [
            f"{c.get('name')}: {c.get('detail', 'failed')}"
            for c in checks
            if isinstance(c, dict) and c.get("passed") is False
        ]
        if failed:
            return "; ".join(failed)
    if isinstance(doc.get("failed"), list) and doc["failed"]:
        return "failed: " + ", ".join(map(str, doc["failed"]))
    return None


def node_message(node: dict[str, Any]) -> str:
    """A node's message; a failed container's adds the last line of its result (stdout), as
    `argo get` shows the message a failed container leaves, so the reason is in the tree."""
    message: str = node.get("message", "")
    if node["type"] != "Pod" or node["phase"] not in ("Failed", "Error"):
        return message
    last = failure_line((node.get("outputs") or {}).get("result") or "")
    if not last or last in message:
        return message
    return f"{message}: {last}" if message else last


def _paint(text: str, phase: str, color: bool) -> str:
    return f"\x1b[{COLORS.get(phase, '0')}m{text}\x1b[0m" if color else text


def tree_rows(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(prefix, node) in display order; step groups are folded into their steps node."""
    nodes: dict[str, dict[str, Any]] = doc["status"].get("nodes") or {}
    owner: dict[str, str] = {}
    for n in nodes.values():
        if n["type"] in ("Retry", "TaskGroup"):
            for c in n.get("children") or ():
                owner[c] = n["id"]
    kids: dict[str | None, list[dict[str, Any]]] = {}
    for n in nodes.values():
        if n["type"] == "StepGroup":
            continue
        parent = owner.get(n["id"]) or n.get("boundaryID")
        kids.setdefault(parent, []).append(n)
    for group in kids.values():
        group.sort(key=lambda n: (n.get("startedAt") or "", n["name"]))
    rows: list[tuple[str, dict[str, Any]]] = []

    def walk(parent: str | None, indent: str) -> None:
        children = kids.get(parent, [])
        for i, n in enumerate(children):
            last = i == len(children) - 1
            rows.append((indent + ("└─" if last else "├─"), n))
            walk(n["id"], indent + ("  " if last else "│ "))

    for root in kids.get(None, []):
        rows.append(("", root))
        walk(root["id"], "")
    return rows


def render(
    doc: dict[str, Any],
    *,
    color: bool = False,
    now: float | None = None,
    max_rows: int | None = None,
    header: bool = True,
) -> list[str]:
    now = time.time() if now is None else now
    meta, status = doc["metadata"], doc["status"]
    lines: list[str] = []
    if header:
        phase = status.get("phase", "")
        lines.append(f"Name:        {meta['name']}")
        lines.append(f"Status:      {_paint(phase, phase, color)}")
        if status.get("message"):
            lines.append(f"Message:     {status['message']}")
        lines.append(f"Duration:    {duration(status.get('startedAt'), status.get('finishedAt'), now)}")
        lines.append(f"Progress:    {status.get('progress', '')}")
        params = (doc.get("spec", {}).get("arguments") or {}).get("parameters") or []
        if params:
            lines.append("Parameters:")
            lines += [f"  {p['name']}: {p.get('value', '')}" for p in params]
        lines.append("")
    rows = tree_rows(doc)
    names = [f"{prefix}{ICONS.get(n['phase'], '?')} {n['displayName']}" for prefix, n in rows]
    width = max([len("STEP"), *map(len, names)]) + 2
    templates = [(n.get("templateRef") or {}).get("template") or n.get("templateName") or "" for _, n in rows]
    twidth = max([len("TEMPLATE"), *map(len, templates)]) + 2
    lines.append(f"{'STEP':<{width}}{'TEMPLATE':<{twidth}}{'DURATION':<10}{'PROGRESS':<10}MESSAGE")
    shown = rows if max_rows is None or len(rows) <= max_rows else rows[: max(0, max_rows - 1)]
    for (prefix, n), name, template in zip(shown, names, templates, strict=False):
        padded = f"{name:<{width}}"
        if color:
            icon_at = len(prefix)
            padded = padded[:icon_at] + _paint(padded[icon_at], n["phase"], True) + padded[icon_at + 1 :]
        dur = duration(n.get("startedAt"), n.get("finishedAt"), now) if n["type"] not in ("Skipped",) else ""
        progress = n.get("progress", "") if n["type"] == "Pod" else ""
        lines.append(f"{padded}{template:<{twidth}}{dur:<10}{progress:<10}{node_message(n)}".rstrip())
    if len(shown) < len(rows):
        lines.append(f"... {len(rows) - len(shown)} more (rpops local get {meta['name']})")
    return lines


class PlainLines:
    """One line per node creation or phase change, and per workflow phase or message change."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self._lock = threading.Lock()
        self._last: tuple[str, str] | None = None
        self._seen: dict[str, tuple[str, str]] = {}
        self._t0 = time.monotonic()

    def _emit(self, text: str) -> None:
        with self._lock:
            self.out.write(f"[{time.monotonic() - self._t0:7.2f}s] {text}\n")
            self.out.flush()

    def node(self, node: Node, before: str | None) -> None:
        if node.type == "StepGroup":
            return  # implied by the steps
        if before is None and node.phase == "Pending" and node.type != "Pod":
            return  # a steps or DAG node starts running at once
        key = (node.phase, node.message)
        with self._lock:
            if self._seen.get(node.id) == key:
                return  # a progress update alone is not worth a line
            self._seen[node.id] = key
        text = node_message(
            {"type": node.type, "phase": node.phase, "message": node.message, "outputs": node.outputs}
        )
        message = f"  {text}" if text else ""
        template = f" ({node.template_name})" if node.template_name and node.type == "Pod" else ""
        self._emit(f"{node.phase:<9} {node.name}{template}{message}")

    def workflow(self, run: Run) -> None:
        key = (run.phase, run.message)
        if key == self._last:
            return
        self._last = key
        message = f"  {run.message}" if run.message else ""
        self._emit(f"Workflow  {run.name} {run.phase}{message}")


class InPlace:
    """Redraws a run's tree in place (ANSI cursor moves); colour unless NO_COLOR is set."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self._lines = 0

    def show(self, doc: dict[str, Any]) -> None:
        size = shutil.get_terminal_size((100, 40))
        lines = [
            _fit(line, size.columns)
            for line in render(doc, color=use_color(self.out), max_rows=max(5, size.lines - 10))
        ]
        buf = []
        if self._lines:
            buf.append(f"\x1b[{self._lines}F\x1b[J")
        buf.append("\n".join(lines) + "\n")
        self.out.write("".join(buf))
        self.out.flush()
        self._lines = len(lines)


class LiveTree(InPlace):
    """Redraws the tree of a run in this process a few times a second while it goes on."""

    def __init__(self, run: Run, out: IO[str]) -> None:
        super().__init__(out)
        self.run = run
        self._thread = threading.Thread(target=self._loop, daemon=True, name="rpops-display")

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self.run.done.wait(REDRAW_S):
            self.draw()

    def draw(self) -> None:
        from rpops.local.records.runs import status_doc

        self.show(status_doc(self.run))

    def finish(self) -> None:
        self._thread.join(timeout=1)
        self.draw()


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _fit(line: str, width: int) -> str:
    """Cut a line to `width` visible characters (a wrapped line would break the redraw)."""
    out, seen, pos = [], 0, 0
    for m in _ANSI.finditer(line):
        text = line[pos : m.start()]
        out.append(text[: max(0, width - 1 - seen)])
        seen += len(text)
        out.append(m.group(0))
        pos = m.end()
    out.append(line[pos:][: max(0, width - 1 - seen)])
    return "".join(out)


def use_color(out: IO[str] = sys.stdout) -> bool:
    """Colour on a terminal unless NO_COLOR is set to anything but empty (no-color.org)."""
    return is_terminal(out) and not os.environ.get("NO_COLOR")


def is_terminal(out: IO[str] = sys.stdout) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False
