"""Platform drivers: one small protocol, two implementations.

`get_driver()` picks the driver named by `RPOPS_PLATFORM` ("local" by default, "kubernetes" in the
Argo templates). Drivers are imported on demand so that importing this package stays cheap and
never pulls in the Kubernetes client.
"""

from __future__ import annotations

import os
from typing import Any

from rpops.core.errors import UsageError
from rpops.core.settings import setting
from rpops.platform.base import (
    ANNOTATION_PREFIX,
    AutoscalingBounds,
    Conflict,
    DeadlineExceeded,
    Instance,
    NotFound,
    PlatformDriver,
    PlatformError,
    PlatformUnavailable,
    Resources,
    Routes,
    SeriesQueries,
    Workload,
)

DRIVERS = ("local", "kubernetes")

__all__ = [
    "ANNOTATION_PREFIX",
    "DRIVERS",
    "AutoscalingBounds",
    "Conflict",
    "DeadlineExceeded",
    "Instance",
    "NotFound",
    "PlatformDriver",
    "PlatformError",
    "PlatformUnavailable",
    "Resources",
    "Routes",
    "SeriesQueries",
    "Workload",
    "driver_class",
    "get_driver",
    "namespace_setting",
    "resolve_workload",
]


def driver_class(name: str | None = None) -> type[PlatformDriver]:
    """The driver class called `name`, else `$RPOPS_PLATFORM`, else "local"; UsageError naming the
    variable for any other. Steps check it before they change anything and read its `series`."""
    chosen = (name or os.environ.get("RPOPS_PLATFORM") or "local").strip().lower()
    if chosen == "local":
        from rpops.platform.local.driver import LocalDriver

        return LocalDriver
    if chosen == "kubernetes":
        from rpops.platform.kubernetes.driver import KubernetesDriver

        return KubernetesDriver
    raise UsageError(f"platform {chosen!r} is unknown: set RPOPS_PLATFORM to one of {', '.join(DRIVERS)}")


def get_driver(name: str | None = None, namespace: str | None = None, **opts: Any) -> PlatformDriver:
    """A driver of `driver_class(name)`. Options go to its constructor.

    namespace: the kubernetes driver's (a step's `--namespace`); the local platform has none.
    local: root (state directory), start_timeout, drain_timeout.
    kubernetes: context, kubeconfig, request_timeout, attempts, backoff.
    """
    cls: Any = driver_class(name)
    if cls.name == "kubernetes":
        return cls(namespace=namespace, **opts)
    return cls(**opts)


def resolve_workload(driver: PlatformDriver, service: str, version: str | None) -> tuple[str, Workload]:
    """The version to act on (default: the active route's) and its workload; unknown -> exit 2."""
    try:
        if version is None:
            version = driver.routes(service).active
            if version is None:
                raise UsageError(
                    f"service {service} has no active route on the {driver.name} platform; pass --version V"
                )
        return version, driver.workload(service, version)
    except NotFound as exc:
        raise UsageError(
            f"{service}/{version or '(active)'} is not a workload on the {driver.name} platform "
            f"({exc}); check --service and --version"
        ) from None


def namespace_setting() -> Any:
    """The `--namespace` settings field of a step that acts through a driver."""
    return setting(
        None,
        help="Kubernetes namespace of the service (kubernetes driver; the local platform has none). "
        "Default: $RPOPS_NAMESPACE, else the service account's, else the kubeconfig context's",
    )
