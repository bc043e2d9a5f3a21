"""The local platform's proxy process, against small real HTTP backends on 127.0.0.1.

The backends are stdlib HTTP/1.1 servers in this process, each answering with its own name,
so every test can see which backend served a request. The proxy runs as its own process
(`python -m rpops.platform.local.proxy`) and is stopped by PID at the end of each test.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

TOKEN = "proxy-test-token"


class Backend:
    def __init__(self, name: str) -> None:
        self.name = name
        self.hits: list[str] = []
        self.ready = True
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                # head and body go out in two writes: without NODELAY, Nagle waits for a delayed ACK
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _send(self, code: int, body: bytes, extra: dict[str, str] | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Backend", backend.name)
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        data += self.rfile.read(size + 2)[:size]  # the chunk and its CRLF
                        if size == 0:  # no trailers in these tests: the CRLF read above ends the body
                            return data
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path != "/ready":  # the proxy's readiness probes are not traffic
                    backend.hits.append(f"{self.command} {self.path}")
                if self.path == "/ready":
                    self._send(200 if backend.ready else 503, b"ready" if backend.ready else b"not ready")
                elif self.path.startswith("/slow"):
                    time.sleep(float(self.path.split("=")[1]))
                    self._send(200, backend.name.encode())
                elif self.path == "/chunked":
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.send_header("X-Backend", backend.name)
                    self.end_headers()
                    for part in (b"alpha-", b"beta-" * 3000, b"gamma"):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    self.wfile.write(b"0\r\n\r\n")
                elif self.path == "/until-close":
                    self.send_response(200)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(b"no length, ends at close")
                    self.close_connection = True
                elif self.path == "/drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                else:
                    self._send(200, backend.name.encode())

            do_HEAD = do_GET  # noqa: N815

            def do_POST(self) -> None:  # noqa: N802
                body = self._body()
                backend.hits.append(f"POST {self.path}")
                if self.path == "/drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self._send(200, body, {"X-Length": str(len(body))})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.addr = f"127.0.0.1:{self.port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Proxy:
    def __init__(self, tmp: Path, ready_interval: float = 0.05) -> None:
        info = tmp / "proxy.json"
        self.log = open(tmp / "proxy.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rpops.platform.local.proxy",
                "--info-file",
                str(info),
                "--ready-interval",
                str(ready_interval),
            ],
            env={**os.environ, "RPOPS_PROXY_TOKEN": TOKEN},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while not info.exists():
            assert self.process.poll() is None, (tmp / "proxy.log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        data = json.loads(info.read_text())
        self.url = f"http://127.0.0.1:{data['port']}"
        self.preview_url = f"http://127.0.0.1:{data['preview_port']}"
        self.port = data["port"]
        self.control = f"http://127.0.0.1:{data['control_port']}"
        self.http = httpx.Client(trust_env=False, timeout=10)

    def set(self, active: list[Backend], preview: list[Backend] | None = None) -> dict:
        response = self.http.put(
            f"{self.control}/backends",
            headers={"Authorization": f"Bearer {TOKEN}"},
            json={"active": [b.addr for b in active], "preview": [b.addr for b in preview or []]},
        )
        assert response.status_code == 200, response.text
        return response.json()

    def status(self) -> dict:
        return self.http.get(f"{self.control}/status", headers={"Authorization": f"Bearer {TOKEN}"}).json()

    def stop(self) -> int:
        self.http.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.log.close()
        return self.process.returncode


@pytest.fixture()
def backends() -> Iterator[Callable[[str], Backend]]:
    made: list[Backend] = []

    def make(name: str) -> Backend:
        made.append(Backend(name))
        return made[-1]

    yield make
    for b in made:
        b.stop()


@pytest.fixture()
def proxy(tmp_path: Path) -> Iterator[Proxy]:
    p = Proxy(tmp_path)
    yield p
    p.stop()


def raw(port: int, data: bytes, *, read_until_close: bool = True, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while read_until_close:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def test_control_api_needs_the_token(proxy: Proxy) -> None:
    assert proxy.http.get(f"{proxy.control}/status").status_code == 401
    assert (
        proxy.http.get(f"{proxy.control}/status", headers={"Authorization": "Bearer nope"}).status_code == 401
    )
    bad = proxy.http.put(
        f"{proxy.control}/backends",
        headers={"Authorization": f"Bearer {TOKEN}"},
        json={"active": ["10.0.0.1:80"]},
    )
    assert bad.status_code == 400 and "127.0.0.1" in bad.json()["error"]
    assert proxy.status()["sets"] == {"active": [], "preview": []}


def test_no_backend_is_503(proxy: Proxy) -> None:
    response = proxy.http.get(f"{proxy.url}/anything")
    assert response.status_code == 503 and b"no ready backend" in response.content


def test_round_robin_and_atomic_switch_on_a_kept_alive_connection(proxy: Proxy, backends) -> None:  # noqa: ANN001
    a, b, c = backends("a"), backends("b"), backends("c")
    proxy.set([a, b], preview=[c])
    with httpx.Client(trust_env=False) as client:  # one keep-alive connection
        names = [client.get(f"{proxy.url}/x").text for _ in range(6)]
        assert sorted(names) == ["a", "a", "a", "b", "b", "b"] and names[0] != names[1]
        assert client.get(f"{proxy.preview_url}/x").text == "c"
        proxy.set([c], preview=[a])
        assert {client.get(f"{proxy.url}/x").text for _ in range(4)} == {"c"}
        assert client.get(f"{proxy.preview_url}/x").text == "a"
    assert proxy.status()["served"][c.addr] == 5


def test_in_flight_request_finishes_on_its_old_backend(proxy: Proxy, backends) -> None:  # noqa: ANN001
    old, new = backends("old"), backends("new")
    proxy.set([old])
    result: list[str] = []
    slow = threading.Thread(
        target=lambda: result.append(httpx.get(f"{proxy.url}/slow?s=0.5", trust_env=False).text)
    )
    slow.start()
    deadline = time.monotonic() + 5
    while proxy.status()["inflight"].get(old.addr, 0) == 0:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proxy.set([new])
    assert proxy.status()["inflight"] == {old.addr: 1, new.addr: 0}
    assert httpx.get(f"{proxy.url}/x", trust_env=False).text == "new"
    slow.join()
    assert result == ["old"]
    assert old.addr not in proxy.status()["inflight"]  # drained and forgotten


def test_bodies_and_framing_pass_through(proxy: Proxy, backends) -> None:  # noqa: ANN001
    proxy.set([backends("a")])
    with httpx.Client(trust_env=False) as client:
        big = os.urandom(1_000_000)
        echoed = client.post(f"{proxy.url}/echo", content=big)
        assert echoed.content == big and echoed.headers["x-length"] == str(len(big))
        chunked = client.get(f"{proxy.url}/chunked")
        assert chunked.content == b"alpha-" + b"beta-" * 3000 + b"gamma"
        assert client.head(f"{proxy.url}/x").headers["content-length"] == "1"
        assert client.get(f"{proxy.url}/x").text == "a"  # the connection survived a HEAD
    assert httpx.get(f"{proxy.url}/until-close", trust_env=False).text == "no length, ends at close"


def test_chunked_request_expect_continue_pipelining_and_http10(proxy: Proxy, backends) -> None:  # noqa: ANN001
    proxy.set([backends("a")])
    body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    out = raw(
        proxy.port,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + body,
    )
    assert out.startswith(b"HTTP/1.1 200") and out.endswith(b"hello world")

    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"ping")
        answer = b""
        while not answer.endswith(b"ping") and len(answer) < 1000:
            answer += sock.recv(1000)  # the head and the body may come in separate segments
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"\r\n\r\nping")

    # more pipelined requests than the proxy queues per connection: it pauses reading, then resumes
    pipelined = b"".join(b"GET /n%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(100))
    out = raw(proxy.port, pipelined + b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert out.count(b"HTTP/1.1 200") == 101

    out = raw(proxy.port, b"GET /old HTTP/1.0\r\nHost: x\r\n\r\n")  # returns: the proxy closed it
    assert out.startswith(b"HTTP/1.") and out.endswith(b"a")


def test_failures_retry_idempotent_requests_only(proxy: Proxy, backends) -> None:  # noqa: ANN001
    a = backends("a")
    with socket.socket() as dead:
        dead.bind(("127.0.0.1", 0))
        dead_addr = f"127.0.0.1:{dead.getsockname()[1]}"  # closed below: nothing listens there
    response = proxy.http.put(
        f"{proxy.control}/backends",
        headers={"Authorization": f"Bearer {TOKEN}"},
        json={"active": [dead_addr, a.addr]},
    )
    assert response.status_code == 200
    with httpx.Client(trust_env=False) as client:
        assert [client.get(f"{proxy.url}/x").text for _ in range(4)] == ["a"] * 4  # refused: the next one

    b, c = backends("b"), backends("c")  # fresh backends: no pooled connections to them yet
    proxy.set([b, c])
    assert httpx.get(f"{proxy.url}/drop", trust_env=False).status_code == 502
    assert (b.hits, c.hits) == (["GET /drop"], ["GET /drop"])  # a GET is retried on the next backend

    d, e = backends("d"), backends("e")
    proxy.set([d, e])
    assert httpx.post(f"{proxy.url}/drop", content=b"x", trust_env=False).status_code == 502
    assert d.hits + e.hits == ["POST /drop"]  # a POST is never sent twice


def test_not_ready_backend_leaves_rotation(proxy: Proxy, backends) -> None:  # noqa: ANN001
    a, b = backends("a"), backends("b")
    proxy.set([a, b])
    b.ready = False
    deadline = time.monotonic() + 5
    while proxy.status()["ready"][b.addr]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    with httpx.Client(trust_env=False) as client:
        assert {client.get(f"{proxy.url}/x").text for _ in range(6)} == {"a"}
        b.ready = True
        while not proxy.status()["ready"][b.addr]:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert {client.get(f"{proxy.url}/x").text for _ in range(6)} == {"a", "b"}


def test_sigterm_lets_open_requests_finish(proxy: Proxy, backends) -> None:  # noqa: ANN001
    proxy.set([backends("a")])
    result: list[int] = []
    slow = threading.Thread(
        target=lambda: result.append(httpx.get(f"{proxy.url}/slow?s=0.4", trust_env=False).status_code)
    )
    slow.start()
    deadline = time.monotonic() + 5
    while not any(proxy.status()["inflight"].values()):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proxy.process.send_signal(signal.SIGTERM)
    slow.join()
    assert result == [200]
    assert proxy.process.wait(5) == 0


def test_proxy_needs_a_token() -> None:
    env = {k: v for k, v in os.environ.items() if k != "RPOPS_PROXY_TOKEN"}
    done = subprocess.run(
        [sys.executable, "-m", "rpops.platform.local.proxy"], env=env, capture_output=True, text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "RPOPS_PROXY_TOKEN" in done.stderr
