"""`research-platform-optimize`: right-size a service's CPU and memory from its usage history.

Entrypoint `main` runs the container template `optimize` (templateRef-able like the others).
It recommends by default and changes the Deployment only with `apply=true`, and only past the
change threshold; `restart-leaking=true` restarts a version whose memory only grows. The
template holds the service's mutex. Its inputs, arguments and outputs are the step's
(rpops.steps.optimize); this module adds what is Argo's, and the `region` input, which feeds
the metrics' label and no flag.
"""

from __future__ import annotations

from hera.workflows import WorkflowTemplate
from hera.workflows.metrics import Counter, Label
from rpops.steps.optimize import STEP

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

PURPOSE = "optimize"
NAME = f"research-platform-{PURPOSE}"
TEMPLATE = "optimize"

SERVICE = {i.name: i for i in step_inputs(STEP)}["service"]

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


SPEC = StepSpec(
    name=TEMPLATE,
    step=STEP,
    description="Run `rpops optimize` for the service; holds the service's mutex.",
    # Setting resources is absolute (idempotent) and a rerun recomputes from history.
    retry=observe_retry(),
    # A week of history per pod is two range queries of about 10,000 points each.
    deadline_seconds=600,
    resources=StepResources(memory_request="256Mi", memory_limit="512Mi"),
    mutex=service_mutex(SERVICE.name),
    metrics=_counters(),
    extra_inputs=(REGION,),
)
INPUTS = SPEC.inputs
OUTPUTS = STEP.outputs


def build(config: RenderConfig) -> WorkflowTemplate:
    with workflow_template(
        purpose=PURPOSE,
        description="Right-size a Research Platform service from its usage history (krr's simple "
        "strategy: CPU request = P95, memory = peak + 15%) and report memory leaks (outputs "
        "recommendation, applied, leak, reason).",
        arguments=INPUTS,
    ) as wt:
        step = step_container(config, SPEC)
        entry_dag(
            description="Right-size the service once with the workflow's arguments.",
            task=TEMPLATE,
            template=step,
            inputs=INPUTS,
            outputs=OUTPUTS,
        )
    return wt
