"""Packaging: the build backend that the `license = "..."` form needs, the declared dependencies
matching what the code imports, and the metadata a registry shows (built for real, offline)."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging.requirements import Requirement
from rpops.steps.security.sarif import INFORMATION_URI

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _imported_top_levels() -> set[str]:
    names: set[str] = set()
    for folder in ("steps", "workflows", "scripts"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
                if isinstance(node, ast.Import):
                    names.update(a.name.split(".")[0] for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names.add(node.module.split(".")[0])
    return names


def test_build_backend_supports_the_spdx_license_form() -> None:
    requires = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]
    setuptools = next(r for r in requires if r.name == "setuptools")
    # setuptools 77 is the first to accept `license = "Apache-2.0"` (PEP 639): nothing older may do
    assert "77" in setuptools.specifier and "76.9" not in setuptools.specifier
    assert isinstance(PYPROJECT["project"]["license"], str)


def test_declared_runtime_dependencies_are_imported() -> None:
    imported = _imported_top_levels()
    declared = {Requirement(r).name.lower() for r in PYPROJECT["project"]["dependencies"]}
    assert "pydantic" not in declared and "pydantic" not in imported
    import_names = {
        "pyyaml": "yaml",
        "prometheus-client": "prometheus_client",
        "restrictedpython": "RestrictedPython",
    }
    # uvicorn[standard] and sniffio are loaded by the server and httpcore, not imported by name
    indirect = {"sniffio", "uvicorn"}
    unused = [d for d in declared - indirect if import_names.get(d, d.replace("-", "_")) not in imported]
    assert unused == []


def test_wheel_metadata(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    wheel = next(tmp_path.glob("rpops-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        meta = Parser().parsestr(
            archive.read(next(n for n in archive.namelist() if n.endswith("METADATA"))).decode()
        )
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta["Author"] == "rpops maintainers"
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert urls["Homepage"] == INFORMATION_URI  # SARIF's informationUri names the same home
    assert "Topic :: System :: Monitoring" in meta.get_all("Classifier")
    assert not any(r.startswith("pydantic") for r in meta.get_all("Requires-Dist"))
    assert any(r.startswith("shtab") for r in meta.get_all("Requires-Dist"))
