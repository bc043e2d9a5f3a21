"""`research-platform-alerts`: the WorkflowEventBinding from Alertmanager's webhook to the recovery.

Alertmanager posts each alert group to Argo's events API,
`POST /api/v1/events/argo/alertmanager` (manifests/monitoring/alertmanager.yaml). Argo evaluates
every binding of the namespace against `{discriminator, namespace, payload, metadata}` and
submits `research-platform-recovery` when this selector holds:

- the discriminator first: every binding sees every event, and `&&` stops at the first false,
  so a foreign payload never reaches the `payload.*` tests (an evaluation error would make the
  request fail with 500, and the sender retry it: duplicate runs for the other bindings);
- then only Alertmanager's version "4" payloads, only `firing` groups (the route sets
  send_resolved: false; this is the second guard), only groups labelled
  `remediation: research-platform-recovery`, with a `service` label.

Parameters come from the group's `commonLabels` (the route groups by alertname, service and
region, so those three are common to every alert in it). Argo turns each expression's result
into a string: a string as it is, anything else as JSON, a missing label as `null`; `region`
therefore falls back to "" with `??`. `alert-labels` is the labels map itself (JSON); it and
`alertname` are only recorded by the recovery (see workflows/recovery.py).

`targets` and `prometheus` are the cluster's own addresses, the same in every region's cluster;
patch them with a kustomize overlay where they differ. The webhook's identity and its rights
(list workfloweventbindings, get workflowtemplates, create workflows in `argo`) are the
ServiceAccount rpops-alertmanager-submitter in manifests/argo/rbac.yaml.

Hera has the WorkflowEventBinding model but no builder for it: `build` returns the model in a
small wrapper with the `to_dict()` that `workflows.render` calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hera.workflows.models import (
    Arguments,
    Event,
    ObjectMeta,
    Parameter,
    Submit,
    ValueFrom,
    WorkflowEventBinding,
    WorkflowEventBindingSpec,
    WorkflowTemplateRef,
)

from workflows import recovery
from workflows.common import DESCRIPTION_ANNOTATION, NAME_PREFIX, RenderConfig, labels

PURPOSE = "alerts"
NAME = f"{NAME_PREFIX}{PURPOSE}"
DISCRIMINATOR = "alertmanager"
REMEDIATION = recovery.NAME  # the value of the alerts' `remediation` label

TARGETS = "research-platform=http://research-platform.research-platform.svc:8000"
PROMETHEUS = "http://prometheus-operated.monitoring.svc:9090"

SELECTOR = (
    f'discriminator == "{DISCRIMINATOR}"'
    ' && payload.version == "4"'
    ' && payload.status == "firing"'
    f' && payload.commonLabels.remediation == "{REMEDIATION}"'
    " && payload.commonLabels.service != nil"
)

# Parameter of research-platform-recovery -> expr-lang expression over the event.
PARAMETERS: dict[str, str] = {
    "service": "payload.commonLabels.service",
    "region": 'payload.commonLabels.region ?? ""',
    "alertname": "payload.commonLabels.alertname",
    "alert-labels": "payload.commonLabels",
    "targets": f'"{TARGETS}"',
    "prometheus": f'"{PROMETHEUS}"',
}


@dataclass(frozen=True)
class BindingDocument:
    """A Hera model with the `to_dict()` of Hera's workflow objects."""

    model: WorkflowEventBinding

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = self.model.model_dump(by_alias=True, exclude_none=True)
        return out


def build(config: RenderConfig) -> BindingDocument:
    del config  # nothing in a binding depends on the image
    return BindingDocument(
        WorkflowEventBinding(
            api_version="argoproj.io/v1alpha1",
            kind="WorkflowEventBinding",
            metadata=ObjectMeta(
                name=NAME,
                annotations={
                    DESCRIPTION_ANNOTATION: "Submit research-platform-recovery for each firing Alertmanager "
                    "alert group labelled remediation=research-platform-recovery (webhook to "
                    "/api/v1/events/argo/alertmanager)."
                },
                labels=labels(PURPOSE),
            ),
            spec=WorkflowEventBindingSpec(
                event=Event(selector=SELECTOR),
                submit=Submit(
                    workflow_template_ref=WorkflowTemplateRef(name=recovery.NAME),
                    arguments=Arguments(
                        parameters=[
                            Parameter(name=name, value_from=ValueFrom(event=expression))
                            for name, expression in PARAMETERS.items()
                        ]
                    ),
                ),
            ),
        )
    )
