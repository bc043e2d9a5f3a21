"""`research-platform-blue-green`: promote a new version of a service, blue-green.

    pre-promotion   rpops bluegreen promote --phases deploy,wait-ready,analyze
    approval        suspend (only with auto-promote=false; `argo resume` / `rpops local resume`)
    promotion       rpops bluegreen promote --phases switch,verify,finalize
    onExit          rpops bluegreen rollback --if-owner (only when the workflow did not succeed)

Two pods rather than one per phase: each pod costs seconds of scheduling, and the phases are
idempotent anyway (a retried or rerun step skips what is recorded as done). The workflow holds a
mutex of its own per service for its whole run (across the approval), and each step also holds
the service's mutex that every platform-changing template takes. Each promotion is counted once
in `research_platform_promotions_total` by result.
"""

from __future__ import annotations

from hera.workflows import DAG, Container, Suspend, Task, WorkflowTemplate
from hera.workflows.metrics import Counter, Label
from hera.workflows.models import Mutex, Synchronization

from workflows.common import (
    DESCRIPTION_ANNOTATION,
    NAME_PREFIX,
    Input,
    OldOutput,
    OldStepSpec,
    RenderConfig,
    StepResources,
    flags,
    observe_retry,
    old_step_container,
    service_mutex,
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
BOOLEANS = ("true", "false")
WORKFLOW_MUTEX = f"{NAME_PREFIX}bluegreen-{{{{workflow.parameters.service}}}}"

SERVICE = Input("service", "Service to promote (Deployments <service>-<version>), e.g. research-platform.")
VERSION = Input("version", "Version to promote (green), e.g. v2; becomes the Deployment's version label.")
IMAGE = Input(
    "image",
    "Container image of the new version; empty: the active version's image retagged with the version.",
    "",
)
AUTO_PROMOTE = Input(
    "auto-promote",
    "true: switch traffic once the pre-promotion analysis passes; false: suspend before the switch "
    "until resumed (argo resume / rpops local resume).",
    "true",
    enum=BOOLEANS,
)
PREVIEW_REPLICAS = Input(
    "preview-replica-count",
    "Green's replica count; empty: blue's current count, never below the HPA's minReplicas.",
    "",
)
PROGRESS_DEADLINE = Input(
    "progress-deadline-seconds",
    "Seconds for every green replica to become ready before the promotion is aborted.",
    "600",
)
VERIFY_SECONDS = Input(
    "verify-seconds",
    "Length of the post-promotion analysis on live traffic; a failure switches traffic back to blue.",
    "30",
)
SCALE_DOWN_DELAY = Input(
    "scale-down-delay-seconds",
    "Seconds after the switch before blue is scaled to 0 replicas (kept for a fast rollback).",
    "30",
)
PROMETHEUS = Input(
    "prometheus",
    "Base URL of the Prometheus the analysis queries read; empty for built-in analysis only.",
    "",
)
ANALYSIS = Input(
    "analysis",
    "Analysis metrics as YAML (as in an Argo AnalysisTemplate: name, query, successCondition, "
    "failureCondition, interval, count, failureLimit, inconclusiveLimit); empty: built-in only.",
    "",
)
MAX_ERROR_RATE = Input("max-error-rate", "Built-in analysis: highest share of failed probes.", "0.01")
MAX_P95_MS = Input("max-p95-ms", "Built-in analysis: highest p95 probe latency in milliseconds.", "1000")
LOCK_WAIT = Input(
    "lock-wait-seconds", "Seconds to wait for another promotion of the service to release its lock.", "300"
)
ARGUMENTS = (
    SERVICE,
    VERSION,
    IMAGE,
    AUTO_PROMOTE,
    PREVIEW_REPLICAS,
    PROGRESS_DEADLINE,
    VERIFY_SECONDS,
    SCALE_DOWN_DELAY,
    PROMETHEUS,
    ANALYSIS,
    MAX_ERROR_RATE,
    MAX_P95_MS,
    LOCK_WAIT,
)
STEP_INPUTS = tuple(a for a in ARGUMENTS if a is not AUTO_PROMOTE)
REASON = Input("reason", "Why the rollback runs, recorded on the service.")

OUTPUTS = (
    OldOutput(
        "phase", "none", "Promotion state on the service: complete, aborted, rolled-back, ...; none if unrun."
    ),
    OldOutput("active_version", "", "Version the service's active route selects after the step."),
    OldOutput(
        "previous_version", "", "Version the active route left at the switch (the fast-rollback target)."
    ),
    OldOutput("rolled_back", "false", "true when the promotion was aborted or rolled back."),
    OldOutput("reason", "the step did not run", "Why the promotion ended as it did, in one line."),
    OldOutput(
        "result",
        "not-run",
        "promoted, no-op, in-progress, aborted, rolled-back, skipped or failed; not-run when the step did "
        "not run.",
    ),
)

METRIC = "research_platform_promotions_total"
METRIC_HELP = "Blue-green promotions run by the research-platform-blue-green workflow, by result."


def _counter(result: str, when: str) -> Counter:
    return Counter(
        name=METRIC,
        help=METRIC_HELP,
        labels=[Label(key="service", value=SERVICE.ref), Label(key="result", value=result)],
        when=when,
        value="1",
    )


def _step_args(phases: str) -> list[str]:
    return [
        "promote",
        *flags(
            ("--phases", phases),
            ("--service", SERVICE.ref),
            ("--version", VERSION.ref),
            ("--image", IMAGE.ref),
            ("--preview-replica-count", PREVIEW_REPLICAS.ref),
            ("--progress-deadline-seconds", PROGRESS_DEADLINE.ref),
            ("--verify-seconds", VERIFY_SECONDS.ref),
            ("--scale-down-delay-seconds", SCALE_DOWN_DELAY.ref),
            ("--prometheus", PROMETHEUS.ref),
            ("--analysis-yaml", ANALYSIS.ref),
            ("--max-error-rate", MAX_ERROR_RATE.ref),
            ("--max-p95-ms", MAX_P95_MS.ref),
            ("--lock-wait", LOCK_WAIT.ref),
            ("--owner", "{{workflow.name}}"),
        ),
    ]


def _step(config: RenderConfig, name: str, phases: str, description: str, metrics: bool) -> Container:
    return old_step_container(
        config,
        OldStepSpec(
            name=name,
            step="bluegreen",
            description=description,
            args=_step_args(phases),
            inputs=STEP_INPUTS,
            outputs=OUTPUTS,
            # The phases converge: a retry after a pod error, a kill or an unreachable platform (exit 3,
            # 137) finishes or rolls back what the last attempt recorded. A gate verdict (1) is final.
            retry=observe_retry(),
            # Readiness (progress deadline), analysis, verify window and scale-down delay all fit.
            deadline_seconds=3600,
            resources=StepResources(),
            mutex=service_mutex(SERVICE.name),
            metrics=[_counter("{{outputs.parameters.result}}", "{{status}} == Succeeded")] if metrics else (),
        ),
    )


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
        pre = _step(
            config,
            PRE,
            "deploy,wait-ready,analyze",
            "Deploy green at blue's capacity, wait until every replica is ready, analyze it (health, "
            "validation checks, error rate, latency, the analysis metrics); aborts on failure.",
            metrics=False,
        )
        approval = Suspend(
            name=APPROVAL,
            annotations={
                DESCRIPTION_ANNOTATION: "Wait for a human to resume before the switch (auto-promote=false)."
            },
        )
        promotion = _step(
            config,
            PROMOTION,
            "switch,verify,finalize",
            "Switch the active route to green, verify on live traffic (back to blue on failure), scale blue "
            "to 0 after the delay; counts the promotion in research_platform_promotions_total.",
            metrics=True,
        )
        rollback = old_step_container(
            config,
            OldStepSpec(
                name=ROLLBACK,
                step="bluegreen",
                description="Roll back this workflow's unfinished promotion (nothing when another run owns "
                "the service); counts the promotion in research_platform_promotions_total.",
                args=[
                    "rollback",
                    *flags(
                        ("--service", SERVICE.ref),
                        ("--owner", "{{workflow.name}}"),
                        ("--reason", REASON.ref),
                        ("--progress-deadline-seconds", PROGRESS_DEADLINE.ref),
                        ("--lock-wait", LOCK_WAIT.ref),
                    ),
                    "--if-owner",
                ],
                inputs=(SERVICE, REASON, PROGRESS_DEADLINE, LOCK_WAIT),
                outputs=OUTPUTS,
                retry=observe_retry(),
                deadline_seconds=1800,
                resources=StepResources(),
                mutex=service_mutex(SERVICE.name),
                metrics=[
                    _counter("{{outputs.parameters.result}}", "{{status}} == Succeeded"),
                    _counter("rollback-failed", "{{status}} != Succeeded"),
                ],
            ),
        )
        step_arguments = {i.name: i.workflow_ref for i in STEP_INPUTS}
        with DAG(
            name=ENTRYPOINT,
            outputs=[o.forwarded(PROMOTION) for o in OUTPUTS],
            annotations={DESCRIPTION_ANNOTATION: "Pre-promotion, approval when asked for, promotion."},
        ):
            Task(name=PRE, template=pre, arguments=step_arguments)
            Task(
                name=APPROVAL,
                template=approval,
                depends=PRE,
                when=f"{AUTO_PROMOTE.workflow_ref} == false",
            )
            # `depends: approval` holds when the approval succeeded or was skipped (auto-promote=true).
            Task(name=PROMOTION, template=promotion, arguments=step_arguments, depends=APPROVAL)
        with DAG(
            name=EXIT,
            annotations={DESCRIPTION_ANNOTATION: "On failure, roll back what this workflow left unfinished."},
        ):
            Task(
                name=ROLLBACK,
                template=rollback,
                when="{{workflow.status}} != Succeeded",
                arguments={
                    SERVICE.name: SERVICE.workflow_ref,
                    REASON.name: "workflow {{workflow.name}} ended {{workflow.status}}",
                    PROGRESS_DEADLINE.name: PROGRESS_DEADLINE.workflow_ref,
                    LOCK_WAIT.name: LOCK_WAIT.workflow_ref,
                },
            )
    wt.on_exit = EXIT
    wt.synchronization = Synchronization(mutexes=[Mutex(name=WORKFLOW_MUTEX)])
    return wt
