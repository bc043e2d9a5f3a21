"""Observe: everything the scan reads, as typed values.

  read_live          the platform's live objects, through the driver (--live), filtered to --service
  read_suppressions  the suppression file
  observe            the requirement files and installed environments, the advisory index (and the
                     OSV API with --online), the Python sources, the manifests

The code scan reads and analyses each file in the same worker process (its per-file cache keys
the findings on the file's content), so its findings arrive here with what it read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rpops.core.errors import Unreachable, UsageError
from rpops.steps.security import deps as readers
from rpops.steps.security import suppress
from rpops.steps.security.code import CodeScanResult, CodeScanSettings, scan_code
from rpops.steps.security.config import K8sObject, read_manifests
from rpops.steps.security.deps import Dependency
from rpops.steps.security.model import Notice
from rpops.steps.security.osv import AdvisoryDB, default_cache_dir, default_db
from rpops.steps.security.settings import ScanSettings

# What --live reads: pod specs to check, and the objects that must select them.
LIVE_KINDS = ("Deployment", "Service", "NetworkPolicy", "PodDisruptionBudget")
_SERVICE_KINDS = ("Deployment", "Service")
_NAME_LABEL = "app.kubernetes.io/name"


@dataclass(frozen=True)
class LiveObjects:
    """What --live read: the objects to check, and where they came from."""

    objects: list[K8sObject]
    platform: str
    namespace: str
    read: int  # objects the driver returned, before the --service filter


@dataclass(frozen=True)
class Suppressions:
    entries: list[suppress.Suppression]
    source: str  # the file, as findings and notices name it


@dataclass
class DependencyInput:
    """The dependencies read and the advisory data to match them against."""

    dependencies: list[Dependency] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # files (and installed:<dir>) read
    db_path: Path = Path()
    db: AdvisoryDB | None = None  # None: nothing to check, or the database could not be opened
    db_problem: str = ""  # why it could not be opened
    api_hits: dict[tuple[str, str], set[str]] | None = None  # with --online
    api_problem: str = ""  # why the OSV API could not answer


@dataclass
class ManifestInput:
    objects: list[K8sObject]
    problems: list[Notice]
    files: int


@dataclass
class Observation:
    target: Path
    suppressions: Suppressions
    dependencies: DependencyInput | None  # None: --no-deps
    code: CodeScanResult | None  # None: --no-code
    manifests: ManifestInput | None  # None: --no-config, or no --manifests given
    live: LiveObjects | None  # None: no --live


def read_live(s: ScanSettings) -> LiveObjects:
    """The platform's live objects (plain dicts from the driver), filtered to --service."""
    from rpops.platform import get_driver  # the drivers' clients load only for a scan that uses them

    driver = get_driver(namespace=s.namespace)
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


def read_suppressions(s: ScanSettings) -> Suppressions:
    """--suppressions, else <target>/.rpops-security.yaml when it exists; a bad file is bad input."""
    path = Path(s.suppressions) if s.suppressions else Path(s.target) / suppress.DEFAULT_FILE
    entries = suppress.load_file(path) if s.suppressions or path.exists() else []
    return Suppressions(entries, str(path))


def cache_dir(s: ScanSettings) -> Path | None:
    if not s.cache:
        return None
    return Path(s.cache_dir) if s.cache_dir else default_cache_dir()


def db_path(s: ScanSettings) -> Path:
    return Path(s.db) if s.db else default_db()


def observe(s: ScanSettings, live: LiveObjects | None, suppressions: Suppressions) -> Observation:
    target = Path(s.target)
    cache = cache_dir(s)
    return Observation(
        target=target,
        suppressions=suppressions,
        dependencies=read_dependencies(s, target, cache) if s.deps else None,
        code=read_code(s, target, cache) if s.code else None,
        manifests=_read_manifests(s, target) if s.config and s.manifests else None,
        live=live,
    )


def read_dependencies(s: ScanSettings, target: Path, cache: Path | None) -> DependencyInput:
    """The requirement files (--requirements, else those found in the target) and --installed
    environments; then, when there is anything to check, the advisory index and the OSV API."""
    found = DependencyInput(db_path=db_path(s))
    files = [Path(p) for p in s.requirements] if s.requirements else readers.discover(target)
    for path in files:
        read = readers.read_file(path, target, explicit=bool(s.requirements))
        found.dependencies.extend(read.dependencies)
        found.notices.extend(read.notices)
        found.sources.extend(read.files)
    for spec in s.installed:
        read = readers.read_installed(spec, target)
        found.dependencies.extend(read.dependencies)
        found.sources.extend(read.files)
    if not found.sources:
        return found
    try:
        found.db = AdvisoryDB.open(found.db_path, cache)
    except Unreachable as exc:
        found.db_problem = str(exc)
        return found
    if s.online:
        from rpops.steps.security import online  # httpx loads only for a scan that uses the network

        api = s.osv_api_url or os.environ.get("RPOPS_OSV_API_URL") or online.DEFAULT_API
        try:  # records the API knows and the database does not are added to `found.db`
            found.api_hits = online.query(
                found.db, found.dependencies, api, timeout=s.timeout, retries=s.retries
            )
        except Unreachable as exc:  # the offline results still count, and every output is written
            found.api_problem = str(exc)
    return found


def read_code(s: ScanSettings, target: Path, cache: Path | None) -> CodeScanResult:
    return scan_code(
        CodeScanSettings(
            roots=[target],
            base=target,
            exclude=tuple(s.exclude),
            max_file_bytes=s.max_file_size,
            jobs=s.jobs,
            cache_dir=cache,
        )
    )


def _read_manifests(s: ScanSettings, target: Path) -> ManifestInput:
    objects, problems, files = read_manifests([Path(p) for p in s.manifests], target)
    return ManifestInput(objects, problems, files)
