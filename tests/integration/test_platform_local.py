"""The local driver with real processes: reference workloads behind the proxy, on 127.0.0.1.

Every process a test starts is stopped by PID in the fixture's teardown (`driver.down()`), and
the teardown checks that none survived.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from rpops.core.errors import UsageError
from rpops.platform import (
    AutoscalingBounds,
    Conflict,
    DeadlineExceeded,
    NotFound,
    PlatformDriver,
    Resources,
    get_driver,
)
from rpops.platform.local import cli as platform_cmd
from rpops.platform.local.driver import LocalDriver

SERVICE = "rp"


def _all_pids(root: Path) -> list[int]:
    try:
        state = json.loads((root / "state.json").read_text())
    except FileNotFoundError:
        return []
    pids = []
    for svc in state["services"].values():
        if svc.get("proxy"):
            pids.append(svc["proxy"]["pid"])
        for ver in svc["versions"].values():
            pids += [i["pid"] for i in ver["instances"]]
    return pids


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    return tmp_path / "platform"


@pytest.fixture()
def driver(root: Path) -> Iterator[LocalDriver]:
    drv = LocalDriver(root=root, ready_interval=0.2, drain_timeout=5.0)
    started: set[int] = set()
    try:
        yield drv
    finally:
        started.update(_all_pids(root))
        drv.down()
        for pid in started:
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, (
                f"process {pid} survived down()"
            )


@pytest.fixture()
def running(driver: LocalDriver) -> LocalDriver:
    driver.up(SERVICE, "v1", replicas=2, port=0)
    return driver


class Load:
    """Requests in background threads over keep-alive connections; records every failure."""

    def __init__(self, url: str, threads: int = 2, path: str = "/ready") -> None:
        self.url = url + path
        self.ok = 0
        self.versions: list[str] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(threads)]

    def _loop(self) -> None:
        with httpx.Client(timeout=10.0, trust_env=False) as client:
            while not self._stop.is_set():
                try:
                    response = client.get(self.url)
                    with self._lock:
                        if response.status_code == 200:
                            self.ok += 1
                            self.versions.append(response.json().get("version", "?"))
                        else:
                            self.failures.append(f"HTTP {response.status_code}: {response.text[:100]}")
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.failures.append(f"{type(exc).__name__}: {exc}")

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        self.wait_for(20)
        return self

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        target = self.ok + count
        deadline = time.monotonic() + timeout
        while self.ok < target and time.monotonic() < deadline and not self.failures:
            time.sleep(0.005)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=15)


def test_local_driver_satisfies_the_protocol_and_is_the_default(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RPOPS_PLATFORM", raising=False)
    drv = get_driver(root=root)
    assert isinstance(drv, LocalDriver)
    assert isinstance(drv, PlatformDriver)
    monkeypatch.setenv("RPOPS_PLATFORM", "nonsense")
    with pytest.raises(UsageError, match="RPOPS_PLATFORM"):
        get_driver()


def test_up_status_down(driver: LocalDriver, root: Path) -> None:
    status = driver.up(SERVICE, "v1", replicas=2, port=0)
    assert status.active == "v1" and status.url and status.preview_url
    [v1] = status.versions
    assert len(v1.instances) == 2 and all(i.ready and i.alive for i in v1.instances)
    assert len({i.port for i in v1.instances}) == 2
    with httpx.Client(trust_env=False) as client:
        bodies = [client.get(f"{status.url}/ready").json() for _ in range(4)]
        assert {b["version"] for b in bodies} == {"v1"}
        for inst in v1.instances:  # each replica can be probed alone
            assert client.get(f"{inst.url}/ready").status_code == 200
    # both replicas took traffic: round robin
    served = driver.proxy_status(SERVICE)["served"]
    assert sorted(served) == sorted(f"127.0.0.1:{i.port}" for i in v1.instances)
    assert all(n >= 2 for n in served.values())
    state_mode = (root / "state.json").stat().st_mode & 0o777
    assert state_mode == 0o600  # it holds tokens

    pids = _all_pids(root)
    assert len(pids) == 3
    assert driver.down() == [SERVICE]
    assert driver.status() == []
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_up_is_idempotent_and_refuses_another_port(running: LocalDriver) -> None:
    before = running.status(SERVICE)[0]
    again = running.up(SERVICE, "v1", replicas=2, port=0)
    assert [i.pid for i in again.versions[0].instances] == [i.pid for i in before.versions[0].instances]
    assert again.proxy_pid == before.proxy_pid
    with pytest.raises(UsageError, match="already up on port"):
        running.up(SERVICE, "v1", replicas=2, port=1)  # its proxy listens on an ephemeral port


def test_scale_under_load_has_no_failed_requests(running: LocalDriver) -> None:
    url = running.service_url(SERVICE)
    with Load(url) as load:
        running.scale(SERVICE, "v1", 4)
        assert running.workload(SERVICE, "v1").available_replicas == 4
        load.wait_for(50)
        four = {f"127.0.0.1:{i.url.rsplit(':', 1)[1]}" for i in running.instances(SERVICE, "v1")}
        served_before = running.proxy_status(SERVICE)["served"]
        load.wait_for(80)
        served_after = running.proxy_status(SERVICE)["served"]
        assert all(served_after[a] > served_before.get(a, 0) for a in four)  # new replicas take traffic
        running.scale(SERVICE, "v1", 1)
        load.wait_for(50)
    assert load.failures == []
    assert load.ok > 150
    workload = running.workload(SERVICE, "v1")
    assert (workload.replicas, workload.ready_replicas, workload.available_replicas) == (1, 1, 1)
    assert len(running.proxy_status(SERVICE)["sets"]["active"]) == 1


def test_blue_green_route_switch_under_load(running: LocalDriver) -> None:
    running.deploy(SERVICE, "v2", replicas=2)
    ready = running.wait_ready(SERVICE, "v2", timeout=20)
    assert ready.ready and not ready.active
    running.route(SERVICE, "v2", preview=True)
    with httpx.Client(trust_env=False) as client:
        assert client.get(running.service_url(SERVICE, preview=True) + "/ready").json()["version"] == "v2"
        assert client.get(running.service_url(SERVICE) + "/ready").json()["version"] == "v1"
    with Load(running.service_url(SERVICE)) as load:
        load.wait_for(30)
        switch_at = len(load.versions)
        running.route(SERVICE, "v2")
        load.wait_for(60)
    assert load.failures == []
    after = load.versions[switch_at:]
    assert "v2" in after
    # once v2 answered on the kept-alive connections, v1 never did again: the switch is one step
    first_v2 = after.index("v2")
    assert set(after[first_v2 + 4 :]) == {"v2"}
    assert running.routes(SERVICE).active == "v2"
    assert running.routes(SERVICE).preview == "v2"
    versions = {w.version: w for w in running.versions(SERVICE)}
    assert versions["v2"].active and not versions["v1"].active
    with pytest.raises(Conflict, match="active route"):
        running.remove(SERVICE, "v2")
    running.remove(SERVICE, "v1")
    assert [w.version for w in running.versions(SERVICE)] == ["v2"]


def test_dead_instance_is_repaired_on_the_next_read(running: LocalDriver) -> None:
    victim = running.instances(SERVICE, "v1")[0]
    assert victim.pid is not None
    os.kill(victim.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while psutil.pid_exists(victim.pid) and psutil.Process(victim.pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    workload = running.workload(SERVICE, "v1")  # a read: drops the dead one, starts a replacement
    assert (workload.available_replicas, workload.ready_replicas) == (2, 2)
    instances = running.instances(SERVICE, "v1")
    assert victim.pid not in {i.pid for i in instances}
    sets = running.proxy_status(SERVICE)["sets"]["active"]
    assert sorted(sets) == sorted(i.url.removeprefix("http://") for i in instances)
    with httpx.Client(trust_env=False) as client:
        assert all(client.get(running.service_url(SERVICE) + "/ready").status_code == 200 for _ in range(4))


def test_dead_proxy_is_restarted_on_its_port(running: LocalDriver) -> None:
    before = running.status(SERVICE)[0]
    assert before.proxy_pid is not None
    os.kill(before.proxy_pid, signal.SIGKILL)
    time.sleep(0.05)
    after = running.status(SERVICE)[0]
    assert after.proxy_pid != before.proxy_pid and after.proxy_alive
    assert after.url == before.url
    with httpx.Client(trust_env=False) as client:
        assert client.get(f"{after.url}/ready").json()["version"] == "v1"


def test_a_proxy_with_stale_sets_is_healed_on_the_next_read(running: LocalDriver, root: Path) -> None:
    from rpops.platform.local.processes import ProxyControl

    proxy = json.loads((root / "state.json").read_text())["services"][SERVICE]["proxy"]
    wanted = running.proxy_status(SERVICE)["sets"]
    ProxyControl(proxy["control_port"], proxy["token"]).set_backends([], [])  # an interrupted command
    with httpx.Client(trust_env=False) as client:
        assert client.get(running.service_url(SERVICE) + "/ready").status_code == 200  # the read healed it
    assert running.proxy_status(SERVICE)["sets"] == wanted


def test_state_survives_a_fresh_driver(running: LocalDriver, root: Path) -> None:
    running.annotate(SERVICE, {"deployed-by": "test"}, version="v1")
    running.set_resources(SERVICE, "v1", Resources(cpu_request="250m", memory_limit="512Mi"))
    running.set_autoscaling(SERVICE, AutoscalingBounds(2, 6))
    pids = sorted(i.pid for i in running.instances(SERVICE, "v1") if i.pid)
    fresh = LocalDriver(root=root)
    workload = fresh.workload(SERVICE, "v1")
    assert sorted(i.pid for i in fresh.instances(SERVICE, "v1") if i.pid) == pids
    assert workload.annotations == {"deployed-by": "test"}
    assert workload.resources == Resources(cpu_request="250m", memory_limit="512Mi")
    assert workload.autoscaling == AutoscalingBounds(2, 6)
    assert workload.active and fresh.routes(SERVICE).active == "v1"
    fresh.annotate(SERVICE, {"deployed-by": None}, version="v1")
    assert running.annotations(SERVICE, "v1") == {}
    fresh.set_autoscaling(SERVICE, None)
    assert running.workload(SERVICE, "v1").autoscaling is None


def test_rolling_restart_keeps_serving(running: LocalDriver) -> None:
    old = {i.pid for i in running.instances(SERVICE, "v1")}
    with Load(running.service_url(SERVICE)) as load:
        running.restart(SERVICE, "v1")
        load.wait_for(30)
    assert load.failures == []
    new = {i.pid for i in running.instances(SERVICE, "v1")}
    assert len(new) == 2 and not (new & old)


def test_wait_ready_times_out_on_a_not_ready_version(running: LocalDriver) -> None:
    [inst] = running.instances(SERVICE, "v1")[:1]
    token = running.admin_token(SERVICE)
    with httpx.Client(trust_env=False) as client:
        response = client.post(
            f"{inst.url}/admin/faults", json={"not_ready": True}, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200
        with pytest.raises(DeadlineExceeded, match="1/2 ready"):
            running.wait_ready(SERVICE, "v1", timeout=0.3)
        # the proxy takes the not-ready replica out of rotation (3 failed probes, 0.2 s apart)
        deadline = time.monotonic() + 5
        port = inst.url.rsplit(":", 1)[1]
        while running.proxy_status(SERVICE)["ready"].get(f"127.0.0.1:{port}", True):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert all(client.get(running.service_url(SERVICE) + "/ready").status_code == 200 for _ in range(6))


def test_bad_input_changes_nothing(running: LocalDriver, root: Path) -> None:
    before = (root / "state.json").read_text()
    with pytest.raises(UsageError, match="replicas -1"):
        running.scale(SERVICE, "v1", -1)
    with pytest.raises(UsageError, match="version 'V 1'"):
        running.deploy(SERVICE, "V 1")
    with pytest.raises(UsageError, match="service name"):
        running.scale("Bad_Name", "v1", 1)
    with pytest.raises(UsageError, match="cpu request"):
        Resources(cpu_request="2", cpu_limit="500m")
    with pytest.raises(UsageError, match="min replicas"):
        AutoscalingBounds(0, 3)
    with pytest.raises(UsageError, match="annotation key"):
        running.annotate(SERVICE, {"bad key": "x"})
    with pytest.raises(NotFound, match="version rp/v9"):
        running.scale(SERVICE, "v9", 1)
    with pytest.raises(NotFound, match="service nope"):
        running.routes("nope")
    with pytest.raises(NotFound, match="version rp/v9"):
        running.route(SERVICE, "v9")
    assert json.loads((root / "state.json").read_text()) == json.loads(before)


def test_up_refuses_a_port_in_use(driver: LocalDriver, root: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(UsageError, match=f"--port {port} is in use"):
            driver.up(SERVICE, "v1", replicas=1, port=port)
    assert _all_pids(root) == []


def test_platform_command_up_status_down(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="rpops local platform")
    platform_cmd.configure(parser)
    try:
        args = parser.parse_args(
            ["up", "--service", SERVICE, "--replicas", "1", "--port", "0", "--root", str(root)]
        )
        assert platform_cmd.run(args) == 0
        out = capsys.readouterr().out
        url = out.splitlines()[0].split(": ", 1)[1]
        assert url.startswith("http://127.0.0.1:")
        with httpx.Client(trust_env=False) as client:
            assert client.get(f"{url}/ready").json()["version"] == "v1"

        assert platform_cmd.run(parser.parse_args(["status", "--output", "json", "--root", str(root)])) == 0
        [status] = json.loads(capsys.readouterr().out)
        assert status["service"] == SERVICE and status["active"] == "v1" and status["url"] == url
        [ver] = status["versions"]
        assert len(ver["instances"]) == 1 and ver["instances"][0]["ready"]

        assert platform_cmd.run(parser.parse_args(["status", "--root", str(root)])) == 0
        table = capsys.readouterr().out
        assert f"service {SERVICE}: {url}" in table and "1/1 ready" in table
    finally:
        assert platform_cmd.run(parser.parse_args(["down", "--root", str(root)])) == 0
    assert capsys.readouterr().out.strip() == f"stopped: {SERVICE}"
    assert platform_cmd.run(parser.parse_args(["status", "--root", str(root)])) == 0
    assert "no services running" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        parser.parse_args(["up", "--replicas", "many"])
    with pytest.raises(UsageError, match="--replicas -1 is invalid"):
        platform_cmd.run(parser.parse_args(["up", "--replicas", "-1", "--root", str(root)]))
    assert _all_pids(root) == []
