"""Hera definitions of the Research Platform's Argo WorkflowTemplates (and its CronWorkflow).

A template module defines one document: `NAME` (the metadata.name) and `build(config: RenderConfig)`
returning the Hera object. `make render` finds every such module in this package and writes its
document to `manifests/argo/<NAME>.yaml`, and the kustomization that lists them: a new module is
rendered, listed and tested by being here.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def template_modules() -> list[ModuleType]:
    """Every module of this package that defines a document (NAME and build), by module name."""
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if callable(getattr(module, "build", None)) and isinstance(getattr(module, "NAME", None), str):
            found.append(module)
    return found
