"""One exception hierarchy; each class carries the step contract's exit code."""

from __future__ import annotations


class RpopsError(Exception):
    """Base of every error rpops raises on purpose."""

    exit_code = 1


class GateFailed(RpopsError):
    """A gate failed: validation, analysis, a scan over its threshold (exit 1)."""

    exit_code = 1


class UsageError(RpopsError):
    """Bad input or usage (exit 2). The message names the input and how to fix it.

    Raised before anything is changed.
    """

    exit_code = 2


class Unreachable(RpopsError):
    """A dependency stayed unreachable after retries (exit 3)."""

    exit_code = 3
