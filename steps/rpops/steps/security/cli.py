"""`rpops security-scan`: dependencies, source code and workload configuration in one step.

observe: read requirement files / installed environments, the advisory database, Python files and
Kubernetes manifests. decide: match, check, apply suppressions, decide the gate. act: write
report.json, results.sarif, summary.md, fix.patch and the output parameters under $RPOPS_OUTPUTS
(the files the templates read), and the report in the chosen --format to --output (stdout by
default), as Bandit's `-f`/`-o` and Trivy's `--format`/`-o` do.

`--live` adds the platform's live objects (Deployments, Services, NetworkPolicies,
PodDisruptionBudgets) read through the platform driver; they are read first, so a refusal or an
unreachable API stops the scan before anything is written.

Exit codes: 0 the gate passed; 1 findings at or above --fail-on reached --threshold; 2 bad input;
3 the advisory database is missing or older than --max-db-age (or --online could not reach OSV,
or --live could not reach the platform's API).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rpops.core.errors import Unreachable, UsageError
from rpops.core.io import EXIT_GATE_FAILED, EXIT_UNREACHABLE, outputs_dir, write_output, write_report
from rpops.core.settings import add_arguments, from_args, setting
from rpops.steps.security.model import SEVERITIES, Finding, Notice

if TYPE_CHECKING:
    from rpops.steps.security.config import K8sObject

log = logging.getLogger("rpops.steps.security")


@dataclass(frozen=True)
class ScanSettings:
    target: str = setting(
        ".",
        help="Project directory: its Python files are scanned and its requirement "
        "files (requirements*.txt, pyproject.toml, uv.lock, poetry.lock) found",
    )
    requirements: tuple[str, ...] = setting(
        default_factory=tuple,
        repeat=True,
        help=(
            "Requirement file to audit instead of the discovered ones (requirements.txt, pip freeze output, "
            "pyproject.toml, uv.lock, poetry.lock); repeat for several"
        ),
    )
    installed: tuple[str, ...] = setting(
        default_factory=tuple,
        repeat=True,
        help=(
            "Audit the distributions installed in a site-packages directory or virtualenv ('current' for "
            "this interpreter); repeat for several"
        ),
    )
    manifests: tuple[str, ...] = setting(
        default_factory=tuple,
        repeat=True,
        help=("Kubernetes YAML file or directory to check (multi-document YAML); repeat for several"),
    )
    exclude: tuple[str, ...] = setting(
        default_factory=tuple,
        repeat=True,
        help=(
            "Glob of files or directories to leave out of the code scan (matched against the path "
            "relative to the target and against the name); repeat for several"
        ),
    )
    deps: bool = setting(True, help="Check dependencies against the advisory database")
    code: bool = setting(True, help="Scan Python source with the AST rules")
    config: bool = setting(True, help="Check workload configuration (--manifests)")
    db: str = setting(
        "",
        help="Advisory database directory (default: $RPOPS_ADVISORY_DB, else "
        "/opt/rpops/advisories, the copy in the step image)",
    )
    max_db_age: str = setting(
        "7d", help="Exit 3 when the advisory data is older than this (e.g. 36h, 7d; 0 turns the check off)"
    )
    online: bool = setting(False, help="Also ask the OSV API (querybatch) about the pinned packages")
    osv_api_url: str = setting(
        "", help="OSV API base URL (default: $RPOPS_OSV_API_URL, else https://api.osv.dev)"
    )
    fail_on: str = setting("critical", choices=SEVERITIES, help="Severity that counts towards the gate")
    threshold: int = setting(1, help="Fail (exit 1) when this many findings are at or above --fail-on")
    unknown_severity: str = setting(
        "high",
        choices=("low", "medium", "high", "critical"),
        help=("Severity given to advisories that carry no CVSS vector or rating"),
    )
    suppressions: str = setting(
        "", help="YAML suppression file (default: <target>/.rpops-security.yaml when it exists)"
    )
    patch_out: str = setting("", help="Where to write the upgrade patch (default: $RPOPS_OUTPUTS/fix.patch)")
    cache: bool = setting(True, help="Reuse cached per-file results and the advisory index")
    cache_dir: str = setting("", help="Cache directory (default: $RPOPS_CACHE_DIR, else ~/.cache/rpops)")
    jobs: int = setting(0, help="Worker processes for the code scan (0: one per CPU)")
    max_file_size: int = setting(
        2 * 1024 * 1024, help="Python files larger than this many bytes are reported and not analysed"
    )
    advisory_url: str = setting(
        "", help="Where --sync-db downloads from (default: $RPOPS_ADVISORY_URL, else OSV's PyPI all.zip)"
    )
    timeout: float = setting(30.0, help="HTTP timeout in seconds for --online and --sync-db")
    retries: int = setting(2, help="Retries for --online and --sync-db requests")
    service: str = setting(
        "",
        help="With --live: check only this service's Deployments (label app.kubernetes.io/name) and "
        "Services (that label, or named <service> and <service>-preview); every NetworkPolicy and "
        "PodDisruptionBudget of the namespace still counts for coverage. Recorded in the report either way",
    )
    region: str = setting("", help="Region of the scanned platform, recorded in the report")


FORMATS = ("text", "json", "markdown", "sarif")
TEXT_FINDINGS = 20  # findings listed under the one-line result in the text format

# What --live reads: pod specs to check, and the objects that must select them.
LIVE_KINDS = ("Deployment", "Service", "NetworkPolicy", "PodDisruptionBudget")
_SERVICE_KINDS = ("Deployment", "Service")
_NAME_LABEL = "app.kubernetes.io/name"


def configure(parser: argparse.ArgumentParser) -> None:
    from rpops.core.switches import add_switch
    from rpops.platform import add_namespace_argument

    add_arguments(parser, ScanSettings)
    add_namespace_argument(parser)  # the driver's namespace
    add_switch(
        parser,
        "live",
        "Also check the platform's live Deployments, Services, NetworkPolicies and PodDisruptionBudgets, "
        "read through the platform driver ($RPOPS_PLATFORM); the local platform has none and refuses",
    )
    add_switch(
        parser,
        "sync_db",
        "First refresh --db from OSV's PyPI export, as `rpops advisories sync` does (verified, swapped "
        "in atomically); if that fails, the scan uses --db as it was and exits 3",
    )
    parser.add_argument(
        "-f",
        "--format",
        choices=FORMATS,
        default="text",
        help="Report format on stdout or --output: text (the one-line result and the top findings), "
        "json (report.json), markdown (summary.md), sarif (results.sarif). Default: text",
    )
    parser.add_argument(
        "-o",
        "--output",
        default="",
        metavar="FILE",
        help="Write the --format report to FILE instead of stdout (the $RPOPS_OUTPUTS files are "
        "written either way)",
    )
    parser.add_argument("--verbose", action="store_true", help="Debug logging")


def parse_duration(text: str, flag: str) -> float:
    """'7d', '36h', '90m', '600s' or a bare number of days -> seconds; 0 turns the check off."""
    value = text.strip().lower()
    units = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
    try:
        if value and value[-1] in units:
            seconds = float(value[:-1]) * units[value[-1]]
        else:
            seconds = float(value) * 86400.0
    except ValueError:
        raise UsageError(f"{flag} {text!r}: write a duration like 7d, 36h or 90m (0 turns it off)") from None
    if seconds < 0:
        raise UsageError(f"{flag} {text!r}: must not be negative")
    return seconds


def _normalized(s: ScanSettings) -> ScanSettings:
    """Empty path values mean "none": an Argo template cannot drop an argument, so it passes ''."""
    return dataclasses.replace(
        s,
        manifests=tuple(p for p in s.manifests if p.strip()),
        installed=tuple(p for p in s.installed if p.strip()),
        requirements=tuple(p for p in s.requirements if p.strip()),
        exclude=tuple(p for p in s.exclude if p.strip()),
        service=s.service.strip(),
        region=s.region.strip(),
    )


def _validate(s: ScanSettings) -> None:
    if s.threshold < 1:
        raise UsageError(f"--threshold {s.threshold}: must be 1 or more")
    if s.jobs < 0:
        raise UsageError(f"--jobs {s.jobs}: must be 0 (one per CPU) or more")
    if s.max_file_size < 1:
        raise UsageError(f"--max-file-size {s.max_file_size}: must be a positive number of bytes")
    if not Path(s.target).is_dir():
        raise UsageError(f"--target {s.target}: not a directory; point it at the project to scan")
    for path in s.manifests:
        if not Path(path).exists():
            raise UsageError(f"--manifests {path}: no such file or directory")
    if s.service:
        from rpops.platform.base import check_service

        try:
            check_service(s.service)
        except UsageError as exc:
            raise UsageError(f"--service: {exc}") from None


@dataclass(frozen=True)
class LiveObjects:
    """What --live read: the objects to check, and where they came from."""

    objects: list[K8sObject]
    platform: str
    namespace: str
    read: int  # objects the driver returned, before the --service filter


def _sync_advisories(s: ScanSettings) -> str:
    """act: refresh the advisory database before it is read; the error, or "" when it is current."""
    from rpops.steps.security import sync
    from rpops.steps.security.osv import default_db

    db = Path(s.db) if s.db else default_db()
    url = s.advisory_url or os.environ.get("RPOPS_ADVISORY_URL") or sync.DEFAULT_URL
    try:
        result = sync.sync(db, url, timeout=s.timeout, retries=s.retries)
    except Unreachable as exc:
        return f"--sync-db: {exc}"
    log.info("advisory database %s %s: %d records", db, result.status, result.records)
    return ""


def _read_live(s: ScanSettings, namespace_flag: str | None) -> LiveObjects:
    """observe: the platform's live objects (plain dicts from the driver), filtered to --service."""
    from rpops.platform import get_driver
    from rpops.steps.security.config import K8sObject

    driver = get_driver(namespace=namespace_flag)
    docs = driver.list_objects(LIVE_KINDS)
    namespace = str(getattr(driver, "namespace", "") or "")
    kept = [d for d in docs if _belongs(d, s.service)]
    if s.service and not any(d.get("kind") == "Deployment" for d in kept):
        found = sorted(
            {
                str(((d.get("metadata") or {}).get("labels") or {}).get(_NAME_LABEL))
                for d in docs
                if d.get("kind") == "Deployment"
            }
        )
        raise UsageError(
            f"--service {s.service}: no Deployment labelled {_NAME_LABEL}={s.service} in namespace "
            f"{namespace or '?'} (services with Deployments there: {', '.join(found) or 'none'}); "
            "fix the name or leave --service empty to check every workload"
        )
    objects = [K8sObject(doc, "live", i) for i, doc in enumerate(kept)]
    return LiveObjects(objects, driver.name, namespace, len(docs))


def _belongs(doc: dict[str, Any], service: str) -> bool:
    """A service's Deployments carry its name label; its Services carry the label or its route
    names (`<service>`, `<service>-preview`, as the kubernetes driver names them)."""
    if not service or doc.get("kind") not in _SERVICE_KINDS:
        return True
    meta = doc.get("metadata") or {}
    if (meta.get("labels") or {}).get(_NAME_LABEL) == service:
        return True
    return doc.get("kind") == "Service" and meta.get("name") in (service, f"{service}-preview")


def _scan_dependencies(
    s: ScanSettings,
    target: Path,
    cache_dir: Path | None,
    now: datetime,
    findings: list[Finding],
    notices: list[Notice],
    scanned: dict[str, Any],
) -> tuple[str, list[Any]]:
    from rpops.steps.security import deps as readers
    from rpops.steps.security.depscan import scan_dependencies
    from rpops.steps.security.osv import AdvisoryDB, default_db

    files = [Path(p) for p in s.requirements] if s.requirements else readers.discover(target)
    dependencies = []
    sources: list[str] = []
    for path in files:
        read = readers.read_file(path, target, explicit=bool(s.requirements))
        dependencies.extend(read.dependencies)
        notices.extend(read.notices)
        sources.extend(read.files)
    for spec in s.installed:
        read = readers.read_installed(spec, target)
        dependencies.extend(read.dependencies)
        sources.extend(read.files)
    if not sources:
        scanned["dependencies"] = {
            "skipped": "no requirement files in the target and no --requirements or --installed given",
            "files": [],
            "packages_checked": 0,
        }
        return "", []
    db_path = Path(s.db) if s.db else default_db()
    try:
        db = AdvisoryDB.open(db_path, cache_dir)
    except Unreachable as exc:
        scanned["dependencies"] = {
            "skipped": "advisory database unavailable",
            "files": sources,
            "packages_checked": 0,
        }
        return str(exc), []
    scanned["advisory_db"] = db.describe(now)
    db_error = ""
    limit = parse_duration(s.max_db_age, "--max-db-age")
    age = db.age_seconds(now)
    if limit and (age is None or age > limit):
        shown = "unknown" if age is None else f"{age / 86400:.1f} days"
        db_error = (
            f"advisory database {db_path} is {shown} old, over --max-db-age {s.max_db_age}; run "
            f"'rpops advisories sync --db {db_path}' (results below use the old data)"
        )
    api_hits = None
    if s.online:
        from rpops.steps.security import online

        api = s.osv_api_url or os.environ.get("RPOPS_OSV_API_URL") or online.DEFAULT_API
        try:
            api_hits = online.query(db, dependencies, api, timeout=s.timeout, retries=s.retries)
        except Unreachable as exc:  # keep the offline results and still write every output
            db_error = db_error or str(exc)
    result = scan_dependencies(db, dependencies, s.unknown_severity, api_hits)
    findings.extend(result.findings)
    notices.extend(result.notices)
    scanned["dependencies"] = {**result.summary(), "files": sources, "online": bool(s.online)}
    return db_error, result.fixes


def _scan_config(
    s: ScanSettings,
    target: Path,
    live: LiveObjects | None,
    findings: list[Finding],
    notices: list[Notice],
    scanned: dict[str, Any],
) -> None:
    from rpops.steps.security.config import check_objects, read_manifests

    if not s.manifests and live is None:
        scanned["config"] = {"objects": 0, "files": 0, "skipped": "no --manifests given and no --live"}
        return
    objects: list[K8sObject] = []
    nfiles = 0
    if s.manifests:
        objects, problems, nfiles = read_manifests([Path(p) for p in s.manifests], target)
        notices.extend(problems)
        findings.extend(check_objects(objects))
    # Live objects are judged on their own: a NetworkPolicy in a manifest does not cover a live pod.
    live_objects = live.objects if live is not None else []
    if live is not None:
        findings.extend(check_objects(live_objects, live.namespace or "default"))
    kinds: dict[str, int] = {}
    for obj in [*objects, *live_objects]:
        kinds[obj.kind] = kinds.get(obj.kind, 0) + 1
    scanned["config"] = {"objects": len(objects) + len(live_objects), "files": nfiles, "kinds": kinds}
    if live is not None:
        scanned["config"]["live"] = {
            "platform": live.platform,
            "namespace": live.namespace,
            "objects": len(live_objects),
            "read": live.read,
            "service": s.service or None,
        }


def _write_patch(
    fixes: list[Any], target: Path, patch_out: Path
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from rpops.steps.security.fix import build_patch

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


def run(args: argparse.Namespace) -> int:
    from rpops.steps.security import suppress
    from rpops.steps.security.report import (
        ScanOutcome,
        build_report,
        decide_gate,
        markdown,
        one_line,
        text_report,
    )
    from rpops.steps.security.sarif import build_sarif

    s = _normalized(from_args(ScanSettings, args))
    live_flag = bool(getattr(args, "live", False))
    sync_flag = bool(getattr(args, "sync_db", False))
    _validate(s)
    output = Path(args.output) if getattr(args, "output", "") else None
    if output is not None and (output.is_dir() or not output.parent.is_dir()):
        raise UsageError(
            f"--output {args.output}: not a file in an existing directory; name the file to write"
        )
    if live_flag and not s.config:
        raise UsageError("--live checks workload configuration: drop --no-config, or drop --live")
    # Read the live objects before any work or output: a refusal (2) or an unreachable API (3)
    # leaves nothing half-written.
    live = _read_live(s, args.namespace) if live_flag else None
    started = datetime.now(UTC)
    target = Path(s.target)
    cache_dir = None
    if s.cache:
        from rpops.steps.security.osv import default_cache_dir

        cache_dir = Path(s.cache_dir) if s.cache_dir else default_cache_dir()
    entries: list[suppress.Suppression] = []
    suppression_file = Path(s.suppressions) if s.suppressions else target / suppress.DEFAULT_FILE
    if s.suppressions or suppression_file.exists():
        entries = suppress.load_file(suppression_file)
    parse_duration(s.max_db_age, "--max-db-age")  # refuse a bad value before any work
    patch_out = Path(s.patch_out) if s.patch_out else outputs_dir() / "fix.patch"

    findings: list[Finding] = []
    notices: list[Notice] = []
    scanned: dict[str, Any] = {}
    db_error = ""
    fixes: list[Any] = []
    if s.deps and sync_flag:
        db_error = _sync_advisories(s)
    if s.deps:
        scan_error, fixes = _scan_dependencies(s, target, cache_dir, started, findings, notices, scanned)
        db_error = db_error or scan_error
    if s.code:
        from rpops.steps.security.code import CodeScanSettings, scan_code

        code = scan_code(
            CodeScanSettings(
                roots=[target],
                base=target,
                exclude=tuple(s.exclude),
                max_file_bytes=s.max_file_size,
                jobs=s.jobs,
                cache_dir=cache_dir,
            )
        )
        findings.extend(code.findings)
        notices.extend(code.notices)
        scanned["code"] = code.summary()
    if s.config:
        _scan_config(s, target, live, findings, notices, scanned)

    expired, suppression_notices = suppress.apply(findings, entries, started.date(), str(suppression_file))
    notices.extend(suppression_notices)
    listed, patch = _write_patch(fixes, target, patch_out)
    gate = decide_gate(findings, s.fail_on, s.threshold)
    outcome = ScanOutcome(
        target=str(target),
        started_at=started,
        finished_at=datetime.now(UTC),
        findings=findings,
        notices=notices,
        gate=gate,
        scanned=scanned,
        fixes=listed,
        patch=patch,
        expired_suppressions=expired,
        db_error=db_error,
        settings={
            **{k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(s).items()},
            "live": live_flag,
            "sync_db": sync_flag,
        },
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
    line = one_line(outcome)
    chosen = {
        "text": lambda: text_report(outcome, TEXT_FINDINGS),
        "json": lambda: json.dumps(report, indent=2) + "\n",
        "markdown": lambda: summary_md,
        "sarif": lambda: sarif + "\n",
    }[getattr(args, "format", "text")]()
    if output is None:
        print(chosen, end="" if chosen.endswith("\n") else "\n")
    else:
        output.write_text(chosen, encoding="utf-8")
    log.info("%s", line)
    for notice in notices:
        log.warning(
            "%s %s%s: %s", notice.code, notice.path, f":{notice.line}" if notice.line else "", notice.message
        )
    if db_error:
        log.error("%s", db_error)
        return EXIT_UNREACHABLE
    return EXIT_GATE_FAILED if gate.failed else 0
