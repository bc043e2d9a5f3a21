"""The reference Research Platform workload as an ASGI app (Starlette).

`create_app(version, admin_token)` builds one independent app: its own Prometheus registry,
monitor thread, fault set and fault effects. The pipelines' checks read this contract; the
admin endpoint lets tests and demos break it on purpose.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

import anyio.to_thread
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rpops import rules
from rpops.core.parsers import NestingError, loads_json
from rpops.workload.faults import FaultEffects, FaultError, Faults, merge_faults
from rpops.workload.metrics import Monitor, RequestMetrics
from rpops.workload.openapi import build_openapi
from rpops.workload.sandbox import EvalPool

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
EVAL_WORKERS = 2  # evaluation processes: one per core of the 2-core hosts the workload runs on
# Paths that latency and error faults never touch: scraping and the admin endpoint must keep
# working while faulty, and readiness is governed by the not_ready fault alone (a slow /health
# must read as degraded, not make the proxy take every instance out of rotation).
UNFAULTED = ("/metrics", "/admin/faults", "/ready")
INJECTED_ERROR = b'{"error":"injected fault: error_rate"}'


class WorkloadState:
    """Everything one app instance owns; handlers and the middleware share it."""

    def __init__(self, version: str, admin_token: str | None, faults: Faults,
                 monitor_interval_s: float) -> None:
        self.version = version
        self.admin_token = admin_token.encode() if admin_token else None
        self.faults = faults
        self.effects = FaultEffects()
        self.metrics = RequestMetrics(version)
        self.monitor = Monitor(self.metrics, interval_s=monitor_interval_s)
        self.started = time.monotonic()
        self.evaluator: EvalPool | None = None  # started with the app (lifespan)

    def set_faults(self, faults: Faults) -> None:
        self.faults = faults
        self.effects.apply(faults)

    @property
    def uptime_s(self) -> float:
        return time.monotonic() - self.started


def _state(request: Request) -> WorkloadState:
    state: WorkloadState = request.app.state.workload
    return state


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


# --- the contract ---------------------------------------------------------------------------

def security_check() -> bool:
    """The evaluator is wired in and refuses nothing it should allow."""
    try:
        return bool(rules.evaluate("1 + 1") == 2)
    except Exception:  # noqa: BLE001 - any failure of the evaluator is an unhealthy check
        return False


def performance_check(state: WorkloadState) -> bool:
    """Monitoring runs and its figures are readable numbers."""
    sample = state.monitor.sample
    return state.monitor.active and sample.memory_mb > 0 and sample.cpu_percent >= 0


async def health(request: Request) -> Response:
    state = _state(request)
    checks = {"security": security_check(), "performance": performance_check(state)}
    healthy = all(checks.values()) and not state.faults.unhealthy
    body = {
        "status": "healthy" if healthy else "unhealthy",
        "version": state.version,
        "checks": checks,
        "uptime_s": round(state.uptime_s, 3),
    }
    if state.faults.unhealthy:
        body["reason"] = "unhealthy fault injected"
    return JSONResponse(body, status_code=200 if healthy else 503)


async def ready(request: Request) -> Response:
    state = _state(request)
    if state.faults.not_ready:
        return JSONResponse({"ready": False, "version": state.version, "reason": "not_ready fault injected"},
                            status_code=503)
    return JSONResponse({"ready": True, "version": state.version})


async def metrics(request: Request) -> Response:
    state = _state(request)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def performance_metrics(request: Request) -> Response:
    state = _state(request)
    sample = state.monitor.sample
    return JSONResponse({
        "version": state.version,
        "monitoring_active": state.monitor.active,
        "uptime_s": round(state.uptime_s, 3),
        "cpu_percent": round(sample.cpu_percent, 1),
        "memory_mb": round(sample.memory_mb, 1),
        "request_rate": round(sample.request_rate, 2),
        "requests_total": state.metrics.requests_total,
        "security_blocked_operations": state.metrics.blocked_total,
        "sampled_age_s": round(time.monotonic() - sample.at, 3),
        "routes": {route: asdict(summary) for route, summary in state.metrics.route_summaries().items()},
    })


async def performance_status(request: Request) -> Response:
    state = _state(request)
    sample = state.monitor.sample
    return JSONResponse({
        "monitoring_active": state.monitor.active,
        "cpu_percent": round(sample.cpu_percent, 1),
        "memory_mb": round(sample.memory_mb, 1),
        "uptime_s": round(state.uptime_s, 3),
        "request_rate": round(sample.request_rate, 2),
    })


async def _json_object(request: Request) -> dict[str, Any] | Response:
    """The request body as a JSON object, or a 400 response saying what is wrong with it."""
    raw = await request.body()
    if not raw.strip():
        return _error(400, "request body is empty; send a JSON object")
    try:
        payload = loads_json(raw)
    except NestingError as exc:
        return _error(400, f"request body is {exc}; send a flatter JSON object")
    except ValueError as exc:
        return _error(400, f"request body is not valid JSON: {exc}")
    if not isinstance(payload, dict):
        return _error(400, f"request body must be a JSON object, got {type(payload).__name__}")
    return payload


async def secure_eval(request: Request) -> Response:
    state = _state(request)
    payload = await _json_object(request)
    if isinstance(payload, Response):
        return payload
    unknown = sorted(set(payload) - {"expression", "context"})
    if unknown:
        return _error(400, f"unknown field(s) {', '.join(unknown)}; send only 'expression' and 'context'")
    expression = payload.get("expression")
    if not isinstance(expression, str):
        return _error(400, "field 'expression' is required and must be a string")
    context = payload.get("context", {})
    if context is None:
        context = {}
    if not isinstance(context, dict):
        return _error(400, f"field 'context' must be a JSON object of names, got {type(context).__name__}")
    if state.evaluator is None:
        return _error(503, "the evaluator is not running; retry once the service has started")
    # In a worker process under hard limits: nothing an expression does can stall this server,
    # and the answer arrives encoded and capped in size (rpops.workload.sandbox).
    outcome = await state.evaluator.evaluate(expression, context)
    if outcome.refused:
        state.metrics.record_blocked()
        log.info("secure-eval refused: %s", outcome.body[:300].decode("utf-8", "replace"))
    headers = {"Retry-After": str(outcome.retry_after)} if outcome.retry_after else None
    return Response(outcome.body, status_code=outcome.status, media_type="application/json",
                    headers=headers)


# --- admin ----------------------------------------------------------------------------------

def _authorised(state: WorkloadState, request: Request) -> Response | None:
    """None when the request may use the admin endpoint, else the refusal."""
    if state.admin_token is None:
        return _error(404, "admin endpoint disabled; start the workload with --admin-token to enable it")
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), state.admin_token):
        response = _error(401, "missing or wrong admin token; send 'Authorization: Bearer <token>'")
        response.headers["WWW-Authenticate"] = 'Bearer realm="rpops-workload"'
        return response
    return None


def _faults_body(state: WorkloadState) -> dict[str, Any]:
    return {"faults": state.faults.as_dict(), "active": state.faults.active,
            "effects": state.effects.status()}


async def admin_faults(request: Request) -> Response:
    state = _state(request)
    refusal = _authorised(state, request)
    if refusal is not None:
        return refusal
    if request.method == "POST":
        payload = await _json_object(request)
        if isinstance(payload, Response):
            return payload
        try:
            faults = merge_faults(state.faults, payload)
        except FaultError as exc:
            return _error(400, str(exc))
        # Threads start and stop here; keep that off the event loop.
        await anyio.to_thread.run_sync(state.set_faults, faults)
        log.warning("faults set: %s", {k: v for k, v in faults.as_dict().items() if v})
    elif request.method == "DELETE":
        await anyio.to_thread.run_sync(state.set_faults, Faults())
        log.warning("faults cleared")
    return JSONResponse(_faults_body(state))


async def openapi(request: Request) -> Response:
    return JSONResponse(request.app.state.openapi)


ROUTES = [
    Route("/health", health, methods=["GET"]),
    Route("/ready", ready, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/performance/metrics", performance_metrics, methods=["GET"]),
    Route("/api/secure-eval", secure_eval, methods=["POST"], max_body_size=MAX_BODY_BYTES),
    Route("/api/performance/status", performance_status, methods=["GET"]),
    Route("/admin/faults", admin_faults, methods=["GET", "POST", "DELETE"], max_body_size=MAX_BODY_BYTES),
    Route("/openapi.json", openapi, methods=["GET"]),
]
ROUTE_PATHS = frozenset(route.path for route in ROUTES)


# --- the middleware: faults first, then metrics ----------------------------------------------

class WorkloadMiddleware:
    """Plain ASGI (no BaseHTTPMiddleware task per request): injects faults and records metrics."""

    def __init__(self, app: ASGIApp, state: WorkloadState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        path = scope["path"]
        route = path if path in ROUTE_PATHS else "unmatched"  # bounded label values
        status = 500
        faults = self.state.faults
        try:
            if route not in UNFAULTED and (faults.latency_ms or faults.error_rate):
                if faults.latency_ms:
                    await asyncio.sleep(faults.latency_ms / 1000.0)
                if faults.error_rate and random.random() < faults.error_rate:  # noqa: S311 - not crypto
                    await send({"type": "http.response.start", "status": 500, "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(INJECTED_ERROR)).encode()),
                        (b"x-fault", b"error_rate")]})
                    await send({"type": "http.response.body", "body": INJECTED_ERROR})
                    return

            async def send_wrapper(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            await self.app(scope, receive, send_wrapper)
        finally:
            self.state.metrics.observe(route, scope["method"], status, time.perf_counter() - start)


def create_app(version: str, admin_token: str | None = None, faults: Faults | None = None,
               monitor_interval_s: float = 0.5) -> ASGIApp:
    """Build the workload app; its background threads start and stop with the ASGI lifespan."""
    state = WorkloadState(version, admin_token, faults or Faults(), monitor_interval_s)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.monitor.start()
        state.effects.apply(state.faults)
        state.evaluator = EvalPool(EVAL_WORKERS)
        await state.evaluator.start()
        try:
            yield
        finally:
            await state.evaluator.close()
            state.effects.close()
            state.monitor.stop()

    app = Starlette(routes=ROUTES, lifespan=lifespan)
    app.state.workload = state
    app.state.openapi = build_openapi(version, admin_enabled=admin_token is not None)
    return WorkloadMiddleware(app, state)
