"""Act: what the scan writes.

sync_advisories  --sync-db: refresh the advisory database before it is read (sync.py)
act              fix.patch (fix.py), then under $RPOPS_OUTPUTS report.json, results.sarif
                 (sarif.py), summary.md and the output parameters critical, high, total, fixes
                 and status (report.py); the report in --format (text, json, markdown, sarif) on
                 stdout or to --output; the notices as log warnings; the exit code
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rpops.core.errors import Unreachable
from rpops.core.io import EXIT_GATE_FAILED, EXIT_UNREACHABLE, outputs_dir, write_output, write_report
from rpops.steps.security.decide import Decision
from rpops.steps.security.fix import PlannedFix, build_patch
from rpops.steps.security.observe import db_path
from rpops.steps.security.report import ScanOutcome, build_report, markdown, one_line, text_report
from rpops.steps.security.sarif import build_sarif
from rpops.steps.security.settings import PRESENTATION, ScanSettings

log = logging.getLogger("rpops.steps.security")

TEXT_FINDINGS = 20  # findings listed under the one-line result in the text format


def sync_advisories(s: ScanSettings) -> str:
    """Refresh the advisory database before it is read; the error, or "" when it is current."""
    from rpops.steps.security import sync  # httpx loads only for a scan that uses the network

    db = db_path(s)
    url = s.advisory_url or os.environ.get("RPOPS_ADVISORY_URL") or sync.DEFAULT_URL
    try:
        result = sync.sync(db, url, timeout=s.timeout, retries=s.retries)
    except Unreachable as exc:
        return f"--sync-db: {exc}"
    log.info("advisory database %s %s: %d records", db, result.status, result.records)
    return ""


def write_patch(
    fixes: list[PlannedFix], target: Path, patch_out: Path
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """fix.patch (empty when nothing can be upgraded in place); the upgrades and the patch, as reported."""
    patch = build_patch(fixes, target)
    patch_out.parent.mkdir(parents=True, exist_ok=True)
    patch_out.write_text(patch.text)
    listed = [
        {
            "package": f.dependency.display_name,
            "current": f.resolution.current,
            "version": f.resolution.version,
            "source": f.dependency.source,
            "line": f.dependency.line,
            "patched": f.patched,
            "manual": f.manual,
            "steps": list(f.resolution.steps),
        }
        for f in patch.fixes
    ]
    summary = {
        "path": str(patch_out),
        "files": patch.files,
        "upgrades": sum(1 for f in patch.fixes if f.patched),
        "empty": not patch.text,
    }
    return listed, summary


def recorded_settings(s: ScanSettings) -> dict[str, Any]:
    """The settings report.json records: what was scanned and how, not how it is shown."""
    return {
        k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(s).items() if k not in PRESENTATION
    }


def act(s: ScanSettings, d: Decision, started: datetime) -> int:
    """Write every file and output, show the report; the exit code (3 before 1: the data decides)."""
    target = Path(s.target)
    patch_out = Path(s.patch_out) if s.patch_out else outputs_dir() / "fix.patch"
    listed, patch = write_patch(d.fixes, target, patch_out)
    outcome = ScanOutcome(
        target=str(target),
        started_at=started,
        finished_at=datetime.now(UTC),
        findings=d.findings,
        notices=d.notices,
        gate=d.gate,
        scanned=d.scanned,
        fixes=listed,
        patch=patch,
        expired_suppressions=d.expired_suppressions,
        db_error=d.db_error,
        settings=recorded_settings(s),
    )
    report = build_report(outcome)
    write_report(report)
    sarif = json.dumps(build_sarif(outcome, target), indent=2)
    summary_md = markdown(outcome)
    write_output("results.sarif", sarif)
    write_output("summary.md", summary_md)
    summary = report["summary"]
    write_output("critical", str(summary["critical"]))
    write_output("high", str(summary["high"]))
    write_output("total", str(summary["total"]))
    write_output("fixes", str(patch["upgrades"]))
    write_output("status", report["status"])
    show(s, outcome, report, sarif, summary_md)
    for notice in d.notices:
        log.warning(
            "%s %s%s: %s", notice.code, notice.path, f":{notice.line}" if notice.line else "", notice.message
        )
    if d.db_error:
        log.error("%s", d.db_error)
        return EXIT_UNREACHABLE
    return EXIT_GATE_FAILED if d.gate.failed else 0


def show(s: ScanSettings, outcome: ScanOutcome, report: dict[str, Any], sarif: str, summary_md: str) -> None:
    """The report in --format, on stdout or to --output; the one-line result in the log."""
    chosen = {
        "text": lambda: text_report(outcome, TEXT_FINDINGS),
        "json": lambda: json.dumps(report, indent=2) + "\n",
        "markdown": lambda: summary_md,
        "sarif": lambda: sarif + "\n",
    }[s.format]()
    if not s.output:
        print(chosen, end="" if chosen.endswith("\n") else "\n")
    else:
        Path(s.output).write_text(chosen, encoding="utf-8")
    log.info("%s", one_line(outcome))
