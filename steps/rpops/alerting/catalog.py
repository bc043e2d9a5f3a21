"""The one source of the alert loop: thresholds, recording rules, alerts.

Generated from this module (`python -m rpops.alerting.render`; a test fails on drift):
- manifests/monitoring/prometheus-rules.yaml: the recording rules and the alerts, each alert's
  expression `<value> <op> <threshold>` with the threshold's number written in;
- the `thresholds:` block of rpops/steps/health/health-rules.yaml, which the health check's rules read.

An alert-driven recovery reads the alert's rule back from Prometheus and looks it up here
only for what Prometheus does not know: the health status the alert stands for (which picks
the remediation) and, for resource alerts, the scaling resource its value measures.
"""

from __future__ import annotations

from dataclasses import dataclass

# The platform's performance standards (response time, memory, CPU), and the limits they are
# measured against: 1 CPU core (1000m) and 2 GiB per replica (manifests/platform/deployment.yaml).
THRESHOLDS: dict[str, float] = {
    "response_target_ms": 500,
    "response_acceptable_ms": 1000,
    "response_critical_ms": 2000,
    "memory_target_mb": 1024,
    "memory_acceptable_mb": 2048,
    "memory_critical_mb": 4096,
    "memory_limit_critical_ratio": 0.9,
    "cpu_target_percent": 50,
    "cpu_acceptable_percent": 70,
    "cpu_critical_percent": 90,
    "error_rate_degraded": 0.05,
}
CPU_LIMIT_PERCENT = 100  # 1000m: 100 % of one core
MEMORY_LIMIT_MB = 2048  # 2 GiB

REMEDIATION = "research-platform-recovery"  # the WorkflowTemplate remediable alerts submit
SERVICE_LABEL = '{{ or $labels.service "research-platform" }}'


@dataclass(frozen=True)
class Recording:
    record: str
    expr: str
    comment: str


@dataclass(frozen=True)
class Alert:
    """One alert: fires when `value <op> threshold` has held for `for_`.

    `threshold` names a THRESHOLDS entry (times `scale`, e.g. a percent as a ratio) or is a
    number. `status` is the health the recovery reads a firing alert as; None: informational,
    no remediation. `resource` names the scaling policy's resource whose per-replica figure
    is `value x resource_factor` (e.g. a CPU ratio of the limit x 100 = percent of one core).
    """

    name: str
    value: str
    op: str
    threshold: str | float
    for_: str
    severity: str
    status: str | None
    summary: str
    description: str
    scale: float = 1.0
    resource: str | None = None
    resource_factor: float = 1.0

    @property
    def threshold_value(self) -> float:
        base = THRESHOLDS[self.threshold] if isinstance(self.threshold, str) else self.threshold
        return round(base * self.scale, 9)

    @property
    def expr(self) -> str:
        return f"{self.value} {self.op} {number(self.threshold_value)}"


def number(value: float) -> str:
    """0.9 -> '0.9', 2000.0 -> '2000'."""
    return f"{value:g}"


RECORDING = (
    Recording(
        "research_platform_response_time_ms",
        "1000 * histogram_quantile(0.95, sum by (service, region, le) ( "
        'rate(research_platform_request_duration_seconds_bucket{route!="/metrics"}[5m])))',
        "p95 response time over 5 minutes, in milliseconds (scrapes of /metrics excluded).",
    ),
    Recording(
        "research_platform_error_rate_ratio",
        '(sum by (service, region) (rate(research_platform_requests_total{route!="/metrics", '
        'status=~"5.."}[5m])) '
        'or 0 * sum by (service, region) (rate(research_platform_requests_total{route!="/metrics"}[5m]))) '
        '/ sum by (service, region) (rate(research_platform_requests_total{route!="/metrics"}[5m]))',
        "Share of requests answered 5xx over 5 minutes, 0..1.",
    ),
    Recording(
        "research_platform_cpu_utilisation_ratio",
        f"avg by (service, region) (research_platform_cpu_usage_percent) / {CPU_LIMIT_PERCENT}",
        "Average CPU of the replicas as a share of the CPU limit (1000m = 100 % of one core).",
    ),
    Recording(
        "research_platform_memory_utilisation_ratio",
        f"avg by (service, region) (research_platform_memory_usage_mb) / {MEMORY_LIMIT_MB}",
        "Average resident memory of the replicas as a share of the memory limit (2 GiB = 2048 MB).",
    ),
)

ALERTS = (
    Alert(
        "SecurityVulnerabilityDetected",
        "sum by (service, region) (increase(research_platform_security_blocked_operations_total[5m]))",
        ">",
        0,
        "1m",
        "critical",
        "unhealthy",
        f"Unsafe operations refused by {SERVICE_LABEL} ({{{{ $labels.region }}}})",
        'The safe evaluator refused {{ $value | printf "%.0f" }} operations in the last 5 minutes: '
        "someone is probing for a vulnerability. The recovery checks health and scans when unhealthy.",
    ),
    Alert(
        "PerformanceDegraded",
        "research_platform_response_time_ms",
        ">",
        "response_critical_ms",
        "5m",
        "warning",
        "degraded",
        'p95 response time {{ $value | printf "%.0f" }} ms over 2000 ms ({{ $labels.region }})',
        "The 95th percentile response time has stayed over the critical 2000 ms for 5 minutes. "
        "The recovery right-sizes the service (research-platform-optimize) when it finds it degraded.",
    ),
    Alert(
        "AutoScalingTriggered",
        "sum by (service, region) (increase(argo_workflows_research_platform_scaling_events_total[10m]))",
        ">",
        0,
        "0m",
        "info",
        None,
        "{{ $labels.service }} was scaled in the last 10 minutes ({{ $labels.region }})",
        "research-platform-scale changed the replica count; for information only.",
    ),
    # Down for a whole minute: a target that stops on purpose (a scale-in, a restart, the old
    # colour of a blue-green promotion) leaves discovery within seconds and its `up` series
    # ends, so it never reads as down for the window, whatever `for` says.
    Alert(
        "TargetDown",
        'count by (service, region) (max_over_time(up{job=~"research-platform(-performance)?"}[1m]) == 0)',
        ">",
        0,
        "30s",
        "critical",
        "unhealthy",
        f"{{{{ $value }}}} scrape target(s) of {SERVICE_LABEL} down ({{{{ $labels.region }}}})",
        "Prometheus could not scrape one of the service's pods for a whole minute (a pod that "
        "leaves discovery, as on a scale-in or a promotion, does not count).",
    ),
    Alert(
        "HealthCheckFailing",
        'sum by (service, region) '
        '(rate(research_platform_requests_total{route="/health", status=~"5.."}[1m]))',
        ">",
        0,
        "2m",
        "critical",
        "unhealthy",
        f"/health answers errors on {SERVICE_LABEL} ({{{{ $labels.region }}}})",
        "The health endpoint (the liveness probe's) has answered 5xx for 2 minutes. The recovery "
        "runs the security scan when its health check finds the service unhealthy.",
    ),
    Alert(
        "HighCPU",
        "research_platform_cpu_utilisation_ratio",
        ">",
        "cpu_critical_percent",
        "5m",
        "warning",
        "overloaded",
        "CPU at {{ $value | humanizePercentage }} of the limit ({{ $labels.region }})",
        "The replicas' average CPU has stayed over 90 % of the limit for 5 minutes (overloaded). "
        "The recovery scales the service out (research-platform-scale).",
        scale=1 / CPU_LIMIT_PERCENT,
        resource="cpu",
        resource_factor=CPU_LIMIT_PERCENT,
    ),
    Alert(
        "HighMemory",
        "research_platform_memory_utilisation_ratio",
        ">",
        "memory_limit_critical_ratio",
        "5m",
        "warning",
        "overloaded",
        "Memory at {{ $value | humanizePercentage }} of the limit ({{ $labels.region }})",
        "The replicas' average resident memory has stayed over 90 % of the limit for 5 minutes "
        "(overloaded). The recovery scales the service out (research-platform-scale).",
        resource="memory",
        resource_factor=MEMORY_LIMIT_MB,
    ),
    Alert(
        "HighErrorRate",
        "research_platform_error_rate_ratio",
        ">",
        "error_rate_degraded",
        "5m",
        "warning",
        "degraded",
        "{{ $value | humanizePercentage }} of requests fail ({{ $labels.region }})",
        "More than 5 % of requests have answered 5xx for 5 minutes (degraded). The recovery "
        "right-sizes the service (research-platform-optimize).",
    ),
)


def alert(name: str) -> Alert | None:
    return next((a for a in ALERTS if a.name == name), None)
