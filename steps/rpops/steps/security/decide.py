"""Decide (pure): the findings of a scan, what each part covered, and the gate, from what was observed.

  dependencies  match the pinned packages against the advisory data (depscan), plan the upgrades;
                a missing or stale database (older than --max-db-age) is an error, not a pass
  config        the workload checks (config.check_objects) over the manifests and, on their own,
                the live objects
  suppressions  mark the findings the suppression file explains (suppress.apply)
  gate          how many unsuppressed findings are at or above --fail-on, against --threshold

`now` is passed in: it dates the advisory data and expires suppressions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rpops.steps.security import suppress
from rpops.steps.security.config import check_objects
from rpops.steps.security.depscan import scan_dependencies
from rpops.steps.security.fix import PlannedFix
from rpops.steps.security.model import Finding, Notice
from rpops.steps.security.observe import DependencyInput, LiveObjects, ManifestInput, Observation
from rpops.steps.security.osv import AdvisoryDB
from rpops.steps.security.report import Gate, decide_gate
from rpops.steps.security.settings import ScanSettings, parse_age


@dataclass
class Parts:
    """What the parts of the scan found, in the order they ran."""

    findings: list[Finding] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    scanned: dict[str, Any] = field(default_factory=dict)  # advisory_db / dependencies / code / config
    fixes: list[PlannedFix] = field(default_factory=list)


@dataclass(frozen=True)
class Decision:
    findings: list[Finding]  # suppressed ones included, marked
    notices: list[Notice]
    scanned: dict[str, Any]
    fixes: list[PlannedFix]  # upgrades to propose (act writes the patch)
    expired_suppressions: list[dict[str, Any]]
    db_error: str  # the advisory data was missing or stale, or an API did not answer: exit 3
    gate: Gate


def decide(s: ScanSettings, obs: Observation, now: datetime, sync_error: str = "") -> Decision:
    """Every part's findings, suppressions applied, and the gate. `sync_error`: --sync-db failed."""
    out = Parts()
    db_error = sync_error
    if obs.dependencies is not None:
        error = dependencies(s, obs.dependencies, now, out)  # the sync's error, if any, comes first
        db_error = db_error or error
    if obs.code is not None:
        out.findings.extend(obs.code.findings)
        out.notices.extend(obs.code.notices)
        out.scanned["code"] = obs.code.summary()
    if s.config:
        config(s, obs.manifests, obs.live, out)
    expired, notices = suppress.apply(
        out.findings, obs.suppressions.entries, now.date(), obs.suppressions.source
    )
    return Decision(
        findings=out.findings,
        notices=[*out.notices, *notices],
        scanned=out.scanned,
        fixes=out.fixes,
        expired_suppressions=expired,
        db_error=db_error,
        gate=decide_gate(out.findings, s.fail_on, s.threshold),
    )


def dependencies(s: ScanSettings, found: DependencyInput, now: datetime, out: Parts) -> str:
    """Dependency findings and upgrades into `out`; returns the advisory database's problem, if any."""
    out.notices.extend(found.notices)
    if not found.sources:
        out.scanned["dependencies"] = {
            "skipped": "no requirement files in the target and no --requirements or --installed given",
            "files": [],
            "packages_checked": 0,
        }
        return ""
    if found.db is None:
        out.scanned["dependencies"] = {
            "skipped": "advisory database unavailable",
            "files": found.sources,
            "packages_checked": 0,
        }
        return found.db_problem
    out.scanned["advisory_db"] = found.db.describe(now)
    error = stale_database(found.db, found.db_path, s.max_db_age, now) or found.api_problem
    result = scan_dependencies(found.db, found.dependencies, s.unknown_severity, found.api_hits)
    out.findings.extend(result.findings)
    out.notices.extend(result.notices)
    out.fixes.extend(result.fixes)
    out.scanned["dependencies"] = {**result.summary(), "files": found.sources, "online": bool(s.online)}
    return error


def stale_database(db: AdvisoryDB, path: Path, max_db_age: str, now: datetime) -> str:
    """Why the advisory data is too old to vouch for a pass (older than --max-db-age), or ""."""
    limit = parse_age(max_db_age, "--max-db-age")
    age = db.age_seconds(now)
    if not limit or (age is not None and age <= limit):
        return ""
    shown = "unknown" if age is None else f"{age / 86400:.1f} days"
    return (
        f"advisory database {path} is {shown} old, over --max-db-age {max_db_age}; run "
        f"'rpops advisories sync --db {path}' (results below use the old data)"
    )


def config(s: ScanSettings, manifests: ManifestInput | None, live: LiveObjects | None, out: Parts) -> None:
    """Configuration findings into `out`. Live objects are judged on their own: a NetworkPolicy in a
    manifest does not cover a live pod."""
    if manifests is None and live is None:
        out.scanned["config"] = {"objects": 0, "files": 0, "skipped": "no --manifests given and no --live"}
        return
    objects = manifests.objects if manifests is not None else []
    if manifests is not None:
        out.notices.extend(manifests.problems)
        out.findings.extend(check_objects(objects))
    live_objects = live.objects if live is not None else []
    if live is not None:
        out.findings.extend(check_objects(live_objects, live.namespace or "default"))
    kinds: dict[str, int] = {}
    for obj in [*objects, *live_objects]:
        kinds[obj.kind] = kinds.get(obj.kind, 0) + 1
    files = manifests.files if manifests is not None else 0
    out.scanned["config"] = {"objects": len(objects) + len(live_objects), "files": files, "kinds": kinds}
    if live is not None:
        out.scanned["config"]["live"] = {
            "platform": live.platform,
            "namespace": live.namespace,
            "objects": len(live_objects),
            "read": live.read,
            "service": s.service or None,
        }
