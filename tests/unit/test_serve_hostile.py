"""`rpops local serve` against hostile clients, as a real process on 127.0.0.1: half-sent
requests are dropped at the read deadline, bodies must be JSON (415), nesting bombs are a 400
(no traceback), and bad numbers on the command line exit 2."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT / "tests" / "unit"))
from fixtures import RunningServe, start_serve, wait_until  # noqa: E402
from test_events_bindings import BINDING  # noqa: E402
from test_events_serve import write_manifests  # noqa: E402

READ_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServe]:
    tmp = tmp_path_factory.mktemp("hostile")
    manifests = write_manifests(tmp / "manifests", BINDING)
    running = start_serve(manifests, tmp / "serve", extra=("--read-timeout", str(READ_TIMEOUT)))
    try:
        yield running
    finally:
        running.stop()


def _closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed `sock` (EOF or reset); False while it is still open."""
    sock.setblocking(False)
    try:
        data = sock.recv(65536)
    except BlockingIOError:
        return False
    except ConnectionError:
        return True
    # a 4xx answer before closing is fine too; what matters is that the connection ends
    return data == b"" or _closed_after(sock)


def _closed_after(sock: socket.socket) -> bool:
    try:
        return sock.recv(65536) == b""
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


def _hold(serve: RunningServe, first_bytes: bytes, count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", serve.port), timeout=5)
        if first_bytes:
            sock.sendall(first_bytes)
        socks.append(sock)
    return socks


def _assert_all_dropped(serve: RunningServe, socks: list[socket.socket]) -> None:
    try:
        # READ_TIMEOUT plus generous slack for a loaded machine; the bug held them for ever
        wait_until(lambda: all(_closed_by_server(s) for s in socks), 20, "half-sent requests still open", 0.1)
        # and the server still answers everyone else
        assert serve.post_event({"who": "after"}, discriminator="test").status_code == 200
    finally:
        for s in socks:
            s.close()


def test_half_a_header_is_dropped(serve: RunningServe) -> None:
    half = b"POST /api/v1/events/argo/test HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthori"
    _assert_all_dropped(serve, _hold(serve, half, 20))


def test_a_connection_that_sends_nothing_is_dropped(serve: RunningServe) -> None:
    _assert_all_dropped(serve, _hold(serve, b"", 5))


def test_half_a_body_is_dropped(serve: RunningServe) -> None:
    head = (
        f"POST /api/v1/events/argo/test HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {serve.token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: 100\r\n\r\n{{\"who\": "
    ).encode()
    _assert_all_dropped(serve, _hold(serve, head, 20))


def test_a_body_sent_in_drips_is_dropped(serve: RunningServe) -> None:
    head = (
        f"POST /api/v1/events/argo/test HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {serve.token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: 1000\r\n\r\n"
    ).encode()
    (sock,) = _hold(serve, head, 1)
    started = time.monotonic()
    try:
        while time.monotonic() - started < 20:
            try:
                sock.sendall(b" ")
            except OSError:
                break  # closed by the server
            if _closed_by_server(sock):
                break
            sock.setblocking(True)
            time.sleep(0.2)
        else:
            pytest.fail("a dripping body held its connection for 20 s")
    finally:
        sock.close()


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_a_body_that_is_not_declared_json_is_415(serve: RunningServe, content_type: str | None) -> None:
    before = len(serve.workflows())
    headers = {"Authorization": f"Bearer {serve.token}"}
    if content_type:
        headers["Content-Type"] = content_type
    response = serve._client.post(f"{serve.url}/api/v1/events/argo/test", content=b"{}", headers=headers)
    assert response.status_code == 415, response.text
    assert "Content-Type: application/json" in response.json()["message"]
    assert len(serve.workflows()) == before


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "Application/JSON"])
def test_json_content_types_are_accepted(serve: RunningServe, content_type: str) -> None:
    response = serve.post_event({"nobody": 1}, discriminator="test", headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("body", [b"[" * 30000, b'{"a":' * 30000, b"[" * 101 + b"]" * 101])
def test_a_nesting_bomb_is_400_without_a_traceback(serve: RunningServe, body: bytes) -> None:
    response = serve.post_event(body, discriminator="test")
    assert response.status_code == 400, response.text
    assert "nested too deeply" in response.json()["message"]
    assert "Traceback" not in serve.logs()


@pytest.mark.parametrize(("flag", "value"), [("--dedup-window", "nan"), ("--dedup-window", "inf"),
                                             ("--read-timeout", "nan"), ("--read-timeout", "0"),
                                             ("--read-timeout", "-inf")])
def test_numbers_that_are_not_finite_exit_2(tmp_path: Path, flag: str, value: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "rpops.local.server.serve", "--port", "0", "--token-file", str(tmp_path / "t"),
         "--manifests", str(ROOT / "manifests" / "argo"), f"{flag}={value}"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert done.returncode == 2, done.stderr
    assert flag in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "t").exists()  # nothing changed


def test_with_the_default_deadline_nothing_half_sent_is_open_after_8_s(tmp_path: Path) -> None:
    """The attack as first seen: 20 half headers and 20 half bodies, all still open after 8 s."""
    manifests = write_manifests(tmp_path / "manifests", BINDING)
    serve = start_serve(manifests, tmp_path / "serve")
    try:
        half_header = b"POST /api/v1/events/argo/test HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthori"
        half_body = (
            f"POST /api/v1/events/argo/test HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {serve.token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: 100\r\n\r\n{{\"who\": "
        ).encode()
        socks = _hold(serve, half_header, 20) + _hold(serve, half_body, 20)
        started = time.monotonic()
        try:
            wait_until(lambda: all(_closed_by_server(s) for s in socks), 8, "still open after 8 s", 0.1)
            assert time.monotonic() - started < 8
        finally:
            for s in socks:
                s.close()
        assert "Traceback" not in serve.logs()
    finally:
        serve.stop()


def test_endless_headers_are_cut_off_at_64_kib(serve: RunningServe) -> None:
    sock = socket.create_connection(("127.0.0.1", serve.port), timeout=10)
    sent = 0
    try:
        sock.sendall(b"GET /api/v1/workflows/argo HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        line = b"X-Filler: " + b"a" * 1000 + b"\r\n"
        try:
            while sent < 64 * 1024 * 1024:
                sock.sendall(line * 64)
                sent += len(line) * 64
        except OSError:
            pass  # closed by the server
        assert sent < 16 * 1024 * 1024, "the server kept reading headers"
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except OSError:
            pass
        assert answer == b"" or answer.startswith(b"HTTP/1.1 431")
    finally:
        sock.close()
    assert serve._client.get(f"{serve.url}/api/v1/workflows/argo",
                             headers={"Authorization": f"Bearer {serve.token}"}).status_code == 200


def test_nan_in_a_body_is_400(serve: RunningServe) -> None:
    response = serve.post_event(b'{"who": NaN}', discriminator="test")
    assert response.status_code == 400 and "not JSON" in response.json()["message"]
