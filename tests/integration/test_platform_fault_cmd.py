"""`rpops local platform fault`: faults reach every instance of a version through the real CLI."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from rpops.platform.local.driver import LocalDriver

SERVICE = "research-platform"


@pytest.fixture()
def platform(tmp_path: Path) -> Iterator[LocalDriver]:
    driver = LocalDriver(root=tmp_path / "platform")
    driver.up(SERVICE, "v1", replicas=2, port=0)
    try:
        yield driver
    finally:
        driver.down()


def fault_cmd(driver: LocalDriver, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rpops", "local", "platform", "fault", "--root", str(driver.root), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def faults_of(driver: LocalDriver) -> list[dict[str, object]]:
    headers = {"Authorization": f"Bearer {driver.admin_token(SERVICE)}"}
    return [
        httpx.get(f"{i.url}/admin/faults", headers=headers, trust_env=False).json()["faults"]
        for i in driver.instances(SERVICE, "v1")
    ]


def test_fault_reaches_every_instance_and_clears(platform: LocalDriver) -> None:
    done = fault_cmd(platform, "latency_ms=300", "unhealthy=true")
    assert done.returncode == 0, done.stderr
    assert "on 2 instance(s)" in done.stdout
    assert all(f["latency_ms"] == 300 and f["unhealthy"] is True for f in faults_of(platform))
    url = platform.service_url(SERVICE)
    began = time.perf_counter()
    assert httpx.get(f"{url}/health", timeout=5, trust_env=False).status_code == 503
    assert time.perf_counter() - began >= 0.3

    cleared = fault_cmd(platform, "--clear")
    assert cleared.returncode == 0, cleared.stderr
    assert all(f["latency_ms"] == 0 and f["unhealthy"] is False for f in faults_of(platform))
    assert httpx.get(f"{url}/health", timeout=5, trust_env=False).status_code == 200


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["latency_ms"], "malformed: write NAME=VALUE"),
        (["latency_ms=fast"], "non-numeric value"),
        ([], "give NAME=VALUE pairs"),
        (["latency_ms=5", "--clear"], "not both"),
        (["--version", "v9", "latency_ms=5"], "v9"),
        (["--service", "nope", "latency_ms=5"], "nope"),
    ],
)
def test_bad_input_exits_2_and_changes_nothing(platform: LocalDriver, args: list[str], message: str) -> None:
    done = fault_cmd(platform, *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr
    assert all(f["latency_ms"] == 0 for f in faults_of(platform))
