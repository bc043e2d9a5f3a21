"""Concurrent HTTP probing: one `Prober`, pooled keep-alive connections per origin.

- Plain `http://` goes through a small HTTP/1.1 client on asyncio streams (`_PlainPool`): a
  probe is a GET of a small body, and httpx spends about a millisecond of CPU on each (plus
  ~80 ms importing), which on two shared cores is what made a 30-target check slow. `https://`
  goes through httpx (imported only then) for its TLS handling.
- One pool per `Prober`: connections are kept alive across probes; a pooled connection the
  server has closed is dropped, and a request that fails on a reused one is resent once on a
  fresh connection (it cannot have reached the application).
- Every attempt has a total deadline (`timeout`), on top of httpx's per-phase timeouts, so a
  server that drips bytes cannot hold a probe forever.
- Only failures to connect are retried (exponential backoff). An HTTP status is an answer and
  is never retried; a read timeout is not retried either (the server was reached, it was slow).
- Results are values (`ProbeResult`), never exceptions: the caller decides what a failure means.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import quote, urlencode, urlsplit

if TYPE_CHECKING:
    import ssl

    import httpx

ErrorKind = Literal["unreachable", "timeout", "protocol"]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One HTTP request's outcome, after retries."""

    method: str
    url: str
    status: int | None  # None when no HTTP answer arrived
    elapsed_ms: float  # the last attempt, from send to the end of the body
    attempts: int
    error: ErrorKind | None = None
    detail: str = ""
    body: bytes = field(default=b"", repr=False)
    truncated: bool = False

    @property
    def answered(self) -> bool:
        return self.status is not None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def parse_json(self) -> tuple[Any, str | None]:
        """The body as JSON: (value, None), or (None, why it is not JSON)."""
        if self.truncated:
            return None, "body too large to parse"
        try:
            return json.loads(self.body), None
        except (ValueError, UnicodeDecodeError) as exc:
            return None, f"malformed JSON: {exc}"

    def describe(self) -> str:
        """A short human description: 'HTTP 500', 'unreachable: ...', 'timeout after 2.0s'."""
        if self.status is not None:
            return f"HTTP {self.status}"
        return f"{self.error}: {self.detail}" if self.detail else str(self.error)

    def summary(self) -> dict[str, Any]:
        """JSON-ready description for reports (the body is left out)."""
        return {
            "method": self.method,
            "url": self.url,
            "status": self.status,
            "elapsed_ms": round(self.elapsed_ms, 3),
            "attempts": self.attempts,
            "error": self.error,
            "detail": self.detail,
        }


def backoff_delay(attempt: int, base_s: float, max_s: float) -> float:
    """Delay before retry number `attempt` (1-based): base, 2*base, 4*base, ... capped."""
    return float(min(max_s, base_s * (2 ** (attempt - 1))))


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks.

    The same definition as numpy's default and `statistics.quantiles(method="inclusive")`:
    p50 of [1, 2, 3, 4] is 2.5; p95 of 5 samples lies between the 4th and 5th. NaN when empty.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    fraction = position - low
    return ordered[low] + (ordered[high] - ordered[low]) * fraction


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on uvloop when it is installed (a quarter less CPU per probe), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


class Unreachable(Exception):
    """No connection could be made: nothing reached the server, so a retry is safe."""


class ProtocolError(Exception):
    """The server answered something that is not HTTP/1.1, or closed mid-answer."""


class Prober:
    """Concurrent probes over pooled keep-alive connections.

    Use as `async with Prober(timeout=2.0, retries=2) as prober: await prober.get(url)`.
    `max_concurrency` bounds requests in flight; the timer of a probe starts only once it holds
    a slot, so waiting for the pool never inflates a latency.
    """

    def __init__(
        self,
        *,
        timeout: float = 2.0,
        retries: int = 2,
        backoff_s: float = 0.1,
        max_backoff_s: float = 2.0,
        max_concurrency: int = 64,
        max_body_bytes: int = 1 << 20,
        headers: dict[str, str] | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.timeout = timeout
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_body_bytes = max_body_bytes
        self._max_concurrency = max_concurrency
        self._headers = {"User-Agent": "rpops-probe", **(headers or {})}
        self._plain: _PlainPool | None = None
        self._client: httpx.AsyncClient | None = None  # https only, created on first use
        self._slots: asyncio.Semaphore | None = None

    async def __aenter__(self) -> Prober:
        self._plain = _PlainPool(self._headers, self.max_body_bytes)
        self._slots = asyncio.Semaphore(self._max_concurrency)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._plain is not None:
            self._plain.close()
            self._plain = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _https_client(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            limits = httpx.Limits(
                max_connections=self._max_concurrency,
                max_keepalive_connections=self._max_concurrency,
                keepalive_expiry=30.0,
            )
            self._client = httpx.AsyncClient(
                transport=_pool_per_origin(limits), timeout=httpx.Timeout(self.timeout),
                headers=self._headers, follow_redirects=False, trust_env=False,
            )
        return self._client

    async def get(self, url: str, *, headers: dict[str, str] | None = None) -> ProbeResult:
        return await self.request("GET", url, headers=headers)

    async def post_json(self, url: str, payload: Any, *,
                        headers: dict[str, str] | None = None) -> ProbeResult:
        return await self.request("POST", url, json_body=payload, headers=headers)

    async def request(
        self, method: str, url: str, *, json_body: Any = None, form: dict[str, str] | None = None,
        params: dict[str, str] | None = None, headers: dict[str, str] | None = None,
    ) -> ProbeResult:
        """One request with retries on connection failures only; never raises for network trouble."""
        if self._plain is None or self._slots is None:
            raise RuntimeError("use Prober as 'async with Prober(...) as prober'")
        attempt = 0
        while True:
            attempt += 1
            async with self._slots:
                result = await self._attempt(method, url, json_body, form, params, headers, attempt)
            if result.error != "unreachable" or attempt > self.retries:
                return result
            await asyncio.sleep(backoff_delay(attempt, self.backoff_s, self.max_backoff_s))

    async def _attempt(
        self, method: str, url: str, json_body: Any, form: dict[str, str] | None,
        params: dict[str, str] | None, headers: dict[str, str] | None, attempt: int,
    ) -> ProbeResult:
        assert self._plain is not None
        started = time.perf_counter()

        def result(**kw: Any) -> ProbeResult:
            elapsed = (time.perf_counter() - started) * 1000
            return ProbeResult(method=method, url=url, elapsed_ms=elapsed, attempts=attempt, **kw)

        if not url.startswith("http://"):
            return await self._attempt_https(method, url, json_body, form, params, headers, result)
        body = b""
        extra = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode()
            extra.setdefault("Content-Type", "application/json")
        elif form is not None:
            body = urlencode(form).encode()
            extra.setdefault("Content-Type", "application/x-www-form-urlencoded")
        try:
            async with asyncio.timeout(self.timeout):
                status, data, truncated = await self._plain.request(method, url, params, extra, body)
        except Unreachable as exc:
            return result(status=None, error="unreachable", detail=_describe(exc))
        except TimeoutError:
            return result(status=None, error="timeout", detail=f"no answer within {self.timeout:g}s")
        except (ProtocolError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ValueError) as exc:
            return result(status=None, error="protocol", detail=_describe(exc))
        return result(status=status, body=data, truncated=truncated)

    async def _attempt_https(
        self, method: str, url: str, json_body: Any, form: dict[str, str] | None,
        params: dict[str, str] | None, headers: dict[str, str] | None, result: Callable[..., ProbeResult],
    ) -> ProbeResult:
        import httpx

        client = self._https_client()
        try:
            async with asyncio.timeout(self.timeout):
                request = client.build_request(
                    method, url, json=json_body, data=form, params=params, headers=headers)
                response = await client.send(request, stream=True)
                try:
                    body, truncated = await self._read_body(response)
                finally:
                    await response.aclose()
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            return result(status=None, error="unreachable", detail=_describe(exc))
        except (TimeoutError, httpx.TimeoutException):
            return result(
                status=None, error="timeout", detail=f"no answer within {self.timeout:g}s")
        except (httpx.TransportError, httpx.UnsupportedProtocol) as exc:
            return result(status=None, error="protocol", detail=_describe(exc))
        return result(status=response.status_code, body=body, truncated=truncated)

    async def _read_body(self, response: httpx.Response) -> tuple[bytes, bool]:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size > self.max_body_bytes:
                return b"".join(chunks)[: self.max_body_bytes], True
        return b"".join(chunks), False


_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"
_BREAKS = frozenset("\r\n\0")


class _Connection:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def usable(self) -> bool:
        # bytes waiting on an idle connection were never asked for: it is out of step
        buffered = bool(getattr(self.reader, "_buffer", b""))
        return not (self.reader.at_eof() or self.writer.is_closing() or buffered)

    def close(self) -> None:
        self.writer.close()


class _PlainPool:
    """HTTP/1.1 over asyncio streams for `http://` origins: keep-alive connections per origin,
    Content-Length, chunked and read-to-close bodies, bodies capped at `max_body` (the
    connection is then dropped). No redirects are followed, no content coding is asked for."""

    def __init__(self, headers: dict[str, str], max_body: int) -> None:
        self._headers = headers
        self._max_body = max_body
        self._idle: dict[tuple[str, int], list[_Connection]] = {}

    def close(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()

    async def request(self, method: str, url: str, params: dict[str, str] | None,
                      headers: dict[str, str], body: bytes) -> tuple[int, bytes, bool]:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or 80
        # as httpx sends them: spaces and non-ASCII percent-encoded, what is already encoded kept
        target = quote(parts.path or "/", safe=_PATH_SAFE)
        query = "&".join(q for q in (quote(parts.query, safe=_QUERY_SAFE), urlencode(params or {})) if q)
        if query:
            target += "?" + query
        fields = {"Host": parts.netloc.rpartition("@")[2], **self._headers, "Accept": "*/*", **headers}
        if body or method in ("POST", "PUT", "PATCH"):
            fields["Content-Length"] = str(len(body))
        if any(_BREAKS.intersection(k + v) for k, v in fields.items()):
            raise ProtocolError("a header name or value holds a line break: not sent")
        lines = "".join(f"{k}: {v}\r\n" for k, v in fields.items())
        head = f"{method} {target} HTTP/1.1\r\n{lines}\r\n"
        message = head.encode("latin-1") + body
        key = (host, port)
        idle = self._idle.setdefault(key, [])
        while idle:
            connection = idle.pop()
            if not connection.usable():
                connection.close()
                continue
            try:
                return await self._exchange(connection, key, method, message)
            except _Stale:
                continue  # closed by the server while idle: the request never reached it
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError as exc:
            raise Unreachable(str(exc) or type(exc).__name__) from None
        try:
            return await self._exchange(_Connection(reader, writer), key, method, message, fresh=True)
        except _Stale as exc:
            raise ProtocolError("server closed the connection without answering") from exc

    async def _exchange(self, connection: _Connection, key: tuple[str, int], method: str, message: bytes,
                        *, fresh: bool = False) -> tuple[int, bytes, bool]:
        done = False
        try:
            connection.writer.write(message)
            try:
                head = await connection.reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                    raise ProtocolError("server closed the connection mid-answer") from None
                raise _Stale() from exc
            status, length, chunked, keep = _parse_head(head)
            while 100 <= status < 200 and status != 101:  # interim answers: read the final one
                head = await connection.reader.readuntil(b"\r\n\r\n")
                status, length, chunked, keep = _parse_head(head)
            data, truncated, complete = await self._body(connection.reader, method, status, length, chunked)
            done = keep and complete and not truncated
            return status, data, truncated
        finally:
            if done:
                self._idle.setdefault(key, []).append(connection)
            else:
                connection.close()

    async def _body(self, reader: asyncio.StreamReader, method: str, status: int, length: int | None,
                    chunked: bool) -> tuple[bytes, bool, bool]:
        """(body, truncated, framing complete)."""
        cap = self._max_body
        if method == "HEAD" or status in (204, 304):
            return b"", False, True
        if length is not None:
            if length > cap:
                return await reader.readexactly(cap), True, False
            return await reader.readexactly(length), False, True
        if chunked:
            chunks: list[bytes] = []
            size = 0
            while True:
                line = await reader.readuntil(b"\r\n")
                try:
                    n = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise ProtocolError("bad chunk size") from None
                if n == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                        pass
                    return b"".join(chunks), False, True
                chunk = await reader.readexactly(n + 2)
                chunks.append(chunk[:-2])
                size += n
                if size > cap:
                    return b"".join(chunks)[:cap], True, False
        data = await reader.read(cap + 1)  # no framing: the body ends when the server closes
        chunks = [data]
        size = len(data)
        while data and size <= cap:
            data = await reader.read(cap + 1 - size)
            chunks.append(data)
            size += len(data)
        body = b"".join(chunks)
        return body[:cap], size > cap, False


class _Stale(Exception):
    """A kept-alive connection was closed by the server before it read our request."""


def _parse_head(head: bytes) -> tuple[int, int | None, bool, bool]:
    """(status, content-length, chunked, keep-alive) of a response head."""
    line_end = head.find(b"\r\n")
    status_line = head[:line_end]
    if not status_line.startswith(b"HTTP/1.") or len(status_line) < 12:
        raise ProtocolError(f"not an HTTP/1.x answer: {status_line[:40]!r}")
    try:
        status = int(status_line[9:12])
    except ValueError:
        raise ProtocolError(f"bad status line {status_line[:40]!r}") from None
    low = head[line_end:].lower()
    length = None
    i = low.find(b"\r\ncontent-length:")
    if i != -1:
        try:
            length = int(low[i + 17 : low.find(b"\r\n", i + 17)])
        except ValueError:
            raise ProtocolError("bad Content-Length") from None
    chunked = False
    i = low.find(b"\r\ntransfer-encoding:")
    if i != -1:
        chunked = b"chunked" in low[i : low.find(b"\r\n", i + 20)]
        length = None if chunked else length
    keep = status_line.startswith(b"HTTP/1.1")
    i = low.find(b"\r\nconnection:")
    if i != -1:
        value = low[i + 13 : low.find(b"\r\n", i + 13)]
        keep = b"close" not in value and (keep or b"keep-alive" in value)
    return status, length, chunked, keep


def _pool_per_origin(limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    """The https transport; httpx is imported only when an https origin is probed."""
    import httpx

    class _PoolPerOrigin(httpx.AsyncBaseTransport):
        """One keep-alive connection pool per origin (scheme, host, port), behind one client.

        httpcore rescans every pooled connection on each request and each release, which costs
        O(connections^2) per request: with 90 connections to 30 targets the prober spent most of
        its time there. A pool per origin keeps each scan to that target's few connections.
        """

        def __init__(self, limits: httpx.Limits) -> None:
            self._limits = limits
            self._pools: dict[tuple[bytes, bytes, int | None], httpx.AsyncHTTPTransport] = {}
            self._contexts: dict[bool, ssl.SSLContext] = {}

        def _context(self, verified: bool) -> ssl.SSLContext:
            # A transport builds an SSL context unless given one (~1 ms; ~50 ms with the CA bundle):
            # build each kind once. A plain-http pool never negotiates TLS, so it gets the unverified
            # one; https origins get the verifying one, created only if one is probed.
            context = self._contexts.get(verified)
            if context is None:
                context = httpx.create_ssl_context(verify=verified, trust_env=False)
                self._contexts[verified] = context
            return context

        def _pool(self, url: httpx.URL) -> httpx.AsyncHTTPTransport:
            key = (url.raw_scheme, url.raw_host, url.port)
            pool = self._pools.get(key)
            if pool is None:
                context = self._context(verified=url.scheme == "https")
                pool = self._pools[key] = httpx.AsyncHTTPTransport(verify=context, limits=self._limits,
                                                                   trust_env=False)
            return pool

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            return await self._pool(request.url).handle_async_request(request)

        async def aclose(self) -> None:
            pools, self._pools = list(self._pools.values()), {}
            for pool in pools:
                await pool.aclose()

    return _PoolPerOrigin(limits)


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
