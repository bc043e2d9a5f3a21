"""Requirement readers: requirements.txt / pip freeze output, pyproject.toml, uv.lock, poetry.lock,
and installed environments (site-packages or a virtualenv).

Each reader returns Dependency values (a pinned version when the input pins one) and Notices for
lines it could not use. Nothing here talks to the network or resolves unpinned ranges.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from rpops.core.errors import UsageError
from rpops.steps.security.model import Notice

LOCK_NAMES = ("uv.lock", "poetry.lock")
# requirements*.lock: pip-compile's (and this project's) pinned lock, in requirements format.
DISCOVER_GLOBS = (
    "requirements*.txt",
    "requirements*.lock",
    "requirements/*.txt",
    "pyproject.toml",
    "uv.lock",
    "poetry.lock",
)


@dataclass(frozen=True)
class Dependency:
    name: str  # canonical (PEP 503) name
    display_name: str
    version: str | None  # the pinned version, or None when the input does not pin one
    source: str  # file path shown in reports, or "installed:<dir>"
    line: int  # 1-based line in `source`, 0 when not applicable
    kind: str  # requirements | pyproject | uv.lock | poetry.lock | installed
    specifier: str = ""
    note: str = ""
    # the file as read (absolute): `source` is for display and may be relative to another folder
    path: str = ""

    @property
    def pinned(self) -> bool:
        return self.version is not None


@dataclass
class ReadResult:
    dependencies: list[Dependency]
    notices: list[Notice]
    files: list[str]


def file_kind(path: Path) -> str:
    name = path.name.lower()
    if name == "pyproject.toml":
        return "pyproject"
    if name in LOCK_NAMES:
        return name
    if name.endswith(".toml"):
        raise UsageError(
            f"--requirements {path}: unknown TOML file; give pyproject.toml, uv.lock or poetry.lock"
        )
    return "requirements"


def discover(target: Path) -> list[Path]:
    found: list[Path] = []
    for pattern in DISCOVER_GLOBS:
        found.extend(sorted(p for p in target.glob(pattern) if p.is_file()))
    return list(dict.fromkeys(found))


def _display(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _pinned_version(req: Requirement) -> str | None:
    for spec in req.specifier:
        if spec.operator in ("==", "===") and not spec.version.endswith(".*"):
            return spec.version
    return None


def _read_text(path: Path, display: str, notices: list[Notice], explicit: bool) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if explicit:
            raise UsageError(f"--requirements {path}: file not found; check the path") from None
        notices.append(Notice("dependency", "unreadable", display, "file not found"))
    except (OSError, UnicodeDecodeError) as exc:
        if explicit:
            raise UsageError(
                f"--requirements {path}: cannot read it ({exc}); fix its permissions or encoding (UTF-8)"
            ) from None
        notices.append(Notice("dependency", "unreadable", display, f"cannot read: {exc}"))
    return None


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Join backslash continuations, drop comments (pip's rule: '#' at start or after whitespace)."""
    out: list[tuple[int, str]] = []
    buffer = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw
        for i, ch in enumerate(line):
            if ch == "#" and (i == 0 or line[i - 1].isspace()):
                line = line[:i]
                break
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        if buffer.strip():
            out.append((start, buffer.strip()))
        buffer = ""
    if buffer.strip():
        out.append((start, buffer.strip()))
    return out


def read_requirements(
    path: Path, base: Path, *, explicit: bool = True, _seen: set[Path] | None = None
) -> ReadResult:
    """requirements.txt, constraints files and `pip freeze` output (with -r/-c includes)."""
    seen = _seen if _seen is not None else set()
    real = path.resolve()
    display = _display(path, base)
    result = ReadResult([], [], [display])
    if real in seen:
        result.notices.append(
            Notice("dependency", "include-loop", display, "already read; include loop skipped")
        )
        return result
    seen.add(real)
    text = _read_text(path, display, result.notices, explicit)
    if text is None:
        return result
    for number, line in _logical_lines(text):
        if line.startswith("-"):
            _read_option(line, number, path, base, display, seen, result)
        else:
            _read_requirement(line, number, display, real, result)
    return result


def _read_option(
    line: str, number: int, path: Path, base: Path, display: str, seen: set[Path], result: ReadResult
) -> None:
    """An option line: -r/-c includes are read in turn; -e names no version; the others (index
    URLs, --pre, ...) name no package."""
    option, _, value = line.partition(" ")
    if "=" in option and option.startswith("--"):
        option, _, value = option.partition("=")
    value = value.strip()
    if option in ("-r", "--requirement", "-c", "--constraint"):
        included = (path.parent / value).resolve()
        inner = read_requirements(included, base, explicit=False, _seen=seen)
        result.dependencies.extend(inner.dependencies)
        result.notices.extend(inner.notices)
        result.files.extend(inner.files)
    elif option in ("-e", "--editable"):
        result.notices.append(
            Notice(
                "dependency",
                "not-pinned",
                display,
                f"editable requirement '{value}' has no version to check",
                number,
            )
        )


def _read_requirement(line: str, number: int, display: str, real: Path, result: ReadResult) -> None:
    requirement_text = line.split(" --", 1)[0].split(" -", 1)[0].strip() if " -" in line else line
    try:
        req = Requirement(requirement_text)
    except InvalidRequirement as exc:
        result.notices.append(
            Notice(
                "dependency",
                "invalid-requirement",
                display,
                f"cannot parse '{requirement_text}': {exc}",
                number,
            )
        )
        return
    version = None if req.url else _pinned_version(req)
    note = "direct URL" if req.url else ("" if version else "not pinned to one version")
    if req.marker is not None:
        note = (note + "; " if note else "") + f"marker: {req.marker}"
    result.dependencies.append(
        Dependency(
            canonicalize_name(req.name),
            req.name,
            version,
            display,
            number,
            "requirements",
            str(req.specifier),
            note,
            str(real),
        )
    )


def _find_line(lines: list[str], needle: str, start: int = 0) -> int:
    for i in range(start, len(lines)):
        if needle in lines[i]:
            return i + 1
    return 0


def _read_toml(path: Path, base: Path, what: str) -> tuple[ReadResult, str, dict[str, Any] | None, str]:
    """(the result to fill, the file's name as reported, its TOML or None when unreadable, its text)."""
    display = _display(path, base)
    result = ReadResult([], [], [display])
    text = _read_text(path, display, result.notices, True)
    if text is None:
        return result, display, None, ""
    try:
        return result, display, tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"--requirements {path}: invalid TOML ({exc}); fix the {what}") from None


def read_pyproject(path: Path, base: Path) -> ReadResult:
    result, display, data, text = _read_toml(path, base, "file")
    if data is None:
        return result
    lines = text.splitlines()
    entries: list[str] = []
    project = data.get("project", {})
    entries += project.get("dependencies", []) or []
    for group in (project.get("optional-dependencies") or {}).values():
        entries += group
    for group in (data.get("dependency-groups") or {}).values():
        entries += [e for e in group if isinstance(e, str)]
    for entry in entries:
        line = _find_line(lines, f'"{entry}"') or _find_line(lines, f"'{entry}'")
        try:
            req = Requirement(entry)
        except InvalidRequirement as exc:
            result.notices.append(
                Notice("dependency", "invalid-requirement", display, f"cannot parse '{entry}': {exc}", line)
            )
            continue
        version = None if req.url else _pinned_version(req)
        result.dependencies.append(
            Dependency(
                canonicalize_name(req.name),
                req.name,
                version,
                display,
                line,
                "pyproject",
                str(req.specifier),
                "" if version else "not pinned to one version",
                str(path.resolve()),
            )
        )
    poetry = data.get("tool", {}).get("poetry", {})
    tables = [poetry.get("dependencies") or {}, poetry.get("dev-dependencies") or {}]
    tables += [g.get("dependencies") or {} for g in (poetry.get("group") or {}).values()]
    for table in tables:
        for name, spec in table.items():
            if name.lower() == "python":
                continue
            raw = spec.get("version", "") if isinstance(spec, dict) else str(spec)
            pin = raw[2:].strip() if raw.startswith("==") else raw.strip()
            exact = bool(pin) and pin[0].isdigit() and not any(c in pin for c in "^~<>*,!| ")
            line = _find_line(lines, f"{name} =") or _find_line(lines, f'"{name}" =')
            result.dependencies.append(
                Dependency(
                    canonicalize_name(name),
                    name,
                    pin if exact else None,
                    display,
                    line,
                    "pyproject",
                    raw,
                    "" if exact else "not pinned to one version",
                    str(path.resolve()),
                )
            )
    return result


def read_lock(path: Path, base: Path) -> ReadResult:
    """uv.lock and poetry.lock: [[package]] tables with name and version."""
    kind = path.name.lower()
    result, display, data, text = _read_toml(path, base, "lock file")
    if data is None:
        return result
    lines = text.splitlines()
    cursor = 0
    for package in data.get("package", []) or []:
        name, version = package.get("name"), package.get("version")
        if not isinstance(name, str):
            continue
        line = _find_line(lines, f'name = "{name}"', cursor)
        cursor = line or cursor
        source = package.get("source") or {}
        if kind == "uv.lock" and isinstance(source, dict) and ("editable" in source or "virtual" in source):
            continue  # the project itself
        result.dependencies.append(
            Dependency(
                canonicalize_name(name),
                name,
                version if isinstance(version, str) else None,
                display,
                line,
                kind,
                f"=={version}" if version else "",
            )
        )
    return result


def _site_dirs(path: Path) -> list[Path]:
    if (path / "pyvenv.cfg").exists() or (path / "lib").is_dir():
        dirs = sorted(path.glob("lib/python*/site-packages")) + sorted(path.glob("Lib/site-packages"))
        if dirs:
            return dirs
    return [path]


def read_installed(spec: str, base: Path) -> ReadResult:
    """Distributions installed in a site-packages directory, a virtualenv, or `current` (sys.path)."""
    result = ReadResult([], [], [])
    if spec == "current":
        dists = list(metadata.distributions())
        label = "installed:current"
        result.files.append(label)
    else:
        path = Path(spec)
        if not path.is_dir():
            raise UsageError(
                f"--installed {spec}: not a directory; give a site-packages directory, a "
                "virtualenv, or 'current'"
            )
        dirs = _site_dirs(path)
        dists = list(metadata.distributions(path=[str(d) for d in dirs]))
        label = f"installed:{_display(path, base)}"
        result.files.append(label)
    seen: set[str] = set()
    for dist in dists:
        name = dist.metadata["Name"] if dist.metadata else None
        if not name:
            continue
        canonical = canonicalize_name(name)
        if canonical in seen:
            continue  # first on the path wins, as for imports
        seen.add(canonical)
        result.dependencies.append(
            Dependency(
                canonical,
                name,
                dist.version,
                label,
                0,
                "installed",
                f"=={dist.version}",
                path=_metadata_file(dist),
            )
        )
    return result


def _metadata_file(dist: metadata.Distribution) -> str:
    """The installed distribution's METADATA file (where a finding about it points), or ""."""
    for file in dist.files or ():
        if file.name in ("METADATA", "PKG-INFO") and file.parent.name.endswith((".dist-info", ".egg-info")):
            return str(Path(str(file.locate())).resolve())
    return ""


def read_file(path: Path, base: Path, explicit: bool = True) -> ReadResult:
    kind = file_kind(path)
    if not path.exists() and explicit:
        raise UsageError(f"--requirements {path}: file not found; check the path")
    if kind == "pyproject":
        return read_pyproject(path, base)
    if kind in LOCK_NAMES:
        return read_lock(path, base)
    return read_requirements(path, base, explicit=explicit)
