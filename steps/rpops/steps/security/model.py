"""Typed values shared by the scanners, the reports and the gate."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SEVERITIES: tuple[str, ...] = ("info", "low", "medium", "high", "critical")
CONFIDENCES: tuple[str, ...] = ("low", "medium", "high")
_RANK = {name: i for i, name in enumerate(SEVERITIES)}


def severity_rank(severity: str) -> int:
    """Position of a severity on the scale info < low < medium < high < critical."""
    return _RANK[severity]


def at_least(severity: str, floor: str) -> bool:
    return _RANK[severity] >= _RANK[floor]


@dataclass(frozen=True)
class Location:
    """Where a finding is. `path` is relative to the scan target when it lies inside it.

    Lines and columns are 1-based; 0 means "not known" (an installed package, a live object).
    """

    path: str
    line: int = 0
    column: int = 0
    end_line: int = 0
    end_column: int = 0
    logical: str = ""  # e.g. "Deployment/prod/web" or "jinja2==2.10"

    def display(self) -> str:
        if self.line:
            return f"{self.path}:{self.line}:{self.column}" if self.column else f"{self.path}:{self.line}"
        return self.path or self.logical


@dataclass
class Finding:
    """One problem found. `kind` is dependency, code or config."""

    kind: str
    rule_id: str
    title: str
    severity: str
    confidence: str
    message: str
    location: Location
    snippet: str = ""
    fingerprint: str = ""
    properties: dict[str, Any] = field(default_factory=dict)
    suppression: dict[str, Any] | None = None  # {"kind": "inline"|"file", "reason": ..., ...}

    def to_dict(self) -> dict[str, Any]:
        loc = self.location
        out: dict[str, Any] = {
            "kind": self.kind,
            "rule_id": self.rule_id,
            "title": self.title,
            "severity": self.severity,
            "confidence": self.confidence,
            "message": self.message,
            "location": {
                "path": loc.path,
                "line": loc.line,
                "column": loc.column,
                "end_line": loc.end_line,
                "end_column": loc.end_column,
                "logical": loc.logical,
            },
            "snippet": self.snippet,
            "fingerprint": self.fingerprint,
            "properties": self.properties,
        }
        if self.suppression:
            out["suppression"] = self.suppression
        return out


@dataclass(frozen=True)
class Notice:
    """Something the scan could not analyse, or a warning about its input.

    Notices never count as findings, but they are always reported so that a scan that skipped
    input never looks clean by omission.
    """

    kind: str  # dependency | code | config | advisory-db | suppression
    code: str  # syntax-error, too-large, binary, unreadable, symlink-loop, invalid-version, ...
    path: str
    message: str
    line: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "code": self.code,
            "path": self.path,
            "line": self.line,
            "message": self.message,
        }
