"""The gate decision and the human and machine reports (report.json, summary.md, one-line result).

Every report says what was scanned (files, packages, objects, advisory database age), so an empty
result is never a silent "no vulnerabilities found".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rpops import __version__
from rpops.steps.security.model import SEVERITIES, Finding, Notice, at_least, severity_rank


@dataclass(frozen=True)
class Gate:
    fail_on: str
    threshold: int
    count: int

    @property
    def failed(self) -> bool:
        return self.count >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {
            "fail_on": self.fail_on,
            "threshold": self.threshold,
            "count": self.count,
            "failed": self.failed,
        }


def active(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.suppression is None]


def decide_gate(findings: list[Finding], fail_on: str, threshold: int) -> Gate:
    """Pure: how many unsuppressed findings are at or above `fail_on`, against `threshold`."""
    return Gate(fail_on, threshold, sum(1 for f in active(findings) if at_least(f.severity, fail_on)))


def counts(findings: list[Finding]) -> dict[str, int]:
    out = dict.fromkeys(SEVERITIES, 0)
    for f in active(findings):
        out[f.severity] += 1
    out["total"] = sum(out[s] for s in SEVERITIES)
    out["suppressed"] = len(findings) - out["total"]
    return out


@dataclass
class ScanOutcome:
    target: str
    started_at: datetime
    finished_at: datetime
    findings: list[Finding]
    notices: list[Notice]
    gate: Gate
    scanned: dict[str, Any] = field(default_factory=dict)  # deps / code / config / advisory_db sections
    fixes: list[dict[str, Any]] = field(default_factory=list)
    patch: dict[str, Any] = field(default_factory=dict)
    expired_suppressions: list[dict[str, Any]] = field(default_factory=list)
    db_error: str = ""
    settings: dict[str, Any] = field(default_factory=dict)

    def sorted_findings(self) -> list[Finding]:
        return sorted(
            self.findings,
            key=lambda f: (-severity_rank(f.severity), f.kind, f.location.path, f.location.line, f.rule_id),
        )


def build_report(outcome: ScanOutcome) -> dict[str, Any]:
    c = counts(outcome.findings)
    return {
        "tool": {"name": "rpops security-scan", "version": __version__},
        "target": outcome.target,
        "started_at": outcome.started_at.isoformat(),
        "finished_at": outcome.finished_at.isoformat(),
        "summary": c,
        "gate": outcome.gate.to_dict(),
        "status": status(outcome),
        "scanned": outcome.scanned,
        "advisory_db_error": outcome.db_error or None,
        "findings": [f.to_dict() for f in outcome.sorted_findings() if f.suppression is None],
        "suppressed": [f.to_dict() for f in outcome.sorted_findings() if f.suppression is not None],
        "expired_suppressions": outcome.expired_suppressions,
        "fixes": outcome.fixes,
        "patch": outcome.patch,
        "notices": [n.to_dict() for n in outcome.notices],
        "settings": outcome.settings,
    }


def status(outcome: ScanOutcome) -> str:
    if outcome.db_error:
        return "error"
    return "fail" if outcome.gate.failed else "pass"


def _scanned_phrase(outcome: ScanOutcome) -> str:
    parts: list[str] = []
    deps = outcome.scanned.get("dependencies")
    if deps is not None:
        if deps.get("skipped"):
            parts.append(f"dependencies not checked ({deps['skipped']})")
        else:
            parts.append(f"{deps['packages_checked']} packages from {len(deps['files'])} file(s)")
    code = outcome.scanned.get("code")
    if code is not None:
        parts.append(f"{code['files_scanned']}/{code['files_found']} Python files")
    config = outcome.scanned.get("config")
    if config is not None:
        parts.append(f"{config['objects']} Kubernetes objects")
    db = outcome.scanned.get("advisory_db")
    if db:
        age = db.get("age_days")
        parts.append(
            f"advisory db {db['records']} records, {'age unknown' if age is None else f'{age:g} days old'}"
        )
    elif outcome.db_error:
        parts.append("advisory db unavailable")
    return "; ".join(parts) or "nothing"


def one_line(outcome: ScanOutcome) -> str:
    c = counts(outcome.findings)
    head = (
        f"security-scan {status(outcome).upper()}: {c['critical']} critical, {c['high']} high, "
        f"{c['total']} total findings"
    )
    if c["suppressed"]:
        head += f" ({c['suppressed']} suppressed)"
    gate = outcome.gate
    tail = f"gate: {gate.count} at or above {gate.fail_on} (threshold {gate.threshold})"
    if outcome.db_error:
        tail = outcome.db_error
    return f"{head} | scanned {_scanned_phrase(outcome)} | {tail}"


def text_report(outcome: ScanOutcome, limit: int) -> str:
    """The one-line result, then the most severe unsuppressed findings, one a line."""
    lines = [one_line(outcome)]
    shown = [f for f in outcome.sorted_findings() if f.suppression is None]
    for f in shown[:limit]:
        lines.append(f"{f.severity.upper():<8} {f.rule_id:<24} {f.location.display()}  {f.message}")
    if len(shown) > limit:
        lines.append(f"... {len(shown) - limit} more (--format json, or report.json)")
    return "\n".join(lines) + "\n"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").replace("`", "'")


def markdown(outcome: ScanOutcome, limit: int = 100) -> str:
    c = counts(outcome.findings)
    lines = [
        f"# Security scan: {status(outcome).upper()}",
        "",
        f"Target `{outcome.target}` scanned {outcome.finished_at.isoformat(timespec='seconds')}.",
        "",
        f"**Scanned:** {_scanned_phrase(outcome)}.",
        "",
    ]
    if outcome.db_error:
        lines += [f"**Advisory database problem:** {outcome.db_error}", ""]
    gate = outcome.gate
    lines += [
        f"**Gate:** {gate.count} finding(s) at or above *{gate.fail_on}*; threshold {gate.threshold} -> "
        f"{'FAILED' if gate.failed else 'passed'}.",
        "",
        "| critical | high | medium | low | info | total | suppressed |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {c['critical']} | {c['high']} | {c['medium']} | {c['low']} | {c['info']} | {c['total']} "
        f"| {c['suppressed']} |",
        "",
    ]
    shown = [f for f in outcome.sorted_findings() if f.suppression is None]
    if shown:
        lines += ["## Findings", "", "| severity | kind | rule | where | message |", "|---|---|---|---|---|"]
        for f in shown[:limit]:
            lines.append(
                f"| {f.severity} | {f.kind} | `{f.rule_id}` | {_md_escape(f.location.display())} "
                f"| {_md_escape(f.message)[:300]} |"
            )
        if len(shown) > limit:
            lines.append(f"\n{len(shown) - limit} more in report.json.")
        lines.append("")
    else:
        lines += ["No unsuppressed findings in what was scanned (see above for what that covers).", ""]
    if outcome.fixes:
        lines += [
            "## Proposed upgrades",
            "",
            "| package | from | to | where | in patch |",
            "|---|---|---|---|---|",
        ]
        for fix in outcome.fixes:
            lines.append(
                f"| {fix['package']} | {fix['current']} | {fix['version'] or '—'} | {fix['source']} "
                f"| {'yes' if fix['patched'] else _md_escape(fix['manual'] or 'no')} |"
            )
        if outcome.patch.get("path"):
            lines.append(f"\nPatch: `{outcome.patch['path']}` (apply with `git apply` or `patch -p1`).")
        lines.append("")
    if outcome.expired_suppressions:
        lines += ["## Expired suppressions", ""]
        lines += [
            f"- `{e['id']}` expired {e['expires']} ({e['reason']})" for e in outcome.expired_suppressions
        ]
        lines.append("")
    if outcome.notices:
        by_code: dict[str, int] = {}
        for n in outcome.notices:
            by_code[n.code] = by_code.get(n.code, 0) + 1
        lines += ["## Not analysed / warnings", ""]
        lines += [f"- {code}: {count}" for code, count in sorted(by_code.items())]
        lines += [f"  - {n.path}{f':{n.line}' if n.line else ''} — {n.message}" for n in outcome.notices[:20]]
        lines.append("")
    return "\n".join(lines)
