"""`rpops local serve`'s flags and their checks: what `rpops local --help` reads (the server itself,
rpops.local.server.serve, is imported only when it runs)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from rpops.core.errors import UsageError
from rpops.core.parsers import finite_float
from rpops.core.settings import add_arguments, setting
from rpops.local.server.events import parse_rate, parse_size

SUMMARY = "`rpops local serve`: Argo's events API and CronWorkflow schedules, on this machine."


@dataclass(frozen=True)
class ServeSettings:
    host: str = setting("127.0.0.1", help="Address to listen on")
    port: int = setting(2746, help="TCP port (Argo server's); 0 picks a free one (see --port-file)")
    token_file: str = setting(
        ".rpops/serve-token",
        help="File holding the bearer token clients must send; created with a random token when missing",
    )
    namespace: str = setting(
        "argo", help="The namespace served: events and runs of other namespaces are refused"
    )
    manifests: str = setting(
        "manifests/argo", help="Directory (or file) of WorkflowTemplates, bindings, CronWorkflows"
    )
    runs_dir: str = setting(".rpops/runs", help="Directory of run records (as `rpops local run`)")
    secrets: str = setting(".rpops/secrets.yaml", help="Secrets for secretKeyRef (as `rpops local run`)")
    max_body: str = setting("1MiB", help="Largest request body accepted, e.g. 1MiB, 256KiB, 65536")
    dedup_window: float = setting(
        300.0, help="Seconds during which a firing Alertmanager alert (by fingerprint) is not acted on twice"
    )
    rate_limit: str = setting("60/min", help="Events accepted per minute (N/min; also N/s, N/h), all senders")
    read_timeout: float = setting(
        5.0, help="Seconds a client has to send a request's headers, and as long for its body"
    )
    port_file: str | None = setting(None, help="Write the bound port to this file once serving")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = SUMMARY
    add_arguments(parser, ServeSettings)


@dataclass(frozen=True)
class Limits:
    max_body: int
    dedup_window: float
    rate: tuple[int, float]
    read_timeout: float = 5.0


def check_settings(s: ServeSettings) -> Limits:
    if not 0 <= s.port <= 65535:
        raise UsageError(f"--port {s.port} is out of range; use 0..65535 (0 picks a free port)")
    if not s.namespace or not s.namespace.replace("-", "a").isalnum() or s.namespace != s.namespace.lower():
        raise UsageError(
            f"--namespace {s.namespace!r} is not a namespace name (lower-case letters, digits, '-')"
        )
    if not Path(s.manifests).exists():
        raise UsageError(f"--manifests {s.manifests}: no such file or directory")
    finite_float(s.dedup_window, "--dedup-window")
    if not 0 < finite_float(s.read_timeout, "--read-timeout") <= 3600:
        raise UsageError(f"--read-timeout {s.read_timeout:g}: must be above 0 and at most 3600 seconds")
    if s.dedup_window < 0:
        raise UsageError(
            f"--dedup-window {s.dedup_window:g} must be >= 0 seconds (0 turns de-duplication off)"
        )
    if s.port_file is not None and not Path(s.port_file).parent.is_dir():
        raise UsageError(f"--port-file {s.port_file!r}: its directory does not exist")
    return Limits(parse_size(s.max_body), s.dedup_window, parse_rate(s.rate_limit), s.read_timeout)
