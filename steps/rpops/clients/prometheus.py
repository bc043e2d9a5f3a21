"""A small Prometheus HTTP API client: instant and range queries with typed results.

Every way a query can go wrong is a value, not an exception: `QueryResult.outcome` says
`ok`, `empty` (no series), `nan` (every value NaN, e.g. 0/0 with no traffic), `error`
(Prometheus answered `status: error`, with its `errorType`), `http_error` (an HTTP error
without an API body), `invalid` (not the API's JSON), `timeout` or `unreachable` (after
retries on connection failures). Callers pick what each outcome means for them.

Two front ends share the parsing: `AsyncPrometheus` (on a `rpops.clients.probe.Prober`, so it can share
one pooled client with other probes) and `Prometheus` (synchronous, on `httpx.Client`).
"""

from __future__ import annotations

import enum
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from rpops.clients.probe import Prober, ProbeResult, backoff_delay

if TYPE_CHECKING:
    import httpx


class Outcome(enum.StrEnum):
    OK = "ok"
    EMPTY = "empty"
    NAN = "nan"
    ERROR = "error"
    HTTP_ERROR = "http_error"
    INVALID = "invalid"
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True, slots=True)
class Sample:
    """One value of an instant vector (or the value of a scalar)."""

    labels: Mapping[str, str]
    timestamp: float
    value: float


@dataclass(frozen=True, slots=True)
class Series:
    """One series of a range query: (timestamp, value) points."""

    labels: Mapping[str, str]
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class QueryResult:
    query: str
    outcome: Outcome
    result_type: str | None = None  # vector | scalar | matrix | string
    samples: tuple[Sample, ...] = ()
    series: tuple[Series, ...] = ()
    error_type: str | None = None  # Prometheus' errorType (bad_data, execution, timeout, ...)
    error: str = ""
    warnings: tuple[str, ...] = ()
    http_status: int | None = None
    elapsed_ms: float = 0.0
    attempts: int = 1
    text: str | None = field(default=None, repr=False)  # the value of a `string` result

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    def values(self) -> list[float]:
        """Every finite-or-infinite (non-NaN) value: instant samples, or all range points."""
        found = [s.value for s in self.samples] + [v for s in self.series for _, v in s.points]
        return [v for v in found if not math.isnan(v)]

    def max_value(self) -> float | None:
        """The largest non-NaN value, or None unless the outcome is ok."""
        values = self.values() if self.ok else []
        return max(values) if values else None

    def value(self) -> float | None:
        """The single value of a scalar or one-sample vector; None otherwise (aggregate first)."""
        if not self.ok or len(self.samples) != 1:
            return None
        value = self.samples[0].value
        return None if math.isnan(value) else value

    def summary(self) -> dict[str, Any]:
        """JSON-ready description for reports."""
        return {
            "query": self.query,
            "outcome": self.outcome.value,
            "result_type": self.result_type,
            "samples": len(self.samples),
            "series": len(self.series),
            "value": self.max_value(),
            "error_type": self.error_type,
            "error": self.error,
            "warnings": list(self.warnings),
            "http_status": self.http_status,
            "elapsed_ms": round(self.elapsed_ms, 3),
            "attempts": self.attempts,
        }


def _float(raw: Any) -> float:
    # Prometheus encodes values as strings: "1.5", "NaN", "+Inf", "-Inf".
    return float(raw)


def parse_response(query: str, status_code: int, body: bytes) -> QueryResult:
    """Turn one HTTP answer of /api/v1/query or /api/v1/query_range into a QueryResult."""
    base: dict[str, Any] = {"query": query, "http_status": status_code}
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        doc = None
    if not isinstance(doc, dict) or doc.get("status") not in ("success", "error"):
        snippet = body[:200].decode("utf-8", "replace").strip()
        if status_code >= 400:
            return QueryResult(outcome=Outcome.HTTP_ERROR, error=f"HTTP {status_code}: {snippet}", **base)
        return QueryResult(outcome=Outcome.INVALID, error=f"not a Prometheus API answer: {snippet!r}", **base)
    warnings = tuple(str(w) for w in doc.get("warnings") or ())
    if doc["status"] == "error":
        return QueryResult(outcome=Outcome.ERROR, error_type=str(doc.get("errorType") or "unknown"),
                           error=str(doc.get("error") or ""), warnings=warnings, **base)
    try:
        return _parse_data(doc["data"], warnings, base)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        return QueryResult(outcome=Outcome.INVALID, error=f"unexpected data shape: {exc!r}",
                           warnings=warnings, **base)


def _parse_data(data: dict[str, Any], warnings: tuple[str, ...], base: dict[str, Any]) -> QueryResult:
    result_type = data["resultType"]
    raw = data["result"]
    samples: tuple[Sample, ...] = ()
    series: tuple[Series, ...] = ()
    text = None
    if result_type == "vector":
        samples = tuple(Sample(dict(r["metric"]), float(r["value"][0]), _float(r["value"][1])) for r in raw)
        values = [s.value for s in samples]
    elif result_type == "scalar":
        samples = (Sample({}, float(raw[0]), _float(raw[1])),)
        values = [samples[0].value]
    elif result_type == "matrix":
        series = tuple(
            Series(dict(r["metric"]), tuple((float(t), _float(v)) for t, v in r["values"])) for r in raw
        )
        values = [v for s in series for _, v in s.points]
    elif result_type == "string":
        text = str(raw[1])
        values = [0.0]
    else:
        raise ValueError(f"unknown resultType {result_type!r}")
    if not values:
        outcome = Outcome.EMPTY
    elif all(math.isnan(v) for v in values):
        outcome = Outcome.NAN
    else:
        outcome = Outcome.OK
    return QueryResult(outcome=outcome, result_type=result_type, samples=samples, series=series,
                       warnings=warnings, text=text, **base)


def _from_probe(query: str, probe: ProbeResult) -> QueryResult:
    if probe.status is None:
        outcome = {"timeout": Outcome.TIMEOUT, "unreachable": Outcome.UNREACHABLE}.get(
            probe.error or "", Outcome.HTTP_ERROR)
        return QueryResult(query=query, outcome=outcome, error=probe.detail,
                           elapsed_ms=probe.elapsed_ms, attempts=probe.attempts)
    result = parse_response(query, probe.status, probe.body)
    return _with_timing(result, probe.elapsed_ms, probe.attempts)


def _with_timing(result: QueryResult, elapsed_ms: float, attempts: int) -> QueryResult:
    return replace(result, elapsed_ms=elapsed_ms, attempts=attempts)


def _instant_form(query: str, at: float | None, timeout: float) -> dict[str, str]:
    form = {"query": query, "timeout": f"{timeout:g}s"}
    if at is not None:
        form["time"] = f"{at:.3f}"
    return form


def _range_form(query: str, start: float, end: float, step: float, timeout: float) -> dict[str, str]:
    if step <= 0:
        raise ValueError("step must be > 0")
    if end < start:
        raise ValueError("end must not be before start")
    return {"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}",
            "timeout": f"{timeout:g}s"}


class AsyncPrometheus:
    """Async client. Pass a running `Prober` to share its pool, or use `async with`."""

    def __init__(self, base_url: str, *, prober: Prober | None = None, timeout: float = 5.0,
                 retries: int = 2, backoff_s: float = 0.2) -> None:
        self.base_url = base_url.rstrip("/")
        self._own = prober is None
        self._prober = prober or Prober(timeout=timeout, retries=retries, backoff_s=backoff_s)

    async def __aenter__(self) -> AsyncPrometheus:
        if self._own:
            await self._prober.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._own:
            await self._prober.__aexit__(*exc)

    async def query(self, query: str, *, at: float | None = None) -> QueryResult:
        """Instant query (`/api/v1/query`), evaluated now or at unix time `at`."""
        form = _instant_form(query, at, self._prober.timeout)
        probe = await self._prober.request("POST", f"{self.base_url}/api/v1/query", form=form)
        return _from_probe(query, probe)

    async def query_range(self, query: str, *, start: float, end: float, step: float) -> QueryResult:
        """Range query (`/api/v1/query_range`) from `start` to `end` (unix seconds) every `step` s."""
        form = _range_form(query, start, end, step, self._prober.timeout)
        probe = await self._prober.request("POST", f"{self.base_url}/api/v1/query_range", form=form)
        return _from_probe(query, probe)


class Prometheus:
    """Synchronous client with the same retry policy: connection failures only, backoff."""

    def __init__(self, base_url: str, *, timeout: float = 5.0, retries: int = 2, backoff_s: float = 0.2,
                 max_backoff_s: float = 2.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        import httpx  # here: the async path (health checks) runs without it

        self._client: httpx.Client = httpx.Client(timeout=httpx.Timeout(timeout), trust_env=False,
                                    headers={"User-Agent": "rpops-prometheus"})

    def __enter__(self) -> Prometheus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def query(self, query: str, *, at: float | None = None) -> QueryResult:
        return self._post("/api/v1/query", query, _instant_form(query, at, self.timeout))

    def query_range(self, query: str, *, start: float, end: float, step: float) -> QueryResult:
        return self._post("/api/v1/query_range", query, _range_form(query, start, end, step, self.timeout))

    def _post(self, path: str, query: str, form: dict[str, str]) -> QueryResult:
        import httpx

        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            try:
                response = self._client.post(f"{self.base_url}{path}", data=form)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if attempt > self.retries:
                    return QueryResult(query=query, outcome=Outcome.UNREACHABLE, error=str(exc),
                                       elapsed_ms=(time.perf_counter() - started) * 1000, attempts=attempt)
                time.sleep(backoff_delay(attempt, self.backoff_s, self.max_backoff_s))
                continue
            except httpx.TimeoutException:
                return QueryResult(query=query, outcome=Outcome.TIMEOUT,
                                   error=f"no answer within {self.timeout:g}s",
                                   elapsed_ms=(time.perf_counter() - started) * 1000, attempts=attempt)
            except httpx.TransportError as exc:
                return QueryResult(query=query, outcome=Outcome.HTTP_ERROR, error=str(exc),
                                   elapsed_ms=(time.perf_counter() - started) * 1000, attempts=attempt)
            elapsed = (time.perf_counter() - started) * 1000
            result = parse_response(query, response.status_code, response.content)
            return _with_timing(result, elapsed, attempt)
