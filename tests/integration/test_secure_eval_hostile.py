"""`POST /api/secure-eval` under attack, on a real workload process on 127.0.0.1: expressions
that run as one long C-level operation, answers that would be huge, texts that would show
internals, nesting bombs. Every refusal is a 4xx within 5 s naming the limit, no answer is over
1 MiB, and /health keeps answering within 2 s meanwhile."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from rpops.workload.testing import RunningWorkload, start_workload

TOKEN = "hostile-token"
MIB = 1024 * 1024
REFUSE_WITHIN_S = 5.0
HEALTH_WITHIN_S = 2.0

FREEZERS = [
    "[[0]*60000]*60000 == [[0]*60000]*60000",
    "sorted([[0]*60000]*60000)",
    "([[0]*60000]*60000).count([0]*60000)",
    "((0,)*60000,)*60000 < ((0,)*60000,)*60000",
    "[[0]*60000]*60000 in [[[0]*60000]*60000]",
    "max([[0]*60000]*60000)",
]
HUGE = ["[[0]*20000]*1000", "['a'*100000]*100000", "[list(range(1000))]*100000",
        "{str(i): 'x'*1000 for i in range(2000)}"]
LEAKS = [
    "str(max)", "'%s' % (max,)", "f'{sorted!r}'", "str('s'.upper)", "str(zip([1],[2]))", "{}[max]",
    "f'{max}'", "f'{max:>30}'", "'%(a)s' % {'a': min}", "str([sorted])", "str({'k': enumerate([])})",
    "'a'.replace(1)", "'x'.replace()", "[1][max]", "max", "zip([1])", "'s'.upper", "{}.get",
    "sorted([max, min])", "str(x for x in [1])", "str(dict)", "(lambda: 0)",
]
# What Python's texts of non-data objects look like: an address, a closure, a builtin's name.
INTERNALS = re.compile(r"0x[0-9a-fA-F]{4,}|<locals>|built-in|object at|<function|<bound|"
                       r"builtin_function_or_method|method-wrapper|rpops\.|_guard|_charged|\bbind\b")


@pytest.fixture(scope="module")
def workload() -> Iterator[RunningWorkload]:
    with start_workload(version="v-hostile", admin_token=TOKEN) as running:
        yield running


class HealthWatch:
    """Polls /health from a thread while a test runs; records the slowest answer."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.slowest = 0.0
        self.failures: list[str] = []
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=10.0, trust_env=False) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    status = client.get(f"{self.url}/health").status_code
                    if status != 200:
                        self.failures.append(f"HTTP {status}")
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                self.slowest = max(self.slowest, time.monotonic() - started)
                self.count += 1
                self._stop.wait(0.05)

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)
        assert not self.failures, self.failures
        assert self.count >= 1
        assert self.slowest < HEALTH_WITHIN_S, f"/health took {self.slowest:.2f} s"


def post(workload: RunningWorkload, expression: str, **extra: object) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        response = client.post(f"{workload.url}/api/secure-eval", json={"expression": expression, **extra})
    return response, time.monotonic() - started


def assert_refused(response: httpx.Response, elapsed: float, limit: str) -> None:
    assert 400 <= response.status_code < 500, response.text
    assert elapsed < REFUSE_WITHIN_S, f"refused after {elapsed:.2f} s"
    assert len(response.content) <= MIB
    assert limit in response.json()["error"], response.text


@pytest.mark.parametrize("expression", FREEZERS)
def test_one_long_c_operation_is_stopped_and_health_stays_up(workload: RunningWorkload,
                                                             expression: str) -> None:
    with HealthWatch(workload.url):
        response, elapsed = post(workload, expression)
    assert_refused(response, elapsed, "timeout_s 0.5 s")
    assert post(workload, "1 + 1")[0].json() == {"result": 2}  # a fresh worker took its place


def test_many_freezers_at_once(workload: RunningWorkload) -> None:
    with HealthWatch(workload.url), ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda e: post(workload, e), FREEZERS))
    for response, elapsed in results:
        assert response.status_code in (400, 429), response.text
        assert elapsed < REFUSE_WITHIN_S, f"answered after {elapsed:.2f} s"
        if response.status_code == 429:
            assert "busy" in response.json()["error"] and response.headers["Retry-After"] == "1"
        else:
            assert "timeout_s" in response.json()["error"]
    # the pool recovers: fresh workers answer again
    deadline = time.monotonic() + 30
    while post(workload, "2 * 21")[0].status_code != 200:
        assert time.monotonic() < deadline, "the evaluators did not come back"
        time.sleep(0.2)


@pytest.mark.parametrize("expression", HUGE)
def test_a_huge_answer_is_refused_at_1_mib(workload: RunningWorkload, expression: str) -> None:
    with HealthWatch(workload.url):
        response, elapsed = post(workload, expression)
    assert_refused(response, elapsed, "larger than 1,048,576 bytes")


def test_a_large_answer_under_the_limit_is_sent(workload: RunningWorkload) -> None:
    response, _ = post(workload, "list(range(100000))")
    assert response.status_code == 200 and len(response.content) <= MIB
    assert response.json()["result"][-1] == 99999


@pytest.mark.parametrize("expression", LEAKS)
def test_no_answer_shows_an_address_or_an_internal_name(workload: RunningWorkload, expression: str) -> None:
    response, _ = post(workload, expression)
    assert response.status_code == 400, response.text
    assert not INTERNALS.search(response.text), response.text


def test_refusals_keep_their_messages(workload: RunningWorkload) -> None:
    cases = {
        "9 ** 9 ** 9": "max_exponent",
        "'a' * 2**34": "max_size",
        "[x for x in range(10**7)]": "max_iterations",
        "(lambda f, n: f(f, n))(lambda f, n: n and f(f, n-1) + f(f, n-1), 40)": "timeout_s",
        "{1, 2}": "cannot be returned as JSON",
        "1e308 * 10": "cannot be returned as JSON",
    }
    for expression, limit in cases.items():
        response, elapsed = post(workload, expression)
        assert_refused(response, elapsed, limit)


@pytest.mark.parametrize("path", ["/api/secure-eval", "/admin/faults"])
@pytest.mark.parametrize("body", [b"[" * 30000, b'{"a":' * 12000, b'{"expression": "1", "context": {"a":'
                                  + b"[" * 200 + b"]" * 200 + b"}}"])
def test_a_nesting_bomb_is_400(workload: RunningWorkload, path: str, body: bytes) -> None:
    with httpx.Client(timeout=10.0, trust_env=False) as client:
        response = client.post(f"{workload.url}{path}", content=body, headers={
            "content-type": "application/json", "authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 400, response.text
    assert "nested too deeply" in response.json()["error"]
    assert "Traceback" not in workload.logs()


def test_the_evaluators_run_under_hard_limits(workload: RunningWorkload) -> None:
    import psutil

    def started() -> list[psutil.Process]:  # the limits are set once a worker has started
        try:
            children = psutil.Process(workload.pid).children()
            limited = children and all(c.rlimit(psutil.RLIMIT_FSIZE)[0] == 0 for c in children)
        except psutil.Error:  # a worker being replaced
            return []
        return children if limited else []

    deadline = time.monotonic() + 30
    while not (children := started()):
        assert time.monotonic() < deadline, "the evaluators did not start"
        time.sleep(0.1)
    for child in children:
        assert "RPOPS" not in " ".join(child.environ())  # no admin token, no settings
        limits = [child.rlimit(which) for which in (psutil.RLIMIT_AS, psutil.RLIMIT_FSIZE, psutil.RLIMIT_CPU)]
        (as_soft, _), (fsize, _), (cpu_soft, _) = limits
        assert 0 < as_soft < 4 * 1024**3, limits  # bounded address space
        assert fsize == 0, limits  # writes no file
        assert cpu_soft != psutil.RLIM_INFINITY, limits  # bounded CPU time


def test_half_a_request_is_dropped_by_the_workload(workload: RunningWorkload) -> None:
    import socket

    from rpops.core.read_deadlines import HEADER_S

    socks = [socket.create_connection(("127.0.0.1", workload.port), timeout=30) for _ in range(5)]
    for sock in socks[:3]:
        sock.sendall(b"POST /api/secure-eval HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
    try:
        with HealthWatch(workload.url):
            for sock in socks:  # recv returns b"" (or resets) once the server closes it
                sock.settimeout(HEADER_S + 20)
                try:
                    assert sock.recv(1024) == b""
                except ConnectionResetError:
                    pass
    finally:
        for sock in socks:
            sock.close()


def test_stopping_the_workload_leaves_no_evaluation_process() -> None:
    import psutil

    with start_workload(version="v-stop") as running:
        assert post(running, "1")[0].status_code == 200
        children = psutil.Process(running.pid).children()
        assert children
    deadline = time.monotonic() + 10
    while any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children):
        assert time.monotonic() < deadline, "an evaluation process outlived the workload"
        time.sleep(0.1)
