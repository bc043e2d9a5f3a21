"""`research-platform-validate`: post-deployment validation of one service (a gate).

Entrypoint `main` runs the container template `validate`, which other workflows (blue-green,
recovery) call with `templateRef: {name: research-platform-validate, template: validate}`.
The step exits 1 when a check fails, which fails the workflow: that is the gate.
"""

from __future__ import annotations

from hera.workflows import WorkflowTemplate

from workflows.common import (
    Input,
    Output,
    RenderConfig,
    StepSpec,
    entry_dag,
    flags,
    gate_retry,
    step_container,
    workflow_template,
)

PURPOSE = "validate"
NAME = f"research-platform-{PURPOSE}"
TEMPLATE = "validate"

URL = Input(
    "url",
    "Base URL of the service to validate, e.g. http://research-platform.research-platform.svc:8000. "
    "Required.",
)
MAX_RESPONSE_MS = Input("max-response-ms", "Slowest acceptable response time, in milliseconds.", "1000")
TIMEOUT = Input("timeout", "Timeout of each request, in seconds.", "5.0")
INPUTS = (URL, MAX_RESPONSE_MS, TIMEOUT)

OUTPUTS = (
    Output(
        "passed", "false", "true when every check passed; false otherwise or when validation did not run."
    ),
    Output("failed", "not-run", "Comma-separated names of the failed checks; empty when all passed."),
)


def build(config: RenderConfig) -> WorkflowTemplate:
    with workflow_template(
        purpose=PURPOSE,
        description="Validate a deployed Research Platform service after a change (outputs passed, "
        "failed); the workflow fails when any check fails.",
        arguments=INPUTS,
    ) as wt:
        check = step_container(
            config,
            StepSpec(
                name=TEMPLATE,
                step="validate",
                description="Run `rpops validate` against the service; exit 1 fails the gate.",
                args=flags(
                    ("--url", URL.ref),
                    ("--max-response-ms", MAX_RESPONSE_MS.ref),
                    ("--timeout", TIMEOUT.ref),
                    ("--output", "json"),
                ),
                inputs=INPUTS,
                outputs=OUTPUTS,
                retry=gate_retry(),
                deadline_seconds=180,
            ),
        )
        entry_dag(
            description="Validate the service once with the workflow's arguments.",
            task=TEMPLATE,
            template=check,
            inputs=INPUTS,
            outputs=OUTPUTS,
        )
    return wt
