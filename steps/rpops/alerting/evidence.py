"""The evidence an alert-driven recovery decides from: the alert's own rule, from Prometheus.

observe: `measure` (or `measure_async`) fetches the alert's rule from Prometheus's rules API (its
         expression, its `for`, its group's evaluation interval and its active alerts) and
         evaluates the rule's value side over the rule's own window for the alert's labels.
decide:  `split_expr` and `judge` are pure: `<value> <op> <threshold>` compared as the rule
         compares it, averaged over the window, for the series whose labels are the alert's.

Two readings, as Prometheus reads an alert:
- onset (what the health check and the scale step read): the value averaged over the rule's
  `for` window (at least one evaluation interval): the figure that fired the alert;
- latest (what the second health check reads): the value at the latest evaluation, which is
  what resolves a firing alert in Prometheus.

The alert's labels come from the webhook and are untrusted: they are never written into PromQL;
series are matched against them after the query.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rpops.core.errors import Unreachable, UsageError

ONSET, LATEST = "onset", "latest"
_OPS = ("==", "!=", ">=", "<=", ">", "<")
_CLOSE = {"(": ")", "{": "}", "[": "]"}


@dataclass(frozen=True)
class Rule:
    """An alerting rule as Prometheus runs it."""

    name: str
    query: str
    for_s: float
    interval_s: float
    firing: tuple[Mapping[str, str], ...] = ()  # labels of its firing alerts
    pending: tuple[Mapping[str, str], ...] = ()


@dataclass(frozen=True)
class Comparison:
    value: str  # PromQL of the figure
    op: str
    threshold: float


@dataclass(frozen=True)
class Evidence:
    """What one alert's own expression says now, for the alert's labels."""

    alert: str
    query: str  # the rule's expression
    reading: str  # onset | latest
    measured: str  # the PromQL evaluated
    window_s: float
    op: str
    threshold: float
    value: float | None  # None: no series for these labels
    holds: bool  # the alert's condition holds over the window
    firing: bool  # Prometheus has the alert firing for these labels
    series: Mapping[str, str] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        shown = "no series" if self.value is None else f"{self.value:.3g}"
        over = f"averaged over {self.window_s:g}s" if self.reading == ONSET else "at the latest evaluation"
        verdict = "holds" if self.holds else "does not hold"
        state = "firing" if self.firing else "not firing"
        return f"{self.alert}: {shown} {over} {self.op} {self.threshold:g} {verdict} (the alert is {state})"

    def to_json(self) -> dict[str, Any]:
        return {
            "alert": self.alert,
            "query": self.query,
            "reading": self.reading,
            "measured": self.measured,
            "window_s": self.window_s,
            "op": self.op,
            "threshold": self.threshold,
            "value": self.value,
            "holds": self.holds,
            "firing": self.firing,
            "series": dict(self.series),
            "summary": self.summary,
        }


# --- input -----------------------------------------------------------------------------------


def parse_labels(text: str, flag: str = "--alert-labels") -> dict[str, str]:
    """The alert's labels as the binding passes them: a JSON object of strings."""
    text = text.strip() or "{}"
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{flag}: not JSON ({exc}); pass the alert's labels as a JSON object") from None
    if not isinstance(doc, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in doc.items()
    ):
        raise UsageError(f'{flag}: must be a JSON object of string labels, e.g. {{"region": "us-east"}}')
    return doc


# --- decide (pure) -----------------------------------------------------------------------------


def split_expr(query: str) -> Comparison:
    """`<value> <op> <number>` at the top level of `query` (outside brackets and strings)."""
    depth: list[str] = []
    quote = ""
    found: tuple[int, str] | None = None
    i = 0
    while i < len(query):
        ch = query[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch in "\"'`":
            quote = ch
        elif ch in _CLOSE:
            depth.append(_CLOSE[ch])
        elif depth and ch == depth[-1]:
            depth.pop()
        elif not depth:
            op = next((o for o in _OPS if query.startswith(o, i)), None)
            if op is not None and not query.startswith("=~", i) and not query.startswith("!~", i):
                found = (i, op)
                i += len(op)
                continue
        i += 1
    if found is None:
        raise ValueError(f"{query!r} is not `<value> <comparison> <threshold>`")
    at, op = found
    value, rest = query[:at].strip(), query[at + len(op) :].strip()
    if rest.startswith("bool "):
        raise ValueError(f"{query!r}: a `bool` comparison never filters, so it cannot fire on a threshold")
    try:
        threshold = float(rest)
    except ValueError:
        raise ValueError(f"{query!r}: the threshold {rest!r} is not a number") from None
    if not value:
        raise ValueError(f"{query!r}: nothing left of {op}")
    return Comparison(value, op, threshold)


def compare(value: float, op: str, threshold: float) -> bool:
    return {
        ">": value > threshold,
        "<": value < threshold,
        ">=": value >= threshold,
        "<=": value <= threshold,
        "==": value == threshold,
        "!=": value != threshold,
    }[op]


def matches(series: Mapping[str, str], alert_labels: Mapping[str, str]) -> bool:
    """A series belongs to the alert when every label both carry has the same value."""
    return all(alert_labels[k] == v for k, v in series.items() if k in alert_labels)


def window(rule: Rule, reading: str) -> float:
    return max(rule.for_s, rule.interval_s) if reading == ONSET else rule.interval_s


def measured_query(rule: Rule, comparison: Comparison, reading: str) -> str:
    w, step = window(rule, reading), rule.interval_s
    if reading == LATEST:
        return comparison.value
    return f"avg_over_time(({comparison.value})[{_duration(w)}:{_duration(step)}])"


def _duration(seconds: float) -> str:
    ms = max(1, round(seconds * 1000))
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def judge(
    rule: Rule,
    comparison: Comparison,
    reading: str,
    samples: list[tuple[Mapping[str, str], float]],
    alert_labels: Mapping[str, str],
) -> Evidence:
    """The evidence from the measured samples (pure). Several matching series: the worst one."""
    mine = [(labels, v) for labels, v in samples if matches(labels, alert_labels) and not math.isnan(v)]
    worst: tuple[Mapping[str, str], float] | None = None
    if mine:
        pick = min if comparison.op in ("<", "<=") else max
        worst = pick(mine, key=lambda item: item[1])
    value = worst[1] if worst else None
    firing = any(matches(labels, alert_labels) for labels in rule.firing)
    return Evidence(
        alert=rule.name,
        query=rule.query,
        reading=reading,
        measured=measured_query(rule, comparison, reading),
        window_s=window(rule, reading),
        op=comparison.op,
        threshold=comparison.threshold,
        value=value,
        holds=value is not None and compare(value, comparison.op, comparison.threshold),
        firing=firing,
        series=dict(worst[0]) if worst else {},
    )


# --- observe ---------------------------------------------------------------------------------
#
# Two transports over the same requests: `measure` (httpx, for steps that load it anyway, like
# scale) and `measure_async` (the health check's own asyncio prober, which keeps httpx out of
# its start-up).


def rules_request(prometheus: str) -> tuple[str, dict[str, str]]:
    return prometheus.rstrip("/") + "/api/v1/rules", {"type": "alert"}


def rule_from(data: Mapping[str, Any], alertname: str, prometheus: str) -> Rule:
    """The alerting rule named `alertname` in a rules API answer (exit 2 when absent)."""
    for group in data.get("groups") or ():
        for rule in group.get("rules") or ():
            if rule.get("type") == "alerting" and rule.get("name") == alertname:
                alerts = rule.get("alerts") or ()
                return Rule(
                    name=alertname,
                    query=str(rule["query"]),
                    for_s=float(rule.get("duration") or 0),
                    interval_s=float(group.get("interval") or 60),
                    firing=tuple(a.get("labels") or {} for a in alerts if a.get("state") == "firing"),
                    pending=tuple(a.get("labels") or {} for a in alerts if a.get("state") == "pending"),
                )
    raise UsageError(
        f"--alert {alertname}: Prometheus at {prometheus} has no alerting rule of that name; "
        "pass the name of an alert its rules define"
    )


def comparison_of(rule: Rule) -> Comparison:
    try:
        return split_expr(rule.query)
    except ValueError as exc:
        raise UsageError(f"--alert {rule.name}: its rule cannot be read as evidence: {exc}") from None


def query_request(
    prometheus: str, rule: Rule, comparison: Comparison, reading: str, at: float | None
) -> tuple[str, dict[str, str]]:
    query = measured_query(rule, comparison, reading)
    return prometheus.rstrip("/") + "/api/v1/query", {
        "query": query,
        "time": f"{at if at is not None else time.time():.3f}",
    }


def samples_from(data: Mapping[str, Any]) -> list[tuple[Mapping[str, str], float]]:
    samples: list[tuple[Mapping[str, str], float]] = []
    if data.get("resultType") == "vector":
        for item in data.get("result") or ():
            labels_of = {k: v for k, v in (item.get("metric") or {}).items() if k != "__name__"}
            samples.append((labels_of, _float(item["value"][1])))
    elif data.get("resultType") == "scalar":
        samples.append(({}, _float(data["result"][1])))
    return samples


def measure(
    prometheus: str,
    alertname: str,
    labels: Mapping[str, str],
    reading: str = ONSET,
    *,
    timeout: float = 5.0,
    retries: int = 2,
    at: float | None = None,
) -> Evidence:
    """Read the rule, evaluate its value side over its window, judge it for `labels`."""
    rule = rule_from(_get(prometheus, *rules_request(prometheus), timeout, retries), alertname, prometheus)
    comparison = comparison_of(rule)
    data = _get(prometheus, *query_request(prometheus, rule, comparison, reading, at), timeout, retries)
    return judge(rule, comparison, reading, samples_from(data), labels)


async def measure_async(
    prober: Any, prometheus: str, alertname: str, labels: Mapping[str, str], reading: str = ONSET
) -> Evidence:
    """`measure` through an `rpops.clients.probe.Prober` (its timeout and retries)."""
    rule = rule_from(await _get_async(prober, prometheus, *rules_request(prometheus)), alertname, prometheus)
    comparison = comparison_of(rule)
    url, params = query_request(prometheus, rule, comparison, reading, None)
    data = await _get_async(prober, prometheus, url, params)
    return judge(rule, comparison, reading, samples_from(data), labels)


async def wait_cleared_async(
    prober: Any, prometheus: str, alertname: str, labels: Mapping[str, str], settle_s: float
) -> Evidence:
    """The latest reading, re-read every evaluation interval until the condition no longer
    holds or `settle_s` has passed (a remediation shows after a scrape and an evaluation)."""
    import asyncio

    deadline = time.monotonic() + max(0.0, settle_s)
    while True:
        evidence = await measure_async(prober, prometheus, alertname, labels, LATEST)
        left = deadline - time.monotonic()
        if not evidence.holds or left <= 0:
            return evidence
        await asyncio.sleep(min(max(0.2, evidence.window_s / 2), left))


def _float(raw: Any) -> float:
    try:
        return float(raw)
    except (TypeError, ValueError):
        return math.nan


def _answer(prometheus: str, url: str, status: int | None, body: Any, text: str) -> dict[str, Any]:
    if not isinstance(body, dict) or body.get("status") != "success":
        error = body.get("error") if isinstance(body, dict) else text[:200]
        raise UsageError(
            f"--prometheus {prometheus}: {url} answered HTTP {status} ({error}); "
            "pass the base URL of a Prometheus server"
        )
    data = body.get("data")
    return data if isinstance(data, dict) else {}


async def _get_async(prober: Any, prometheus: str, url: str, params: Mapping[str, str]) -> dict[str, Any]:
    from urllib.parse import urlencode

    result = await prober.get(f"{url}?{urlencode(dict(params))}")
    if not result.answered:
        raise Unreachable(
            f"--prometheus {prometheus}: unreachable after {result.attempts} attempts ({result.describe()}); "
            "check the URL and that Prometheus runs"
        )
    body, _ = result.parse_json()
    return _answer(prometheus, url, result.status, body, result.body.decode("utf-8", "replace"))


def _get(
    prometheus: str, url: str, params: Mapping[str, str], timeout: float, retries: int
) -> dict[str, Any]:
    import httpx

    attempt = 0
    while True:
        attempt += 1
        try:
            with httpx.Client(timeout=timeout, trust_env=False) as client:
                response = client.get(url, params=dict(params))
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout) as exc:
            if attempt > retries:
                raise Unreachable(
                    f"--prometheus {prometheus}: unreachable after {attempt} attempts ({exc}); "
                    "check the URL and that Prometheus runs"
                ) from None
            time.sleep(min(2.0, 0.2 * 2 ** (attempt - 1)))
            continue
        except httpx.HTTPError as exc:
            raise Unreachable(f"--prometheus {prometheus}: {url} failed ({exc})") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        return _answer(prometheus, url, response.status_code, body, response.text)
