"""The platform protocol's values, argument checks and driver choice."""

from __future__ import annotations

import subprocess
import sys

import pytest
from rpops.core.errors import RpopsError, UsageError
from rpops.platform import (
    AutoscalingBounds,
    Conflict,
    NotFound,
    PlatformError,
    PlatformUnavailable,
    Resources,
    Workload,
    get_driver,
)
from rpops.platform.base import (
    ANNOTATION_PREFIX,
    check_annotations,
    check_replicas,
    check_service,
    check_timeout,
    check_version,
    cpu_cores,
    memory_bytes,
    strip_annotations,
)


def test_error_hierarchy_and_exit_codes() -> None:
    assert issubclass(NotFound, PlatformError) and issubclass(Conflict, PlatformError)
    assert issubclass(PlatformError, RpopsError)
    assert PlatformError("x").exit_code == 1
    assert PlatformUnavailable("x").exit_code == 3
    assert str(NotFound("Deployment", "ns/rp-v1")) == "Deployment ns/rp-v1 not found"


@pytest.mark.parametrize(("text", "cores"), [("250m", 0.25), ("1", 1.0), ("0.5", 0.5), ("1500m", 1.5)])
def test_cpu_quantities(text: str, cores: float) -> None:
    assert cpu_cores(text) == cores


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("256Mi", 256 * 2**20),
        ("1Gi", 2**30),
        ("500M", 500 * 10**6),
        ("1048576", 2**20),
        ("1.5Gi", int(1.5 * 2**30)),
    ],
)
def test_memory_quantities(text: str, size: int) -> None:
    assert memory_bytes(text) == size


@pytest.mark.parametrize("bad", ["", "1 cpu", "-1", "250u", "m"])
def test_bad_cpu_is_a_usage_error(bad: str) -> None:
    with pytest.raises(UsageError, match="CPU quantity"):
        cpu_cores(bad)


def test_resources_validate_and_convert() -> None:
    res = Resources(cpu_request="250m", cpu_limit="1", memory_request="256Mi", memory_limit="512Mi")
    assert res.to_k8s() == {
        "requests": {"cpu": "250m", "memory": "256Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }
    assert Resources.from_k8s(res.to_k8s()) == res
    assert Resources().to_k8s() == {}
    with pytest.raises(UsageError, match="memory request 1Gi is above the memory limit 512Mi"):
        Resources(memory_request="1Gi", memory_limit="512Mi")
    with pytest.raises(UsageError, match="memory quantity '12 MB'"):
        Resources(memory_limit="12 MB")


def test_autoscaling_bounds() -> None:
    assert AutoscalingBounds(1, 1).max_replicas == 1
    with pytest.raises(UsageError, match="max replicas 2"):
        AutoscalingBounds(3, 2)
    with pytest.raises(UsageError, match="min replicas 0"):
        AutoscalingBounds(0, 2)


def test_workload_ready() -> None:
    def workload(replicas: int, ready: int, available: int) -> Workload:
        return Workload(
            service="s",
            version="v1",
            image="i",
            replicas=replicas,
            ready_replicas=ready,
            available_replicas=available,
        )

    assert workload(2, 2, 2).ready
    assert not workload(2, 1, 2).ready
    assert not workload(2, 2, 1).ready
    assert workload(0, 0, 0).ready


def test_argument_checks() -> None:
    assert check_service("research-platform") == "research-platform"
    assert check_version("research-platform", "1.4.0") == "1.4.0"
    assert check_replicas(0) == 0
    assert check_timeout(2) == 2.0
    for bad in ("", "Research", "9lives", "a_b", "x" * 56):
        with pytest.raises(UsageError, match="service name"):
            check_service(bad)
    for bad in ("", "V2", "v 2", "-v2", "v" * 70):
        with pytest.raises(UsageError, match="version"):
            check_version("svc", bad)
    for bad_replicas in (-1, 1001, 1.5, True, "3"):
        with pytest.raises(UsageError, match="replicas"):
            check_replicas(bad_replicas)  # type: ignore[arg-type]
    for bad_timeout in (0, -1, float("nan"), True):
        with pytest.raises(UsageError, match="timeout"):
            check_timeout(bad_timeout)


def test_annotations_are_prefixed_once() -> None:
    assert check_annotations({"phase": "x", f"{ANNOTATION_PREFIX}owner": None}) == {
        f"{ANNOTATION_PREFIX}phase": "x",
        f"{ANNOTATION_PREFIX}owner": None,
    }
    assert strip_annotations({f"{ANNOTATION_PREFIX}phase": "x", "other.io/a": "b"}) == {"phase": "x"}
    with pytest.raises(UsageError, match="non-string value 3"):
        check_annotations({"n": 3})  # type: ignore[dict-item]
    with pytest.raises(UsageError, match="non-empty"):
        check_annotations({})


def test_get_driver_by_name_and_env(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    from rpops.platform.local.driver import LocalDriver

    monkeypatch.setenv("RPOPS_PLATFORM", "local")
    assert isinstance(get_driver(root=tmp_path), LocalDriver)
    monkeypatch.setenv("RPOPS_PLATFORM", "openshift")
    with pytest.raises(UsageError, match="platform 'openshift' is unknown"):
        get_driver()
    with pytest.raises(UsageError, match="platform 'nomad'"):
        get_driver("nomad")


def test_importing_the_package_does_not_load_the_kubernetes_client() -> None:
    code = (
        "import sys, rpops.platform, rpops.platform.local.driver; "
        "print(sorted(m for m in sys.modules if m == 'kubernetes' or m.startswith('kubernetes.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
