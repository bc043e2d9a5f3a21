"""`research-platform-validate`: post-deployment validation of one service (a gate).

Entrypoint `main` runs the container template `validate`, which other workflows (blue-green,
recovery) call with `templateRef: {name: research-platform-validate, template: validate}`.
The step exits 1 when a check fails, which fails the workflow: that is the gate. Its inputs,
arguments and outputs are the step's (rpops.steps.validate); this module adds what is Argo's.
"""

from __future__ import annotations

from hera.workflows import WorkflowTemplate
from rpops.steps.validate import STEP

from workflows.common import RenderConfig, StepSpec, entry_dag, gate_retry, step_container, workflow_template

PURPOSE = "validate"
NAME = f"research-platform-{PURPOSE}"
TEMPLATE = "validate"


def build(config: RenderConfig) -> WorkflowTemplate:
    spec = StepSpec(
        name=TEMPLATE,
        step=STEP,
        description="Run `rpops validate` against the service; exit 1 fails the gate.",
        extra_args=(("--output", "json"),),
        retry=gate_retry(),
        deadline_seconds=180,
    )
    with workflow_template(
        purpose=PURPOSE,
        description="Validate a deployed Research Platform service after a change (outputs passed, "
        "failed); the workflow fails when any check fails.",
        arguments=spec.inputs,
    ) as wt:
        check = step_container(config, spec)
        entry_dag(
            description="Validate the service once with the workflow's arguments.",
            task=TEMPLATE,
            template=check,
            inputs=spec.inputs,
            outputs=STEP.outputs,
        )
    return wt
