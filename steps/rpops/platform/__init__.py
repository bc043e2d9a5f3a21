"""Platform drivers: one small protocol, two implementations.

`get_driver()` picks the driver named by `RPOPS_PLATFORM` ("local" by default, "kubernetes" in the
Argo templates). Drivers are imported on demand so that importing this package stays cheap and
never pulls in the Kubernetes client.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from rpops.core.errors import UsageError
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
    "Workload",
    "add_namespace_argument",
    "get_driver",
]


def get_driver(name: str | None = None, namespace: str | None = None, **opts: Any) -> PlatformDriver:
    """The driver called `name`, else `$RPOPS_PLATFORM`, else "local". Options go to its constructor.

    namespace: the kubernetes driver's (a step's `--namespace`); the local platform has none.
    local: root (state directory), start_timeout, drain_timeout.
    kubernetes: context, kubeconfig, request_timeout, attempts, backoff.
    """
    chosen = (name or os.environ.get("RPOPS_PLATFORM") or "local").strip().lower()
    if chosen == "local":
        from rpops.platform.local.driver import LocalDriver

        return LocalDriver(**opts)
    if chosen == "kubernetes":
        from rpops.platform.kubernetes.driver import KubernetesDriver

        return KubernetesDriver(namespace=namespace, **opts)
    raise UsageError(f"platform {chosen!r} is unknown: set RPOPS_PLATFORM to one of {', '.join(DRIVERS)}")


def add_namespace_argument(parser: argparse.ArgumentParser) -> None:
    """`--namespace`, for the steps that act through a driver."""
    parser.add_argument(
        "--namespace",
        default=None,
        metavar="NAMESPACE",
        help="Kubernetes namespace of the service (kubernetes driver; the local platform has none). "
        "Default: $RPOPS_NAMESPACE, else the service account's, else the kubeconfig context's",
    )

