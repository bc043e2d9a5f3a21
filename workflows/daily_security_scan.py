"""`research-platform-daily-security-scan`: the security scan, every day at 03:00 UTC.

The CronWorkflow submits the WorkflowTemplate research-platform-security-scan
(workflows/security_scan.py) through `workflowTemplateRef`, with the platform's security
configuration as its arguments: today's advisories (sync-db: the step downloads OSV's PyPI data
into the pod before scanning, since the image's snapshot ages), alert on one critical finding
(fail-on critical, threshold 1: the run ends Failed), propose patches (fix.patch, the `fixes`
output), and check the live workload objects of the research-platform service as well as the
step image's own code and dependencies. Argo v4 forms: `schedules: [...]` with an explicit `timezone`.

Runs never overlap (concurrencyPolicy Forbid); a run missed by more than an hour (controller
down at 03:00) is skipped rather than started late; Argo keeps the last 3 succeeded and the last
5 failed runs, so a week of alerts stays inspectable.
"""

from __future__ import annotations

from hera.workflows import CronWorkflow, Parameter
from hera.workflows.models import WorkflowTemplateRef

from workflows import security_scan
from workflows.common import DESCRIPTION_ANNOTATION, NAME_PREFIX, SERVICE_ACCOUNT, RenderConfig, labels

PURPOSE = "daily-security-scan"
NAME = f"{NAME_PREFIX}{PURPOSE}"
SCHEDULE = "0 3 * * *"
TIMEZONE = "UTC"
STARTING_DEADLINE_SECONDS = 3600
SUCCESSFUL_HISTORY = 3
FAILED_HISTORY = 5

# The platform's security configuration; every other argument keeps the template's default.
ARGUMENTS: dict[str, str] = {
    **security_scan.FRESH_ADVISORIES,
    "fail-on": "critical",
    "threshold": "1",
    "live": "true",
    "service": "research-platform",
}


def _arguments() -> list[Parameter]:
    """Every template argument, described, with this schedule's values where they differ."""
    out = []
    for given in security_scan.INPUTS:
        param = given.argument()
        if given.name in ARGUMENTS:
            param.value = ARGUMENTS[given.name]
        out.append(param)
    return out


def build(config: RenderConfig) -> CronWorkflow:
    del config  # nothing image- or artifact-dependent here: the template holds the containers
    return CronWorkflow(
        name=NAME,
        annotations={
            DESCRIPTION_ANNOTATION: "Run research-platform-security-scan every day at 03:00 UTC: alert "
            "(the run fails) on one critical finding, propose upgrades as a patch, and check the live "
            "research-platform workload objects as well as the step image's code and dependencies."
        },
        labels=labels(PURPOSE),
        schedules=[SCHEDULE],
        timezone=TIMEZONE,
        concurrency_policy="Forbid",
        starting_deadline_seconds=STARTING_DEADLINE_SECONDS,
        successful_jobs_history_limit=SUCCESSFUL_HISTORY,
        failed_jobs_history_limit=FAILED_HISTORY,
        workflow_template_ref=WorkflowTemplateRef(name=security_scan.NAME),
        service_account_name=SERVICE_ACCOUNT,
        arguments=_arguments(),
    )
