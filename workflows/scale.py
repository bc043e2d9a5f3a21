"""`research-platform-scale`: scale a service reactively, or ahead of a request-rate forecast.

Entrypoint `main` runs the container template `scale`, which other workflows (alert
remediation, a CronWorkflow) call with `templateRef: {name: research-platform-scale,
template: scale}`. The template holds the service's mutex: two workflows never scale the same
service at once. Each scaling counts once in `research_platform_scaling_events_total`.
"""

from __future__ import annotations

from hera.workflows import WorkflowTemplate
from hera.workflows.metrics import Counter, Label

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
    service_mutex,
    workflow_template,
)
from workflows.health_check import REGIONS

PURPOSE = "scale"
NAME = f"research-platform-{PURPOSE}"
TEMPLATE = "scale"
BOOLEANS = ("false", "true")

SERVICE = Input("service", "Service to scale (Deployments <service>-<version>), e.g. research-platform.")
VERSION = Input("version", "Version to scale; empty: the version the service's active route selects.", "")
MODE = Input(
    "mode",
    "reactive: from current utilisation with the HPA formula; predictive: pre-scale ahead of the "
    "request-rate forecast (needs prometheus).",
    "reactive",
    enum=("reactive", "predictive"),
)
PROMETHEUS = Input(
    "prometheus",
    "Base URL of the Prometheus to read utilisation (and request-rate history) from; empty: read each "
    "replica's /api/performance/status (reactive only).",
    "",
)
MIN_REPLICAS = Input("min-replicas", "Lowest replica count; empty: the scaling policy's (1).", "")
MAX_REPLICAS = Input("max-replicas", "Highest replica count; empty: the scaling policy's (10).", "")
DRY_RUN = Input("dry-run", "true: report the decision and change nothing.", "false", enum=BOOLEANS)
APPLY_FORECAST = Input(
    "apply-forecast",
    "Predictive mode: true pre-scales to the forecast; false only reports it.",
    "false",
    enum=BOOLEANS,
)
REGION = Input(
    "region",
    "Region of the service (us-east, eu-west, asia-pacific), recorded as the scaling metric's region "
    "label; empty when not region-specific.",
    "",
    enum=("", *REGIONS),
)
# An alert-driven recovery passes the alert: its resource is then read from the alert's own rule.
ALERT = Input(
    "alert",
    "Name of the alert that started the run (HighCPU, HighMemory; set by research-platform-recovery); "
    "empty: the policy's queries.",
    "",
)
ALERT_LABELS = Input("alert-labels", "The alert's labels as a JSON object; {} without an alert.", "{}")
INPUTS = (
    SERVICE,
    VERSION,
    MODE,
    PROMETHEUS,
    MIN_REPLICAS,
    MAX_REPLICAS,
    DRY_RUN,
    APPLY_FORECAST,
    REGION,
    ALERT,
    ALERT_LABELS,
)

OUTPUTS = (
    OldOutput("scaled", "false", "true when this run changed replicas or the HPA's minReplicas, else false."),
    OldOutput("replicas", "-1", "Replica count after the run; -1 when the step did not run."),
    OldOutput(
        "decision",
        "not-run",
        "scale-up, scale-down, hold or no-decision; not-run when the step did not run.",
    ),
    OldOutput("direction", "none", "up or down when the run scaled; none otherwise."),
    OldOutput("reason", "the scale step did not run", "Why, in one line, with the formula's figures."),
)

METRIC = "research_platform_scaling_events_total"
METRIC_HELP = "Scaling actions taken by the research-platform-scale workflow, by direction."


def _scaling_counter() -> Counter:
    return Counter(
        name=METRIC,
        help=METRIC_HELP,
        labels=[
            Label(key="service", value=SERVICE.ref),
            Label(key="direction", value="{{outputs.parameters.direction}}"),
            Label(key="region", value=REGION.ref),
        ],
        when="{{outputs.parameters.scaled}} == true",
        value="1",
    )


def build(config: RenderConfig) -> WorkflowTemplate:
    with workflow_template(
        purpose=PURPOSE,
        description="Scale a Research Platform service within its policy's bounds and cooldowns: "
        "reactively (HPA formula on CPU, memory and request rate) or ahead of a forecast; with an HPA, "
        "moves only its minReplicas (outputs scaled, replicas, decision, direction, reason).",
        arguments=INPUTS,
    ) as wt:
        step = old_step_container(
            config,
            OldStepSpec(
                name=TEMPLATE,
                step="scale",
                description="Run `rpops scale` for the service; holds the service's mutex and counts "
                "each scaling in research_platform_scaling_events_total.",
                args=flags(
                    ("--service", SERVICE.ref),
                    ("--version", VERSION.ref),
                    ("--mode", MODE.ref),
                    ("--prometheus", PROMETHEUS.ref),
                    ("--min-replicas", MIN_REPLICAS.ref),
                    ("--max-replicas", MAX_REPLICAS.ref),
                    ("--dry-run", DRY_RUN.ref),
                    ("--apply-forecast", APPLY_FORECAST.ref),
                    ("--alert", ALERT.ref),
                    ("--alert-labels", ALERT_LABELS.ref),
                ),
                inputs=INPUTS,
                outputs=OUTPUTS,
                # Scaling is absolute and the cooldown is recorded: a retry after an error converges.
                retry=observe_retry(),
                # New replicas must pass readiness before the step returns on the local platform.
                deadline_seconds=300,
                resources=StepResources(),
                mutex=service_mutex(SERVICE.name),
                metrics=[_scaling_counter()],
            ),
        )
        entry_dag(
            description="Scale the service once with the workflow's arguments.",
            task=TEMPLATE,
            template=step,
            inputs=INPUTS,
            outputs=OUTPUTS,
        )
    return wt
