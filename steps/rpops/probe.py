"""Concurrent HTTP probing with one shared httpx.AsyncClient.

- One client per `Prober`: connections are pooled and kept alive across probes.
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
import ssl
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import anyio
import httpx

ErrorKind = Literal["unreachable", "timeout", "protocol"]
T = TypeVar("T")

# Connection-level failures: nothing reached the server, so trying again is safe and useful.
_RETRYABLE = (httpx.ConnectError, httpx.ConnectTimeout)


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


class Prober:
    """Concurrent probes through one pooled, keep-alive `httpx.AsyncClient`.

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
        self._client: httpx.AsyncClient | None = None
        self._slots: asyncio.Semaphore | None = None

    async def __aenter__(self) -> Prober:
        limits = httpx.Limits(
            max_connections=self._max_concurrency,
            max_keepalive_connections=self._max_concurrency,
            keepalive_expiry=30.0,
        )
        self._client = httpx.AsyncClient(
            transport=_PoolPerOrigin(limits), timeout=httpx.Timeout(self.timeout), headers=self._headers,
            follow_redirects=False, trust_env=False,
        )
        self._slots = asyncio.Semaphore(self._max_concurrency)
        # The first connection loads anyio's event-loop backend (~30 ms of imports); load it now so
        # that it does not count as the first probe's latency.
        await anyio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

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
        if self._client is None or self._slots is None:
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
        assert self._client is not None
        started = time.perf_counter()

        def result(**kw: Any) -> ProbeResult:
            elapsed = (time.perf_counter() - started) * 1000
            return ProbeResult(method=method, url=url, elapsed_ms=elapsed, attempts=attempt, **kw)

        try:
            async with asyncio.timeout(self.timeout):
                request = self._client.build_request(
                    method, url, json=json_body, data=form, params=params, headers=headers)
                response = await self._client.send(request, stream=True)
                try:
                    body, truncated = await self._read_body(response)
                finally:
                    await response.aclose()
        except _RETRYABLE as exc:
            return result(status=None, error="unreachable", detail=_describe(exc))
        except (TimeoutError, httpx.TimeoutException):
            return result(status=None, error="timeout", detail=f"no answer within {self.timeout:g}s")
        except httpx.TransportError as exc:
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
            context = self._contexts[verified] = httpx.create_ssl_context(verify=verified, trust_env=False)
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


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
