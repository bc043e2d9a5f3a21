"""Argo's duration and integer strings (`"30"`, `"1m30s"`, `"500ms"`)."""

from __future__ import annotations

import re

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds from an Argo duration: a bare integer means seconds, else Go's time.ParseDuration."""
    s = text.strip()
    if not s:
        raise ValueError(f"invalid duration {text!r} (use e.g. 30, 30s, 1m30s, 500ms)")
    if re.fullmatch(r"\d+", s):
        return float(s)
    sign = 1.0
    if s[:1] in "+-":
        sign, s = (-1.0 if s[0] == "-" else 1.0), s[1:]
    if not s:
        raise ValueError(f"invalid duration {text!r}")
    pos, total = 0, 0.0
    for match in _PART.finditer(s):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(s) or pos == 0:
        raise ValueError(f"invalid duration {text!r} (use e.g. 30, 30s, 1m30s, 500ms)")
    return sign * total


def parse_int(text: str, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"{what} must be an integer, got {text!r}") from None
