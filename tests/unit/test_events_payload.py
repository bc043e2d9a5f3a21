"""rpops.local.server.events: Alertmanager payload checks, de-duplication, rate limiting, flag values."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pytest
from rpops.core.errors import UsageError
from rpops.local.server.events import (
    Deduplicator,
    PayloadError,
    RateLimiter,
    alert_keys,
    check_alertmanager,
    parse_rate,
    parse_size,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from fixtures import alertmanager_payload  # noqa: E402


def test_a_version_4_payload_is_read() -> None:
    group = check_alertmanager(alertmanager_payload("HighCPU", fingerprint="abc123"))
    assert group.status == "firing" and group.receiver == "argo-remediation"
    assert group.common_labels["alertname"] == "HighCPU"
    assert [a.fingerprint for a in group.firing] == ["abc123"]
    assert alert_keys(group) == ["abc123@2026-01-01T00:00:00.000Z"]


def _broken(path: list[Any], value: Any) -> dict[str, Any]:
    payload = copy.deepcopy(alertmanager_payload())
    target: Any = payload
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return payload


@pytest.mark.parametrize(
    ("path", "value", "error"),
    [
        (["version"], "3", "version is '3'"),
        (["version"], 4, "version is 4"),
        (["version"], KeyError, "version is None"),
        (["status"], "pending", "must be firing or resolved"),
        (["receiver"], 1, "receiver must be a string"),
        (["commonLabels"], ["a"], "commonLabels must be an object"),
        (["commonLabels", "bad-name"], "x", "not a label name"),
        (["commonLabels", "service"], 1, r"commonLabels.service must be a string"),
        (["alerts"], [], "non-empty list"),
        (["alerts"], [{}] * 1001, "at most 1000"),
        (["alerts", 0], "x", r"alerts\[0\] must be an object"),
        (["alerts", 0, "labels", "alertname"], KeyError, "no alertname"),
        (["alerts", 0, "startsAt"], "yesterday", "not an RFC 3339 time"),
        (["alerts", 0, "fingerprint"], "$(reboot)", "not a hexadecimal fingerprint"),
        (["alerts", 0, "status"], "gone", "must be firing or resolved"),
        (["truncatedAlerts"], -1, "truncatedAlerts"),
    ],
)
def test_malformed_payloads_are_refused_naming_the_field(path: list[Any], value: Any, error: str) -> None:
    with pytest.raises(PayloadError, match=error):
        check_alertmanager(_broken(path, value))


def test_not_an_object() -> None:
    with pytest.raises(PayloadError, match="JSON object"):
        check_alertmanager([alertmanager_payload()])


def test_dedup_window() -> None:
    d = Deduplicator(window_s=300)
    assert d.new(["a", "b"], now=0) == ["a", "b"]
    d.record(["a"], now=0)
    assert d.new(["a", "b"], now=10) == ["b"]
    assert d.new(["a"], now=299) == []
    assert d.new(["a"], now=300) == ["a"]  # the window has passed
    d.record(["c"], now=400)
    d.forget(["c"])
    assert d.new(["c"], now=401) == ["c"]


def test_dedup_keeps_at_most_its_capacity() -> None:
    d = Deduplicator(window_s=1000, capacity=3)
    d.record(["a", "b", "c", "d"], now=0)
    assert d.new(["a", "b", "c", "d"], now=1) == ["a"]


def test_a_new_firing_of_the_same_alert_is_new() -> None:
    first = check_alertmanager(alertmanager_payload(fingerprint="ab", starts_at="2026-01-01T00:00:00Z"))
    again = check_alertmanager(alertmanager_payload(fingerprint="ab", starts_at="2026-01-01T01:00:00Z"))
    assert alert_keys(first) != alert_keys(again)
    resolved = check_alertmanager(alertmanager_payload(status="resolved"))
    assert alert_keys(resolved) == []


def test_rate_limiter_bucket() -> None:
    limiter = RateLimiter(3, 60.0, now=0.0)
    assert [limiter.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take(0.0) == pytest.approx(20.0)  # one token per 20 s
    assert limiter.take(10.0) == pytest.approx(10.0)
    assert limiter.take(20.0) == 0.0
    assert limiter.take(1000.0) == 0.0 and limiter.tokens == pytest.approx(2.0)  # never more than 3


@pytest.mark.parametrize(
    ("text", "size"), [("1MiB", 1048576), ("256KiB", 262144), ("65536", 65536), ("2MB", 2e6)]
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "rate"), [("60/min", (60, 60.0)), ("5/s", (5, 1.0)), ("100 / h", (100, 3600.0))]
)
def test_rates(text: str, rate: tuple[int, float]) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("bad", ["", "1GB", "-5", "0", "lots"])
def test_bad_sizes(bad: str) -> None:
    with pytest.raises(UsageError, match="--max-body"):
        parse_size(bad)


@pytest.mark.parametrize("bad", ["60", "0/min", "5/day", "x/min"])
def test_bad_rates(bad: str) -> None:
    with pytest.raises(UsageError, match="--rate-limit .* N/min"):
        parse_rate(bad)
