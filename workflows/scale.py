"""`research-platform-scale`: scale a service reactively, or ahead of a request-rate forecast.

Entrypoint `main` runs the container template `scale`, which other workflows (alert
remediation, a CronWorkflow) call with `templateRef: {name: research-platform-scale,
template: scale}`. The template holds the service's mutex: two workflows never scale the same
service at once. Each scaling counts once in `research_platform_scaling_events_total`. Its
inputs, arguments and outputs are the step's (rpops.steps.scale); this module adds what is
Argo's, and the `region` input, which feeds the metric's label and no flag.
"""

from __future__ import annotations

from hera.workflows import WorkflowTemplate
from hera.workflows.metrics import Counter, Label
from rpops.steps.scale import STEP

from workflows.common import (
    REGION,
    RenderConfig,
    StepResources,
    StepSpec,
    entry_dag,
    observe_retry,
    service_mutex,
    step_container,
    step_inputs,
    workflow_template,
)

PURPOSE = "scale"
NAME = f"research-platform-{PURPOSE}"
TEMPLATE = "scale"

SERVICE = {i.name: i for i in step_inputs(STEP)}["service"]

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


SPEC = StepSpec(
    name=TEMPLATE,
    step=STEP,
    description="Run `rpops scale` for the service; holds the service's mutex and counts each scaling in "
    "research_platform_scaling_events_total.",
    # Scaling is absolute and the cooldown is recorded: a retry after an error converges.
    retry=observe_retry(),
    # New replicas must pass readiness before the step returns on the local platform.
    deadline_seconds=300,
    resources=StepResources(),
    mutex=service_mutex(SERVICE.name),
    metrics=[_scaling_counter()],
    extra_inputs=(REGION,),
)
INPUTS = SPEC.inputs
OUTPUTS = STEP.outputs


def build(config: RenderConfig) -> WorkflowTemplate:
    with workflow_template(
        purpose=PURPOSE,
        description="Scale a Research Platform service within its policy's bounds and cooldowns: "
        "reactively (HPA formula on CPU, memory and request rate) or ahead of a forecast; with an HPA, "
        "moves only its minReplicas (outputs scaled, replicas, decision, direction, reason).",
        arguments=INPUTS,
    ) as wt:
        step = step_container(config, SPEC)
        entry_dag(
            description="Scale the service once with the workflow's arguments.",
            task=TEMPLATE,
            template=step,
            inputs=INPUTS,
            outputs=OUTPUTS,
        )
    return wt
