"""Times as steps read and write them: ISO 8601 UTC text <-> unix seconds, and `--now`."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from rpops.core.errors import UsageError


def iso(ts: float) -> str:
    """Unix seconds -> `2026-05-04T09:30:00Z`."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> float:
    """ISO 8601 (a trailing Z allowed; no zone means UTC) -> unix seconds. ValueError when bad."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def parse_now(text: str, flag: str = "--now") -> float:
    """A step's `--now` (for replaying a decision at a given time): empty is the current time."""
    if not text.strip():
        return time.time()
    try:
        return parse_time(text)
    except ValueError:
        raise UsageError(
            f"{flag} {text!r} is not an ISO 8601 time; write e.g. 2026-05-04T09:30:00Z"
        ) from None
