"""rpops.clients.probe against real sockets on 127.0.0.1: keep-alive, retries, timeouts, percentiles."""

from __future__ import annotations

import asyncio
import math
import socket
import statistics

import pytest
from pytest_httpserver import HTTPServer
from rpops.clients.probe import Prober, ProbeResult, backoff_delay, percentile


class KeepAliveServer:
    """A tiny HTTP/1.1 server that keeps connections open and counts them."""

    def __init__(self, delay_s: float = 0.0, body: bytes = b'{"status": "healthy"}') -> None:
        self.delay_s = delay_s
        self.body = body
        self.connections = 0
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if not head:
                    return
                self.requests += 1
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                self.in_flight -= 1
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(self.body), self.body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def start(self, sock: socket.socket | None = None) -> str:
        if sock is None:
            self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        else:
            self.server = await asyncio.start_server(self._handle, sock=sock)
        self.port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_one_connection_is_reused_for_sequential_probes() -> None:
    async def scenario() -> tuple[int, int, list[int | None]]:
        server = KeepAliveServer()
        url = await server.start()
        async with Prober(timeout=2.0) as prober:
            results = [await prober.get(f"{url}/health") for _ in range(5)]
        await server.stop()
        return server.connections, server.requests, [r.status for r in results]

    connections, requests, statuses = asyncio.run(scenario())
    assert statuses == [200] * 5
    assert requests == 5
    assert connections == 1


def test_probes_run_concurrently_over_the_shared_client() -> None:
    async def scenario() -> KeepAliveServer:
        server = KeepAliveServer(delay_s=0.3)
        url = await server.start()
        async with Prober(timeout=5.0, max_concurrency=8) as prober:
            results = await asyncio.gather(*(prober.get(f"{url}/x{i}") for i in range(10)))
        await server.stop()
        assert all(r.ok for r in results)
        return server

    server = asyncio.run(scenario())
    assert server.requests == 10
    # All requests were in flight together, up to the concurrency bound.
    assert server.max_in_flight == 8


def test_connection_refused_is_retried_then_reported_unreachable() -> None:
    port = closed_port()

    async def scenario() -> ProbeResult:
        async with Prober(timeout=1.0, retries=3, backoff_s=0.01) as prober:
            return await prober.get(f"http://127.0.0.1:{port}/health")

    result = asyncio.run(scenario())
    assert result.status is None
    assert result.error == "unreachable"
    assert result.attempts == 4
    assert not result.answered and not result.ok
    assert result.describe().startswith("unreachable")


def test_retry_succeeds_when_the_server_comes_up() -> None:
    # The port is bound but not listening: connections are refused until listen() is called.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]

    async def scenario() -> ProbeResult:
        server = KeepAliveServer()

        async def start_later() -> None:
            await asyncio.sleep(0.15)
            await server.start(sock)

        async with Prober(timeout=1.0, retries=6, backoff_s=0.05, max_backoff_s=0.1) as prober:
            _, result = await asyncio.gather(start_later(), prober.get(f"http://127.0.0.1:{port}/health"))
        await server.stop()
        return result

    result = asyncio.run(scenario())
    assert result.status == 200
    assert result.attempts > 1


def test_http_error_status_is_never_retried(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/health").respond_with_data("boom", status=500)

    async def scenario() -> ProbeResult:
        async with Prober(timeout=1.0, retries=3, backoff_s=0.01) as prober:
            return await prober.get(httpserver.url_for("/health"))

    result = asyncio.run(scenario())
    assert result.status == 500
    assert result.attempts == 1
    assert result.answered and not result.ok
    assert result.describe() == "HTTP 500"
    assert len(httpserver.log) == 1


def test_slow_answer_times_out_without_retry() -> None:
    async def scenario() -> tuple[ProbeResult, int]:
        server = KeepAliveServer(delay_s=1.0)
        url = await server.start()
        async with Prober(timeout=0.2, retries=3, backoff_s=0.01) as prober:
            result = await prober.get(f"{url}/health")
        await server.stop()
        return result, server.requests

    result, requests = asyncio.run(scenario())
    assert result.error == "timeout"
    assert result.status is None
    assert result.attempts == 1
    assert requests == 1


def test_json_body_and_malformed_json(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/good").respond_with_json({"status": "healthy"})
    httpserver.expect_request("/bad").respond_with_data('{"status": "heal', content_type="application/json")

    async def scenario() -> tuple[ProbeResult, ProbeResult]:
        async with Prober(timeout=1.0) as prober:
            return await asyncio.gather(prober.get(httpserver.url_for("/good")),
                                        prober.get(httpserver.url_for("/bad")))

    good, bad = asyncio.run(scenario())
    assert good.parse_json() == ({"status": "healthy"}, None)
    value, error = bad.parse_json()
    assert value is None and error is not None and error.startswith("malformed JSON")


def test_post_json_sends_the_payload(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/secure-eval", method="POST",
                              json={"expression": "1 + 1"}).respond_with_json({"result": 2})

    async def scenario() -> ProbeResult:
        async with Prober(timeout=1.0) as prober:
            return await prober.post_json(httpserver.url_for("/api/secure-eval"), {"expression": "1 + 1"})

    result = asyncio.run(scenario())
    assert result.status == 200
    assert result.parse_json() == ({"result": 2}, None)


def test_oversized_body_is_truncated_not_held(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/big").respond_with_data("x" * 50_000)

    async def scenario() -> ProbeResult:
        async with Prober(timeout=1.0, max_body_bytes=1000) as prober:
            return await prober.get(httpserver.url_for("/big"))

    result = asyncio.run(scenario())
    assert result.truncated
    assert len(result.body) == 1000
    assert result.parse_json() == (None, "body too large to parse")


def test_prober_must_be_entered() -> None:
    with pytest.raises(RuntimeError, match="async with"):
        asyncio.run(Prober().get("http://127.0.0.1:1/"))


@pytest.mark.parametrize("kwargs", [{"timeout": 0}, {"retries": -1}])
def test_prober_refuses_bad_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Prober(**kwargs)  # type: ignore[arg-type]


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_delay(n, 0.1, 0.5) for n in range(1, 6)] == [0.1, 0.2, 0.4, 0.5, 0.5]


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([1, 2, 3, 4], 50, 2.5),
        ([1, 2, 3, 4, 5], 50, 3),
        ([10, 20, 30, 40, 50], 95, 48.0),  # between the 4th and 5th: 40 + 0.8 * 10
        ([5], 95, 5),
        ([3, 1, 2], 0, 1),
        ([3, 1, 2], 100, 3),
        ([100, 100, 100, 100, 2000], 95, 1620.0),
    ],
)
def test_percentile_interpolates_between_closest_ranks(values: list[float], q: float,
                                                       expected: float) -> None:
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_agrees_with_statistics_inclusive_quantiles() -> None:
    values = [12.5, 3.0, 99.1, 45.0, 7.7, 61.2, 18.0, 30.3, 5.5, 80.0, 42.0]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    for q in (5, 25, 50, 75, 95, 99):
        assert percentile(values, q) == pytest.approx(cuts[q - 1])


def test_percentile_of_nothing_is_nan_and_bad_q_refused() -> None:
    assert math.isnan(percentile([], 95))
    with pytest.raises(ValueError):
        percentile([1.0], 101)
