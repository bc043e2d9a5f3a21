"""The lock a change holds on a service, kept in the service's annotations as `bluegreen.lock`.

A blue-green promotion takes it (rpops.steps.bluegreen.lock, which decides who may take it over);
scale reads it and holds while it is live, so that no step changes a service another is promoting.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

LOCK_ANNOTATION = "bluegreen.lock"  # JSON {owner, token, host, pid, pid_start, expires}


@dataclass(frozen=True)
class LockInfo:
    """The promotion lock: who holds it and until when (unix seconds)."""

    owner: str
    token: str
    host: str
    pid: int
    pid_start: float
    expires: float

    def to_json(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "token": self.token,
            "host": self.host,
            "pid": self.pid,
            "pid_start": round(self.pid_start, 3),
            "expires": round(self.expires, 3),
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> LockInfo:
        return cls(
            owner=str(raw["owner"]),
            token=str(raw["token"]),
            host=str(raw.get("host") or ""),
            pid=int(raw.get("pid") or 0),
            pid_start=float(raw.get("pid_start") or 0.0),
            expires=float(raw["expires"]),
        )


def read_lock(annotations: Mapping[str, str]) -> LockInfo | None:
    """The lock in a service's annotations (prefix stripped); a damaged one reads as none: it
    cannot name a holder to wait for."""
    text = annotations.get(LOCK_ANNOTATION)
    if not text:
        return None
    try:
        raw = json.loads(text)
        return LockInfo.from_json(raw) if isinstance(raw, Mapping) else None
    except (ValueError, TypeError, KeyError):
        return None
