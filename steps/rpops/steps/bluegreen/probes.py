"""Observing green over HTTP: probe rounds through a route and to every instance directly, the
validation checks of `rpops validate`, and green's own request counters (what it served).

A round is a value (`Round`); `builtin_values` turns it into the built-in metrics' results.
The async functions here do I/O; `builtin_values`, `parse_counters` and `served_delta` are pure.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rpops.clients.probe import Prober, ProbeResult, percentile
from rpops.steps.bluegreen.decide import failed_checks
from rpops.steps.validate.decide import EXPRESSION, Observation

HEALTH_PATH = "/health"
K8S_SERVICE_PORT = 8000  # manifests/platform/service.yaml
_COUNTER = "research_platform_requests_total{"
_STATUS = re.compile(r'status="(\d+)"')


@dataclass(frozen=True)
class Target:
    """Something to probe: a route (`preview route`, `active route`) or one instance."""

    name: str
    url: str
    instance: bool = False


@dataclass(frozen=True)
class Round:
    """One probe round over every target."""

    at: float
    requests: int = 0
    errors: int = 0
    latencies_ms: tuple[float, ...] = ()
    wrong_versions: tuple[str, ...] = ()
    failed_checks: tuple[str, ...] = ()
    served: tuple[float, float] | None = None  # (requests, 5xx) green answered since the last round
    samples: tuple[str, ...] = field(default=(), compare=False)  # a few failures, for the report

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "p95_ms": round(percentile(self.latencies_ms, 95), 2) if self.latencies_ms else None,
            "wrong_versions": list(self.wrong_versions),
            "failed_checks": list(self.failed_checks),
            "served": None if self.served is None else {"requests": self.served[0], "errors": self.served[1]},
            "samples": list(self.samples),
        }


def builtin_values(r: Round) -> dict[str, Any]:
    """The built-in metrics' results for a round; None means no data."""
    served: float | None = None
    if r.served is not None and r.served[0] > 0:
        served = r.served[1] / r.served[0]
    return {
        "error-rate": (r.errors / r.requests) if r.requests else None,
        "latency-p95": percentile(r.latencies_ms, 95) if r.latencies_ms else None,
        "version": len(r.wrong_versions),
        "checks": list(r.failed_checks),
        "served-error-rate": served,
    }


def parse_counters(text: str) -> tuple[float, float]:
    """(requests, 5xx answers) from the workload's /metrics text."""
    total = errors = 0.0
    for line in text.splitlines():
        if not line.startswith(_COUNTER):
            continue
        try:
            value = float(line.rsplit(" ", 1)[1])
        except (IndexError, ValueError):
            continue
        total += value
        status = _STATUS.search(line)
        if status and status.group(1).startswith("5"):
            errors += value
    return total, errors


def served_delta(
    before: Mapping[str, tuple[float, float]], after: Mapping[str, tuple[float, float]]
) -> tuple[float, float]:
    """Requests and 5xx answered between two counter readings, summed over instances. An instance
    whose counters went down restarted: its whole count is new."""
    total = errors = 0.0
    for url, (t1, e1) in after.items():
        t0, e0 = before.get(url, (0.0, 0.0))
        if t1 < t0 or e1 < e0:
            t0 = e0 = 0.0
        total += t1 - t0
        errors += e1 - e0
    return total, errors


async def read_counters(prober: Prober, urls: Sequence[str]) -> dict[str, tuple[float, float]]:
    """Each instance's request counters; instances that do not answer are left out."""
    results = await asyncio.gather(*(prober.get(f"{u}/metrics") for u in urls))
    out: dict[str, tuple[float, float]] = {}
    for url, probe in zip(urls, results, strict=True):
        if probe.ok and not probe.truncated:
            out[url] = parse_counters(probe.body.decode("utf-8", "replace"))
    return out


async def _observe(prober: Prober, url: str) -> Observation:
    """The requests of `rpops validate` (rpops.steps.validate.observe), through our shared prober."""
    health, secure_eval, monitoring = await asyncio.gather(
        prober.get(f"{url}/health"),
        prober.post_json(f"{url}/api/secure-eval", {"expression": EXPRESSION}),
        prober.get(f"{url}/api/performance/status"),
    )
    return Observation(health=health, secure_eval=secure_eval, monitoring=monitoring)


def _version_of(probe: ProbeResult) -> str | None:
    body, problem = probe.parse_json()
    if problem is None and isinstance(body, dict) and isinstance(body.get("version"), str):
        return str(body["version"])
    return None


async def probe_round(
    prober: Prober,
    targets: Sequence[Target],
    *,
    expect_version: str,
    per_target: int,
    at: float,
    checks: bool = False,
    max_response_ms: float = 1000.0,
) -> Round:
    """`per_target` GET /health to every target (concurrently), plus the validation checks of
    `rpops validate` on each target when `checks` is set."""
    calls = [(t, prober.get(f"{t.url}{HEALTH_PATH}")) for t in targets for _ in range(per_target)]
    check_jobs = [_observe(prober, t.url) for t in targets] if checks else []
    probes: list[ProbeResult] = list(await asyncio.gather(*(c for _, c in calls)))
    observations: list[Observation] = list(await asyncio.gather(*check_jobs))
    errors = 0
    latencies: list[float] = []
    wrong: list[str] = []
    samples: list[str] = []
    for (target, _), probe in zip(calls, probes, strict=True):
        if probe.answered:
            latencies.append(probe.elapsed_ms)
            version = _version_of(probe)
            if version is not None and version != expect_version:
                wrong.append(f"{target.name} answered {version}, not {expect_version}")
        if not probe.ok:
            errors += 1
            if len(samples) < 5:
                samples.append(f"{target.name}: {probe.describe()}")
    failed = failed_checks([t.name for t in targets], observations, max_response_ms) if checks else []
    return Round(
        at=at,
        requests=len(probes),
        errors=errors,
        latencies_ms=tuple(latencies),
        wrong_versions=tuple(sorted(set(wrong))),
        failed_checks=tuple(failed),
        samples=tuple(samples),
    )
