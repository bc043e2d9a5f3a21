"""health-check and validate stay lean: no Kubernetes client or Hera, heavy modules only when run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

WRAPPER = """
import sys
from rpops.core.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print('MODULES=' + ','.join(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)
"""


def imported(args: list[str], tmp_path: Path) -> set[str]:
    done = subprocess.run([sys.executable, "-c", WRAPPER, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "RPOPS_OUTPUTS": str(tmp_path)})
    line = next(x for x in done.stderr.splitlines() if x.startswith("MODULES="))
    return set(line.removeprefix("MODULES=").split(","))


@pytest.mark.parametrize("command", ["health-check", "validate"])
def test_help_imports_neither_kubernetes_nor_hera_nor_the_probe_stack(command: str, tmp_path: Path) -> None:
    modules = imported([command, "--help"], tmp_path)
    assert "rpops" in modules
    assert not modules & {"kubernetes", "hera", "httpx", "yaml", "RestrictedPython", "asyncio"}


def test_a_real_run_imports_no_kubernetes_or_hera(tmp_path: Path) -> None:
    modules = imported(["health-check", "--target", "a=http://127.0.0.1:9", "--samples", "1",
                        "--retries", "0", "--timeout", "0.5"], tmp_path)
    assert {"asyncio", "yaml"} <= modules  # it did run (plain http needs no httpx: see rpops.clients.probe)
    assert (tmp_path / "status").read_text() == "unhealthy"
    assert not modules & {"kubernetes", "hera"}
