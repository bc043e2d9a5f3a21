"""Every step has one shape (docs/extending.md): a package under rpops/steps/ with settings,
observe, decide and act beside the declaration, found by the CLI, never importing another step
except that step's pure decide."""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from rpops.core.step import Step, discover, find, load

STEPS_DIR = Path(__file__).resolve().parents[2] / "steps" / "rpops" / "steps"
PACKAGES = sorted(p for p in STEPS_DIR.iterdir() if (p / "__init__.py").is_file())
# What a pure decide must not reach for: the network, processes, the platform's drivers, the
# step contract's files.
IMPURE = (
    "httpx", "socket", "subprocess", "rpops.core.io", "rpops.clients.prometheus", "rpops.platform.local",
    "rpops.platform.kubernetes",
)


def _imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names]
    return found


def test_the_six_steps_are_packages_the_cli_finds() -> None:
    found = discover()
    assert set(found) == {"health-check", "validate", "scale", "optimize", "bluegreen", "security-scan"}
    assert sorted(found.values()) == sorted(f"rpops.steps.{p.name}" for p in PACKAGES)
    # `rpops <command>` imports only the package the command names (its name, or its name and a dash)
    for command, package in found.items():
        step = find(command)
        assert step is not None and step.name == command, f"{package}: the command must start with its name"
    assert find("health") is None and find("nope") is None


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_a_step_has_the_same_files_and_one_declaration(package: Path) -> None:
    for part in ("settings", "observe", "decide", "act"):
        assert (package / f"{part}.py").is_file() or (package / part / "__init__.py").is_file(), (
            f"{package.name} has no {part}"
        )
    step = load(f"rpops.steps.{package.name}")
    assert isinstance(step, Step) and dataclasses.is_dataclass(step.settings)
    assert step.outputs and all(o.description and o.default is not None for o in step.outputs)
    assert step.parameters(), "a step's template passes at least one of its settings"
    assert step.summary and step.epilog


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_a_step_imports_no_other_step_but_its_pure_decide(package: Path) -> None:
    for path in package.rglob("*.py"):
        for name in _imports(path):
            parts = name.split(".")
            if parts[:2] != ["rpops", "steps"] or len(parts) < 3 or parts[2] == package.name:
                continue
            assert len(parts) == 3 or parts[3] == "decide", f"{path.relative_to(STEPS_DIR)} imports {name}"


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_decide_reaches_for_no_io(package: Path) -> None:
    for name in _imports(package / "decide.py"):
        assert not name.startswith(IMPURE), f"{package.name}/decide.py imports {name}"


def test_help_loads_no_step_work() -> None:
    """`rpops --help` imports every step's declaration and settings, and nothing they run with."""
    probe = (
        "import sys; from rpops.core.cli import main; main(['--help']);"
        "print(sorted(m for m in sys.modules if m.startswith('rpops.steps.')"
        " and m.rsplit('.', 1)[-1] in ('observe', 'act')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
