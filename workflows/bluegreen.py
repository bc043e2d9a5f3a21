"""`research-platform-blue-green`: promote a new version of a service, blue-green.

    pre-promotion   rpops bluegreen promote --phases deploy,wait-ready,analyze
    approval        suspend (only with auto-promote=false; `argo resume` / `rpops local resume`)
    promotion       rpops bluegreen promote --phases switch,verify,finalize
    onExit          rpops bluegreen rollback --if-owner (only when the workflow did not succeed)

Two pods rather than one per phase: each pod costs seconds of scheduling, and the phases are
idempotent anyway (a retried or rerun step skips what is recorded as done). The workflow holds a
mutex of its own per service for its whole run (across the approval), and each step also holds
the service's mutex that every platform-changing template takes. Each promotion is counted once
in `research_platform_promotions_total` by result. The containers' inputs, arguments and outputs are
the step's (rpops.steps.bluegreen); this module adds what is Argo's and picks, per container, the
command and which of the step's parameters it passes.
"""

from __future__ import annotations

from hera.workflows import DAG, Container, Suspend, Task, WorkflowTemplate
from hera.workflows.metrics import Counter, Label
from hera.workflows.models import Mutex, Synchronization
from rpops.steps.bluegreen import STEP

from workflows.common import (
    DESCRIPTION_ANNOTATION,
    NAME_PREFIX,
    Input,
    RenderConfig,
    StepSpec,
    forwarded,
    observe_retry,
    service_mutex,
    step_container,
    workflow_template,
)

PURPOSE = "blue-green"
NAME = f"{NAME_PREFIX}{PURPOSE}"
ENTRYPOINT = "main"
PRE, APPROVAL, PROMOTION, EXIT, ROLLBACK = (
    "pre-promotion",
    "approval",
    "promotion",
    "exit-handler",
    "rollback",
)
TEMPLATE = PROMOTION  # the template that switches traffic; its outputs are the workflow's
WORKFLOW_MUTEX = f"{NAME_PREFIX}bluegreen-{{{{workflow.parameters.service}}}}"
OWNER = ("--owner", "{{workflow.name}}")  # one lock owner across the workflow's steps


METRIC = "research_platform_promotions_total"
METRIC_HELP = "Blue-green promotions run by the research-platform-blue-green workflow, by result."
SERVICE = STEP.parameter("service")


def _counter(result: str, when: str) -> Counter:
    return Counter(
        name=METRIC,
        help=METRIC_HELP,
        labels=[Label(key="service", value=SERVICE.ref), Label(key="result", value=result)],
        when=when,
        value="1",
    )


def _promote(name: str, phases: str, description: str, metrics: bool) -> StepSpec:
    return StepSpec(
        name=name,
        step=STEP,
        description=description,
        command=("promote", "--phases", phases),
        passed=tuple(p.name for p in STEP.parameters() if p.name != "reason"),
        extra_args=(OWNER,),
        # The phases converge: a retry after a pod error, a kill or an unreachable platform (exit 3,
        # 137) finishes or rolls back what the last attempt recorded. A gate verdict (1) is final.
        retry=observe_retry(),
        # Readiness (progress deadline), analysis, verify window and scale-down delay all fit.
        deadline_seconds=3600,
        mutex=service_mutex(SERVICE.name),
        metrics=[_counter("{{outputs.parameters.result}}", "{{status}} == Succeeded")] if metrics else (),
    )


SPEC = _promote(
    TEMPLATE,
    "switch,verify,finalize",
    "Switch the active route to green, verify on live traffic (back to blue on failure), scale blue "
    "to 0 after the delay; counts the promotion in research_platform_promotions_total.",
    metrics=True,
)
PRE_SPEC = _promote(
    PRE,
    "deploy,wait-ready,analyze",
    "Deploy green at blue's capacity, wait until every replica is ready, analyze it (health, "
    "validation checks, error rate, latency, the analysis metrics); aborts on failure.",
    metrics=False,
)
ROLLBACK_SPEC = StepSpec(
    name=ROLLBACK,
    step=STEP,
    description="Roll back this workflow's unfinished promotion (nothing when another run owns "
    "the service); counts the promotion in research_platform_promotions_total.",
    command=("rollback",),
    passed=("service", "reason", "progress-deadline-seconds", "lock-wait-seconds"),
    extra_args=(OWNER, ("--if-owner", "true")),
    retry=observe_retry(),
    deadline_seconds=1800,
    mutex=service_mutex(SERVICE.name),
    metrics=[
        _counter("{{outputs.parameters.result}}", "{{status}} == Succeeded"),
        _counter("rollback-failed", "{{status}} != Succeeded"),
    ],
)
INPUTS = SPEC.inputs
OUTPUTS = STEP.outputs

AUTO_PROMOTE = Input(
    "auto-promote",
    "true: switch traffic once the pre-promotion analysis passes; false: suspend before the switch "
    "until resumed (argo resume / rpops local resume).",
    "true",
    enum=("true", "false"),
)
def _arguments() -> tuple[Input, ...]:
    """The workflow's arguments: the promotion's inputs, with auto-promote after the image."""
    found: list[Input] = []
    for given in INPUTS:
        found.append(given)
        if given.name == "image":
            found.append(AUTO_PROMOTE)
    return tuple(found)


ARGUMENTS = _arguments()


def build(config: RenderConfig) -> WorkflowTemplate:
    with workflow_template(
        purpose=PURPOSE,
        description="Promote a new version of a Research Platform service blue-green: deploy it beside the "
        "active one, wait until every replica is ready, analyze it through the preview route and per "
        "instance, switch the active route in one change, verify on live traffic (switching back "
        "automatically on failure), then scale the old version to 0 after a delay. Outputs phase, "
        "active_version, previous_version, rolled_back, reason.",
        arguments=ARGUMENTS,
        entrypoint=ENTRYPOINT,
    ) as wt:
        pre = step_container(config, PRE_SPEC)
        approval = Suspend(
            name=APPROVAL,
            annotations={
                DESCRIPTION_ANNOTATION: "Wait for a human to resume before the switch (auto-promote=false)."
            },
        )
        promotion = step_container(config, SPEC)
        rollback = step_container(config, ROLLBACK_SPEC)
        _main(pre, approval, promotion)
        _exit_handler(rollback)
    wt.on_exit = EXIT
    wt.synchronization = Synchronization(mutexes=[Mutex(name=WORKFLOW_MUTEX)])
    return wt


def _main(pre: Container, approval: Suspend, promotion: Container) -> None:
    step_arguments = {i.name: i.workflow_ref for i in INPUTS}
    with DAG(
        name=ENTRYPOINT,
        outputs=[forwarded(o, PROMOTION) for o in OUTPUTS],
        annotations={DESCRIPTION_ANNOTATION: "Pre-promotion, approval when asked for, promotion."},
    ):
        Task(name=PRE, template=pre, arguments=step_arguments)
        Task(name=APPROVAL, template=approval, depends=PRE, when=f"{AUTO_PROMOTE.workflow_ref} == false")
        # `depends: approval` holds when the approval succeeded or was skipped (auto-promote=true).
        Task(name=PROMOTION, template=promotion, arguments=step_arguments, depends=APPROVAL)


REASON = "workflow {{workflow.name}} ended {{workflow.status}}"  # the exit handler's rollback reason


def _exit_handler(rollback: Container) -> None:
    inputs = {i.name: i for i in ROLLBACK_SPEC.inputs}
    with DAG(
        name=EXIT,
        annotations={DESCRIPTION_ANNOTATION: "On failure, roll back what this workflow left unfinished."},
    ):
        Task(
            name=ROLLBACK,
            template=rollback,
            when="{{workflow.status}} != Succeeded",
            arguments={name: REASON if name == "reason" else i.workflow_ref for name, i in inputs.items()},
        )
