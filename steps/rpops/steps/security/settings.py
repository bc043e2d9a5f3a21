"""What `rpops security-scan` is told: what to scan, where the advisory data is, the gate, the report.

The fields marked `parameter=` are the inputs of the `security-scan` template, in its argument
order; their help is the inputs' description too. `check` validates and normalises them before
anything is read.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from rpops.core.errors import UsageError
from rpops.core.settings import REGIONS, setting
from rpops.platform.base import check_service
from rpops.steps.security.model import SEVERITIES

FORMATS = ("text", "json", "markdown", "sarif")
# Where the step image (images/steps/Dockerfile) keeps the source, the virtualenv and the advisory
# snapshot: what the template scans unless told otherwise.
IMAGE_SOURCE = "/opt/rpops/src"
IMAGE_VENV = "/opt/rpops"
IMAGE_ADVISORIES = "/opt/rpops/advisories"


@dataclass(frozen=True)
class ScanSettings:
    target: str = setting(
        ".",
        help="Project directory: its Python files are scanned and its requirement files "
        "(requirements*.txt, requirements*.lock, pyproject.toml, uv.lock, poetry.lock) audited",
        parameter=True,
        template_default=IMAGE_SOURCE,
    )
    requirements: tuple[str, ...] = setting(
        default_factory=tuple,
        repeat=True,
        help="Requirement file to audit instead of the discovered ones (requirements.txt, pip freeze output, "
        "pyproject.toml, uv.lock, poetry.lock); repeat for several",
    )
    installed: tuple[str, ...] = setting(
        default_factory=tuple,
        repeat=True,
        help="Virtualenv or site-packages directory whose installed distributions are audited ('current' "
        "for this interpreter's); repeat for several; empty: none",
        parameter=True,
        template_default=IMAGE_VENV,
    )
    manifests: tuple[str, ...] = setting(
        default_factory=tuple,
        repeat=True,
        help="Kubernetes YAML file or directory to check (multi-document YAML); repeat for several; "
        "empty: none",
        parameter=True,
    )
    exclude: tuple[str, ...] = setting(
        default_factory=tuple,
        repeat=True,
        help="Glob of files or directories to leave out of the code scan (matched against the path "
        "relative to the target and against the name); repeat for several",
    )
    deps: bool = setting(True, help="Check dependencies against the advisory database")
    code: bool = setting(True, help="Scan Python source with the AST rules")
    config: bool = setting(True, help="Check workload configuration (--manifests, --live)")
    db: str = setting(
        "",
        help="Offline OSV advisory database directory (empty: $RPOPS_ADVISORY_DB, else "
        "/opt/rpops/advisories, the snapshot in the step image); keep one fresh with `rpops advisories "
        "sync` or --sync-db",
        parameter=True,
        template_default=IMAGE_ADVISORIES,
    )
    sync_db: bool = setting(
        False,
        help="First refresh --db from OSV's PyPI export, as `rpops advisories sync` does (network to "
        "osv-vulnerabilities.storage.googleapis.com; verified, swapped in atomically, so the directory "
        "must be writable, e.g. /tmp/rpops-advisories); if that fails, the scan uses --db as it was and "
        "exits 3",
        parameter=True,
    )
    max_db_age: str = setting(
        "7d",
        help="Exit 3 when the advisory data is older than this (e.g. 36h, 7d; 0 turns the check off)",
        parameter=True,
    )
    online: bool = setting(False, help="Also ask the OSV API (querybatch) about the pinned packages")
    osv_api_url: str = setting(
        "", help="OSV API base URL (default: $RPOPS_OSV_API_URL, else https://api.osv.dev)"
    )
    fail_on: str = setting(
        "critical", choices=SEVERITIES, help="Severity that counts towards the gate", parameter=True
    )
    threshold: int = setting(
        1,
        help="Fail (exit 1) when this many unsuppressed findings are at or above --fail-on (1: alert on one)",
        parameter=True,
    )
    unknown_severity: str = setting(
        "high",
        choices=("low", "medium", "high", "critical"),
        help="Severity given to advisories that carry no CVSS vector or rating",
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
    live: bool = setting(
        False,
        help="Also check the platform's live Deployments, Services, NetworkPolicies and "
        "PodDisruptionBudgets, read through the platform driver ($RPOPS_PLATFORM; the steps' Role grants "
        "list on them); the local platform has none and refuses",
        parameter=True,
    )
    namespace: str | None = setting(
        None,
        help="With --live: Kubernetes namespace of the service (kubernetes driver; the local platform has "
        "none). Default: $RPOPS_NAMESPACE, else the service account's, else the kubeconfig context's",
    )
    service: str = setting(
        "",
        help="With --live: check only this service's Deployments (label app.kubernetes.io/name, e.g. "
        "research-platform) and Services (that label, or named <service> and <service>-preview); every "
        "NetworkPolicy and PodDisruptionBudget of the namespace still counts for coverage; empty: every "
        "workload. Recorded in the report (and as the gauge's service label) either way",
        parameter=True,
    )
    region: str = setting(
        "",
        choices=("", *REGIONS),
        help="Region of the scanned platform, recorded in the report (and as the gauge's region label); "
        "empty when not region-specific",
        parameter=True,
    )
    format: str = setting(
        "text",
        short="-f",  # as Bandit's and Trivy's
        choices=FORMATS,
        help="Report format on stdout or --output: text (the one-line result and the top findings), "
        "json (report.json), markdown (summary.md), sarif (results.sarif)",
    )
    output: str = setting(
        "",
        help="Write the --format report to this file instead of stdout (the $RPOPS_OUTPUTS files are "
        "written either way)",
    )
    verbose: bool = setting(False, help="Debug logging")


# Presentation flags: how this run shows its report, not what it scanned (left out of report.json).
PRESENTATION = ("namespace", "format", "output", "verbose")


def parse_age(text: str, flag: str) -> float:
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


def check(settings: ScanSettings) -> ScanSettings:
    """The settings normalised; UsageError naming the flag when one is out of range or names nothing."""
    s = _normalized(settings)
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
        try:
            check_service(s.service)
        except UsageError as exc:
            raise UsageError(f"--service: {exc}") from None
    output = Path(s.output) if s.output else None
    if output is not None and (output.is_dir() or not output.parent.is_dir()):
        raise UsageError(f"--output {s.output}: not a file in an existing directory; name the file to write")
    if s.live and not s.config:
        raise UsageError("--live checks workload configuration: drop --no-config, or drop --live")
    parse_age(s.max_db_age, "--max-db-age")  # refuse a bad value before any work
    return s
