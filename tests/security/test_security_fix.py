"""Minimal upgrades (pip-audit's --fix resolution) and the unified-diff patch, applied for real
with `git apply` to a copy; the scanned files are never changed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from rpops.security.deps import read_file
from rpops.security.depscan import scan_dependencies
from rpops.security.fix import build_patch, resolve_fix
from rpops.security.osv import Advisory, AdvisoryDB, match_package


def _fix(db: AdvisoryDB, name: str, version: str) -> tuple[str | None, str]:
    groups, _ = match_package(db, name, version)
    resolution = resolve_fix(
        name, version, [a for g in groups for a in g.advisories], db.advisories_for(name)
    )
    return resolution.version, resolution.reason


def test_resolution_on_real_advisories(advisory_db: AdvisoryDB) -> None:
    assert _fix(advisory_db, "jinja2", "2.7.1") == ("2.11.3", "")
    assert _fix(advisory_db, "pyyaml", "5.3") == ("5.4", "")
    assert _fix(advisory_db, "django", "3.2.0") == ("3.2.25", "")  # stays on the 3.2 branch
    version, reason = _fix(advisory_db, "py", "1.11.0")  # last_affected only: no fixed version known
    assert version is None and "PYSEC-2022-42969" in reason


def _adv(aid: str, events: list[dict[str, str]]) -> Advisory:
    return Advisory(
        id=aid,
        package="demo",
        aliases=(),
        summary="",
        severity=None,
        raw_ranges=[{"type": "ECOSYSTEM", "events": events}],
        versions=frozenset(),
    )


def test_resolution_rechecks_the_candidate_like_pip_audit() -> None:
    a = _adv("A", [{"introduced": "0"}, {"fixed": "1.1"}])
    b = _adv("B", [{"introduced": "0"}, {"fixed": "1.2"}])
    c = _adv("C", [{"introduced": "1.2"}, {"fixed": "1.4"}])  # the first candidate (1.2) is itself affected
    d = _adv("D", [{"introduced": "2.0"}])  # never fixed, but does not apply below 2.0
    resolution = resolve_fix("demo", "1.0", [a, b], [a, b, c, d])
    assert resolution.version == "1.4" and resolution.steps == ("1.2", "1.4")
    assert resolve_fix("demo", "2.1", [d], [a, b, c, d]).version is None
    assert resolve_fix("demo", "not-a-version", [a], [a]).version is None


def test_patch_applies_and_nothing_changes_in_place(advisory_db: AdvisoryDB, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    requirements = project / "requirements.txt"
    original = (
        "# pins\nJinja2==2.10 --hash=sha256:abc  # templating\npyyaml == 5.3\nsix==1.16.0\n"
        "requests==2.19.0"
    )  # no newline at the end of the file
    requirements.write_text(original)
    (project / "pyproject.toml").write_text(
        '[project]\nname = "x"\ndependencies = [\n  "urllib3==1.24.1",\n]\n'
    )
    (project / "uv.lock").write_text('[[package]]\nname = "werkzeug"\nversion = "0.15.0"\n')
    dependencies = []
    for name in ("requirements.txt", "pyproject.toml", "uv.lock"):
        dependencies += read_file(project / name, project).dependencies
    result = scan_dependencies(advisory_db, dependencies)
    patch = build_patch(result.fixes, project)
    assert requirements.read_text() == original  # never changed in place
    assert set(patch.files) == {"requirements.txt", "pyproject.toml"}
    by_package = {f.dependency.name: f for f in patch.fixes}
    assert (
        by_package["werkzeug"].patched is False
        and "uv lock --upgrade-package" in by_package["werkzeug"].manual
    )
    assert "six" not in by_package  # not vulnerable, not touched

    copy = tmp_path / "copy"
    shutil.copytree(project, copy)
    (copy / "fix.patch").write_text(patch.text)
    subprocess.run(["git", "apply", "--verbose", "fix.patch"], cwd=copy, check=True, capture_output=True)
    patched = (copy / "requirements.txt").read_text()
    assert patched == (
        "# pins\nJinja2==2.11.3 --hash=sha256:abc  # templating\npyyaml == 5.4\nsix==1.16.0\nrequests==2.31.0"
    )
    assert '"urllib3==1.26.18"' in (copy / "pyproject.toml").read_text()
    # a re-scan of the patched copy finds nothing left to fix in the patched files
    again = []
    for name in ("requirements.txt", "pyproject.toml"):
        again += read_file(copy / name, copy).dependencies
    assert scan_dependencies(advisory_db, again).findings == []
