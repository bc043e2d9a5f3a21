"""What a step of an alert-driven recovery concludes from the alert's evidence (pure).

- `check`: the first health check. The alert's condition holds over its window: the status
  the catalog gives the alert (it picks the remediation). It does not hold and Prometheus has
  resolved the alert: healthy, nothing to do. It does not hold while the alert still fires:
  a distinct outcome, `not-remediable` (exit 1), never a quiet "healthy".
- `verify`: the second health check. The condition no longer holds at the latest evaluation:
  healthy. It still holds after the settle time: the alert's status and `still-firing` (exit 1).
"""

from __future__ import annotations

from dataclasses import dataclass

from rpops.alerting import catalog
from rpops.alerting.evidence import Evidence

REMEDIATE = "remediate"
RESOLVED = "resolved"
NOT_REMEDIABLE = "not-remediable"
CLEARED = "cleared"
STILL_FIRING = "still-firing"


@dataclass(frozen=True)
class Verdict:
    status: str  # healthy | degraded | overloaded | unhealthy
    outcome: str  # remediate | resolved | not-remediable | cleared | still-firing
    reason: str
    exit_code: int  # 0, or 1 when the recovery must stop and say so


def alert_status(name: str) -> str:
    """The health status a remediable alert stands for; ValueError for any other alert."""
    entry = catalog.alert(name)
    if entry is None or entry.status is None:
        remediable = ", ".join(a.name for a in catalog.ALERTS if a.status)
        raise ValueError(f"{name!r} is not a remediable alert; remediable: {remediable}")
    return entry.status


def check(evidence: Evidence, status: str) -> Verdict:
    if evidence.holds:
        return Verdict(status, REMEDIATE, f"{status}: {evidence.summary}", 0)
    if evidence.firing:
        return Verdict(
            "healthy",
            NOT_REMEDIABLE,
            f"nothing to remediate while the alert fires: {evidence.summary}; a person must look",
            1,
        )
    return Verdict("healthy", RESOLVED, f"resolved before the recovery acted: {evidence.summary}", 0)


def verify(evidence: Evidence, status: str, settle_s: float) -> Verdict:
    if not evidence.holds:
        return Verdict("healthy", CLEARED, f"healthy: {evidence.summary}", 0)
    return Verdict(
        status,
        STILL_FIRING,
        f"{status}: the remediation did not clear the alert within {settle_s:g}s: {evidence.summary}",
        1,
    )
