"""Suppressions: inline comments with a reason (read by the code scan: `# rpops: ignore[RULE] reason`,
Bandit's `# nosec B307 -- reason`, ruff's `# noqa: S307 - reason`) and a YAML suppression file
whose entries carry a reason and an expiry date.

File format (`.rpops-security.yaml` in the target, or --suppressions FILE):

    suppressions:
      - id: py-eval                 # rule/check id, or an advisory id or alias (PYSEC-, GHSA-, CVE-);
                                    # a glob ("py-*", "*") with a path names several rules
        path: "tools/*.py"          # optional glob on the finding's file
        package: jinja2             # optional: dependency findings only
        object: "Deployment/prod/*" # optional glob on a configuration finding's object
        reason: "sandboxed input, see ADR-12"
        expires: 2026-12-31

An expired entry suppresses nothing and is reported; so is an entry that matched nothing.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from rpops.core.errors import UsageError
from rpops.steps.security.model import Finding, Notice

DEFAULT_FILE = ".rpops-security.yaml"


@dataclass(frozen=True)
class Suppression:
    id: str
    reason: str
    expires: date
    path: str = ""
    package: str = ""
    object: str = ""
    index: int = 0  # position in the file, for messages

    def matches(self, finding: Finding) -> bool:
        ids = {finding.rule_id, *finding.properties.get("aliases", [])}
        if not any(fnmatch.fnmatchcase(i, self.id) for i in ids):
            return False
        if self.path and not fnmatch.fnmatch(finding.location.path, self.path):
            return False
        if self.package and finding.properties.get("package") != self.package.lower().replace("_", "-"):
            return False
        return not (self.object and not fnmatch.fnmatch(finding.properties.get("object", ""), self.object))


def _parse_date(value: Any, where: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise UsageError(f"{where}: expires {value!r} is not a date; write it as YYYY-MM-DD") from None


def load_file(path: Path) -> list[Suppression]:
    """Read and validate a suppression file; bad entries are usage errors naming the entry."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"--suppressions {path}: file not found; check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--suppressions {path}: cannot read it ({exc})") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"--suppressions {path}: not valid YAML ({exc})") from None
    if data is None:
        return []
    entries = data.get("suppressions") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise UsageError(f"--suppressions {path}: expected a top-level 'suppressions:' list")
    out: list[Suppression] = []
    for i, entry in enumerate(entries):
        where = f"{path} suppressions[{i}]"
        if not isinstance(entry, dict):
            raise UsageError(f"{where}: each entry is a mapping with id, reason and expires")
        unknown = set(entry) - {"id", "reason", "expires", "path", "package", "object"}
        if unknown:
            raise UsageError(
                f"{where}: unknown keys {sorted(unknown)}; allowed: id, reason, expires, path, "
                "package, object"
            )
        for key in ("id", "reason", "expires"):
            if not entry.get(key):
                raise UsageError(f"{where}: '{key}' is required (every suppression says why and until when)")
        out.append(
            Suppression(
                id=str(entry["id"]),
                reason=str(entry["reason"]),
                expires=_parse_date(entry["expires"], where),
                path=str(entry.get("path") or ""),
                package=str(entry.get("package") or ""),
                object=str(entry.get("object") or ""),
                index=i,
            )
        )
    return out


def apply(
    findings: list[Finding], entries: list[Suppression], today: date, source: str
) -> tuple[list[dict[str, Any]], list[Notice]]:
    """Mark findings suppressed by live entries. Pure. Returns (expired entries, notices)."""
    expired: list[dict[str, Any]] = []
    notices: list[Notice] = []
    used: set[int] = set()
    for entry in entries:
        if entry.expires < today:
            hits = [f for f in findings if f.suppression is None and entry.matches(f)]
            expired.append(
                {
                    "id": entry.id,
                    "reason": entry.reason,
                    "expires": entry.expires.isoformat(),
                    "index": entry.index,
                    "would_suppress": len(hits),
                }
            )
            notices.append(
                Notice(
                    "suppression",
                    "suppression-expired",
                    source,
                    f"suppressions[{entry.index}] for {entry.id} expired on {entry.expires} "
                    f"({len(hits)} finding(s) no longer suppressed); renew or remove it",
                )
            )
            continue
        for finding in findings:
            if finding.suppression is None and entry.matches(finding):
                finding.suppression = {
                    "kind": "file",
                    "reason": entry.reason,
                    "expires": entry.expires.isoformat(),
                    "file": source,
                    "index": entry.index,
                }
                used.add(entry.index)
    for entry in entries:
        if entry.expires >= today and entry.index not in used:
            notices.append(
                Notice(
                    "suppression",
                    "suppression-unused",
                    source,
                    f"suppressions[{entry.index}] for {entry.id} matched no finding",
                )
            )
    return expired, notices
