"""The step contract: output parameters, report, progress, logging and exit codes.

Argo (and `rpops local`) read output parameters from files under `$RPOPS_OUTPUTS`
(default `/tmp/outputs`), the step's short result from stdout, and progress from
`$ARGO_PROGRESS_FILE`. Logs go to stderr.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rpops.core.errors import RpopsError

EXIT_OK = 0
EXIT_GATE_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

log = logging.getLogger("rpops")


def outputs_dir() -> Path:
    return Path(os.environ.get("RPOPS_OUTPUTS", "/tmp/outputs"))  # noqa: S108 - Argo's convention


def write_output(name: str, value: object) -> Path:
    """Write one output parameter file; non-strings are written as compact JSON."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    path = outputs_dir() / name
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def write_report(report: dict[str, Any]) -> Path:
    """Write the full JSON report (an Argo artifact) as `report.json`."""
    return write_output("report.json", json.dumps(report, indent=2, sort_keys=True, default=str))


def progress(done: int, total: int) -> None:
    """Report `N/M` progress where Argo (or `rpops local`) asked for it."""
    path = os.environ.get("ARGO_PROGRESS_FILE")
    if path:
        try:
            Path(path).write_text(f"{done}/{total}")
        except OSError:
            log.debug("cannot write progress file %s", path)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(verbose: bool = False) -> None:
    """Logs to stderr: JSON lines when RPOPS_LOG_FORMAT=json, readable text otherwise."""
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("RPOPS_LOG_FORMAT", "").lower() == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # httpx logs every request at INFO; that is noise in a step's log.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def run_step(main: Callable[[], int | None]) -> int:
    """Run a step body and map rpops errors onto the contract's exit codes."""
    try:
        code = main()
    except RpopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return EXIT_OK if code is None else code
