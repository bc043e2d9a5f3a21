"""PromQL templates: the label selector of a workload's series, and placeholder substitution.

Placeholders: $selector (label matchers of the version's series), $window (rate window),
$service, $version, $namespace, $instances (a regex of the version's instances' host:port).

The default selector depends on the platform (`RPOPS_PLATFORM`):
- kubernetes: `namespace="$namespace",pod=~"$service-$version-.*"`: the pod and namespace labels
  that manifests/monitoring/prometheus-scrape.yaml (and cAdvisor) attach;
- local: `instance=~"$instances"`: the processes' own host:port, which Prometheus puts in the
  `instance` label of whatever it scrapes from them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from rpops.errors import UsageError

PLACEHOLDERS = ("$selector", "$window", "$service", "$version", "$namespace", "$instances",
                "$rate_window")
DEFAULT_SELECTORS = {
    "kubernetes": 'namespace="$namespace",pod=~"$service-$version-.*"',
    "local": 'instance=~"$instances"',
}
_UNKNOWN = re.compile(r"\$[A-Za-z_][A-Za-z0-9_]*")


def default_selector(platform: str) -> str:
    return DEFAULT_SELECTORS.get(platform, DEFAULT_SELECTORS["local"])


def instances_regex(urls: Sequence[str]) -> str:
    """`127\\.0\\.0\\.1:41234|...` as written inside a PromQL double-quoted string."""
    parts = []
    for url in urls:
        netloc = urlsplit(url).netloc
        if netloc:
            parts.append(re.escape(netloc).replace("\\", "\\\\"))
    return "|".join(sorted(parts))


def render(template: str, *, label: str, selector: str, window: str, service: str, version: str,
           namespace: str, instances: str) -> str:
    """Substitute the placeholders (the selector first: it may hold placeholders itself)."""
    text = template.replace("$selector", selector)
    values = {"$rate_window": window, "$window": window, "$service": service, "$version": version,
              "$namespace": namespace, "$instances": instances}
    for key in sorted(values, key=len, reverse=True):
        text = text.replace(key, values[key])
    unknown = sorted(set(_UNKNOWN.findall(text)))
    if unknown:
        raise UsageError(f"{label}: unknown placeholder(s) {', '.join(unknown)} in {template!r}; use "
                         f"{', '.join(PLACEHOLDERS)}")
    return text.strip()
