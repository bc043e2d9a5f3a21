"""`research-platform-security-scan`: dependencies, source code and workload configuration, one gate.

Entrypoint `main` runs the container template `security-scan` (`rpops security-scan`), which
other workflows call with `templateRef: {name: research-platform-security-scan, template:
security-scan}`; the daily CronWorkflow (workflows/daily_security_scan.py) submits this template.

The alert is the scan's own exit code. The platform's policy (fail-on critical, threshold 1:
alert on one critical finding) makes the step exit 1, the task fails and the workflow ends
Failed, which is what Argo's failed-workflow metrics and notifications see. A separate `alert`
step after a `continueOn: {failed: true}` scan would add a pod (~10 s on Argo) and record
nothing more: Argo keeps a failed container's output parameters on its node either way, and
drops a DAG's own outputs whenever the DAG fails (`executeDAG` sets them only on success), so the
workflow-level outputs below exist only for a passing scan. The counts of a failing scan are on
the `security-scan` node, in its stdout summary (`outputs.result`), and in the gauge.

The gauge `research_platform_security_vulnerabilities_critical` (Argo exports it prefixed
`argo_workflows_`) is set from the `critical` output when the scan completed (status pass or
fail); a scan that errored (stale or missing advisory database, unreachable API) leaves the last
good value alone rather than report a count from incomplete data.

The inputs, container arguments and outputs are the step's (rpops.steps.security); this module
adds what is Argo's. The workflow's defaults scan what the step image carries
(images/steps/Dockerfile): the source it was built from (/opt/rpops/src), its installed
environment (/opt/rpops) and its advisory snapshot (/opt/rpops/advisories), where the CLI scans
its working directory. The template only reads: no mutex.
"""

from __future__ import annotations

from hera.workflows import Artifact, NoneArchiveStrategy, WorkflowTemplate
from hera.workflows.metrics import Gauge, Label
from rpops.steps.security import STEP

from workflows.common import (
    OUTPUTS_DIR,
    RenderConfig,
    StepResources,
    StepSpec,
    entry_dag,
    observe_retry,
    step_container,
    step_inputs,
    workflow_template,
)

PURPOSE = "security-scan"
NAME = f"research-platform-{PURPOSE}"
TEMPLATE = "security-scan"

# Today's advisories on a cluster: the image's snapshot ages, so scheduled and alert-driven scans
# download OSV's data into a directory of their own pod first.
FRESH_ADVISORIES = {"db": "/tmp/rpops-advisories", "sync-db": "true"}  # noqa: S108 - inside the pod

METRIC = "research_platform_security_vulnerabilities_critical"
METRIC_HELP = "Unsuppressed critical findings of the last completed research-platform security scan."

# The scan's files beside report.json, as artifacts when the cluster has an artifact repository.
FILE_ARTIFACTS = (("fix-patch", "fix.patch"), ("sarif", "results.sarif"), ("summary", "summary.md"))


def _critical_gauge() -> Gauge:
    given = {i.name: i for i in step_inputs(STEP)}
    return Gauge(
        name=METRIC,
        help=METRIC_HELP,
        labels=[
            Label(key="service", value=given["service"].ref),
            Label(key="region", value=given["region"].ref),
        ],
        realtime=False,
        value="{{outputs.parameters.critical}}",
        when="{{outputs.parameters.status}} != error",
    )


SPEC = StepSpec(
    name=TEMPLATE,
    step=STEP,
    description="Run `rpops security-scan`; exit 1 (the alert) when threshold findings are at or above "
    "fail-on. Sets the critical-findings gauge.",
    # os.cpu_count() in a pod is the node's: bound the code scan's processes to the limit.
    extra_args=(("--jobs", "2"),),
    # Retries pod errors and exit 3 (advisory data or API unavailable); never the verdict (1) or
    # bad input (2).
    retry=observe_retry(),
    deadline_seconds=600,
    resources=StepResources(cpu_request="250m", memory_request="256Mi", cpu_limit="2", memory_limit="1Gi"),
    metrics=(_critical_gauge(),),
)
INPUTS = SPEC.inputs  # recovery and the daily scan read them too
OUTPUTS = STEP.outputs


def build(config: RenderConfig) -> WorkflowTemplate:
    with workflow_template(
        purpose=PURPOSE,
        description="Scan the Research Platform for vulnerable dependencies (offline OSV data), dangerous "
        "code and insecure workload configuration, propose upgrades as a patch, and fail when the gate "
        "is reached (outputs critical, high, total, fixes, status).",
        arguments=INPUTS,
    ) as wt:
        scan = step_container(config, SPEC)
        if config.report_artifact:
            assert isinstance(scan.outputs, list)
            scan.outputs.extend(
                Artifact(
                    name=name, path=f"{OUTPUTS_DIR}/{file}", optional=True, archive=NoneArchiveStrategy()
                )
                for name, file in FILE_ARTIFACTS
            )
        entry_dag(
            description="Scan once with the workflow's arguments; the workflow fails when the gate does.",
            task=TEMPLATE,
            template=scan,
            inputs=INPUTS,
            outputs=OUTPUTS,
        )
    return wt
