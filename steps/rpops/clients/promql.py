"""PromQL templates: placeholder substitution, and a failed query mapped onto the step contract.

Placeholders: $selector (label matchers of the version's series), $window (rate window),
$service, $version, $namespace, $instances (a regex of the version's instances' host:port),
$step (the resolution of a range query, for `max_over_time(...[$step])` so that no peak falls
between two points).

The selector of a version's series is the platform driver's (`PlatformDriver.series`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from rpops.core.errors import UsageError

PLACEHOLDERS = ("$selector", "$window", "$service", "$version", "$namespace", "$instances", "$step")
_UNKNOWN = re.compile(r"\$[A-Za-z_][A-Za-z0-9_]*")
_DURATION = re.compile(r"^[1-9][0-9]*(ms|s|m|h|d|w)$")


def check_duration(value: Any, where: str) -> str:
    """A PromQL duration like 30s, 1m, 5m (one unit); UsageError naming `where` otherwise."""
    if not isinstance(value, str) or not _DURATION.match(value.strip()):
        raise UsageError(f"{where} {value!r} is not a PromQL duration; write e.g. 30s, 1m or 5m")
    return value.strip()


def instances_regex(urls: Sequence[str]) -> str:
    """`127\\.0\\.0\\.1:41234|...` as written inside a PromQL double-quoted string."""
    parts = []
    for url in urls:
        netloc = urlsplit(url).netloc
        if netloc:
            parts.append(re.escape(netloc).replace("\\", "\\\\"))
    return "|".join(sorted(parts))


def render(
    template: str,
    *,
    label: str,
    selector: str,
    window: str,
    service: str,
    version: str,
    namespace: str,
    instances: str,
    step: str = "1m",
) -> str:
    """Substitute the placeholders (the selector first: it may hold placeholders itself)."""
    text = template.replace("$selector", selector)
    values = {
        "$step": step,
        "$window": window,
        "$service": service,
        "$version": version,
        "$namespace": namespace,
        "$instances": instances,
    }
    for key in sorted(values, key=len, reverse=True):
        text = text.replace(key, values[key])
    unknown = sorted(set(_UNKNOWN.findall(text)))
    if unknown:
        raise UsageError(
            f"{label}: unknown placeholder(s) {', '.join(unknown)} in {template!r}; use "
            f"{', '.join(PLACEHOLDERS)}"
        )
    return text.strip()


def check_result(result: object, url: str, label: str) -> None:
    """Map a failed Prometheus query onto the step contract: unreachable -> exit 3, a refused
    query or a URL that is not Prometheus -> exit 2. Empty and NaN results pass (no data)."""
    from rpops.clients.prometheus import Outcome, QueryResult
    from rpops.core.errors import Unreachable

    assert isinstance(result, QueryResult)
    if result.outcome in (Outcome.UNREACHABLE, Outcome.TIMEOUT):
        raise Unreachable(
            f"--prometheus {url}: {result.outcome.value} after {result.attempts} attempt(s) "
            f"({result.error}); check the URL and that Prometheus runs"
        )
    if result.outcome is Outcome.ERROR and result.error_type in ("timeout", "unavailable", "canceled"):
        raise Unreachable(
            f"--prometheus {url}: {label} failed on the server ({result.error_type}: "
            f"{result.error}); retry later or query less history"
        )
    if result.outcome is Outcome.ERROR:
        raise UsageError(
            f"{label}: Prometheus refused {result.query!r} ({result.error_type}: {result.error}); "
            "fix the PromQL"
        )
    if result.outcome in (Outcome.HTTP_ERROR, Outcome.INVALID):
        raise UsageError(
            f"--prometheus {url}: the answer to {label} is not Prometheus' API ({result.error}); "
            "pass the base URL of a Prometheus server, e.g. http://prometheus:9090"
        )
