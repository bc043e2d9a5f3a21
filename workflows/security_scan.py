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

Defaults scan what the step image carries (images/steps/Dockerfile): the source it was built
from (/opt/rpops/src), its installed environment (/opt/rpops) and its advisory snapshot
(/opt/rpops/advisories). The template only reads: no mutex.
"""

from __future__ import annotations

from hera.workflows import Artifact, NoneArchiveStrategy, WorkflowTemplate
from hera.workflows.metrics import Gauge, Label

from workflows.common import (
    OUTPUTS_DIR,
    Input,
    OldOutput,
    OldStepSpec,
    RenderConfig,
    StepResources,
    entry_dag,
    flags,
    observe_retry,
    old_step_container,
    workflow_template,
)
from workflows.health_check import REGIONS

PURPOSE = "security-scan"
NAME = f"research-platform-{PURPOSE}"
TEMPLATE = "security-scan"
BOOLEANS = ("false", "true")
SEVERITIES = ("info", "low", "medium", "high", "critical")  # rpops.steps.security.model.SEVERITIES

# What the step image carries (images/steps/Dockerfile).
IMAGE_SOURCE = "/opt/rpops/src"
IMAGE_VENV = "/opt/rpops"
IMAGE_ADVISORIES = "/opt/rpops/advisories"

TARGET = Input(
    "target",
    "Project directory in the step image: its Python files are scanned and its requirement files "
    "(requirements*.txt, requirements*.lock, pyproject.toml, uv.lock, poetry.lock) audited. Default: "
    "the source the image was built from.",
    IMAGE_SOURCE,
)
INSTALLED = Input(
    "installed",
    "Virtualenv or site-packages directory whose installed distributions are audited. Default: the "
    "step image's own environment (what actually runs); empty: none.",
    IMAGE_VENV,
)
MANIFESTS = Input(
    "manifests",
    "Kubernetes YAML file or directory to check (multi-document YAML); empty: none.",
    "",
)
DB = Input(
    "db",
    "Offline OSV advisory database directory. Default: the snapshot baked into the step image; point it "
    "at a volume kept fresh with `rpops advisories sync` for daily results that move.",
    IMAGE_ADVISORIES,
)
SYNC_DB = Input(
    "sync-db",
    "true: first refresh db from OSV's PyPI export (network to osv-vulnerabilities.storage.googleapis.com; "
    "db must then be writable, e.g. /tmp/rpops-advisories). A failed download scans with db as it was "
    "and exits 3 (retried).",
    "false",
    enum=BOOLEANS,
)
MAX_DB_AGE = Input(
    "max-db-age",
    "The scan errors (exit 3) when the advisory data is older than this, e.g. 36h or 7d; 0 turns the "
    "check off.",
    "7d",
)
FAIL_ON = Input(
    "fail-on",
    "Severity that counts towards the gate (info, low, medium, high, critical).",
    "critical",
    enum=SEVERITIES,
)
THRESHOLD = Input(
    "threshold",
    "The workflow fails when this many unsuppressed findings are at or above fail-on (1: alert on one).",
    "1",
)
LIVE = Input(
    "live",
    "true: also check the live Deployments, Services, NetworkPolicies and PodDisruptionBudgets in the "
    "platform's namespace, read through the platform driver (the steps' Role grants list on them).",
    "false",
    enum=BOOLEANS,
)
SERVICE = Input(
    "service",
    "With live=true, check only this service's Deployments and Services (label app.kubernetes.io/name, "
    "e.g. research-platform); empty: every workload in the namespace. The metric's service label.",
    "",
)
REGION = Input(
    "region",
    "Region of the scanned platform (us-east, eu-west, asia-pacific), recorded in the report and as the "
    "metric's region label; empty when not region-specific.",
    "",
    enum=("", *REGIONS),
)
# Today's advisories on a cluster: the image's snapshot ages, so scheduled and alert-driven scans
# download OSV's data into a directory of their own pod first.
FRESH_ADVISORIES = {"db": "/tmp/rpops-advisories", "sync-db": "true"}  # noqa: S108 - inside the pod

INPUTS = (TARGET, INSTALLED, MANIFESTS, DB, SYNC_DB, MAX_DB_AGE, FAIL_ON, THRESHOLD, LIVE, SERVICE, REGION)

OUTPUTS = (
    OldOutput("critical", "0", "Unsuppressed critical findings; 0 when the scan did not run."),
    OldOutput("high", "0", "Unsuppressed high findings; 0 when the scan did not run."),
    OldOutput("total", "0", "Unsuppressed findings of every severity; 0 when the scan did not run."),
    OldOutput("fixes", "0", "Package upgrades carried by the proposed patch (fix.patch); 0 when none."),
    OldOutput(
        "status",
        "error",
        "pass or fail (the gate's verdict); error when the advisory data was missing or stale, an API "
        "was unreachable, or the scan did not run.",
    ),
)

METRIC = "research_platform_security_vulnerabilities_critical"
METRIC_HELP = "Unsuppressed critical findings of the last completed research-platform security scan."

# The scan's files beside report.json, as artifacts when the cluster has an artifact repository.
FILE_ARTIFACTS = (("fix-patch", "fix.patch"), ("sarif", "results.sarif"), ("summary", "summary.md"))


def _critical_gauge() -> Gauge:
    return Gauge(
        name=METRIC,
        help=METRIC_HELP,
        labels=[Label(key="service", value=SERVICE.ref), Label(key="region", value=REGION.ref)],
        realtime=False,
        value="{{outputs.parameters.critical}}",
        when="{{outputs.parameters.status}} != error",
    )


def build(config: RenderConfig) -> WorkflowTemplate:
    with workflow_template(
        purpose=PURPOSE,
        description="Scan the Research Platform for vulnerable dependencies (offline OSV data), dangerous "
        "code and insecure workload configuration, propose upgrades as a patch, and fail when the gate "
        "is reached (outputs critical, high, total, fixes, status).",
        arguments=INPUTS,
    ) as wt:
        scan = old_step_container(
            config,
            OldStepSpec(
                name=TEMPLATE,
                step="security-scan",
                description="Run `rpops security-scan`; exit 1 (the alert) when threshold findings are at "
                "or above fail-on. Sets the critical-findings gauge.",
                args=flags(
                    ("--target", TARGET.ref),
                    # Empty values mean "none": a container cannot drop an argument.
                    ("--installed", INSTALLED.ref),
                    ("--manifests", MANIFESTS.ref),
                    ("--db", DB.ref),
                    ("--sync-db", SYNC_DB.ref),
                    ("--max-db-age", MAX_DB_AGE.ref),
                    ("--fail-on", FAIL_ON.ref),
                    ("--threshold", THRESHOLD.ref),
                    ("--live", LIVE.ref),
                    ("--service", SERVICE.ref),
                    ("--region", REGION.ref),
                    # os.cpu_count() in a pod is the node's: bound the code scan's processes to the limit.
                    ("--jobs", "2"),
                ),
                inputs=INPUTS,
                outputs=OUTPUTS,
                # Retries pod errors and exit 3 (advisory data or API unavailable); never the verdict
                # (1) or bad input (2).
                retry=observe_retry(),
                deadline_seconds=600,
                resources=StepResources(
                    cpu_request="250m", memory_request="256Mi", cpu_limit="2", memory_limit="1Gi"
                ),
                metrics=[_critical_gauge()],
            ),
        )
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
