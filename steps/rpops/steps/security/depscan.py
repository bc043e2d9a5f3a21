"""Dependency scan: match pinned dependencies against the advisory database, merge aliases, rate
severity, and plan the minimal upgrades."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from rpops.steps.security.deps import Dependency
from rpops.steps.security.fix import PlannedFix, resolve_fix
from rpops.steps.security.model import Finding, Location, Notice
from rpops.steps.security.osv import AdvisoryDB, VulnGroup, match_package, merge_aliases


@dataclass
class DepScanResult:
    files: list[str] = field(default_factory=list)
    dependencies: list[Dependency] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    fixes: list[PlannedFix] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        pinned = [d for d in self.dependencies if d.pinned]
        vulnerable = {(f.properties["package"], f.properties["version"]) for f in self.findings}
        return {
            "files": self.files,
            "dependencies": len(self.dependencies),
            "packages_checked": len({(d.name, d.version) for d in pinned}),
            "not_pinned": sorted(
                {f"{d.display_name} ({d.source}:{d.line})" for d in self.dependencies if not d.pinned}
            ),
            "vulnerable_packages": len(vulnerable),
        }


def _group_finding(
    dep: Dependency, group: VulnGroup, fix: PlannedFix | None, unknown_severity: str
) -> Finding:
    severity = group.severity
    rating = severity["rating"] if severity else unknown_severity
    source = ("cvss" if severity.get("score") is not None else "database") if severity else "default"
    summary = next((a.summary for a in group.advisories if a.summary), "").strip()
    fixed = sorted({str(v) for a in group.advisories for v in a.fix_versions}, key=lambda s: s)
    upgrade = fix.resolution.version if fix else None
    title = summary.splitlines()[0][:120] if summary else f"Known vulnerability in {dep.display_name}"
    message = (
        f"{dep.display_name} {dep.version} is affected by {group.primary_id}"
        + (f" ({', '.join(group.aliases[:4])})" if group.aliases else "")
        + (f"; upgrade to {upgrade}" if upgrade else "; no fixed version is known")
    )
    fingerprint = hashlib.sha256(
        f"{group.primary_id}|{dep.name}|{dep.version}|{dep.source}".encode()
    ).hexdigest()[:32]
    return Finding(
        kind="dependency",
        rule_id=group.primary_id,
        title=title,
        severity=rating,
        confidence="high",
        message=message,
        location=Location(
            dep.source if not dep.source.startswith("installed:") else dep.source,
            dep.line,
            1 if dep.line else 0,
            logical=f"{dep.display_name}=={dep.version}",
        ),
        snippet=f"{dep.display_name}{dep.specifier}" if dep.specifier else dep.display_name,
        fingerprint=fingerprint,
        properties={
            "package": dep.name,
            "version": dep.version,
            "file": dep.path,  # the file read (an installed package's METADATA), for SARIF locations
            "aliases": group.aliases,
            "advisories": sorted(a.id for a in group.advisories),
            "fixed_versions": fixed,
            "fix_version": upgrade,
            "severity_source": source,
            "cvss": severity if severity and severity.get("score") is not None else None,
            "references": list(dict.fromkeys(r for a in group.advisories for r in a.references))[:5],
            "published": min((a.published for a in group.advisories if a.published), default=""),
        },
    )


def scan_dependencies(
    db: AdvisoryDB,
    dependencies: list[Dependency],
    unknown_severity: str = "high",
    api_hits: dict[tuple[str, str], set[str]] | None = None,
) -> DepScanResult:
    """Match every pinned dependency. `api_hits` holds ids the OSV API reported per (name, version)."""
    result = DepScanResult(dependencies=dependencies)
    cache: dict[tuple[str, str], tuple[list[VulnGroup], list[Notice]]] = {}
    reported_problems: set[str] = set()
    for dep in dependencies:
        if dep.version is None:
            continue
        key = (dep.name, dep.version)
        if key not in cache:
            groups, notices = match_package(db, dep.name, dep.version)
            extra = (api_hits or {}).get(key, set())
            if extra:
                known = {i for g in groups for a in g.advisories for i in a.ids}
                forced = [a for a in db.advisories_for(dep.name) if a.ids & extra and not a.ids & known]
                if forced:
                    every = [a for g in groups for a in g.advisories] + forced
                    groups = [VulnGroup(dep.name, dep.version, g) for g in merge_aliases(every)]
            cache[key] = (groups, notices)
            for advisory in db.advisories_for(dep.name):
                for problem in advisory.problems:
                    tag = f"{advisory.id}|{problem}"
                    if tag not in reported_problems:
                        reported_problems.add(tag)
                        notices.append(
                            Notice(
                                "advisory-db",
                                "invalid-version",
                                advisory.source_file,
                                f"{advisory.id} ({dep.name}): range {problem}; range skipped",
                            )
                        )
            result.notices.extend(notices)
        groups, _ = cache[key]
        if not groups:
            continue
        applicable = [a for g in groups for a in g.advisories]
        resolution = resolve_fix(dep.name, dep.version, applicable, db.advisories_for(dep.name))
        fix = PlannedFix(dep, resolution)
        result.fixes.append(fix)
        for group in groups:
            result.findings.append(_group_finding(dep, group, fix, unknown_severity))
    return result
