"""Automatic upgrade proposals, written as a unified-diff patch; files are never changed in place.

The fix version follows pip-audit's `--fix` resolution: starting from the current version, take
for each advisory that still applies the earliest fixed version above the current one, move to
the highest of those, and re-check every advisory of the package at that version; repeat until
none applies. An advisory with no fixed version above the current one makes the fix impossible.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.version import Version

from rpops.steps.security.deps import Dependency
from rpops.steps.security.osv import Advisory, affecting, parse_version

MAX_STEPS = 50
PATCHABLE_KINDS = ("requirements", "pyproject")


@dataclass(frozen=True)
class FixResolution:
    package: str
    current: str
    version: str | None  # None when no fix is possible
    reason: str = ""
    steps: tuple[str, ...] = ()


def resolve_fix(
    package: str, current: str, applicable: list[Advisory], all_advisories: list[Advisory]
) -> FixResolution:
    version = parse_version(current)
    if version is None:
        return FixResolution(package, current, None, f"{current!r} is not a valid PEP 440 version")
    remaining = applicable
    steps: list[str] = []
    for _ in range(MAX_STEPS):
        if not remaining:
            return FixResolution(package, current, str(version), "", tuple(steps))
        targets: list[Version] = []
        for advisory in remaining:
            later = [v for v in advisory.fix_versions if v > version]
            if not later:
                return FixResolution(
                    package,
                    current,
                    None,
                    f"{advisory.id} has no fixed version above {version}",
                    tuple(steps),
                )
            targets.append(later[0])
        version = max(targets)
        steps.append(str(version))
        remaining = affecting(all_advisories, version)
    return FixResolution(package, current, None, "no stable fix found within the step limit", tuple(steps))


@dataclass
class PlannedFix:
    dependency: Dependency
    resolution: FixResolution
    patched: bool = False
    manual: str = ""  # why the patch does not carry this upgrade


@dataclass
class PatchResult:
    text: str
    files: list[str] = field(default_factory=list)
    fixes: list[PlannedFix] = field(default_factory=list)


def _replace_pin(line: str, dep: Dependency, new: str) -> str | None:
    """Rewrite the pinned version of `dep` on one line; None when it cannot be done safely."""
    old = dep.version or ""
    candidates = [f"==={old}", f"=={old}", f"== {old}", f"=== {old}"]
    if dep.kind == "pyproject":
        candidates += [f'"{old}"', f"'{old}'"]
    lowered = line.lower()
    name_at = lowered.find(dep.display_name.lower())
    if name_at < 0:
        name_at = lowered.replace("_", "-").find(dep.name)
    if name_at < 0:
        return None
    for candidate in candidates:
        at = line.find(candidate, name_at)
        if at < 0:
            continue
        end = at + len(candidate)
        if end < len(line) and (line[end].isalnum() or line[end] in ".+"):
            continue  # a longer version that only starts with the old one
        replacement = candidate.replace(old, new)
        return line[:at] + replacement + line[end:]
    return None


def build_patch(fixes: list[PlannedFix], base: Path) -> PatchResult:
    """One unified diff (git-style a/ b/ paths, relative to `base`) over every patchable file."""
    by_file: dict[str, list[PlannedFix]] = {}
    for fix in fixes:
        dep = fix.dependency
        if fix.resolution.version is None:
            fix.manual = fix.resolution.reason
        elif dep.kind not in PATCHABLE_KINDS or not dep.line:
            fix.manual = (
                f"{dep.kind} is generated: upgrade with your tool, e.g. "
                f"`uv lock --upgrade-package {dep.display_name}=={fix.resolution.version}`"
                if dep.kind in ("uv.lock", "poetry.lock")
                else "not a requirement file"
            )
        else:
            by_file.setdefault(dep.source, []).append(fix)
    result = PatchResult("", fixes=fixes)
    chunks: list[str] = []
    for source in sorted(by_file):
        # the file as it was read: `source` is relative to `base` only when the file lies inside
        # it (a --requirements path relative to the working directory need not)
        read_from = by_file[source][0].dependency.path
        path = Path(read_from) if read_from else base / source
        try:
            original = path.read_text(encoding="utf-8")
        except OSError as exc:
            for fix in by_file[source]:
                fix.manual = f"cannot read {source}: {exc.strerror}"
            continue
        lines = original.splitlines(keepends=True)
        changed = list(lines)
        for fix in by_file[source]:
            index = fix.dependency.line - 1
            if not 0 <= index < len(changed):
                fix.manual = "line not found"
                continue
            new_line = _replace_pin(changed[index], fix.dependency, str(fix.resolution.version))
            if new_line is None:
                fix.manual = "could not rewrite the pin on its line"
                continue
            changed[index] = new_line
            fix.patched = True
        if changed == lines:
            continue
        diff = list(difflib.unified_diff(lines, changed, fromfile=f"a/{source}", tofile=f"b/{source}"))
        for line in diff:
            chunks.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
        result.files.append(source)
    result.text = "".join(chunks)
    return result
