"""`research-platform-optimize`: right-size a service's CPU and memory from its usage history.

Entrypoint `main` runs the container template `optimize` (templateRef-able like the others).
It recommends by default and changes the Deployment only with `apply=true`, and only past the
change threshold; `restart-leaking=true` restarts a version whose memory only grows. The
template holds the service's mutex.
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

PURPOSE = "optimize"
NAME = f"research-platform-{PURPOSE}"
TEMPLATE = "optimize"
BOOLEANS = ("false", "true")

SERVICE = Input("service", "Service to right-size, e.g. research-platform.")
VERSION = Input("version", "Version to right-size; empty: the one the service's active route selects.", "")
PROMETHEUS = Input(
    "prometheus",
    "Base URL of the Prometheus holding the pods' cAdvisor history (container_cpu_usage_seconds_total, "
    "container_memory_working_set_bytes). Required.",
)
HISTORY_HOURS = Input("history-hours", "Hours of usage history to read (at least 3 are needed).", "168")
APPLY = Input(
    "apply",
    "true: patch the Deployment's requests/limits where they move past the change threshold; false: "
    "recommend only.",
    "false",
    enum=BOOLEANS,
)
CHANGE_THRESHOLD = Input(
    "change-threshold", "Apply only changes larger than this share of the current value (0.10 = 10%).", "0.10"
)
RESTART_LEAKING = Input(
    "restart-leaking",
    "true: rolling-restart the version when its memory looks leaked (only grows over the window).",
    "false",
    enum=BOOLEANS,
)
MIN_HISTORY_HOURS = Input(
    "min-history-hours", "Least history to recommend from, in hours (krr's simple strategy: 3).", "3"
)
MIN_POINTS = Input("min-points", "Least data points, summed over pods, to recommend from.", "100")
STEP_SECONDS = Input(
    "step-seconds",
    "Resolution of the history in seconds; 0: 60, or coarser to stay under 11,000 points.",
    "0",
)
RATE_WINDOW = Input("rate-window", "Range of rate() in the CPU query, a PromQL duration.", "5m")
REGION = Input(
    "region",
    "Region of the service (us-east, eu-west, asia-pacific), recorded as the metrics' region label; "
    "empty when not region-specific.",
    "",
    enum=("", *REGIONS),
)
INPUTS = (
    SERVICE,
    VERSION,
    PROMETHEUS,
    HISTORY_HOURS,
    APPLY,
    CHANGE_THRESHOLD,
    RESTART_LEAKING,
    MIN_HISTORY_HOURS,
    MIN_POINTS,
    STEP_SECONDS,
    RATE_WINDOW,
    REGION,
)

OUTPUTS = (
    OldOutput(
        "recommendation",
        "{}",
        "JSON: cpu_request, cpu_limit, memory_request, memory_limit recommended (null where there is not "
        "enough data); {} when the step did not run.",
    ),
    OldOutput("applied", "false", "true when this run changed the Deployment's resources."),
    OldOutput("leak", "false", "true when a pod's memory only grew over the window (a suspected leak)."),
    OldOutput("reason", "the optimize step did not run", "What was recommended or applied, and why."),
)

APPLIED_METRIC = "research_platform_rightsizing_applied_total"
APPLIED_HELP = "Resource changes applied by the research-platform-optimize workflow."
LEAK_METRIC = "research_platform_memory_leaks_detected_total"
LEAK_HELP = "Suspected memory leaks found by the research-platform-optimize workflow."


def _counters() -> list[Counter]:
    labels = [Label(key="service", value=SERVICE.ref), Label(key="region", value=REGION.ref)]
    return [
        Counter(
            name=APPLIED_METRIC,
            help=APPLIED_HELP,
            labels=labels,
            when="{{outputs.parameters.applied}} == true",
            value="1",
        ),
        Counter(
            name=LEAK_METRIC,
            help=LEAK_HELP,
            labels=labels,
            when="{{outputs.parameters.leak}} == true",
            value="1",
        ),
    ]


def build(config: RenderConfig) -> WorkflowTemplate:
    with workflow_template(
        purpose=PURPOSE,
        description="Right-size a Research Platform service from its usage history (krr's simple "
        "strategy: CPU request = P95, memory = peak + 15%) and report memory leaks (outputs "
        "recommendation, applied, leak, reason).",
        arguments=INPUTS,
    ) as wt:
        step = old_step_container(
            config,
            OldStepSpec(
                name=TEMPLATE,
                step="optimize",
                description="Run `rpops optimize` for the service; holds the service's mutex.",
                args=flags(
                    ("--service", SERVICE.ref),
                    ("--version", VERSION.ref),
                    ("--prometheus", PROMETHEUS.ref),
                    ("--history-hours", HISTORY_HOURS.ref),
                    ("--apply", APPLY.ref),
                    ("--change-threshold", CHANGE_THRESHOLD.ref),
                    ("--restart-leaking", RESTART_LEAKING.ref),
                    ("--min-history-hours", MIN_HISTORY_HOURS.ref),
                    ("--min-points", MIN_POINTS.ref),
                    ("--step-seconds", STEP_SECONDS.ref),
                    ("--rate-window", RATE_WINDOW.ref),
                ),
                inputs=INPUTS,
                outputs=OUTPUTS,
                # Setting resources is absolute (idempotent) and a rerun recomputes from history.
                retry=observe_retry(),
                # A week of history per pod is two range queries of about 10,000 points each.
                deadline_seconds=600,
                resources=StepResources(memory_request="256Mi", memory_limit="512Mi"),
                mutex=service_mutex(SERVICE.name),
                metrics=_counters(),
            ),
        )
        entry_dag(
            description="Right-size the service once with the workflow's arguments.",
            task=TEMPLATE,
            template=step,
            inputs=INPUTS,
            outputs=OUTPUTS,
        )
    return wt
