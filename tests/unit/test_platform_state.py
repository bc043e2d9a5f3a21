"""The local platform's state file: round trip, atomic writes, the cross-process lock."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from rpops.platform import PlatformError
from rpops.platform.local.state import (
    InstanceState,
    PlatformState,
    ProxyState,
    ServiceState,
    StateStore,
    VersionState,
)


def sample() -> PlatformState:
    ver = VersionState(
        image="rpops-workload:v1",
        replicas=2,
        resources={"cpu_request": "250m"},
        annotations={"rpops.research-platform.io/x": "1"},
        instances=[InstanceState("rp-v1-0", 123, 1700000000.5, 40001, 1700000001.0)],
        next_index=1,
    )
    svc = ServiceState(
        name="rp",
        admin_token="a",
        proxy=ProxyState(99, 1.5, 8080, 8081, 8082, "t"),
        active="v1",
        autoscaling={"min_replicas": 1, "max_replicas": 3},
        versions={"v1": ver},
    )
    return PlatformState(services={"rp": svc})


def test_round_trip(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "p")
    assert store.load() == PlatformState()
    with store.locked():
        store.save(sample())
    assert store.load() == sample()
    assert (tmp_path / "p" / "state.json").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "p").stat().st_mode & 0o777 == 0o700
    assert list((tmp_path / "p").glob(".state.*")) == []  # no temporary file left behind


def test_unreadable_state_says_what_to_do(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(PlatformError, match="remove the file to start over"):
        store.load()


def test_lock_excludes_other_processes(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from rpops.platform.local.state import StateStore
        with StateStore(Path({str(tmp_path)!r})).locked():
            print("locked", flush=True)
            time.sleep(30)
    """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        store = StateStore(tmp_path, lock_timeout=0.2)
        started = time.monotonic()
        with pytest.raises(PlatformError, match="stayed locked"), store.locked():
            pass
        assert time.monotonic() - started >= 0.2
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    with StateStore(tmp_path, lock_timeout=1).locked():  # released when its holder died
        pass


def test_lock_is_reentrant_in_one_store(tmp_path: Path) -> None:
    store = StateStore(tmp_path, lock_timeout=0.2)
    with store.locked(), store.locked():
        store.save(sample())
    assert store.load().services["rp"].active == "v1"
