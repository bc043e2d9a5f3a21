"""`research-platform-health-check`: probe targets and classify the platform's health.

Entrypoint `main` runs the container template `check-health`, which other workflows call with
`templateRef: {name: research-platform-health-check, template: check-health}`.
"""

from __future__ import annotations

from hera.workflows import WorkflowTemplate
from hera.workflows.metrics import Gauge, Label

from workflows.common import (
    Input,
    OldOutput,
    OldStepSpec,
    RenderConfig,
    StepResources,
    entry_dag,
    flags,
    observe_retry,
    old_step_container,
    workflow_template,
)

PURPOSE = "health-check"
NAME = f"research-platform-{PURPOSE}"
TEMPLATE = "check-health"

STATUSES = ("healthy", "degraded", "overloaded", "unhealthy")  # gauge values 0..3, in this order

TARGETS = Input(
    "targets",
    "Comma-separated NAME=URL pairs, URL being a service's base URL, e.g. "
    "us-east=http://research-platform.research-platform.svc:8000. Required.",
)
SAMPLES = Input("samples", "Requests sent to each target; latency percentiles come from these.", "5")
TIMEOUT = Input("timeout", "Timeout of each request, in seconds.", "2.0")
PROMETHEUS = Input(
    "prometheus",
    "Base URL of a Prometheus to read error rate and resource figures from; empty for none.",
    "",
)
# The regions of manifests/overlays/; empty = not region-specific.
REGIONS = ("us-east", "eu-west", "asia-pacific")
REGION = Input(
    "region",
    "Region the targets run in (us-east, eu-west, asia-pacific), recorded in the report and as the "
    "health metric's region label; empty when not region-specific.",
    "",
    enum=("", *REGIONS),
)
# An alert-driven recovery passes the alert: the status then comes from the alert's own rule.
ALERT = Input(
    "alert",
    "Name of the alert that started the run (set by research-platform-recovery); empty: the health "
    "rules decide.",
    "",
)
ALERT_LABELS = Input("alert-labels", "The alert's labels as a JSON object; {} without an alert.", "{}")
ALERT_READING = Input(
    "alert-reading",
    "With an alert: onset reads its value over its `for` window; latest waits for its latest "
    "evaluation to clear (the check after a remediation).",
    "onset",
    enum=("onset", "latest"),
)
ALERT_SETTLE = Input(
    "alert-settle",
    "With alert-reading latest: seconds to wait for the alert's condition to clear before reporting that "
    "it still holds.",
    "60",
)
INPUTS = (TARGETS, SAMPLES, TIMEOUT, PROMETHEUS, REGION, ALERT, ALERT_LABELS, ALERT_READING, ALERT_SETTLE)

OUTPUTS = (
    OldOutput(
        "status", "unknown", "healthy, degraded, overloaded or unhealthy; unknown when the check did not run."
    ),
    OldOutput("reason", "the health check did not run", "Why the status was chosen, in one line."),
    OldOutput(
        "p95_ms", "-1", "95th percentile response time over all samples, in milliseconds; -1 when unknown."
    ),
    OldOutput(
        "outcome",
        "not-run",
        "classified (the rules decided); with an alert: remediate, resolved, not-remediable, cleared or "
        "still-firing; not-run when the check did not run.",
    ),
)

METRIC = "research_platform_health_status"
METRIC_HELP = (
    "Research Platform health from the last health check: 0 healthy, 1 degraded, 2 overloaded, 3 unhealthy."
)


def _status_gauges() -> list[Gauge]:
    # One gauge series per region whose value encodes the status; exactly one `when` holds.
    # (A series per status label would leave stale 1s behind when the status changes.)
    return [
        Gauge(
            name=METRIC,
            help=METRIC_HELP,
            labels=[Label(key="region", value=REGION.ref)],
            realtime=False,
            value=str(code),
            when=f"{{{{outputs.parameters.status}}}} == {status}",
        )
        for code, status in enumerate(STATUSES)
    ]


def build(config: RenderConfig) -> WorkflowTemplate:
    with workflow_template(
        purpose=PURPOSE,
        description="Probe the Research Platform's endpoints and classify its health as healthy, "
        "degraded, overloaded or unhealthy (outputs status, reason, p95_ms).",
        arguments=INPUTS,
    ) as wt:
        check = old_step_container(
            config,
            OldStepSpec(
                name=TEMPLATE,
                step="health-check",
                description="Run `rpops health-check` against the targets and emit the health gauge.",
                args=flags(
                    ("--target", TARGETS.ref),
                    ("--samples", SAMPLES.ref),
                    ("--timeout", TIMEOUT.ref),
                    # An empty value means "no Prometheus": a container cannot drop an argument.
                    ("--prometheus", PROMETHEUS.ref),
                    ("--region", REGION.ref),
                    ("--alert", ALERT.ref),
                    ("--alert-labels", ALERT_LABELS.ref),
                    ("--alert-reading", ALERT_READING.ref),
                    ("--alert-settle", ALERT_SETTLE.ref),
                ),
                inputs=INPUTS,
                outputs=OUTPUTS,
                retry=observe_retry(),
                deadline_seconds=180,
                resources=StepResources(),
                metrics=_status_gauges(),
            ),
        )
        entry_dag(
            description="Check the platform's health once with the workflow's arguments.",
            task=TEMPLATE,
            template=check,
            inputs=INPUTS,
            outputs=OUTPUTS,
        )
    return wt
