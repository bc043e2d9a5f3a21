"""The events API's checks, kept pure: Alertmanager payloads, de-duplication and rate limiting.

`check_alertmanager(payload)` turns Alertmanager's webhook body (version 4) into an `AlertGroup`
or raises `PayloadError` naming the field. `Deduplicator` remembers alert fingerprints for a
window: Alertmanager resends a group when a webhook fails or times out, and a remediation must
not run twice for the same firing alerts. `RateLimiter` is a token bucket over all senders.
Each takes `now` from the caller (the app passes time.monotonic()).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rpops.core.errors import UsageError

ALERTMANAGER_VERSION = "4"
MAX_ALERTS = 1000
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FINGERPRINT = re.compile(r"^[0-9a-f]{1,64}$")
_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
_SIZE = re.compile(r"^\s*(\d+)\s*(B|KB|KiB|MB|MiB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(s|sec|second|min|minute|h|hour)\s*$")
_RATE_PERIODS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
}


class PayloadError(ValueError):
    """A webhook body that is not what it claims to be; the message names the field."""


@dataclass(frozen=True)
class Alert:
    status: str
    labels: dict[str, str]
    fingerprint: str
    starts_at: str


@dataclass(frozen=True)
class AlertGroup:
    status: str  # firing | resolved
    receiver: str
    group_key: str
    common_labels: dict[str, str]
    alerts: tuple[Alert, ...]

    @property
    def firing(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.alerts if a.status == "firing")


def _labels(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise PayloadError(f"{where} must be an object of label names to string values")
    for k, v in value.items():
        if not _LABEL_NAME.match(k):
            raise PayloadError(f"{where}: {k!r} is not a label name ([A-Za-z_][A-Za-z0-9_]*)")
        if not isinstance(v, str):
            raise PayloadError(f"{where}.{k} must be a string, got {type(v).__name__}")
    return dict(value)


def _string(obj: Mapping[str, Any], key: str, where: str, required: bool = True) -> str:
    value = obj.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise PayloadError(f"{where}{key} must be a string")
    return value


def check_alertmanager(payload: Any) -> AlertGroup:
    """Alertmanager's webhook body, version 4; PayloadError says what is wrong."""
    if not isinstance(payload, dict):
        raise PayloadError("the body must be a JSON object (Alertmanager's webhook payload)")
    version = payload.get("version")
    if version != ALERTMANAGER_VERSION:
        raise PayloadError(f'version is {version!r}: only Alertmanager\'s webhook version "4" is accepted')
    status = _string(payload, "status", "")
    if status not in ("firing", "resolved"):
        raise PayloadError(f"status is {status!r}: must be firing or resolved")
    receiver = _string(payload, "receiver", "")
    group_key = _string(payload, "groupKey", "")
    _string(payload, "externalURL", "", required=False)
    _labels(payload.get("groupLabels", {}), "groupLabels")
    common = _labels(payload.get("commonLabels", {}), "commonLabels")
    _labels(payload.get("commonAnnotations", {}), "commonAnnotations")
    truncated = payload.get("truncatedAlerts", 0)
    if not isinstance(truncated, int) or isinstance(truncated, bool) or truncated < 0:
        raise PayloadError("truncatedAlerts must be a whole number >= 0")
    raw_alerts = payload.get("alerts")
    if not isinstance(raw_alerts, list) or not raw_alerts:
        raise PayloadError("alerts must be a non-empty list")
    if len(raw_alerts) > MAX_ALERTS:
        raise PayloadError(f"alerts holds {len(raw_alerts)} alerts; at most {MAX_ALERTS} are accepted")
    alerts = []
    for i, a in enumerate(raw_alerts):
        where = f"alerts[{i}]."
        if not isinstance(a, dict):
            raise PayloadError(f"alerts[{i}] must be an object")
        a_status = _string(a, "status", where)
        if a_status not in ("firing", "resolved"):
            raise PayloadError(f"{where}status is {a_status!r}: must be firing or resolved")
        labels = _labels(a.get("labels"), f"{where}labels")
        if "alertname" not in labels:
            raise PayloadError(f"{where}labels has no alertname")
        _labels(a.get("annotations", {}), f"{where}annotations")
        starts = _string(a, "startsAt", where)
        if not _TIME.match(starts):
            raise PayloadError(f"{where}startsAt {starts!r} is not an RFC 3339 time")
        _string(a, "endsAt", where, required=False)
        _string(a, "generatorURL", where, required=False)
        fingerprint = _string(a, "fingerprint", where)
        if not _FINGERPRINT.match(fingerprint):
            raise PayloadError(f"{where}fingerprint {fingerprint!r} is not a hexadecimal fingerprint")
        alerts.append(Alert(a_status, labels, fingerprint, starts))
    return AlertGroup(status, receiver, group_key, common, tuple(alerts))


class Deduplicator:
    """Alert fingerprints seen in the last `window_s` seconds (at most `capacity`, oldest dropped)."""

    def __init__(self, window_s: float, capacity: int = 100_000) -> None:
        self.window_s = window_s
        self.capacity = capacity
        self._seen: OrderedDict[str, float] = OrderedDict()

    def _expire(self, now: float) -> None:
        while self._seen:
            key, at = next(iter(self._seen.items()))
            if now - at < self.window_s and len(self._seen) <= self.capacity:
                return
            del self._seen[key]

    def new(self, keys: Sequence[str], now: float) -> list[str]:
        """The keys not seen within the window (nothing is recorded)."""
        self._expire(now)
        return [k for k in keys if k not in self._seen]

    def record(self, keys: Sequence[str], now: float) -> None:
        for k in keys:
            self._seen.pop(k, None)
            self._seen[k] = now
        self._expire(now)

    def forget(self, keys: Sequence[str]) -> None:
        """Undo `record` (the event was refused after all)."""
        for k in keys:
            self._seen.pop(k, None)


def alert_keys(group: AlertGroup) -> list[str]:
    """One key per firing alert: its fingerprint (its label set) and when it started firing, so a
    new firing of the same alert after it resolved is new."""
    return [f"{a.fingerprint}@{a.starts_at}" for a in group.firing]


class RateLimiter:
    """A token bucket: `count` requests per `period_s`, bursts up to `count`."""

    def __init__(self, count: int, period_s: float, now: float) -> None:
        self.capacity = float(count)
        self.rate = count / period_s
        self.tokens = float(count)
        self.at = now

    def take(self, now: float) -> float:
        """0.0 when allowed (a token is spent), else the seconds until the next token."""
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate if self.rate > 0 else float("inf")


def parse_size(text: str, flag: str = "--max-body") -> int:
    """`1MiB`, `512KiB`, `65536` -> bytes."""
    m = _SIZE.match(str(text))
    if not m or int(m.group(1)) <= 0:
        raise UsageError(f"{flag} {text!r} is not a size; write e.g. 1MiB, 256KiB or 65536 (bytes)")
    return int(m.group(1)) * _SIZE_UNITS[(m.group(2) or "").lower()]


def parse_rate(text: str, flag: str = "--rate-limit") -> tuple[int, float]:
    """`60/min` -> (60, 60.0)."""
    m = _RATE.match(str(text))
    if not m or int(m.group(1)) <= 0:
        raise UsageError(f"{flag} {text!r} is not a rate; write N/min (or N/s, N/h) with N >= 1, e.g. 60/min")
    return int(m.group(1)), _RATE_PERIODS[m.group(2)]
