"""`--requirements` given relative to the working directory, with `--target` elsewhere: the
findings and the upgrade patch both come from the file that was read (the real CLI, its patch
applied with `git apply` where the command ran)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from security_helpers import ADVISORIES


def scan(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RPOPS_OUTPUTS": str(cwd / "out")}
    env.pop("RPOPS_ADVISORY_DB", None)
    return subprocess.run(
        [sys.executable, "-m", "rpops", "security-scan", "--db", str(ADVISORIES),
         "--max-db-age", "100000d", "--no-cache", *args],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=300,
    )


@pytest.mark.parametrize(
    ("requirements", "target", "patch_root"),
    [
        ("req.txt", "project", "."),  # beside the working directory, the target elsewhere
        ("deps/req.txt", "project", "."),  # in a sub-folder of the working directory
        ("project/req.txt", "project", "project"),  # inside the target: paths relative to it
    ],
)
def test_relative_requirements_path_gets_its_fix(
    tmp_path: Path, requirements: str, target: str, patch_root: str
) -> None:
    cwd = tmp_path / "work"
    (cwd / "project").mkdir(parents=True)
    file = cwd / requirements
    file.parent.mkdir(parents=True, exist_ok=True)
    original = "jinja2==2.10\nsix==1.16.0\n"
    file.write_text(original)
    done = scan(cwd, "--target", target, "--requirements", requirements)
    assert done.returncode in (0, 1), done.stderr[-2000:]
    fixes = json.loads((cwd / "out" / "report.json").read_text())["fixes"]
    assert [f["package"] for f in fixes] == ["jinja2"], fixes
    assert fixes[0]["patched"] is True and fixes[0]["manual"] == "", fixes
    assert "cannot read" not in done.stdout + done.stderr
    patch = (cwd / "out" / "fix.patch").read_text()
    assert "+jinja2==2.11.3" in patch
    assert file.read_text() == original  # never changed in place
    applied = subprocess.run(
        ["git", "apply", "-"], input=patch, capture_output=True, text=True, cwd=cwd / patch_root
    )
    assert applied.returncode == 0, applied.stderr
    assert file.read_text() == "jinja2==2.11.3\nsix==1.16.0\n"
