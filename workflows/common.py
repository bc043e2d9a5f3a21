"""Shared builders: every WorkflowTemplate is made of the same parts, built here once.

A template module calls `workflow_template(...)` for the document and `step_container(...)`
for each `rpops <step>` container; conventions (image, env, resources, retries, deadlines,
outputs with defaults, labels, the description annotation, the per-service mutex) live here
so that they cannot drift between templates.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from hera.workflows import (
    DAG,
    Artifact,
    Container,
    Env,
    NoneArchiveStrategy,
    Parameter,
    Resources,
    RetryStrategy,
    Task,
    WorkflowTemplate,
)
from hera.workflows.metrics import Counter, Gauge, Histogram
from hera.workflows.models import (
    Backoff,
    Capabilities,
    IntOrString,
    Mutex,
    PodSecurityContext,
    SeccompProfile,
    SecurityContext,
    Synchronization,
    ValueFrom,
    WorkflowMetadata,
)
from rpops import __version__
from rpops.core.errors import UsageError
from rpops.core.settings import REGIONS
from rpops.core.step import Output, Step
from rpops.core.step import Parameter as StepParameter

NAME_PREFIX = "research-platform-"
IMAGE_REPOSITORY = "ghcr.io/research-platform/rpops-steps"
DEFAULT_IMAGE = f"{IMAGE_REPOSITORY}:{__version__}"
SERVICE_ACCOUNT = "rpops-steps"
OUTPUTS_DIR = "/tmp/outputs"  # noqa: S108 - the step contract's fixed path inside the pod
DESCRIPTION_ANNOTATION = "workflows.argoproj.io/description"
PART_OF = "research-platform"
STEP_UID = 1000  # the step image's user (images/steps/Dockerfile)

# Steps run in the argo namespace and act on the service in its own (rbac.yaml grants them that).
SERVICE_NAMESPACE = "research-platform"
STEP_ENV = {"RPOPS_LOG_FORMAT": "json", "RPOPS_PLATFORM": "kubernetes", "RPOPS_NAMESPACE": SERVICE_NAMESPACE}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


@dataclass(frozen=True)
class RenderConfig:
    """What may differ between renders. The defaults give the committed manifests."""

    image: str = DEFAULT_IMAGE
    # Output artifacts need an artifact repository on the cluster; off unless asked for.
    report_artifact: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RenderConfig:
        env = os.environ if environ is None else environ
        image = env.get("RPOPS_IMAGE", "").strip() or DEFAULT_IMAGE
        if any(c.isspace() for c in image) or "{{" in image:
            raise UsageError(f"RPOPS_IMAGE={image!r} is not an image reference; set e.g. {DEFAULT_IMAGE}")
        flag = env.get("RPOPS_REPORT_ARTIFACT", "").strip().lower()
        if flag not in _TRUE | _FALSE:
            raise UsageError(
                f"RPOPS_REPORT_ARTIFACT={flag!r} is not a boolean; use 1/true to add the report artifact "
                "(needs an artifact repository) or 0/false to leave it out"
            )
        return cls(image=image, report_artifact=flag in _TRUE)


@dataclass(frozen=True)
class StepResources:
    cpu_request: str = "100m"
    memory_request: str = "128Mi"
    cpu_limit: str = "500m"
    memory_limit: str = "256Mi"

    def build(self) -> Resources:
        return Resources(
            cpu_request=self.cpu_request,
            memory_request=self.memory_request,
            cpu_limit=self.cpu_limit,
            memory_limit=self.memory_limit,
        )


def output_parameter(output: Output) -> Parameter:
    """A step's output read from `/tmp/outputs/<name>`, with the value a skipped or failed step yields
    (Argo v4 fails a read of a skipped step's output without one)."""
    return Parameter(
        name=output.name,
        description=output.description,
        value_from=ValueFrom(path=f"{OUTPUTS_DIR}/{output.name}", default=output.default),
    )


def forwarded(output: Output, task: str) -> Parameter:
    """The same output, re-exported by a DAG from its task `task`."""
    return Parameter(
        name=output.name,
        description=output.description,
        value_from=ValueFrom(
            parameter=f"{{{{tasks.{task}.outputs.parameters.{output.name}}}}}", default=output.default
        ),
    )


@dataclass(frozen=True)
class Input:
    """A template input and, usually, the workflow argument of the same name that feeds it."""

    name: str
    description: str
    default: str | None = None  # None: required at submission
    enum: tuple[str, ...] = ()

    def build(self) -> Parameter:
        return Parameter(name=self.name, description=self.description)

    def argument(self) -> Parameter:
        extra: dict[str, object] = {}
        if self.default is not None:  # Hera renders value=None as the string "null"
            extra["value"] = self.default
        if self.enum:
            extra["enum"] = list(self.enum)
        return Parameter(name=self.name, description=self.description, **extra)  # type: ignore[arg-type]

    @classmethod
    def of(cls, parameter: StepParameter) -> Input:
        """The input a step declares for one of its settings."""
        return cls(parameter.name, parameter.description, parameter.default, parameter.enum)

    @property
    def ref(self) -> str:
        return f"{{{{inputs.parameters.{self.name}}}}}"

    @property
    def workflow_ref(self) -> str:
        return f"{{{{workflow.parameters.{self.name}}}}}"


# The region label of the templates' metrics, for the templates whose step has no region of its own.
REGION = Input(
    "region",
    "Region of the service (us-east, eu-west, asia-pacific), recorded as the metrics' region label; "
    "empty when not region-specific.",
    "",
    enum=("", *REGIONS),
)


# Retry policies. Exit codes follow the step contract: 1 gate failed, 2 usage, 3 unreachable.
BACKOFF = Backoff(duration="5s", factor=IntOrString(root="2"), max_duration="1m")
# Observation steps: retry pod-level errors and any exit except a verdict (1) or bad input (2),
# so an evicted pod, an OOM kill or a dependency that stayed unreachable (3) gets another go.
OBSERVE_RETRY_EXPRESSION = (
    'lastRetry.status == "Error" || (lastRetry.exitCode != "1" && lastRetry.exitCode != "2")'
)


def observe_retry(limit: int = 2) -> RetryStrategy:
    return RetryStrategy(
        limit=str(limit), retry_policy="Always", expression=OBSERVE_RETRY_EXPRESSION, backoff=BACKOFF
    )


def gate_retry(limit: int = 2) -> RetryStrategy:
    """Gates retry only Argo-level errors (pod deleted, init/wait container failed): a gate's
    exit code is its verdict, and rerunning until it passes would hide a real failure."""
    return RetryStrategy(limit=str(limit), retry_policy="OnError", backoff=BACKOFF)


def service_mutex(parameter: str = "service") -> Synchronization:
    """One lock per target service: two workflows never change the same service at once."""
    return Synchronization(mutexes=[Mutex(name=f"{NAME_PREFIX}{{{{workflow.parameters.{parameter}}}}}")])


def labels(component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "rpops",
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/component": component,
    }


def _pod_security_context() -> PodSecurityContext:
    """Workflow level, for every pod of the workflow (checkov CKV_ARGO_2 reads it here): the
    step image's user, never root. Each container also carries its own (below)."""
    return PodSecurityContext(
        run_as_non_root=True,
        run_as_user=STEP_UID,
        run_as_group=STEP_UID,
        seccomp_profile=SeccompProfile(type="RuntimeDefault"),
    )


def _security_context() -> SecurityContext:
    return SecurityContext(
        run_as_non_root=True,
        run_as_user=STEP_UID,
        allow_privilege_escalation=False,
        capabilities=Capabilities(drop=["ALL"]),
        seccomp_profile=SeccompProfile(type="RuntimeDefault"),
    )


def step_inputs(step: Step) -> tuple[Input, ...]:
    """The template inputs a step declares (its settings marked `parameter=`)."""
    return tuple(Input.of(p) for p in step.parameters())


@dataclass(frozen=True)
class StepSpec:
    """One `rpops <step> ...` container template. Its inputs, arguments and outputs come from the
    step's declaration; what is listed here is Argo's: retries, deadline, resources, mutex, metrics."""

    name: str
    step: Step
    description: str
    retry: RetryStrategy
    deadline_seconds: int
    resources: StepResources = field(default_factory=StepResources)
    mutex: Synchronization | None = None
    metrics: Sequence[Gauge | Counter | Histogram] = ()
    # Template inputs that feed no flag (a metric's label), and fixed flags (e.g. an output format).
    extra_inputs: Sequence[Input] = ()
    extra_args: Sequence[tuple[str, str]] = ()
    # A step with subcommands: the fixed arguments before the flags (e.g. `rollback`), and which of
    # the step's parameters this container passes (None: all of them).
    command: Sequence[str] = ()
    passed: Sequence[str] | None = None

    def parameters(self) -> tuple[StepParameter, ...]:
        if self.passed is None:
            return self.step.parameters()
        return tuple(self.step.parameter(name) for name in self.passed)

    @property
    def inputs(self) -> tuple[Input, ...]:
        return (*(Input.of(p) for p in self.parameters()), *self.extra_inputs)

    @property
    def args(self) -> list[str]:
        # One argv item per flag and value, never a shell. An empty value means "not given": a
        # container cannot drop an argument depending on an input.
        return [*self.command, *flags(*((p.flag, p.ref) for p in self.parameters()), *self.extra_args)]


def step_container(config: RenderConfig, spec: StepSpec) -> Container:
    """Build (and, inside a `with WorkflowTemplate`, register) the container template."""
    outputs: list[Parameter | Artifact] = [output_parameter(o) for o in spec.step.outputs]
    if config.report_artifact:
        outputs.append(
            Artifact(
                name="report",
                path=f"{OUTPUTS_DIR}/report.json",
                optional=True,
                archive=NoneArchiveStrategy(),
            )
        )
    return Container(
        name=spec.name,
        image=config.image,
        command=["rpops"],
        args=[spec.step.name, *spec.args],
        env=[Env(name=k, value=v) for k, v in STEP_ENV.items()],
        inputs=[i.build() for i in spec.inputs],
        outputs=outputs,
        resources=spec.resources.build(),
        security_context=_security_context(),
        retry_strategy=spec.retry,
        active_deadline_seconds=str(spec.deadline_seconds),
        synchronization=spec.mutex,
        metrics=list(spec.metrics) or None,
        annotations={DESCRIPTION_ANNOTATION: spec.description},
        labels=labels(spec.step.name),
    )


def flags(*pairs: tuple[str, str]) -> list[str]:
    """`("--x", v), ...` -> `["--x", v, ...]`: one argv item per flag and value, never a shell."""
    return [item for pair in pairs for item in pair]


def workflow_template(
    *, purpose: str, description: str, arguments: Sequence[Input], entrypoint: str = "main"
) -> WorkflowTemplate:
    """The document: `research-platform-<purpose>`, labelled, described, run as `rpops-steps`."""
    return WorkflowTemplate(
        name=f"{NAME_PREFIX}{purpose}",
        annotations={DESCRIPTION_ANNOTATION: description},
        labels=labels(purpose),
        entrypoint=entrypoint,
        service_account_name=SERVICE_ACCOUNT,
        security_context=_pod_security_context(),
        workflow_metadata=WorkflowMetadata(labels=labels(purpose)),
        arguments=[a.argument() for a in arguments],
    )


def entry_dag(
    *,
    description: str,
    task: str,
    template: Container,
    inputs: Sequence[Input],
    outputs: Sequence[Output],
    name: str = "main",
) -> DAG:
    """The entrypoint: one task calling `template` with the workflow's arguments, re-exporting
    its outputs. Other workflows `templateRef` the container template itself."""
    with DAG(
        name=name,
        outputs=[forwarded(o, task) for o in outputs],
        annotations={DESCRIPTION_ANNOTATION: description},
    ) as dag:
        Task(name=task, template=template, arguments={i.name: i.workflow_ref for i in inputs})
    return dag
