"""`research-platform-recovery`: diagnose a service, remediate what the diagnosis names, check again.

The DAG, every step a `templateRef` to the template that owns it:

    check-health ─┬─ security-scan   when status == unhealthy   (research-platform-security-scan)
                  ├─ optimize        when status == degraded    (research-platform-optimize, applied)
                  ├─ scale           when status == overloaded  (research-platform-scale, reactive)
                  └────────────────── verify-health: the workflow's outputs (status, reason, p95_ms)

Alertmanager starts it through the WorkflowEventBinding `research-platform-alerts`
(workflows/alerts_binding.py); SREs can submit it by hand. The triggering alert arrives as
`alertname` and `alert-labels` (JSON). With an alert, every step reads the same evidence: the
alert's own rule from Prometheus, its expression over its own window, for the alert's labels
(rpops.alerting.evidence): check-health takes its status from it, scale its reading of the
resource, verify-health waits for the alert's latest evaluation to clear. A check that finds the
alert firing with nothing to remediate, a scale step that can do nothing while it holds, and a
remediation that does not clear it each fail their step (exit 1) with the reason: never a quiet
success. The alert reaches the steps only as container arguments (never a `when`, a script or a
shell), so a hostile label value cannot change what runs; `when` reads only the health check's
own `status` output, one of four fixed words.

The workflow holds the mutex `research-platform-recovery-<service>`: one recovery per service at
a time, a second one waits. The remediation templates take the service's own mutex
(`research-platform-<service>`) around each change; the workflow must not hold that same name,
or its steps would wait for their own workflow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hera.workflows import DAG, Parameter, Task, WorkflowTemplate
from hera.workflows.models import Mutex, Synchronization, TemplateRef, ValueFrom
from rpops.steps.health.decide import STATUSES

from workflows import health_check, optimize, scale, security_scan
from workflows.common import (
    DESCRIPTION_ANNOTATION,
    NAME_PREFIX,
    REGION,
    Input,
    Output,
    RenderConfig,
    forwarded,
    workflow_template,
)

PURPOSE = "recovery"
NAME = f"{NAME_PREFIX}{PURPOSE}"
ENTRYPOINT = "main"
MUTEX = f"{NAME_PREFIX}recovery-{{{{workflow.parameters.service}}}}"


TARGETS = Input(
    "targets",
    "Comma-separated NAME=URL pairs the health checks probe, e.g. "
    "us-east=http://research-platform.research-platform.svc:8000. Required.",
)
SERVICE = Input(
    "service",
    "Service to recover, e.g. research-platform: what optimize and scale change, and the mutex's name. "
    "Required.",
)
PROMETHEUS = Input(
    "prometheus",
    "Base URL of the Prometheus that the health checks read signals from, optimize reads usage history "
    "from and scale reads utilisation from. Required.",
)
SAMPLES = Input("samples", "Requests the health checks send to each target.", "5")
TIMEOUT = Input("timeout", "Timeout of each health-check request, in seconds.", "2.0")
ALERTNAME = Input(
    "alertname",
    "Name of the alert that started this run (set by the research-platform-alerts binding): the health "
    "checks and the scale step read its own rule from prometheus as their evidence; empty when started "
    "by hand (the health rules decide).",
    "",
)
ALERT_LABELS = Input(
    "alert-labels",
    "All labels of the triggering alert group, as a JSON object (set by the binding); {} when started by "
    "hand. Passed to the steps as an argument (they match the alert's series with it), never substituted "
    "into an expression, a script or a shell.",
    "{}",
)
SETTLE = Input(
    "settle",
    "With an alert: seconds the second health check waits for the alert's latest evaluation to clear "
    "after the remediation (a new replica shows after a scrape and an evaluation).",
    "60",
)
ARGUMENTS = (TARGETS, SERVICE, REGION, PROMETHEUS, SAMPLES, TIMEOUT, ALERTNAME, ALERT_LABELS, SETTLE)

CHECK, VERIFY = "check-health", "verify-health"
_, DEGRADED, OVERLOADED, UNHEALTHY = STATUSES  # what the first check found picks the remediation
STATUS = f"{{{{tasks.{CHECK}.outputs.parameters.status}}}}"

OUTPUTS = (
    Output(
        "status",
        "unknown",
        "Health after the remediation: healthy, degraded, overloaded or unhealthy; unknown when the "
        "second check did not run.",
    ),
    Output("reason", "the second health check did not run", "Why that status was chosen, in one line."),
    Output("p95_ms", "-1", "95th percentile response time of the second check, in ms; -1 when unknown."),
    Output(
        "outcome",
        "not-run",
        "What the second check found: cleared (the alert's condition no longer holds) or classified "
        "(started by hand); not-run when it did not run (a step before it failed: see its reason).",
    ),
    Output(
        "initial-status",
        "unknown",
        "Health found by the first check, which chose the remediation; unknown when it did not run.",
    ),
)


def step_arguments(inputs: Sequence[Input], given: Mapping[str, str]) -> dict[str, str]:
    """Every input of a referenced template: `given`, else the input's own default. A required input
    left out fails the render, so a new input of a remediation template cannot go unnoticed."""
    unknown = set(given) - {i.name for i in inputs}
    if unknown:
        raise ValueError(f"not inputs of the template: {', '.join(sorted(unknown))}")
    out = {}
    for i in inputs:
        if i.name in given:
            out[i.name] = given[i.name]
        elif i.default is not None:
            out[i.name] = i.default
        else:
            raise ValueError(f"the recovery does not pass the required input {i.name!r}")
    return out


def _health_arguments(reading: str) -> dict[str, str]:
    return step_arguments(
        health_check.INPUTS,
        {
            "targets": TARGETS.workflow_ref,
            "samples": SAMPLES.workflow_ref,
            "timeout": TIMEOUT.workflow_ref,
            "prometheus": PROMETHEUS.workflow_ref,
            "region": REGION.workflow_ref,
            "alert": ALERTNAME.workflow_ref,
            "alert-labels": ALERT_LABELS.workflow_ref,
            "alert-reading": reading,
            "alert-settle": SETTLE.workflow_ref,
        },
    )


def _dag_outputs() -> list[Parameter]:
    status, reason, p95, outcome, initial = OUTPUTS
    first = Parameter(
        name=initial.name,
        description=initial.description,
        value_from=ValueFrom(
            parameter=f"{{{{tasks.{CHECK}.outputs.parameters.status}}}}", default=initial.default
        ),
    )
    return [
        forwarded(status, VERIFY),
        forwarded(reason, VERIFY),
        forwarded(p95, VERIFY),
        forwarded(outcome, VERIFY),
        first,
    ]


def build(config: RenderConfig) -> WorkflowTemplate:
    with workflow_template(
        purpose=PURPOSE,
        description="Recover a Research Platform service: check its health, then scan it when unhealthy, "
        "right-size it when degraded or scale it out when overloaded, and check its health again "
        "(outputs status, reason, p95_ms, initial-status). Submitted by Alertmanager through the "
        "research-platform-alerts binding.",
        arguments=ARGUMENTS,
        entrypoint=ENTRYPOINT,
    ) as wt:
        with DAG(
            name=ENTRYPOINT,
            outputs=_dag_outputs(),
            annotations={
                DESCRIPTION_ANNOTATION: "Check health, run the remediation the status calls for, check again."
            },
        ):
            Task(
                name=CHECK,
                template_ref=TemplateRef(name=health_check.NAME, template=health_check.TEMPLATE),
                arguments=_health_arguments("onset"),
            )
            remediations = []
            remediations.append(
                Task(
                    name="security-scan",
                    template_ref=TemplateRef(name=security_scan.NAME, template=security_scan.TEMPLATE),
                    when=f"{STATUS} == {UNHEALTHY}",
                    depends=CHECK,
                    # Also the live service's configuration, through the platform driver; the scan's
                    # gate (a critical finding fails it) fails the recovery: a person must look.
                    arguments=step_arguments(
                        security_scan.INPUTS,
                        {
                            **security_scan.FRESH_ADVISORIES,
                            "live": "true",
                            "service": SERVICE.workflow_ref,
                            "region": REGION.workflow_ref,
                        },
                    ),
                )
            )
            remediations.append(
                Task(
                    name="optimize",
                    template_ref=TemplateRef(name=optimize.NAME, template=optimize.TEMPLATE),
                    when=f"{STATUS} == {DEGRADED}",
                    depends=CHECK,
                    # A remediation acts: apply past the change threshold, restart a leaking version;
                    # the other inputs keep optimize's defaults.
                    arguments=step_arguments(
                        optimize.INPUTS,
                        {
                            "service": SERVICE.workflow_ref,
                            "prometheus": PROMETHEUS.workflow_ref,
                            "apply": "true",
                            "restart-leaking": "true",
                            "region": REGION.workflow_ref,
                        },
                    ),
                )
            )
            remediations.append(
                Task(
                    name="scale",
                    template_ref=TemplateRef(name=scale.NAME, template=scale.TEMPLATE),
                    when=f"{STATUS} == {OVERLOADED}",
                    depends=CHECK,
                    arguments=step_arguments(
                        scale.INPUTS,
                        {
                            "service": SERVICE.workflow_ref,
                            "mode": "reactive",
                            "prometheus": PROMETHEUS.workflow_ref,
                            "dry-run": "false",
                            "region": REGION.workflow_ref,
                            "alert": ALERTNAME.workflow_ref,
                            "alert-labels": ALERT_LABELS.workflow_ref,
                        },
                    ),
                )
            )
            # A skipped remediation counts as done (`depends: x` = x Succeeded or Skipped); a failed
            # one leaves the second check out and fails the workflow.
            Task(
                name=VERIFY,
                template_ref=TemplateRef(name=health_check.NAME, template=health_check.TEMPLATE),
                arguments=_health_arguments("latest"),
                depends=" && ".join(t.name for t in remediations),
            )
    wt.synchronization = Synchronization(mutexes=[Mutex(name=MUTEX)])
    return wt
