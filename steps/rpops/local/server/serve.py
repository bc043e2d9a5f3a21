"""`rpops local serve`: Argo's events API and CronWorkflow schedules, on this machine.

    rpops local serve [--host 127.0.0.1] [--port 2746] [--token-file F] [--namespace argo]
                      [--manifests manifests/argo] [--runs-dir .rpops/runs] [--max-body 1MiB]
                      [--dedup-window 300] [--rate-limit 60/min] [--read-timeout 5] [--port-file F]

Endpoints (every one needs `Authorization: Bearer <the token in --token-file>`):

    POST /api/v1/events/{namespace}/{discriminator}   any JSON; the namespace's
         WorkflowEventBindings decide what runs. With the discriminator `alertmanager` the body
         must be Alertmanager's webhook payload, version 4, and its firing alerts are
         de-duplicated by fingerprint for --dedup-window seconds. The body must be sent as
         `Content-Type: application/json` (415 otherwise). 200 `{}` (Argo's answer) with
         the started runs in the `X-Rpops-Workflows` header; 4xx with {"code", "message"} and
         nothing started for anything malformed, unauthenticated, too large or too frequent.
    GET  /api/v1/workflows/{namespace}                the recorded runs of the namespace, newest
         first, as Argo lists them (`items`: metadata, spec, status);
         `?listOptions.labelSelector=k=v,k2!=v2` filters by labels.

Runs go to the local executor (the same records as `rpops local run`, read by `rpops local
list|get|logs`); templates hold their mutexes as they would on Argo. CronWorkflows in
--manifests run on their schedules (rpops.local.server.cron). A missing --token-file is created
with a random token (mode 0600). SIGTERM or Ctrl-C stops the server and terminates the runs
it started. A client has --read-timeout seconds to send a request's headers and as long again
for its body; slower connections are closed.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import logging
import os
import secrets
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rpops.core.cli import _Parser
from rpops.core.errors import UsageError
from rpops.core.io import run_step, setup_logging
from rpops.core.listen import bind
from rpops.core.parsers import NestingError, is_json_media_type, loads_json, read_text_file
from rpops.core.read_deadlines import deadline_protocol
from rpops.core.settings import from_args
from rpops.local.expr.eventexpr import ExprError
from rpops.local.load.catalog import Catalog, load_documents
from rpops.local.records.runs import list_runs
from rpops.local.run.executor import Options
from rpops.local.server.bindings import Binding, Dispatcher, event_env, load_bindings, match
from rpops.local.server.cron import Scheduler, load_crons
from rpops.local.server.events import (
    Deduplicator,
    PayloadError,
    RateLimiter,
    alert_keys,
    check_alertmanager,
)
from rpops.local.server.settings import Limits, ServeSettings, check_settings, configure

log = logging.getLogger("rpops.local.server.serve")

ALERTMANAGER = "alertmanager"  # the discriminator whose payloads are checked as Alertmanager's
STOP_GRACE_S = 5.0


def read_token(path: Path) -> str:
    """The token in `path`; a new random one (mode 0600) when the file does not exist."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        token = secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token + "\n")
        log.info("wrote a new bearer token to %s", path)
        return token
    token = read_text_file(path, f"--token-file {path}", max_bytes=4096).strip()
    if not token or any(c.isspace() for c in token):
        raise UsageError(f"--token-file {path}: must hold one token (no spaces); delete it to get a new one")
    return token


# --------------------------------------------------------------------------------------------- the app


class _Refused(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


@dataclass
class Server:
    """What the app's handlers share."""

    token: str
    namespace: str
    limits: Limits
    catalog: Catalog
    bindings: list[Binding]
    dispatcher: Dispatcher
    dedup: Deduplicator
    limiter: RateLimiter
    runs_dir: Path
    scheduler: Scheduler | None = None

    def authorize(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise _Refused(
                401,
                "missing bearer token: send Authorization: Bearer <token>",
                {"WWW-Authenticate": "Bearer"},
            )
        if not hmac.compare_digest(credentials.strip().encode(), self.token.encode()):
            raise _Refused(401, "the bearer token is not valid", {"WWW-Authenticate": "Bearer"})

    def check_namespace(self, namespace: str) -> None:
        if namespace != self.namespace:
            raise _Refused(404, f"namespace {namespace!r} is not served here (serving {self.namespace!r})")

    def check_json(self, request: Request) -> None:
        if not is_json_media_type(request.headers.get("content-type")):
            raise _Refused(415, "the body must be JSON: send the header Content-Type: application/json")

    async def body(self, request: Request) -> bytes:

        limit = self.limits.max_body
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            raise _Refused(413, f"the body is larger than the limit of {limit} bytes (--max-body)")
        chunks, size = [], 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _Refused(413, f"the body is larger than the limit of {limit} bytes (--max-body)")
                chunks.append(chunk)
        except ClientDisconnect:  # gone, or closed for not sending the body within --read-timeout
            raise _Refused(408, "the body did not arrive in time (--read-timeout)") from None
        return b"".join(chunks)


def _error(exc: _Refused) -> Response:

    codes = {400: 3, 401: 16, 404: 5, 408: 4, 413: 8, 415: 3, 422: 3, 429: 8}  # gRPC codes, as Argo answers
    return JSONResponse({"code": codes.get(exc.status, 2), "message": exc.message}, exc.status, exc.headers)


async def _event(request: Request) -> Response:


    server: Server = request.app.state.server
    namespace = request.path_params["namespace"]
    discriminator = request.path_params["discriminator"]
    try:
        server.authorize(request)
        server.check_namespace(namespace)
        wait = server.limiter.take(time.monotonic())
        if wait > 0:
            raise _Refused(
                429,
                f"too many events (--rate-limit); retry in {wait:.1f} s",
                {"Retry-After": str(max(1, round(wait)))},
            )
        server.check_json(request)
        raw = await server.body(request)
        try:
            payload = loads_json(raw)
        except NestingError as exc:
            raise _Refused(400, f"the body is {exc}; send a flatter JSON document") from None
        except ValueError as exc:
            raise _Refused(400, f"the body is not JSON: {exc}") from None
        keys: list[str] = []
        if discriminator == ALERTMANAGER:
            try:
                group = check_alertmanager(payload)
            except PayloadError as exc:
                raise _Refused(400, f"not an Alertmanager webhook payload: {exc}") from None
            keys = alert_keys(group)
            now = time.monotonic()
            if keys and server.limits.dedup_window > 0 and not server.dedup.new(keys, now):
                log.info(
                    "event %s/%s: every firing alert was seen in the last %g s; nothing submitted",
                    namespace,
                    discriminator,
                    server.limits.dedup_window,
                )
                return JSONResponse({}, headers={"X-Rpops-Workflows": "", "X-Rpops-Duplicate": "true"})
            server.dedup.record(keys, now)  # at once: a concurrent resend is a duplicate too
        try:
            env = event_env(namespace, discriminator, payload, dict(request.headers))
            submissions = match(server.bindings, env)
            names = await anyio.to_thread.run_sync(server.dispatcher.submit, submissions)
        except (ExprError, UsageError) as exc:
            server.dedup.forget(keys)
            raise _Refused(422, str(exc)) from None
    except _Refused as exc:
        log.warning("event %s/%s refused (%d): %s", namespace, discriminator, exc.status, exc.message)
        return _error(exc)
    if not names:
        log.info("event %s/%s matched no binding", namespace, discriminator)
    return JSONResponse({}, headers={"X-Rpops-Workflows": ",".join(names)})


def _selector(text: str) -> list[tuple[str, str, str]]:
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        for op in ("!=", "==", "="):
            key, sep, value = part.partition(op)
            if sep:
                out.append((key.strip(), "!=" if op == "!=" else "=", value.strip()))
                break
        else:
            raise _Refused(400, f"labelSelector {part!r}: only key=value and key!=value are supported")
    return out


def _matches(labels: dict[str, str], selector: list[tuple[str, str, str]]) -> bool:
    return all((labels.get(k) == v) == (op == "=") for k, op, v in selector)


async def _workflows(request: Request) -> Response:


    server: Server = request.app.state.server
    try:
        server.authorize(request)
        server.check_namespace(request.path_params["namespace"])
        selector = _selector(request.query_params.get("listOptions.labelSelector", ""))
    except _Refused as exc:
        return _error(exc)
    docs = await anyio.to_thread.run_sync(list_runs, server.runs_dir)
    items = [
        d
        for d in docs
        if d["metadata"].get("namespace") == server.namespace
        and _matches(d["metadata"].get("labels") or {}, selector)
    ]
    return JSONResponse({"metadata": {}, "items": items})


def create_app(server: Server) -> Starlette:

    app = Starlette(
        routes=[
            Route("/api/v1/events/{namespace}/{discriminator}", _event, methods=["POST"]),
            Route("/api/v1/workflows/{namespace}", _workflows, methods=["GET"]),
        ]
    )
    app.state.server = server
    return app


# --------------------------------------------------------------------------------------------- wiring


def _node_logger(node: Any, before: str | None) -> None:
    if node.type == "Pod" and node.phase == "Running" and before != "Running":
        log.info("step %s running (%s)", node.name, node.template_name)


def build_server(s: ServeSettings, limits: Limits) -> Server:

    token = read_token(Path(s.token_file))
    catalog = load_documents([Path(s.manifests)])
    problems = catalog.lint()
    if problems:
        raise UsageError("--manifests holds documents rpops local cannot run:\n" + "\n".join(problems))
    bindings = load_bindings(catalog, s.namespace)
    crons = load_crons(catalog, s.namespace)
    runs_dir = Path(s.runs_dir)
    lock = threading.Lock()

    def options(name: str | None = None) -> Options:
        return Options(runs_dir=runs_dir, secrets_file=Path(s.secrets), name=name)

    dispatcher = Dispatcher(catalog, s.namespace, options, node_listeners=[_node_logger], lock=lock)
    scheduler = (
        Scheduler(catalog, crons, options, runs_dir, lock=lock, node_listeners=[_node_logger])
        if crons
        else None
    )
    rate, period = limits.rate
    log.info(
        "serving namespace %s: %d binding(s) (%s), %d CronWorkflow(s) (%s)",
        s.namespace,
        len(bindings),
        ", ".join(b.name for b in bindings) or "none",
        len(crons),
        ", ".join(c.name for c in crons) or "none",
    )
    return Server(
        token=token,
        namespace=s.namespace,
        limits=limits,
        catalog=catalog,
        bindings=bindings,
        dispatcher=dispatcher,
        dedup=Deduplicator(limits.dedup_window),
        limiter=RateLimiter(rate, period, time.monotonic()),
        runs_dir=runs_dir,
        scheduler=scheduler,
    )


def _write_port_file(path: str, port: int) -> None:
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{port}\n")
    tmp.replace(target)


def _stop_runs(server: Server) -> None:
    handles = server.dispatcher.active() + (server.scheduler.active() if server.scheduler else [])
    for h in handles:
        h.stop("Terminate")
    deadline = time.monotonic() + STOP_GRACE_S
    for h in handles:
        h.wait(max(0.1, deadline - time.monotonic()))


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:

    settings = from_args(ServeSettings, args)
    limits = check_settings(settings)
    server = build_server(settings, limits)
    sock = bind(settings.host, settings.port)
    port = int(sock.getsockname()[1])

    config = uvicorn.Config(
        create_app(server),
        http=deadline_protocol(header_s=limits.read_timeout, body_s=limits.read_timeout),
        ws="none",
        lifespan="off",
        access_log=False,
        log_config=None,
        server_header=False,
    )
    web = uvicorn.Server(config)

    async def main() -> None:
        task = asyncio.create_task(web.serve(sockets=[sock]))
        while not web.started and not task.done():
            await asyncio.sleep(0.005)
        if web.started:
            if server.scheduler is not None:
                server.scheduler.start()
            log.info(
                "rpops local serve on http://%s:%d (namespace %s)", settings.host, port, settings.namespace
            )
            if settings.port_file:
                _write_port_file(settings.port_file, port)
        await task

    if threading.current_thread() is threading.main_thread():
        # uvicorn stops on SIGTERM, then raises it again once stopped: make that an exception, so
        # that the runs below are terminated (their steps stopped by PID) before the process ends.
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
            runner.run(main())
    except KeyboardInterrupt:
        log.info("stopping: terminating %d run(s)", len(server.dispatcher.active()))
    finally:
        if server.scheduler is not None:
            server.scheduler.stop()
        _stop_runs(server)
        sock.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m rpops.local.server.serve`: the same command without going through `rpops local`."""

    parser = _Parser(prog="rpops local serve")
    configure(parser)
    args = parser.parse_args(argv)
    setup_logging()
    return run_step(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
