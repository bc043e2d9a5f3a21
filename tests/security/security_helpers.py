"""Paths and a CLI runner shared by the security tests (a uniquely named module, importable
from the test files because pytest puts this directory on sys.path)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ADVISORIES = REPO / "tests" / "data" / "advisories"
DATA = Path(__file__).resolve().parent / "data"
SAMPLE = DATA / "sample-project"
CORPUS = DATA / "corpus"
SARIF_SCHEMA = REPO / "schemas" / "sarif" / "sarif-schema-2.1.0.json"


def run_rpops(
    *args: str, outputs: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real `rpops` CLI in a subprocess with its outputs under `outputs`."""
    full_env = {**os.environ, "RPOPS_OUTPUTS": str(outputs), **(env or {})}
    if env is None or "RPOPS_ADVISORY_DB" not in env:
        full_env.pop("RPOPS_ADVISORY_DB", None)
    return subprocess.run(
        [sys.executable, "-m", "rpops", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=REPO,
    )
