"""`rpops workload serve`: run the reference workload under uvicorn (one worker).

    rpops workload serve --host 127.0.0.1 --port 8080 --version v1 --admin-token secret
    rpops workload serve --port 0 --port-file /tmp/port --fault latency_ms=200

`--port 0` binds a free port and writes it to `--port-file` once the server accepts requests.
SIGTERM or SIGINT shut it down gracefully.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

from rpops.core.errors import UsageError
from rpops.core.listen import bind
from rpops.core.settings import add_arguments, from_args, setting

log = logging.getLogger(__name__)

ADMIN_TOKEN_ENV = "RPOPS_WORKLOAD_ADMIN_TOKEN"  # noqa: S105 - a variable name, not a secret
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,62}$")


@dataclass(frozen=True)
class ServeSettings:
    host: str = setting("127.0.0.1", help="Address to listen on.")
    port: int = setting(8000, help="TCP port; 0 picks a free port (see --port-file).")
    version: str = setting("v1", help="Version this instance reports in /health, /ready and metrics.")
    admin_token: str | None = setting(
        None, help=f"Bearer token for /admin/faults (or set ${ADMIN_TOKEN_ENV}); without one the "
        "admin endpoint is disabled.")
    port_file: str | None = setting(None, help="Write the bound port to this file once serving.")
    fault: tuple[str, ...] = setting(
        (), repeat=True,
        help="Start with a fault, NAME=VALUE (repeatable): latency_ms, error_rate, unhealthy, not_ready, "
        "cpu_burn, memory_growth_mb_per_s.")
    access_log: bool = setting(False, help="Log every request (costs throughput).")
    graceful_timeout: float = setting(5.0, help="Seconds to let open requests finish on SIGTERM.")


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    serve_parser = actions.add_parser("serve", help="Serve the workload over HTTP.",
                                      description="Serve the reference Research Platform workload.")
    add_arguments(serve_parser, ServeSettings)


def run(args: argparse.Namespace) -> int:
    if args.action == "serve":
        return serve(from_args(ServeSettings, args))
    raise UsageError(f"unknown action {args.action!r}; use 'rpops workload serve'")


def _validate(settings: ServeSettings) -> None:
    if not 0 <= settings.port <= 65535:
        raise UsageError(f"--port {settings.port} is out of range; use 0..65535 (0 picks a free port)")
    if not _VERSION_RE.match(settings.version):
        raise UsageError(f"--version {settings.version!r}: use 1-63 letters, digits, '.', '_', '+' or '-'")
    if settings.port_file is not None and not Path(settings.port_file).parent.is_dir():
        raise UsageError(f"--port-file {settings.port_file!r}: its directory does not exist")
    if settings.graceful_timeout < 0:
        raise UsageError("--graceful-timeout must be >= 0 seconds")


def _bind(host: str, port: int) -> socket.socket:
    sock = bind(host, port)
    sock.set_inheritable(True)
    return sock


def _write_port_file(path: str, port: int) -> None:
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{port}\n")
    tmp.replace(target)  # readers never see a half-written file


def serve(settings: ServeSettings) -> int:
    _validate(settings)
    # Heavy imports after validation, so that bad flags fail fast.
    import prometheus_client
    import uvicorn

    from rpops.workload.app import create_app
    from rpops.workload.faults import Faults, merge_faults, parse_fault_flag

    faults = merge_faults(Faults(), dict(parse_fault_flag(text) for text in settings.fault))
    admin_token = settings.admin_token or os.environ.get(ADMIN_TOKEN_ENV) or None
    prometheus_client.disable_created_metrics()  # halves the scrape; *_created series are unused

    sock = _bind(settings.host, settings.port)
    port = int(sock.getsockname()[1])
    app = create_app(settings.version, admin_token=admin_token, faults=faults)
    from rpops.core.read_deadlines import deadline_protocol

    config = uvicorn.Config(app, ws="none", lifespan="on", access_log=settings.access_log,
                            log_config=None, timeout_graceful_shutdown=int(settings.graceful_timeout),
                            server_header=False, backlog=2048,
                            http=deadline_protocol())  # half-sent requests are dropped
    server = uvicorn.Server(config)

    async def main() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.005)
        if server.started:
            log.info("workload %s serving on http://%s:%d (admin %s)", settings.version, settings.host, port,
                     "enabled" if admin_token else "disabled")
            if settings.port_file:
                _write_port_file(settings.port_file, port)
        await task

    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(main())
    sock.close()
    return 0
