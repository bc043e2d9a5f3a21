"""The old procedure's failure modes, each shown on the baseline (benchmarks/bluegreen_baseline.py,
the bash script reproduced step by step) and then passed by `rpops bluegreen`, on the local
platform under steady load."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bluegreen_support import (
    FAST,
    SERVICE,
    Load,
    outputs_of,
    run_cli,
    running_platform,
    set_faults,
)
from rpops.platform import AutoscalingBounds, NotFound
from rpops.platform.local.driver import LocalDriver

from benchmarks.bluegreen_baseline import Baseline, BaselineRun

PREFIX = "bluegreen."


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    return tmp_path / "platform"


@pytest.fixture()
def platform(root: Path) -> Iterator[LocalDriver]:
    with running_platform(root) as driver:
        yield driver


def baseline(driver: LocalDriver, **kw: object) -> Baseline:
    # the script's waits, shortened
    options: dict[str, object] = {"rollout_timeout": 1.0, "curl_sleep": 0.1, "settle": 1.0, **kw}
    return Baseline(driver, SERVICE, **options)  # type: ignore[arg-type]


def promote(root: Path, out: Path, version: str, *extra: str, **env: Any) -> tuple[int, str]:
    done = run_cli(root, out, "promote", "--service", SERVICE, "--version", version, *FAST, *extra, **env)
    return done.returncode, done.stderr


def deploy(root: Path, out: Path, version: str) -> None:
    done = run_cli(root, out, "deploy", "--service", SERVICE, "--version", version, *FAST)
    assert done.returncode == 0, done.stderr


def first_instance_unready(driver: LocalDriver, version: str) -> None:
    import httpx

    inst = driver.instances(SERVICE, version)[0]
    token = driver.admin_token(SERVICE)
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{inst.url}/admin/faults"
    answer = httpx.post(url, json={"not_ready": True}, headers=headers, trust_env=False)
    answer.raise_for_status()


def replicas(driver: LocalDriver) -> dict[str, int]:
    return {w.version: w.replicas for w in driver.versions(SERVICE)}


def test_switching_before_every_replica_is_ready(platform: LocalDriver, root: Path, tmp_path: Path) -> None:
    script = baseline(platform, hooks={"apply": lambda: first_instance_unready(platform, "v2")})
    run = script.run("v1", "v2")
    assert run.rollout_complete is False  # "rollout not finished, continuing"
    assert run.ready_at_switch == (1, 2)  # the selector moved to a half-ready version
    assert platform.routes(SERVICE).active == "v2"

    # rpops: the same half-ready green is never switched to
    deploy(root, tmp_path / "a", "v3")
    first_instance_unready(platform, "v3")
    code, err = promote(root, tmp_path / "b", "v3", "--progress-deadline-seconds", "1")
    assert code == 1 and "1/2 ready" in err
    assert platform.routes(SERVICE).active == "v2"
    assert outputs_of(tmp_path / "b")["phase"] == "aborted"


def test_probes_that_reach_blue_instead_of_green(platform: LocalDriver, root: Path, tmp_path: Path) -> None:
    with Load(platform.service_url(SERVICE)) as load:
        script = baseline(platform, hooks={"apply": lambda: set_faults(platform, "v2", unhealthy=True)})
        run = script.run("v1", "v2")
    # every pre-switch check answered from blue, so an unhealthy green went live
    assert run.curls_before_switch and all(c.endswith(" v1") for c in run.curls_before_switch)
    assert run.switched_at is not None
    assert [f for f in load.failures if f.at >= run.switched_at], "users met the unhealthy green"
    assert run.patched_back  # only after the settle time

    # rpops probes green through the preview route and each instance: it never goes live
    deploy(root, tmp_path / "a", "v3")
    set_faults(platform, "v3", unhealthy=True)
    with Load(platform.service_url(SERVICE)) as load:
        code, err = promote(root, tmp_path / "b", "v3")
    assert code == 1 and "checks failed" in err and "health" in err
    assert load.failures == []
    assert platform.routes(SERVICE).active == "v1"


def test_no_error_rate_analysis(platform: LocalDriver, root: Path, tmp_path: Path) -> None:
    # green fails one request in ten: /health alone, once, cannot tell
    with Load(platform.service_url(SERVICE)) as load:
        script = baseline(platform, hooks={"apply": lambda: set_faults(platform, "v2", error_rate=0.1)})
        run = script.run("v1", "v2")
    assert run.switched_at is not None
    end = run.patched_back_at or float("inf")
    after = [s for s in load.samples if run.switched_at <= s.at < end]
    failed = [s for s in after if not s.ok]
    # users met the errors for the whole settle time, and whether green stays is one request's luck
    assert failed and len(failed) < len(after) / 2

    platform_active = platform.routes(SERVICE).active
    # whichever way the script went, rpops starts from a healthy blue
    set_faults(platform, "v2", error_rate=0.0)
    deploy(root, tmp_path / "a", "v3")
    set_faults(platform, "v3", error_rate=0.1)
    with Load(platform.service_url(SERVICE)) as load:
        code, err = promote(root, tmp_path / "b", "v3", "--analysis-requests", "20")
    assert code == 1 and "error-rate failed" in err
    assert load.failures == []
    assert platform.routes(SERVICE).active == platform_active


def test_blue_deleted_before_it_could_be_needed(platform: LocalDriver, root: Path, tmp_path: Path) -> None:
    run = baseline(platform).run("v1", "v2")
    assert run.check_passed and run.deleted == "v1"
    assert sorted(replicas(platform)) == ["v2"]  # 1 s (10 s in the script) after the switch, blue is gone

    # rpops keeps blue at 0 replicas until the next promotion: a fast rollback stays possible
    code, err = promote(root, tmp_path / "a", "v3")
    assert code == 0, err
    assert replicas(platform) == {"v2": 0, "v3": 2}
    set_faults(platform, "v3", error_rate=1.0)  # green degrades long after its verify window
    with Load(platform.service_url(SERVICE)) as load:
        back = run_cli(root, tmp_path / "b", "rollback", "--service", SERVICE, "--reason", "errors at 14:02")
        rolled = time.monotonic()
        time.sleep(0.3)
    assert back.returncode == 0, back.stderr
    assert platform.routes(SERVICE).active == "v2"
    assert not [f for f in load.failures if f.at > rolled]


def test_patch_back_fails_because_blue_is_gone(platform: LocalDriver, root: Path, tmp_path: Path) -> None:
    script = baseline(platform)
    script.run("v1", "v2")
    set_faults(platform, "v2", error_rate=1.0)
    try:
        script.patch_selector("v1")  # the script's rollback branch, or the on-call's
        raise AssertionError("the patch back should fail: v1 was deleted")
    except NotFound as exc:
        assert "v1" in str(exc)
    assert platform.routes(SERVICE).active == "v2"  # still on the failing version

    # rpops: after its own promotion blue is there to go back to; and when a version is really gone
    # it refuses to route to it (no outage) instead of pointing the service at nothing
    set_faults(platform, "v2", error_rate=0.0)
    code, err = promote(root, tmp_path / "a", "v3")
    assert code == 0, err
    platform.remove(SERVICE, "v2", delete=True)  # someone deletes the previous version by hand
    refused = run_cli(root, tmp_path / "b", "rollback", "--service", SERVICE, "--reason", "test")
    assert refused.returncode == 1 and "v2 of rp is gone" in refused.stderr
    assert platform.routes(SERVICE).active == "v3"


def test_a_killed_runner_leaves_a_half_switched_state(
    platform: LocalDriver, root: Path, tmp_path: Path
) -> None:
    run = baseline(platform, kill_after="patch").run("v1", "v2")
    assert run.steps[-1] == "patch"
    # green takes traffic, blue runs on, nothing says which is which or whether green was checked
    assert platform.routes(SERVICE).active == "v2"
    assert replicas(platform) == {"v1": 2, "v2": 2}
    assert not [k for k in platform.annotations(SERVICE) if k.startswith(PREFIX)]

    # rpops killed at the same point leaves a record; the rerun verifies and finishes
    platform.route(SERVICE, "v1")
    platform.remove(SERVICE, "v2")
    code, _ = promote(root, tmp_path / "a", "v3", "--owner", "job", RPOPS_BLUEGREEN_CRASH_AFTER="switch")
    assert code == 137
    state = platform.annotations(SERVICE)
    assert (state["bluegreen.phase"], state["bluegreen.previous"], state["bluegreen.preview"]) == (
        "switched",
        "v1",
        "v3",
    )
    code, err = promote(root, tmp_path / "b", "v3", "--owner", "job")
    assert code == 0, err
    assert platform.annotations(SERVICE)["bluegreen.phase"] == "complete"
    assert replicas(platform) == {"v1": 0, "v3": 2}


def test_concurrent_deploys(platform: LocalDriver, root: Path, tmp_path: Path) -> None:
    runs: dict[str, BaselineRun] = {}

    def go(green: str) -> None:
        runs[green] = baseline(LocalDriver(root=root, ready_interval=0.2)).run("v1", green)

    with Load(platform.service_url(SERVICE)) as load:
        threads = [threading.Thread(target=go, args=(v,)) for v in ("v2", "v3")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    active = platform.routes(SERVICE).active
    running = {v: n for v, n in replicas(platform).items() if n > 0}
    # both switched; one lost the race but its version runs on, unrouted; blue is gone
    assert all(r.switched_at is not None for r in runs.values())
    assert set(running) == {"v2", "v3"} and active in running
    assert "v1" not in replicas(platform)
    switched = min(r.switched_at or 0 for r in runs.values())
    assert {s.version for s in load.samples if s.at > switched + 0.05} >= {active}

    # rpops: one promotion at a time; the second is refused (or waits with --lock-wait)
    from bluegreen_support import start_cli

    a = start_cli(
        root, tmp_path / "a", "promote", "--service", SERVICE, "--version", "v4", *FAST, "--owner", "a"
    )
    b = start_cli(
        root, tmp_path / "b", "promote", "--service", SERVICE, "--version", "v5", *FAST, "--owner", "b"
    )
    a.communicate(timeout=60)
    b.communicate(timeout=60)
    assert sorted([a.returncode, b.returncode]) == [0, 1]
    won = "v4" if a.returncode == 0 else "v5"
    assert platform.routes(SERVICE).active == won
    lost = "v5" if won == "v4" else "v4"
    assert lost not in replicas(platform)  # the refused run deployed nothing: no orphan of its own


def test_capacity_drop_when_green_starts_below_the_hpa_count(
    platform: LocalDriver, root: Path, tmp_path: Path
) -> None:
    platform.scale(SERVICE, "v1", 3)  # the HPA (2..6) has scaled blue to 3 under load
    platform.set_autoscaling(SERVICE, AutoscalingBounds(2, 6))
    run = baseline(platform).run("v1", "v2")  # the manifest says 2
    assert run.deleted == "v1"
    assert platform.workload(SERVICE, "v2").replicas == 2  # a third of the capacity gone at the switch

    code, err = promote(root, tmp_path / "a", "v3")
    assert code == 0, err
    assert replicas(platform)["v3"] == 2  # blue (v2) ran 2: green matches it ...
    platform.scale(SERVICE, "v3", 4)  # ... and when the HPA has scaled blue to 4,
    code, err = promote(root, tmp_path / "b", "v4")
    assert code == 0, err
    assert replicas(platform)["v4"] == 4  # green starts at 4
