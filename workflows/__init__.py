"""Hera definitions of the Research Platform's Argo WorkflowTemplates (and its CronWorkflow).

Each module in `TEMPLATE_MODULES` defines one document: `NAME` (the metadata.name) and
`build(config: RenderConfig)` returning the Hera object. `make render` writes every one of them
to `manifests/argo/<NAME>.yaml`. Add a module here to have it rendered and tested.
"""

from __future__ import annotations

TEMPLATE_MODULES: tuple[str, ...] = (
    "workflows.health_check",
    "workflows.validate",
    "workflows.scale",
    "workflows.optimize",
    "workflows.recovery",
    "workflows.alerts_binding",
    "workflows.bluegreen",
    "workflows.security_scan",
    "workflows.daily_security_scan",
)
