"""The flags of `rpops bluegreen`, and their validation into a `Plan` (bad input -> UsageError,
exit 2, before anything is read from or written to the platform)."""

from __future__ import annotations

import getpass
import math
import os
import socket
from dataclasses import dataclass

from rpops.core.errors import UsageError
from rpops.core.parsers import http_url
from rpops.core.settings import setting
from rpops.platform import namespace_setting
from rpops.platform.base import check_service, check_version
from rpops.steps.bluegreen.analysis import MetricSpec, builtin_specs, load_file, parse_analysis
from rpops.steps.bluegreen.model import COMMANDS, PHASES

MAX_SECONDS = 86400.0


@dataclass(frozen=True)
class BlueGreenSettings:
    """The flags of `rpops bluegreen <command>`; those marked `parameter` are the template's inputs."""

    service: str = setting(
        help="Service to promote (Deployments <service>-<version>), e.g. research-platform", parameter=True
    )
    command: str = setting(
        "",
        help="What to do: one phase (deploy, wait-ready, analyze, switch, verify, finalize), promote (the "
        "phases in order), rollback, or status (read-only)",
        choices=COMMANDS,
        positional=True,
    )
    version: str = setting(
        "",
        help="Version to promote (green), e.g. v2; becomes the Deployment's version label",
        parameter=True,
        template_required=True,  # a workflow names it; at the CLI, phases after deploy read the record
    )
    image: str = setting(
        "",
        help="Container image of the new version; empty: the active version's image retagged with the "
        "version",
        parameter=True,
    )
    preview_replica_count: str = setting(
        "",
        help="Green's replica count; empty: blue's current count, never below the HPA's minReplicas",
        parameter=True,
    )
    progress_deadline_seconds: float = setting(
        600.0,
        help="Seconds for every green replica to become ready before the promotion is aborted",
        parameter=True,
    )
    verify_seconds: float = setting(
        30.0,
        help="Length of the post-promotion analysis on live traffic; a failure switches traffic back to blue",
        parameter=True,
    )
    scale_down_delay_seconds: float = setting(
        30.0,
        help="Seconds after the switch before blue is scaled to 0 replicas (kept for a fast rollback)",
        parameter=True,
    )
    analysis: str = setting("", help="Analysis file: YAML metrics with conditions, as Argo AnalysisTemplates")
    prometheus: str = setting(
        "",
        help="Base URL of the Prometheus the analysis queries read; empty for built-in analysis only",
        parameter=True,
    )
    analysis_yaml: str = setting(
        "",
        help="Analysis metrics as YAML (as in an Argo AnalysisTemplate: name, query, successCondition, "
        "failureCondition, interval, count, failureLimit, inconclusiveLimit); empty: built-in only",
        parameter="analysis",
    )
    max_error_rate: float = setting(
        0.01, help="Built-in analysis: highest share of failed probes", parameter=True
    )
    max_p95_ms: float = setting(
        1000.0, help="Built-in analysis: highest p95 probe latency in milliseconds", parameter=True
    )
    analysis_interval: float = setting(1.0, help="Seconds between the built-in analysis' measurements")
    analysis_count: int = setting(3, help="Built-in measurements before the switch")
    analysis_requests: int = setting(10, help="Probes per target (route and each instance) in a measurement")
    verify_interval: float = setting(1.0, help="Seconds between measurements in the verify window")
    owner: str = setting("", help="Who runs the promotion (the lock owner); default user@host")
    lock_wait: float = setting(
        0.0,
        help="Seconds to wait for another promotion of the service to release its lock",
        parameter="lock-wait-seconds",
        template_default="300",  # a workflow waits 5 minutes; a person at the CLI is refused at once
    )
    lock_ttl: float = setting(
        300.0, help="Seconds a lock lives without renewal (a crashed run's lock expires)"
    )
    reason: str = setting("", help="Why the rollback runs, recorded on the service", parameter=True)
    phases: str = setting(
        "", help=f"Promote: a comma-separated subset of {','.join(PHASES)} to run (default: all, in order)"
    )
    active_url: str = setting("", help="URL of the active route; default: from the platform")
    preview_url: str = setting("", help="URL of the preview route; default: from the platform")
    timeout: float = setting(2.0, help="Seconds allowed for each probe and query")
    output: str = setting("table", help="status: table or json", choices=("table", "json"))
    force: bool = setting(False, help="Rollback: take the lock even from a live promotion (it stops)")
    if_owner: bool = setting(
        False,
        help="Rollback: act only on an unfinished promotion run by --owner (the template's exit handler)",
    )
    namespace: str | None = namespace_setting()


@dataclass(frozen=True)
class Plan:
    command: str
    service: str
    version: str | None
    image: str | None
    preview_replicas: int | None
    progress_deadline: float
    verify_seconds: float
    scale_down_delay: float
    metrics: tuple[MetricSpec, ...]
    prometheus: str | None
    max_error_rate: float
    max_p95_ms: float
    analysis_interval: float
    analysis_count: int
    analysis_requests: int
    verify_interval: float
    owner: str
    lock_wait: float
    lock_ttl: float
    reason: str
    phases: tuple[str, ...]
    active_url: str | None
    preview_url: str | None
    timeout: float
    output: str
    force: bool
    if_owner: bool

    def builtins(self, stage: str) -> list[MetricSpec]:
        if stage == "pre":
            return builtin_specs(
                max_error_rate=self.max_error_rate,
                max_p95_ms=self.max_p95_ms,
                interval=self.analysis_interval,
                count=self.analysis_count,
                stage="pre",
            )
        return builtin_specs(
            max_error_rate=self.max_error_rate,
            max_p95_ms=self.max_p95_ms,
            interval=self.verify_interval,
            count=None,
            stage="post",
        )


def _seconds(value: float, flag: str, low: float = 0.0) -> float:
    if math.isnan(value) or value < low or value > MAX_SECONDS:
        raise UsageError(f"{flag} {value:g}: must be a number of seconds from {low:g} to {MAX_SECONDS:g}")
    return float(value)


def _url(value: str, flag: str) -> str | None:
    return http_url(value, flag) if value else None


def default_owner() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = os.environ.get("USER") or f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def _preview_replicas(text: str) -> int | None:
    if not text.strip():
        return None
    try:
        replicas = int(text)
    except ValueError:
        raise UsageError(f"--preview-replica-count {text!r}: use a whole number >= 1") from None
    if not 1 <= replicas <= 1000:
        raise UsageError(f"--preview-replica-count {replicas}: use a whole number from 1 to 1000")
    return replicas


def _load_metrics(s: BlueGreenSettings) -> tuple[MetricSpec, ...]:
    """The metrics of --analysis FILE or --analysis-yaml TEXT (none without either)."""
    if s.analysis and s.analysis_yaml:
        raise UsageError("give the analysis once: --analysis FILE or --analysis-yaml TEXT, not both")
    if s.analysis:
        return tuple(load_file(s.analysis))
    if s.analysis_yaml.strip():
        return tuple(parse_analysis(s.analysis_yaml, "--analysis-yaml"))
    return ()


def _check_metrics(metrics: tuple[MetricSpec, ...], prometheus: str | None) -> None:
    """Each metric has a Prometheus to ask and, before the switch, an end."""
    for spec in metrics:
        if spec.address:
            _url(spec.address, f"metric {spec.name!r} provider.prometheus.address")
        elif prometheus is None:
            raise UsageError(
                f"metric {spec.name!r} queries Prometheus but no address is given: pass --prometheus URL "
                "or set provider.prometheus.address"
            )
        if spec.applies("pre") and spec.count is None:
            raise UsageError(
                f"metric {spec.name!r} has an interval but no count, so before the switch it would "
                "never end: set count, or `when: post` to measure it only in the verify window"
            )


def _check_builtin(s: BlueGreenSettings) -> None:
    if not 0 <= s.max_error_rate <= 1:
        raise UsageError(f"--max-error-rate {s.max_error_rate:g}: use a share from 0 to 1, e.g. 0.01")
    if math.isnan(s.max_p95_ms) or s.max_p95_ms <= 0:
        raise UsageError(f"--max-p95-ms {s.max_p95_ms:g}: use a positive number of milliseconds")
    if not 1 <= s.analysis_count <= 1000:
        raise UsageError(f"--analysis-count {s.analysis_count}: use 1 to 1000 measurements")
    if not 1 <= s.analysis_requests <= 1000:
        raise UsageError(f"--analysis-requests {s.analysis_requests}: use 1 to 1000 probes per target")


def _phases(command: str, text: str) -> tuple[str, ...]:
    if not text.strip():
        return PHASES
    if command != "promote":
        raise UsageError("--phases applies to `rpops bluegreen promote` only")
    wanted = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in wanted if p not in PHASES]
    if unknown or not wanted:
        raise UsageError(f"--phases {text!r}: use a comma-separated subset of {','.join(PHASES)}")
    return tuple(p for p in PHASES if p in wanted)  # always in promotion order


def _owner(text: str) -> str:
    owner = text.strip() or default_owner()
    if len(owner) > 200 or any(c in owner for c in "\n\r"):
        raise UsageError(f"--owner {owner[:40]!r}...: use one line of at most 200 characters")
    return owner


def build_plan(command: str, s: BlueGreenSettings) -> Plan:
    """The plan of `rpops bluegreen <command>` (the CLI passes `s.command`): every check that needs
    no platform call; raises UsageError naming the input."""
    if command not in COMMANDS:
        raise UsageError(f"unknown phase {command!r}; use one of {', '.join(COMMANDS)}")
    service = check_service(s.service)
    version = s.version.strip() or None
    if command in ("deploy", "promote") and version is None:
        raise UsageError(
            f"`rpops bluegreen {command}` needs --version: the version to promote, e.g. --version v2"
        )
    if version is not None:
        check_version(service, version)
    image = s.image.strip() or None
    if image is not None and (any(c.isspace() for c in image) or "{{" in image or len(image) > 512):
        raise UsageError(f"--image {image!r} is not an image reference; write e.g. registry.example/app:v2")
    replicas = _preview_replicas(s.preview_replica_count)
    metrics = _load_metrics(s)
    prometheus = _url(s.prometheus, "--prometheus")
    _check_metrics(metrics, prometheus)
    _check_builtin(s)
    phases = _phases(command, s.phases)
    if command == "rollback" and not s.reason.strip():
        raise UsageError("`rpops bluegreen rollback` needs --reason: say why, it is recorded on the service")
    owner = _owner(s.owner)
    return Plan(
        command=command,
        service=service,
        version=version,
        image=image,
        preview_replicas=replicas,
        progress_deadline=_seconds(s.progress_deadline_seconds, "--progress-deadline-seconds", 0.1),
        verify_seconds=_seconds(s.verify_seconds, "--verify-seconds"),
        scale_down_delay=_seconds(s.scale_down_delay_seconds, "--scale-down-delay-seconds"),
        metrics=metrics,
        prometheus=prometheus,
        max_error_rate=float(s.max_error_rate),
        max_p95_ms=float(s.max_p95_ms),
        analysis_interval=_seconds(s.analysis_interval, "--analysis-interval"),
        analysis_count=s.analysis_count,
        analysis_requests=s.analysis_requests,
        verify_interval=_seconds(s.verify_interval, "--verify-interval", 0.01),
        owner=owner,
        lock_wait=_seconds(s.lock_wait, "--lock-wait"),
        lock_ttl=_seconds(s.lock_ttl, "--lock-ttl", 1.0),
        reason=" ".join(s.reason.split())[:250],
        phases=phases,
        active_url=_url(s.active_url, "--active-url"),
        preview_url=_url(s.preview_url, "--preview-url"),
        timeout=_seconds(s.timeout, "--timeout", 0.01),
        output=s.output,
        force=bool(s.force),
        if_owner=bool(s.if_owner),
    )
