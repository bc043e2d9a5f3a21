"""Helpers for the rpops local tests: the conformance workflows, a runner, a process check."""

from __future__ import annotations

import sys
from pathlib import Path

from rpops.local.api import RunResult, submit
from rpops.local.load.catalog import Catalog, load_documents
from rpops.local.run.executor import Options

WORKFLOWS = Path(__file__).resolve().parents[2] / "local_workflows"
RPOPS = [sys.executable, "-m", "rpops"]


def catalog() -> Catalog:
    return load_documents(sorted(WORKFLOWS.glob("*.yaml")))


def run(name: str, runs_dir: Path, parameters: dict[str, str] | None = None, **options: object) -> RunResult:
    opts = Options(runs_dir=runs_dir, secrets_file=runs_dir.parent / "secrets.yaml", kill_grace_s=1.0)
    for key, value in options.items():
        setattr(opts, key, value)
    return submit(catalog(), name, parameters or {}, options=opts)


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    state = next((line.split()[1] for line in status.splitlines() if line.startswith("State:")), "")
    return state not in ("Z", "X")
