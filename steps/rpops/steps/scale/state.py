"""What `rpops scale` remembers between runs, kept in the workload's annotations.

Annotations (prefix `rpops.research-platform.io/` added by the driver):
  last-scale-time       ISO 8601 UTC time of the last change this step made
  last-scale-reason     why (one line)
  last-scale-resource   the resource that drove it (its cooldown applies to the next change)
  scale-recommendations JSON [[unix_seconds, replicas], ...]: recent recommendations, for the
                        scale-down stabilisation window
  hpa-base-min-replicas the HPA's minReplicas before this step first moved it: never lowered below

Parsing is lenient: an annotation someone garbled is ignored (and reported), never fatal, so a
bad value cannot block scaling forever.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from rpops.core.times import iso, parse_time

LAST_TIME = "last-scale-time"
LAST_REASON = "last-scale-reason"
LAST_RESOURCE = "last-scale-resource"
RECOMMENDATIONS = "scale-recommendations"
HPA_BASE_MIN = "hpa-base-min-replicas"
MAX_HISTORY = 120  # entries kept; a few KB at most, well inside the 256 KiB annotation budget
MAX_REASON = 250


@dataclass(frozen=True)
class ScaleState:
    last_scale_time: float | None = None
    last_scale_reason: str = ""
    last_scale_resource: str = ""
    recommendations: tuple[tuple[float, int], ...] = ()
    hpa_base_min: int | None = None
    problems: tuple[str, ...] = field(default=(), compare=False)


def read_state(annotations: Mapping[str, str]) -> ScaleState:
    problems: list[str] = []
    last_time = None
    if annotations.get(LAST_TIME):
        try:
            last_time = parse_time(annotations[LAST_TIME])
        except ValueError:
            problems.append(f"annotation {LAST_TIME}={annotations[LAST_TIME]!r} is not a time; ignored")
    history: list[tuple[float, int]] = []
    if annotations.get(RECOMMENDATIONS):
        try:
            raw = json.loads(annotations[RECOMMENDATIONS])
            for entry in raw:
                t, r = float(entry[0]), entry[1]
                if isinstance(r, int) and not isinstance(r, bool) and r >= 0 and math.isfinite(t):
                    history.append((t, r))
        except (ValueError, TypeError, IndexError, KeyError):
            problems.append(f"annotation {RECOMMENDATIONS} is not [[time, replicas], ...]; ignored")
    base = None
    if annotations.get(HPA_BASE_MIN):
        text = annotations[HPA_BASE_MIN].strip()
        if text.isdigit() and int(text) >= 1:
            base = int(text)
        else:
            problems.append(f"annotation {HPA_BASE_MIN}={text!r} is not a replica count; ignored")
    return ScaleState(
        last_scale_time=last_time,
        last_scale_reason=annotations.get(LAST_REASON, ""),
        last_scale_resource=annotations.get(LAST_RESOURCE, ""),
        recommendations=tuple(sorted(history)),
        hpa_base_min=base,
        problems=tuple(problems),
    )


def encode_history(history: tuple[tuple[float, int], ...]) -> str:
    kept = history[-MAX_HISTORY:]
    return json.dumps([[int(t), r] for t, r in kept], separators=(",", ":"))


def scaled_annotations(
    now: float, reason: str, resource: str, history: tuple[tuple[float, int], ...], hpa_base_min: int | None
) -> dict[str, str | None]:
    out: dict[str, str | None] = {
        LAST_TIME: iso(now),
        LAST_REASON: reason[:MAX_REASON],
        LAST_RESOURCE: resource or None,
        RECOMMENDATIONS: encode_history(history),
    }
    if hpa_base_min is not None:
        out[HPA_BASE_MIN] = str(hpa_base_min)
    return out


def history_annotations(history: tuple[tuple[float, int], ...]) -> dict[str, str | None]:
    return {RECOMMENDATIONS: encode_history(history)}
