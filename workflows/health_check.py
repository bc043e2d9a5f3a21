"""`research-platform-health-check`: probe targets and classify the platform's health.

Entrypoint `main` runs the container template `check-health`, which other workflows call with
`templateRef: {name: research-platform-health-check, template: check-health}`. Its inputs,
arguments and outputs are the step's (rpops.steps.health); this module adds what is Argo's: the
retries, the deadline, the health gauge, and the region enum of the workflow's arguments (the
step itself records any region name).
"""

from __future__ import annotations

from dataclasses import replace

from hera.workflows import WorkflowTemplate
from hera.workflows.metrics import Gauge, Label
from rpops.core.settings import REGIONS
from rpops.steps.health import STEP
from rpops.steps.health.decide import STATUSES

from workflows.common import (
    RenderConfig,
    StepSpec,
    entry_dag,
    observe_retry,
    step_container,
    workflow_template,
)

PURPOSE = "health-check"
NAME = f"research-platform-{PURPOSE}"
TEMPLATE = "check-health"

METRIC = "research_platform_health_status"
METRIC_HELP = (
    "Research Platform health from the last health check: 0 healthy, 1 degraded, 2 overloaded, 3 unhealthy."
)


def _status_gauges(region: str) -> list[Gauge]:
    # One gauge series per region whose value encodes the status (its index in STATUSES); exactly
    # one `when` holds. (A series per status label would leave stale 1s behind when the status changes.)
    return [
        Gauge(
            name=METRIC,
            help=METRIC_HELP,
            labels=[Label(key="region", value=region)],
            realtime=False,
            value=str(code),
            when=f"{{{{outputs.parameters.status}}}} == {status}",
        )
        for code, status in enumerate(STATUSES)
    ]


SPEC = StepSpec(
    name=TEMPLATE,
    step=STEP,
    description="Run `rpops health-check` against the targets and emit the health gauge.",
    retry=observe_retry(),
    deadline_seconds=180,
    metrics=_status_gauges(STEP.parameter("region").ref),
)
# A submitted workflow names one of the overlays' regions (or none); the metric's region label
# takes only these.
REGION = replace({i.name: i for i in SPEC.inputs}["region"], enum=("", *REGIONS))
INPUTS = tuple(REGION if i.name == REGION.name else i for i in SPEC.inputs)
OUTPUTS = STEP.outputs


def build(config: RenderConfig) -> WorkflowTemplate:
    with workflow_template(
        purpose=PURPOSE,
        description="Probe the Research Platform's endpoints and classify its health as healthy, "
        "degraded, overloaded or unhealthy (outputs status, reason, p95_ms).",
        arguments=INPUTS,
    ) as wt:
        check = step_container(config, SPEC)
        entry_dag(
            description="Check the platform's health once with the workflow's arguments.",
            task=TEMPLATE,
            template=check,
            inputs=INPUTS,
            outputs=OUTPUTS,
        )
    return wt
