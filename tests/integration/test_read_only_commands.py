"""Read-only commands write nothing: no output files, no report, no state folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rpops.platform.local.driver import LocalDriver

SERVICE = "research-platform"


def rpops(root: Path, outputs: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "RPOPS_PLATFORM": "local",
        "RPOPS_PLATFORM_DIR": str(root),
        "RPOPS_OUTPUTS": str(outputs),
    }
    return subprocess.run(
        [sys.executable, "-m", "rpops", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def tree(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


def test_reads_of_an_empty_machine_create_nothing(tmp_path: Path) -> None:
    root, outputs = tmp_path / "platform", tmp_path / "outputs"
    for args in (
        ("local", "platform", "status"),
        ("local", "list", "--runs-dir", str(tmp_path / "runs")),
        ("local", "get", "nope", "--runs-dir", str(tmp_path / "runs")),
        ("local", "logs", "nope", "--runs-dir", str(tmp_path / "runs")),
    ):
        done = rpops(root, outputs, tmp_path, *args)
        assert done.returncode in (0, 2), done.stderr
        assert tree(tmp_path) == set(), (args, tree(tmp_path))


def test_status_of_a_running_service_writes_no_outputs(tmp_path: Path) -> None:
    root, outputs = tmp_path / "platform", tmp_path / "outputs"
    driver = LocalDriver(root=root, ready_interval=0.2, drain_timeout=2.0)
    driver.up(SERVICE, "v1", replicas=1, port=0)
    try:
        before = tree(root)
        for args in (("bluegreen", "status", "--service", SERVICE), ("local", "platform", "status")):
            done = rpops(root, outputs, tmp_path, *args)
            assert done.returncode == 0, done.stderr
        assert not outputs.exists()
        assert {p for p in tree(root) if not p.startswith("logs")} == {
            p for p in before if not p.startswith("logs")
        }
    finally:
        driver.down()
