"""The platform driver protocol, the typed values it speaks, and its errors.

A workload is identified by (service, version). A service routes traffic to one
active version, and optionally to a preview version (blue-green). Steps observe
through the read methods (`workload`, `versions`, `routes`, `instances`,
`annotations`) and act through the others; every act is idempotent, so a rerun
after a crash converges instead of doubling the change. `list_objects` hands the
platform's live Kubernetes objects to the security scan's configuration checks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from rpops.core.errors import RpopsError, Unreachable, UsageError

ANNOTATION_PREFIX = "rpops.research-platform.io/"

# Service names become Kubernetes Service names (DNS-1035 labels), and "<service>-preview"
# must fit in 63 characters too.
_SERVICE_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# Versions become label values and part of Deployment names ("<service>-<version>").
_VERSION_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_ANNOTATION_KEY_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_CPU_RE = re.compile(r"^(\d+(?:\.\d+)?)(m?)$")
_MEMORY_RE = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_MEMORY_UNITS = {
    None: 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


class PlatformError(RpopsError):
    """The platform refused or failed an operation (exit 1)."""


class NotFound(PlatformError):
    """A named object does not exist; the message names it (kind, namespace/name or service/version)."""

    def __init__(self, kind: str, name: str, detail: str = "") -> None:
        self.kind = kind
        self.name = name
        super().__init__(f"{kind} {name} not found" + (f": {detail}" if detail else ""))


class Conflict(PlatformError):
    """The object changed under us (and stayed contended after bounded retries), or the
    operation contradicts the current state (e.g. removing the version that takes traffic)."""


class DeadlineExceeded(PlatformError):
    """`wait_ready` (or another bounded wait) ran out of time; the message says what was missing."""


class PlatformUnavailable(PlatformError, Unreachable):
    """The platform's API stayed unreachable (timeouts, 5xx) after bounded retries (exit 3)."""

    exit_code = 3


# ---------------------------------------------------------------------------------------------
# Values


def cpu_cores(quantity: str) -> float:
    """A Kubernetes CPU quantity ("250m", "1", "0.5") in cores; UsageError when malformed."""
    match = _CPU_RE.match(quantity)
    if not match:
        raise UsageError(
            f"CPU quantity {quantity!r} is malformed: use cores like '0.5' or '2', or millicores like '250m'"
        )
    value = float(match.group(1))
    return value / 1000 if match.group(2) else value


def memory_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity ("256Mi", "1G", "1048576") in bytes; UsageError when malformed."""
    match = _MEMORY_RE.match(quantity)
    if not match:
        raise UsageError(
            f"memory quantity {quantity!r} is malformed: use bytes with a unit like '256Mi', '1Gi' or '500M'"
        )
    return int(float(match.group(1)) * _MEMORY_UNITS[match.group(2)])


@dataclass(frozen=True)
class Resources:
    """Requests and limits of a workload's main container, as Kubernetes quantities (None: unset)."""

    cpu_request: str | None = None
    cpu_limit: str | None = None
    memory_request: str | None = None
    memory_limit: str | None = None

    def __post_init__(self) -> None:
        for name in ("cpu_request", "cpu_limit"):
            value = getattr(self, name)
            if value is not None:
                cpu_cores(value)
        for name in ("memory_request", "memory_limit"):
            value = getattr(self, name)
            if value is not None:
                memory_bytes(value)
        if self.cpu_request and self.cpu_limit and cpu_cores(self.cpu_request) > cpu_cores(self.cpu_limit):
            raise UsageError(
                f"cpu request {self.cpu_request} is above the cpu limit {self.cpu_limit}: "
                "lower the request or raise the limit"
            )
        if (
            self.memory_request
            and self.memory_limit
            and memory_bytes(self.memory_request) > memory_bytes(self.memory_limit)
        ):
            raise UsageError(
                f"memory request {self.memory_request} is above the memory limit "
                f"{self.memory_limit}: lower the request or raise the limit"
            )

    def to_k8s(self) -> dict[str, dict[str, str]]:
        """The container `resources` object: {"requests": {...}, "limits": {...}} (unset keys omitted)."""
        requests = {k: v for k, v in (("cpu", self.cpu_request), ("memory", self.memory_request)) if v}
        limits = {k: v for k, v in (("cpu", self.cpu_limit), ("memory", self.memory_limit)) if v}
        out: dict[str, dict[str, str]] = {}
        if requests:
            out["requests"] = requests
        if limits:
            out["limits"] = limits
        return out

    @classmethod
    def from_k8s(cls, value: Mapping[str, Mapping[str, str]] | None) -> Resources:
        value = value or {}
        requests = value.get("requests") or {}
        limits = value.get("limits") or {}
        return cls(
            cpu_request=requests.get("cpu"),
            cpu_limit=limits.get("cpu"),
            memory_request=requests.get("memory"),
            memory_limit=limits.get("memory"),
        )


@dataclass(frozen=True)
class AutoscalingBounds:
    """HPA bounds: the autoscaler keeps replicas within [min_replicas, max_replicas]."""

    min_replicas: int
    max_replicas: int

    def __post_init__(self) -> None:
        if not isinstance(self.min_replicas, int) or self.min_replicas < 1:
            raise UsageError(f"autoscaling min replicas {self.min_replicas!r} must be an integer >= 1")
        if not isinstance(self.max_replicas, int) or self.max_replicas < self.min_replicas:
            raise UsageError(
                f"autoscaling max replicas {self.max_replicas!r} must be an integer >= the "
                f"min replicas ({self.min_replicas})"
            )


@dataclass(frozen=True)
class Workload:
    """What the platform says about one version of a service."""

    service: str
    version: str
    image: str  # container image (local: "rpops-workload:<version>")
    replicas: int  # desired
    ready_replicas: int  # passing readiness now
    available_replicas: int  # up (and ready long enough, on Kubernetes)
    resources: Resources = field(default_factory=Resources)
    autoscaling: AutoscalingBounds | None = None  # set when the service's HPA targets this version
    annotations: dict[str, str] = field(default_factory=dict)  # ours, prefix stripped
    active: bool = False  # the service's active route points here
    preview: bool = False  # the service's preview route points here

    @property
    def ready(self) -> bool:
        """Every desired replica is ready (0 desired counts as ready)."""
        return self.ready_replicas >= self.replicas and self.available_replicas >= self.replicas


@dataclass(frozen=True)
class Routes:
    """Which version a service's active and preview routes select (None: no route)."""

    service: str
    active: str | None
    preview: str | None


@dataclass(frozen=True)
class Instance:
    """One replica, addressable for probing it alone."""

    service: str
    version: str
    name: str
    url: str  # e.g. http://127.0.0.1:41234 or http://10.1.2.3:8080
    ready: bool
    pid: int | None = None  # local only


@dataclass(frozen=True)
class SeriesQueries:
    """Where a platform's series are in Prometheus, in PromQL with placeholders ($service, $version,
    $namespace, $instances, $window, $step; rpops.clients.promql renders them).

    selector: the label matchers of one version's series;
    cpu_usage, memory_usage: CPU cores and memory bytes per replica (a `by` label per pod/instance).
    """

    selector: str
    cpu_usage: str
    memory_usage: str


@runtime_checkable
class PlatformDriver(Protocol):
    """What steps need from a platform. Workloads are named by (service, version)."""

    name: str
    series: SeriesQueries  # a class attribute: readable before a driver is made

    def workload(self, service: str, version: str) -> Workload:
        """One version's replicas, readiness, image, resources, autoscaling and annotations."""
        ...

    def versions(self, service: str) -> list[Workload]:
        """Every version of a service (readiness per version), sorted by version."""
        ...

    def routes(self, service: str) -> Routes:
        """Which version the service's active and preview routes select."""
        ...

    def instances(self, service: str, version: str) -> list[Instance]:
        """The version's replicas with a URL each, for probing every replica."""
        ...

    def annotations(self, service: str, version: str | None = None) -> dict[str, str]:
        """Our annotations (prefix stripped) on the version, or on the service when version is None."""
        ...

    def scale(self, service: str, version: str, replicas: int) -> None:
        """Set the desired replica count (0 keeps the version but runs nothing)."""
        ...

    def set_autoscaling(self, service: str, bounds: AutoscalingBounds | None) -> None:
        """Set the service's autoscaling bounds (on its active version); None removes autoscaling."""
        ...

    def set_resources(self, service: str, version: str, resources: Resources) -> None:
        """Set the requests/limits of the version's main container (a rolling change)."""
        ...

    def deploy(self, service: str, version: str, *, replicas: int = 1, image: str | None = None) -> None:
        """Create the version's deployment, or update its image and replicas if it exists."""
        ...

    def wait_ready(self, service: str, version: str, *, timeout: float = 300.0) -> Workload:
        """Block until every desired replica is ready; DeadlineExceeded after `timeout` seconds."""
        ...

    def route(self, service: str, version: str, *, preview: bool = False) -> None:
        """Point the service's active (or preview) route at a version, atomically."""
        ...

    def remove(self, service: str, version: str, *, delete: bool = True) -> None:
        """Delete the version (or scale it to 0 when delete=False). Refuses the active version."""
        ...

    def annotate(
        self, service: str, annotations: Mapping[str, str | None], *, version: str | None = None
    ) -> None:
        """Record annotations on the version (or the service); a None value removes the key."""
        ...

    def restart(self, service: str, version: str) -> None:
        """Rolling restart: replace every replica, keeping the version serving throughout."""
        ...

    def list_objects(self, kinds: Sequence[str]) -> list[dict[str, Any]]:
        """The live objects of these kinds (see LISTABLE_KINDS) in the platform's namespace, as
        plain Kubernetes JSON dicts with `kind` and `apiVersion` set, for configuration checks.
        A platform without Kubernetes objects refuses with UsageError."""
        ...


# ---------------------------------------------------------------------------------------------
# Argument checks shared by the drivers (bad input -> UsageError, before anything changes)

# Kinds `list_objects` reads: what the workload configuration checks judge (pod specs, and the
# NetworkPolicies and PodDisruptionBudgets that must select them), -> apiVersion.
LISTABLE_KINDS: dict[str, str] = {
    "Deployment": "apps/v1",
    "Service": "v1",
    "NetworkPolicy": "networking.k8s.io/v1",
    "PodDisruptionBudget": "policy/v1",
}


def check_kinds(kinds: Sequence[str]) -> list[str]:
    """The kinds to list, without repeats; UsageError for anything outside LISTABLE_KINDS."""
    if isinstance(kinds, str) or not kinds:
        raise UsageError(f"kinds {kinds!r}: pass a list of one or more of {', '.join(LISTABLE_KINDS)}")
    unknown = [k for k in kinds if k not in LISTABLE_KINDS]
    if unknown:
        raise UsageError(
            f"kind(s) {', '.join(map(repr, unknown))} cannot be listed: use {', '.join(LISTABLE_KINDS)}"
        )
    return list(dict.fromkeys(kinds))


def check_service(service: str) -> str:
    if not isinstance(service, str) or not _SERVICE_RE.match(service) or len(service) > 55:
        raise UsageError(
            f"service name {service!r} is invalid: use lowercase letters, digits and '-', "
            "starting with a letter, at most 55 characters (e.g. research-platform)"
        )
    return service


def check_version(service: str, version: str) -> str:
    if not isinstance(version, str) or not _VERSION_RE.match(version) or len(f"{service}-{version}") > 63:
        raise UsageError(
            f"version {version!r} is invalid: use lowercase letters, digits, '-' and '.', "
            f"and keep '{service}-<version>' within 63 characters (e.g. v2 or 1.4.0)"
        )
    return version


def check_replicas(replicas: int, what: str = "replicas") -> int:
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0 or replicas > 1000:
        raise UsageError(f"{what} {replicas!r} is invalid: use a whole number from 0 to 1000")
    return replicas


def check_timeout(timeout: float) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 86400:
        raise UsageError(f"timeout {timeout!r} is invalid: use seconds greater than 0 (at most 86400)")
    return float(timeout)


def check_annotations(annotations: Mapping[str, str | None]) -> dict[str, str | None]:
    """Validate annotation keys (without our prefix) and values; returns the prefixed mapping."""
    if not isinstance(annotations, Mapping) or not annotations:
        raise UsageError("annotations must be a non-empty mapping of key -> value (None removes a key)")
    out: dict[str, str | None] = {}
    for key, value in annotations.items():
        bare = (
            key[len(ANNOTATION_PREFIX) :]
            if isinstance(key, str) and key.startswith(ANNOTATION_PREFIX)
            else key
        )
        if not isinstance(bare, str) or not _ANNOTATION_KEY_RE.match(bare) or len(bare) > 63:
            raise UsageError(
                f"annotation key {key!r} is invalid: use letters, digits, '-', '_' and '.' "
                "(at most 63 characters); the prefix " + ANNOTATION_PREFIX + " is added for you"
            )
        if value is not None and not isinstance(value, str):
            raise UsageError(
                f"annotation {bare!r} has a non-string value {value!r}: pass a string "
                "(JSON-encode structured values) or None to remove it"
            )
        out[ANNOTATION_PREFIX + bare] = value
    return out


def strip_annotations(raw: Mapping[str, str] | None) -> dict[str, str]:
    """Our annotations only, with the prefix removed."""
    return {k[len(ANNOTATION_PREFIX) :]: v for k, v in (raw or {}).items() if k.startswith(ANNOTATION_PREFIX)}
