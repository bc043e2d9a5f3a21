"""The prober's own HTTP/1.1 client (plain http) against servers that answer byte for byte as
scripted: framings, keep-alive reuse and its stale connections, interim answers, bad answers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

from rpops.clients.probe import Prober, ProbeResult

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


class Scripted:
    """A server whose handler gets (reader, writer, connection number); records request heads."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head)
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        self.bodies.append(await reader.readexactly(length) if length else b"")
        return head

    async def __aenter__(self) -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.handler(reader, writer, self.connections)
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()


def run(handler: Handler, probe: Callable[[Prober, str], Awaitable[list[ProbeResult]]],
        **prober: float) -> tuple[list[ProbeResult], Scripted]:
    async def scenario() -> tuple[list[ProbeResult], Scripted]:
        server = Scripted(handler)
        settings = {"timeout": 2.0, "retries": 0, **prober}
        async with server as url, Prober(**settings) as p:  # type: ignore[arg-type]
            return await probe(p, url), server

    return asyncio.run(scenario())


def test_chunked_body_with_trailer_and_the_connection_is_reused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while True:
            await server_read(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n")

    async def probe(p: Prober, url: str) -> list[ProbeResult]:
        return [await p.get(url + "/a"), await p.get(url + "/b")]

    results, server = run(handler, probe)
    assert [(r.status, r.body) for r in results] == [(200, b"hello world")] * 2
    assert server.connections == 1


async def server_read(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def test_a_body_without_length_ends_when_the_server_closes() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server_read(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * 70_000)
        await writer.drain()

    async def probe(p: Prober, url: str) -> list[ProbeResult]:
        return [await p.get(url), await p.get(url)]

    results, server = run(handler, probe)
    assert [(r.status, len(r.body), r.truncated) for r in results] == [(200, 70_000, False)] * 2
    assert server.connections == 2  # not kept: the body was framed by the close


def test_an_idle_connection_closed_by_the_server_is_replaced_without_an_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server_read(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        # then close the kept-alive connection while the client holds it idle

    async def probe(p: Prober, url: str) -> list[ProbeResult]:
        first = await p.get(url)
        await asyncio.sleep(0.05)
        return [first, await p.get(url)]

    results, server = run(handler, probe)
    assert [(r.status, r.body, r.attempts, r.error) for r in results] == [(200, b"ok", 1, None)] * 2
    assert server.connections == 2


def test_a_server_that_closes_without_answering_is_a_protocol_error_not_retried() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server_read(reader)

    async def probe(p: Prober, url: str) -> list[ProbeResult]:
        return [await p.get(url)]

    [result], server = run(handler, probe, retries=3)
    assert result.error == "protocol" and result.status is None and result.attempts == 1
    assert server.connections == 1


def test_not_http_and_a_cut_body_are_protocol_errors() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await server_read(reader)
        if n == 1:
            writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")
        await writer.drain()

    async def probe(p: Prober, url: str) -> list[ProbeResult]:
        return [await p.get(url), await p.get(url)]

    results, _ = run(handler, probe)
    assert [r.error for r in results] == ["protocol", "protocol"]
    assert "not an HTTP/1.x answer" in results[0].detail


def test_interim_100_is_skipped_and_head_has_no_body() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        head = await server_read(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody")
        head = await server_read(reader)
        assert head.startswith(b"HEAD ")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n")  # HEAD: the length, no body
        await server_read(reader)
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()

    async def probe(p: Prober, url: str) -> list[ProbeResult]:
        return [await p.get(url), await p.request("HEAD", url), await p.get(url)]

    results, server = run(handler, probe)
    assert [(r.status, r.body) for r in results] == [(200, b"body"), (200, b""), (204, b"")]
    assert server.connections == 1


def test_params_form_and_headers_are_sent() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    server = Scripted(handler)

    async def scenario() -> ProbeResult:
        async with server as url, Prober(timeout=2.0, headers={"X-Team": "sre"}) as p:
            return await p.request("POST", url + "/api/v1/query?a=1", form={"query": "up == 1"},
                                   params={"b": "x y"}, headers={"Authorization": "Bearer t"})

    result = asyncio.run(scenario())
    assert result.status == 200
    head = server.heads[0].decode()
    assert head.startswith("POST /api/v1/query?a=1&b=x+y HTTP/1.1\r\n")
    for line in ("Host: 127.0.0.1:", "User-Agent: rpops-probe", "X-Team: sre", "Authorization: Bearer t",
                 "Content-Type: application/x-www-form-urlencoded", "Content-Length: 17"):
        assert f"\r\n{line}" in head, head
    assert server.bodies == [b"query=up+%3D%3D+1"]


def test_chunked_body_over_the_cap_is_truncated() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server_read(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n" + b"y" * 1024 + b"\r\n")
        writer.write(b"400\r\n" + b"z" * 1024 + b"\r\n0\r\n\r\n")
        await writer.drain()

    async def probe(p: Prober, url: str) -> list[ProbeResult]:
        return [await p.get(url)]

    [result], _ = run(handler, probe, max_body_bytes=1500)
    assert result.truncated and result.body == b"y" * 1024 + b"z" * 476


def test_https_goes_through_httpx_and_a_closed_port_is_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def scenario() -> ProbeResult:
        async with Prober(timeout=1.0, retries=1, backoff_s=0.01) as p:
            return await p.get(f"https://127.0.0.1:{port}/health")

    result = asyncio.run(scenario())
    assert result.error == "unreachable" and result.attempts == 2


def test_paths_are_encoded_and_line_breaks_never_sent() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while True:
            await server.read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()

    server = Scripted(handler)

    async def scenario() -> list[ProbeResult]:
        async with server as url, Prober(timeout=2.0) as p:
            return [await p.get(url + "/a b/%41é?q=1 2&x=%2F"),
                    await p.get(url + "/x", headers={"X-Evil": "1\r\nX-Injected: yes"})]

    ok, refused = asyncio.run(scenario())
    assert ok.status == 200 and server.heads[0].startswith(b"GET /a%20b/%41%C3%A9?q=1%202&x=%2F HTTP/1.1\r\n")
    assert refused.error == "protocol" and "line break" in refused.detail
    assert len(server.heads) == 1 and b"X-Injected" not in b"".join(server.heads)
