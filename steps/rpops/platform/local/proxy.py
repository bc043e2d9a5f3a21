"""The local platform's service proxy: a lean HTTP/1.1 forwarder with atomically switched backends.

    RPOPS_PROXY_TOKEN=secret python -m rpops.platform.local.proxy --port 8080 --preview-port 0 \
        --control-port 0 --info-file /path/proxy.json

Two listeners forward to two backend sets: the main port to the "active" set, the preview port to
the "preview" set. Requests are forwarded one at a time per client connection (keep-alive on both
sides, pooled backend connections), each to the next backend of its set in round-robin order. So
a switch of the sets takes effect at the next request, even on a kept-alive client connection,
while a request already forwarded finishes on its old backend.

The control listener (token required, `Authorization: Bearer ...`) takes
    PUT /backends  {"active": ["127.0.0.1:PORT", ...], "preview": [...]}   replaces both sets at once
    GET /status    sets, generation, in-flight and served counts per backend
so the driver can drain a backend (remove it from the sets, wait for in-flight 0) before stopping it.

The data path is built on asyncio protocols (no per-request task or stream objects) and forwards
response bytes as they arrive; it parses only what framing needs (Content-Length, chunked, close).
Request bodies are buffered (up to 16 MiB). A backend that fails before answering is retried once
on a fresh connection when the pooled one had gone stale, and on the next backend for idempotent
methods. Only 127.0.0.1 backends are accepted. Upgrades (WebSocket) are not supported.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import json
import logging
import os
import signal
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from rpops.core.parsers import argparse_float

log = logging.getLogger("rpops.platform.local.proxy")

TOKEN_ENV = "RPOPS_PROXY_TOKEN"  # noqa: S105 - a variable name, not a secret
MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024
CONNECT_TIMEOUT = 2.0
DOWN_FOR = 1.0  # seconds a backend that refused a connection is skipped
IDLE_PER_BACKEND = 64  # pooled idle connections kept per backend
PIPELINE_LIMIT = 32  # queued requests per client connection before its reads pause
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})
SETS = ("active", "preview")

# response body framing
_NONE, _LENGTH, _CHUNKED, _CLOSE = range(4)
# chunked parser states
_SIZE, _DATA, _TRAILER = range(3)


class BadMessage(Exception):
    pass


def head_fields(head: bytes) -> tuple[bytes, int | None, bool, bool, bool, bool]:
    """(first line, content-length, chunked, close, keep-alive, expect-continue) of a message head.

    One lower() and a few find()s in C instead of a Python loop over header lines: this runs twice
    per proxied request.
    """
    low = head.lower()
    first = head[: head.find(b"\r\n")]
    length: int | None = None
    i = low.find(b"\r\ncontent-length:")
    if i != -1:
        j = low.find(b"\r\n", i + 17)
        try:
            length = int(low[i + 17 : j])
        except ValueError:
            raise BadMessage("bad Content-Length") from None
        if length < 0 or low.find(b"\r\ncontent-length:", j) != -1:
            raise BadMessage("bad or repeated Content-Length")
    chunked = close = keep_alive = expect = False
    i = low.find(b"\r\ntransfer-encoding:")
    if i != -1:
        chunked = b"chunked" in low[i : low.find(b"\r\n", i + 20)]
        if chunked and length is not None:
            raise BadMessage("both Content-Length and chunked")
    i = low.find(b"\r\nconnection:")
    if i != -1:
        value = low[i + 13 : low.find(b"\r\n", i + 13)]
        close = b"close" in value
        keep_alive = b"keep-alive" in value
    i = low.find(b"\r\nexpect:")
    if i != -1:
        expect = b"100-continue" in low[i : low.find(b"\r\n", i + 9)]
    return first, length, chunked, close, keep_alive, expect


def chunked_end(data: bytes | bytearray, start: int) -> int:
    """Offset just past a complete chunked body starting at `start`, or -1 when incomplete."""
    i = start
    while True:
        j = data.find(b"\r\n", i)
        if j == -1:
            return -1
        try:
            size = int(bytes(data[i:j]).split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise BadMessage("bad chunk size") from None
        i = j + 2
        if size == 0:
            while True:  # trailer lines up to an empty one
                j = data.find(b"\r\n", i)
                if j == -1:
                    return -1
                if j == i:
                    return j + 2
                i = j + 2
        i += size + 2
        if i > len(data):
            return -1


class Request:
    __slots__ = ("data", "method", "close", "tried", "fresh_retry")

    def __init__(self, data: bytes, method: bytes, close: bool) -> None:
        self.data = data
        self.method = method
        self.close = close  # the client wants the connection closed after this one
        self.tried: set[str] = set()  # backends that failed this request
        self.fresh_retry = True  # one retry on a fresh connection after a stale pooled one


class Backend:
    __slots__ = (
        "addr",
        "host",
        "port",
        "idle",
        "inflight",
        "served",
        "down_until",
        "retired",
        "ready",
        "fails",
    )

    def __init__(self, addr: str) -> None:
        host, _, port = addr.rpartition(":")
        if host != "127.0.0.1" or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"backend {addr!r} must be 127.0.0.1:PORT")
        self.addr = addr
        self.host = host
        self.port = int(port)
        self.idle: deque[Upstream] = deque()
        self.inflight = 0
        self.served = 0
        self.down_until = 0.0
        self.retired = False  # in no set any more: finish what is in flight, pool nothing
        self.ready = True  # added once ready; readiness probes may take it out of rotation
        self.fails = 0

    def close_idle(self) -> None:
        while self.idle:
            self.idle.pop().close()


class Upstream(asyncio.Protocol):
    """One connection to a backend; carries one request at a time and streams the answer back."""

    def __init__(self, proxy: Proxy, backend: Backend) -> None:
        self.proxy = proxy
        self.backend = backend
        self.transport: asyncio.Transport | None = None
        self.client: Client | None = None
        self.request: Request | None = None
        self.reused = False
        self.forwarded = False  # a response byte reached the client: no retry possible now
        self.buf = bytearray()  # response head being collected
        self.framing = _NONE
        self.left = 0  # body bytes left (_LENGTH) or chunk bytes left (_CHUNKED/_DATA)
        self.cstate = _SIZE
        self.line = bytearray()
        self.keep = True
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True

    def send(self, client: Client, request: Request) -> None:
        self.client = client
        self.request = request
        self.forwarded = False
        self.buf.clear()
        self.framing = -1
        self.keep = True
        assert self.transport is not None
        self.transport.write(request.data)

    # -- response parsing --------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        client = self.client
        if client is None or self.request is None:
            self.close()  # bytes nobody asked for: the connection is not reusable
            return
        if self.framing == -1:
            buf = bytes(self.buf) + data if self.buf else data
            while True:
                end = buf.find(b"\r\n\r\n")
                if end == -1:
                    if len(buf) > MAX_HEAD:
                        self._cut()
                    else:
                        self.buf = bytearray(buf)
                    return
                head = buf[: end + 4]
                try:
                    status_line, length, chunked, close, _, _ = head_fields(head)
                    code = int(status_line[9:12])
                except (BadMessage, ValueError):
                    self._cut()
                    return
                if 100 <= code < 200 and code != 101:  # interim response: pass on, read the final one
                    self.forwarded = True
                    client.write(head)
                    buf = buf[end + 4 :]
                    continue
                break
            self.buf = bytearray()
            rest_len = len(buf) - end - 4
            # 101 (an upgrade) is not supported: answer it, then retire the connection.
            self.keep = not close and status_line.startswith(b"HTTP/1.1") and code != 101
            if self.request.method == b"HEAD" or code in (204, 304) or code == 101:
                self.framing = _NONE
            elif chunked:
                self.framing, self.cstate, self.line = _CHUNKED, _SIZE, bytearray()
            elif length is not None:
                self.framing, self.left = _LENGTH, length
            else:
                self.framing, self.keep = _CLOSE, False
            self.forwarded = True
            if self.framing == _LENGTH and rest_len == length:  # the common case: one write, done
                client.write(buf)
                self._done()
                return
            client.write(head)
            if self.framing == _NONE:
                self._done()
                return
            if not rest_len:
                return
            data = buf[end + 4 :]
        self._body(client, data)

    def _body(self, client: Client, data: bytes) -> None:
        if self.framing == _LENGTH:
            if len(data) > self.left:
                client.write(data[: self.left])
                self.keep = False  # the backend sent more than it declared
                self.left = 0
            else:
                client.write(data)
                self.left -= len(data)
            if self.left == 0:
                self._done()
        elif self.framing == _CHUNKED:
            end = self._chunked(data)
            if self.closed:
                return  # cut: a malformed chunk
            client.write(data if end < 0 else data[:end])
            if end >= 0:
                if end < len(data):
                    self.keep = False
                self._done()
        elif self.framing == _CLOSE:
            client.write(data)

    def _chunked(self, data: bytes) -> int:
        """Advance the chunked-body state over `data`; the offset just past its end, or -1."""
        i, n = 0, len(data)
        while i < n:
            if self.cstate == _DATA:
                take = min(self.left, n - i)
                self.left -= take
                i += take
                if self.left == 0:
                    self.cstate = _SIZE
                continue
            j = data.find(b"\n", i)
            if j == -1:
                self.line += data[i:]
                return -1
            line = bytes(self.line + data[i:j]).strip()
            self.line = bytearray()
            i = j + 1
            if self.cstate == _SIZE:
                try:
                    size = int(line.split(b";", 1)[0], 16)
                except ValueError:
                    self._cut()
                    return -1
                if size == 0:
                    self.cstate = _TRAILER
                else:
                    self.cstate, self.left = _DATA, size + 2
            elif not line:  # _TRAILER ends at an empty line
                return i
        return -1

    def _done(self) -> None:
        client, request = self.client, self.request
        self.client = self.request = None
        self.proxy.finished(self, client, request, keep_upstream=self.keep and not self.closed)

    def _cut(self) -> None:
        """The response cannot be completed: close both ends so the client notices."""
        client = self.client
        self.close()
        if client is not None:
            if not self.forwarded:
                client.write(_simple(502, b"bad gateway: malformed response"))
            self.client = None
            request = self.request
            self.request = None
            self.proxy.finished(self, client, request, keep_upstream=False, cut=True)

    def pause_client_reads(self, pause: bool) -> None:
        if self.transport is not None and not self.closed:
            (self.transport.pause_reading if pause else self.transport.resume_reading)()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        with contextlib.suppress(ValueError):
            self.backend.idle.remove(self)
        client, request = self.client, self.request
        if client is None or request is None:
            return
        self.client = self.request = None
        if self.framing == _CLOSE:
            self.proxy.finished(self, client, request, keep_upstream=False)
        elif self.forwarded:
            self.proxy.finished(self, client, request, keep_upstream=False, cut=True)
        else:
            self.proxy.failed(self, client, request, f"{self.backend.addr} closed before answering")


class Client(asyncio.Protocol):
    """One client connection on a listener; requests are queued and forwarded in order."""

    def __init__(self, proxy: Proxy, set_name: str) -> None:
        self.proxy = proxy
        self.set_name = set_name
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.pending: deque[Request] = deque()
        self.busy = False
        self.closing = False
        self.upstream: Upstream | None = None
        self.continued = False
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.proxy.clients.add(self)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        if self.buf:
            self.buf += data
            data = bytes(self.buf)
        try:
            rest = self._parse(data)
        except BadMessage as exc:
            self.pending.append(Request(b"", b"!400 " + str(exc).encode(), True))
            rest = b""
            self.closing = True
        self.buf = bytearray(rest)
        if len(self.pending) >= PIPELINE_LIMIT and self.transport is not None and not self.paused:
            self.paused = True  # a client that pipelines without reading waits for us
            self.transport.pause_reading()
        if not self.busy:
            self.next()

    def _parse(self, buf: bytes) -> bytes:
        """Queue every complete request in `buf`; return the incomplete rest."""
        while buf:
            end = buf.find(b"\r\n\r\n")
            if end == -1:
                if len(buf) > MAX_HEAD:
                    raise BadMessage("request head too large")
                return buf
            head = buf[: end + 4]
            request_line, length, chunked, close, keep_alive, expect = head_fields(head)
            body_start = end + 4
            if chunked:
                stop = chunked_end(buf, body_start)
                if stop == -1 and len(buf) > MAX_BODY:
                    raise BadMessage("request body too large")
            elif length:
                if length > MAX_BODY:
                    raise BadMessage("request body too large")
                stop = body_start + length if len(buf) >= body_start + length else -1
            else:
                stop = body_start
            if stop == -1:
                if expect and not self.continued:
                    self.continued = True
                    self.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                return buf
            if expect:  # already answered here; the backend must not wait for the body
                head = b"\r\n".join(
                    line for line in head.split(b"\r\n") if not line.lower().startswith(b"expect:")
                )
                data = head + buf[body_start:stop]
            else:
                data = buf if stop == len(buf) else buf[:stop]
            buf = buf[stop:]
            self.continued = False
            if request_line.endswith(b"HTTP/1.0"):
                close = close or not keep_alive
            self.pending.append(Request(data, request_line[: request_line.find(b" ")], close))
            if close:
                self.closing = True
                return b""
        return buf

    def next(self) -> None:
        if self.paused and len(self.pending) < PIPELINE_LIMIT // 2 and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        if not self.pending:
            if self.closing and self.transport is not None:
                self.transport.close()
            return
        request = self.pending.popleft()
        if request.method.startswith(b"!400"):
            self.write(_simple(400, request.method[5:]))
            self.pending.clear()
            self.closing = True
            self.next()
            return
        self.busy = True
        self.proxy.dispatch(self, request)

    def response_done(self, keep: bool) -> None:
        self.busy = False
        self.upstream = None
        if not keep:
            self.pending.clear()
            self.closing = True
        self.next()

    def pause_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.pause_client_reads(True)

    def resume_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.pause_client_reads(False)

    def connection_lost(self, exc: Exception | None) -> None:
        self.proxy.clients.discard(self)
        self.closing = True
        self.pending.clear()
        self.transport = None
        if self.upstream is not None:
            self.upstream.close()  # its answer has nowhere to go; it is not reusable mid-response


class Proxy:
    def __init__(self, token: str) -> None:
        self.token = token.encode()
        self.sets: dict[str, list[Backend]] = {name: [] for name in SETS}
        self.backends: dict[str, Backend] = {}
        self.rr: dict[str, int] = {name: 0 for name in SETS}
        self.generation = 0
        self.clients: set[Client] = set()
        self.loop: asyncio.AbstractEventLoop | None = None

    # -- backend sets ------------------------------------------------------------------------

    def set_backends(self, wanted: dict[str, list[str]]) -> None:
        """Replace every set at once; the next request of each listener sees the new sets."""
        fresh: dict[str, list[Backend]] = {}
        for name in SETS:
            members = []
            for addr in wanted.get(name, []):
                backend = self.backends.get(addr) or Backend(addr)
                members.append(backend)
            fresh[name] = members
        for members in fresh.values():
            for backend in members:
                self.backends[backend.addr] = backend
        self.sets = fresh  # the one assignment that switches traffic
        self.generation += 1
        in_use = {b.addr for members in fresh.values() for b in members}
        for addr in list(self.backends):
            backend = self.backends[addr]
            backend.retired = addr not in in_use
            if backend.retired:
                backend.close_idle()  # its server may be stopped soon; don't reuse these
                if backend.inflight == 0:
                    del self.backends[addr]

    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "generation": self.generation,
            "sets": {name: [b.addr for b in members] for name, members in self.sets.items()},
            "inflight": {addr: b.inflight for addr, b in self.backends.items()},
            "served": {addr: b.served for addr, b in self.backends.items()},
            "ready": {addr: b.ready for addr, b in self.backends.items()},
            "clients": len(self.clients),
        }

    def _pick(self, set_name: str, tried: set[str]) -> Backend | None:
        members = self.sets[set_name]
        n = len(members)
        if not n:
            return None
        start = self.rr[set_name]
        fallback = None
        for i in range(n):
            backend = members[(start + i) % n]
            if not backend.ready or (tried and backend.addr in tried):
                continue
            if backend.down_until and backend.down_until > time.monotonic():
                fallback = fallback or backend
                continue
            self.rr[set_name] = (start + i + 1) % n
            return backend
        return fallback

    # -- request flow ------------------------------------------------------------------------

    def dispatch(
        self, client: Client, request: Request, backend: Backend | None = None, fresh: bool = False
    ) -> None:
        if backend is None:
            backend = self._pick(client.set_name, request.tried)
        if backend is None:
            if request.tried:
                client.write(_simple(502, b"bad gateway", close=request.close))
            else:
                client.write(_simple(503, b"no ready backend for this route", close=request.close))
            client.response_done(keep=not request.close)
            return
        backend.inflight += 1
        while backend.idle and not fresh:
            upstream = backend.idle.pop()
            if not upstream.closed:
                upstream.reused = True
                client.upstream = upstream
                upstream.send(client, request)
                return
        assert self.loop is not None
        self.loop.create_task(self._connect(backend, client, request))

    async def _connect(self, backend: Backend, client: Client, request: Request) -> None:
        assert self.loop is not None
        try:
            _, upstream = await asyncio.wait_for(
                self.loop.create_connection(lambda: Upstream(self, backend), backend.host, backend.port),
                CONNECT_TIMEOUT,
            )
        except (OSError, TimeoutError) as exc:
            backend.down_until = time.monotonic() + DOWN_FOR
            backend.inflight -= 1
            request.tried.add(backend.addr)
            log.warning("connect to %s failed: %s", backend.addr, exc)
            self._retry(client, request)
            return
        if client.transport is None:  # the client left meanwhile
            backend.inflight -= 1
            upstream.close()
            return
        client.upstream = upstream
        upstream.send(client, request)

    def _retry(self, client: Client, request: Request, backend: Backend | None = None) -> None:
        if client.transport is None:
            return
        self.dispatch(client, request, backend, fresh=backend is not None)

    def finished(
        self,
        upstream: Upstream,
        client: Client | None,
        request: Request | None,
        keep_upstream: bool,
        cut: bool = False,
    ) -> None:
        backend = upstream.backend
        backend.inflight -= 1
        backend.served += 1
        if keep_upstream and not backend.retired and len(backend.idle) < IDLE_PER_BACKEND:
            upstream.reused = True
            backend.idle.append(upstream)
        else:
            upstream.close()
        if backend.retired and backend.inflight == 0 and self.backends.get(backend.addr) is backend:
            del self.backends[backend.addr]
        if client is not None:
            if cut:
                if client.transport is not None:
                    client.transport.close()
                return
            client.response_done(keep=upstream.keep and not (request is not None and request.close))

    def failed(self, upstream: Upstream, client: Client, request: Request, reason: str) -> None:
        """The backend failed before a response byte reached the client."""
        backend = upstream.backend
        backend.inflight -= 1
        if upstream.reused and request.fresh_retry:
            request.fresh_retry = False  # the pooled connection had gone stale: once more, fresh
            self._retry(client, request, backend)
            return
        log.warning("upstream failed: %s", reason)
        request.tried.add(backend.addr)
        if request.method in IDEMPOTENT:
            self._retry(client, request)
        else:
            client.write(_simple(502, b"bad gateway", close=request.close))
            client.response_done(keep=not request.close)

    # -- readiness ---------------------------------------------------------------------------

    async def probe_loop(self, path: str, interval: float, threshold: int = 3) -> None:
        """Probe every backend's readiness endpoint; after `threshold` failures in a row a backend
        leaves the rotation until a probe succeeds again (as Kubernetes endpoints do)."""
        request = f"GET {path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n".encode()

        async def probe(backend: Backend) -> None:
            ok = False
            writer = None
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(backend.host, backend.port), 1.0
                )
                writer.write(request)
                line = await asyncio.wait_for(reader.readline(), 1.0)
                ok = line[9:12] == b"200"
            except (OSError, TimeoutError, asyncio.IncompleteReadError):
                ok = False
            finally:
                if writer is not None:
                    writer.close()
            if ok:
                backend.fails = 0
                if not backend.ready:
                    log.info("backend %s is ready again", backend.addr)
                backend.ready = True
            else:
                backend.fails += 1
                if backend.ready and backend.fails >= threshold:
                    log.warning(
                        "backend %s failed %d readiness probes: out of rotation", backend.addr, backend.fails
                    )
                    backend.ready = False

        while True:
            await asyncio.sleep(interval)
            members = {b.addr: b for group in self.sets.values() for b in group}
            if members:
                await asyncio.gather(*(probe(b) for b in members.values()))

    # -- control -----------------------------------------------------------------------------

    async def handle_control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, length, _, _, _, _ = head_fields(head)
            if length and length > MAX_HEAD:
                raise BadMessage("body too large")
            body = await reader.readexactly(length) if length else b""
            method, _, rest = request_line.partition(b" ")
            path = rest.split(b" ", 1)[0]
            token = b""
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"authorization" and value.strip().startswith(b"Bearer "):
                    token = value.strip()[7:]
            if not hmac.compare_digest(token, self.token):
                writer.write(_json(401, {"error": "missing or wrong bearer token"}))
            elif method == b"GET" and path == b"/status":
                writer.write(_json(200, self.status()))
            elif method == b"PUT" and path == b"/backends":
                try:
                    wanted = json.loads(body)
                    if not isinstance(wanted, dict) or not all(
                        isinstance(wanted.get(n, []), list) for n in SETS
                    ):
                        raise ValueError('expected {"active": [...], "preview": [...]}')
                    self.set_backends({n: [str(a) for a in wanted.get(n, [])] for n in SETS})
                    writer.write(_json(200, self.status()))
                except ValueError as exc:
                    writer.write(_json(400, {"error": str(exc)}))
            else:
                writer.write(_json(404, {"error": "use GET /status or PUT /backends"}))
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, BadMessage):
            pass
        finally:
            writer.close()


def _simple(code: int, message: bytes, close: bool = True) -> bytes:
    reason = {400: b"Bad Request", 502: b"Bad Gateway", 503: b"Service Unavailable"}.get(code, b"Error")
    conn = b"Connection: close\r\n" if close else b""
    return b"HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n%s" % (
        code,
        reason,
        len(message),
        conn,
        message,
    )


def _json(code: int, value: Any) -> bytes:
    body = json.dumps(value).encode()
    return (
        b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
        b"Connection: close\r\n\r\n%s" % (code, b"OK" if code == 200 else b"Error", len(body), body)
    )


async def serve(args: argparse.Namespace, token: str) -> None:
    loop = asyncio.get_running_loop()
    proxy = Proxy(token)
    proxy.loop = loop
    if args.backends:
        wanted = json.loads(Path(args.backends).read_text())
        proxy.set_backends({n: list(wanted.get(n, [])) for n in SETS})
    servers = {
        "active": await loop.create_server(
            lambda: Client(proxy, "active"), args.host, args.port, backlog=1024
        ),
        "preview": await loop.create_server(
            lambda: Client(proxy, "preview"), args.host, args.preview_port, backlog=256
        ),
        "control": await asyncio.start_server(
            proxy.handle_control, args.host, args.control_port, limit=MAX_HEAD
        ),
    }
    ports = {name: srv.sockets[0].getsockname()[1] for name, srv in servers.items()}
    probes = (
        loop.create_task(proxy.probe_loop(args.ready_path, args.ready_interval)) if args.ready_path else None
    )
    if args.info_file:
        info = Path(args.info_file)
        tmp = info.with_name(f".{info.name}.{os.getpid()}.tmp")
        tmp.write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "port": ports["active"],
                    "preview_port": ports["preview"],
                    "control_port": ports["control"],
                }
            )
        )
        tmp.replace(info)  # readers never see a half-written file
    log.info(
        "proxy %d serving: active :%d, preview :%d, control :%d",
        os.getpid(),
        ports["active"],
        ports["preview"],
        ports["control"],
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(ValueError, NotImplementedError):  # not the main thread
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if probes is not None:
        probes.cancel()
    for srv in servers.values():
        srv.close()
    deadline = time.monotonic() + args.drain_timeout
    while any(c.busy for c in proxy.clients) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    for client in list(proxy.clients):
        if client.transport is not None:
            client.transport.close()
    for backend in proxy.backends.values():
        backend.close_idle()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rpops.platform.local.proxy", description="The local platform's service proxy."
    )
    parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1).")
    parser.add_argument("--port", type=int, default=0, help="Port for the active route (0: a free port).")
    parser.add_argument("--preview-port", type=int, default=0, help="Port for the preview route.")
    parser.add_argument("--control-port", type=int, default=0, help="Port for the control API.")
    parser.add_argument(
        "--info-file", help="Write {pid, port, preview_port, control_port} here once serving."
    )
    parser.add_argument("--backends", help='JSON file with the initial {"active": [...], "preview": [...]}.')
    parser.add_argument(
        "--ready-path", default="/ready", help="Readiness path probed on every backend ('' disables probing)."
    )
    parser.add_argument(
        "--ready-interval", type=argparse_float, default=1.0, help="Seconds between readiness probes."
    )
    parser.add_argument(
        "--drain-timeout",
        type=argparse_float,
        default=5.0,
        help="Seconds to let open requests finish on SIGTERM.",
    )
    args = parser.parse_args(argv)
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        print(f"error: set {TOKEN_ENV} to the control API's bearer token", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    try:
        import uvloop  # optional: cuts the proxy's CPU per request

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner, contextlib.suppress(KeyboardInterrupt):
        try:
            runner.run(serve(args, token))
        except OSError as exc:
            print(f"error: cannot listen: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
