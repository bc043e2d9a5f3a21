"""Source code scan: find Python files, scan them in parallel processes, cache results by content.

Every file that is found but not analysed (too large, binary, unreadable, a syntax error, a
symlink loop) becomes a Notice, so a scan never looks clean by omission.
"""

from __future__ import annotations

import ast
import fnmatch
import gc
import hashlib
import json
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rpops.core.io import progress
from rpops.steps.security.code_rules import RULES, RULES_VERSION, scan_tree
from rpops.steps.security.model import Finding, Location, Notice

log = logging.getLogger("rpops.steps.security.code")

PY_SUFFIXES = (".py", ".pyw")
DEFAULT_MAX_FILE_BYTES = 2 * 1024 * 1024
# Directories that hold tooling state or third-party environments, not the project's code.
SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".venv",
        ".tox",
        ".nox",
        "node_modules",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".eggs",
        ".rpops",
    }
)
_TEST_DIRS = frozenset({"test", "tests", "testing"})
_SUPPRESS_MARK = "rpops:"
_NOSEC_MARK = "nosec"  # Bandit's marker, honoured when it gives a reason
_NOQA_MARK = "noqa:"  # ruff's flake8-bandit codes (S307 is Bandit's B307), with a reason
BANDIT_TO_RULE = {b: rule.id for rule in RULES.values() for b in rule.bandit}


@dataclass
class CodeScanSettings:
    roots: list[Path]
    base: Path  # paths in findings are shown relative to this
    exclude: tuple[str, ...] = ()
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    jobs: int = 0  # 0 = one per CPU
    cache_dir: Path | None = None


@dataclass
class CodeScanResult:
    files_found: int = 0
    files_scanned: int = 0
    bytes_scanned: int = 0
    cache_hits: int = 0
    duration_s: float = 0.0
    findings: list[Finding] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "files_found": self.files_found,
            "files_scanned": self.files_scanned,
            "bytes_scanned": self.bytes_scanned,
            "cache_hits": self.cache_hits,
            "duration_s": round(self.duration_s, 3),
            "not_analysed": len(self.notices),
        }


def is_test_path(rel: str) -> bool:
    parts = rel.replace("\\", "/").split("/")
    name = parts[-1]
    return (
        any(p in _TEST_DIRS for p in parts[:-1])
        or name.startswith("test_")
        or name.endswith("_test.py")
        or name == "conftest.py"
    )


def _relative(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()


def _excluded(rel: str, name: str, patterns: tuple[str, ...]) -> bool:
    return any(
        fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p) or fnmatch.fnmatch(rel, p.rstrip("/") + "/*")
        for p in patterns
    )


def discover(settings: CodeScanSettings) -> tuple[list[tuple[str, str, int]], list[Notice]]:
    """Python files under the roots as (absolute path, display path, size), largest first."""
    files: dict[str, tuple[str, str, int]] = {}  # by real path: a file reached twice counts once
    notices: list[Notice] = []
    seen_dirs: set[tuple[int, int]] = set()
    base = settings.base
    for root in settings.roots:
        try:
            st = root.stat()
        except OSError as exc:
            notices.append(
                Notice("code", "unreadable", _relative(root, base), f"cannot read: {exc.strerror}")
            )
            continue
        if not root.is_dir():
            _add_file(files, root, _relative(root, base), st)
            continue
        stack = [root]
        while stack:
            directory = stack.pop()
            entries = _list_new_directory(directory, base, seen_dirs, notices)
            if entries is not None:
                stack.extend(_add_entries(directory, entries, settings, files, notices))
    ordered = sorted(files.values(), key=lambda f: (-f[2], f[1]))
    return ordered, notices


def _add_file(
    files: dict[str, tuple[str, str, int]], path: Path, rel: str, st: os.stat_result, real: str | None = None
) -> None:
    real = real or os.path.realpath(path)
    if real not in files:
        files[real] = (str(path), rel, st.st_size)


def _list_new_directory(
    directory: Path, base: Path, seen_dirs: set[tuple[int, int]], notices: list[Notice]
) -> list[os.DirEntry[str]] | None:
    """The directory's entries, by name; None when it cannot be read or was already walked (a
    symlink back to it is reported, not followed again)."""
    try:
        dst = directory.stat()
    except OSError as exc:
        notices.append(
            Notice("code", "unreadable", _relative(directory, base), f"cannot read directory: {exc.strerror}")
        )
        return None
    key = (dst.st_dev, dst.st_ino)
    if key in seen_dirs:
        if directory.is_symlink():
            notices.append(
                Notice(
                    "code",
                    "symlink-loop",
                    _relative(directory, base),
                    f"symlink to an already scanned directory ({os.readlink(directory)}); not followed again",
                )
            )
        return None
    seen_dirs.add(key)
    try:
        return sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as exc:
        notices.append(
            Notice("code", "unreadable", _relative(directory, base), f"cannot list directory: {exc.strerror}")
        )
        return None


def _add_entries(
    directory: Path,
    entries: list[os.DirEntry[str]],
    settings: CodeScanSettings,
    files: dict[str, tuple[str, str, int]],
    notices: list[Notice],
) -> list[Path]:
    """Add a directory's Python files; return its subdirectories to walk (not excluded, not
    skipped, not a virtualenv)."""
    subdirs: list[Path] = []
    real_dir: str | None = None  # realpath of the directory, when a file needs it
    for entry in entries:
        path = Path(entry.path)
        rel = _relative(path, settings.base)
        if settings.exclude and _excluded(rel, entry.name, settings.exclude):
            continue
        try:
            is_dir = entry.is_dir()  # follows symlinks
        except OSError:
            is_dir = False
        if is_dir:
            if entry.name not in SKIP_DIRS and not (path / "pyvenv.cfg").exists():
                subdirs.append(path)
            continue
        if not entry.name.endswith(PY_SUFFIXES):
            continue
        try:
            fst = path.stat()
        except OSError as exc:
            reason = "symlink loop or dangling symlink" if entry.is_symlink() else exc.strerror
            notices.append(Notice("code", "unreadable", rel, f"cannot read: {reason}"))
            continue
        # a file that is not a symlink is where its directory really is: one realpath
        # per directory rather than an lstat per path component of every file
        real = None
        if not entry.is_symlink():
            real_dir = real_dir or os.path.realpath(directory)
            real = os.path.join(real_dir, entry.name)
        _add_file(files, path, rel, fst, real)
    return subdirs


# ---- per-file work (runs in worker processes) ----------------------------------------------------


def _find_inline_suppression(line: str) -> tuple[list[str], str, str] | None:
    """The inline suppression in a line's comment: (rule ids, reason, how it was written).

    `# rpops: ignore[rule-a,rule-b] reason`, or Bandit's `# nosec [B307[, B102]] [-- reason]`
    where an id may also be one of ours (py-eval); a bare `# nosec` names every rule ("*").
    """
    start = 0
    while True:
        i = line.find("#", start)
        if i < 0:
            return None
        rest = line[i + 1 :].lstrip()
        if rest.startswith(_SUPPRESS_MARK):
            rest = rest[len(_SUPPRESS_MARK) :].lstrip()
            if rest.startswith("ignore["):
                close = rest.find("]")
                if close > 0:
                    rules = [r.strip() for r in rest[len("ignore[") : close].split(",") if r.strip()]
                    return rules, rest[close + 1 :].strip(), f"# rpops: ignore[{','.join(rules)}]"
        elif rest.startswith(_NOSEC_MARK) and not rest[len(_NOSEC_MARK) :][:1].isalnum():
            return _parse_nosec(rest[len(_NOSEC_MARK) :])
        elif rest.startswith(_NOQA_MARK):
            found = _parse_noqa(rest[len(_NOQA_MARK) :])
            if found is not None:
                return found
        start = i + 1


def _parse_noqa(text: str) -> tuple[list[str], str, str] | None:
    """Ruff's `# noqa: S307 - reason`: its S### codes are Bandit's B### checks. Other codes
    (E501, ...) are not ours; a bare `# noqa` is too broad to count."""
    tokens = text.split()
    codes: list[str] = []
    while tokens:
        parts = [t for t in tokens[0].split(",") if t]
        if not parts or not all(t[:1].isalpha() and t[1:].isdigit() for t in parts):
            break
        codes.extend(parts)
        tokens.pop(0)
    rules = sorted(
        {BANDIT_TO_RULE[f"B{c[1:]}"] for c in codes if c[0] == "S" and f"B{c[1:]}" in BANDIT_TO_RULE}
    )
    if not rules:
        return None
    reason = " ".join(tokens).lstrip("-—:# ").strip()
    return rules, reason, f"# noqa: {', '.join(codes)}"


def _parse_nosec(text: str) -> tuple[list[str], str, str]:
    """After `nosec`: ids (Bandit's B### or ours), separated by commas or spaces, then the reason."""
    tokens = text.lstrip(" :").split()
    ids: list[str] = []
    while tokens:
        token = tokens[0].strip(",")
        parts = [t for t in token.split(",") if t]
        if not parts or not all(_is_rule_token(t) for t in parts):
            break
        ids.extend(parts)
        tokens.pop(0)
    reason = " ".join(tokens).lstrip("-—:# ").strip()
    rules = sorted({BANDIT_TO_RULE.get(t.upper(), t) for t in ids}) if ids else ["*"]
    return rules, reason, f"# nosec {', '.join(ids)}".rstrip()


def _is_rule_token(token: str) -> bool:
    return token in RULES or (len(token) == 4 and token[0] in "Bb" and token[1:].isdigit())


def _scan_file(abs_path: str, rel: str, max_bytes: int, cached: Mapping[str, Any] | None) -> dict[str, Any]:
    """Scan one file; `cached` holds earlier results by content digest (None: no cache). A file
    analysed here carries its digest, so that the caller can add its result to the cache."""
    out: dict[str, Any] = {"path": rel, "findings": [], "notices": [], "cached": False, "bytes": 0}
    try:
        with open(abs_path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        out["notices"].append(["unreadable", f"cannot read: {exc.strerror}", 0])
        return out
    if len(data) > max_bytes:
        out["notices"].append(
            [
                "too-large",
                f"larger than the {max_bytes}-byte cap; not analysed (raise --max-file-size to include it)",
                0,
            ]
        )
        return out
    out["bytes"] = len(data)
    if b"\x00" in data[:8192]:
        out["notices"].append(["binary", "binary content (NUL bytes); not analysed", 0])
        return out
    test_file = is_test_path(rel)
    if cached is not None:
        digest = hashlib.sha256(data).hexdigest() + ("-t" if test_file else "")
        entry = cached.get(digest)
        if (
            isinstance(entry, dict)
            and isinstance(entry.get("findings"), list)
            and isinstance(entry.get("notices"), list)
        ):
            out["findings"], out["notices"], out["cached"] = entry["findings"], entry["notices"], True
            return out
        out["digest"] = digest
    out["findings"], out["notices"] = _analyse(data, rel, test_file)
    return out


# ---- the result cache: packs of entries by content digest ------------------------------------
# One pack file per scan that analysed something, not one file per source file: creating small
# files costs more system time than parsing many of them. Packs are merged past _MERGE_OVER.
_PACK_PREFIX = "pack-"
_MERGE_OVER = 16


def _read_packs(cache_root: str) -> tuple[dict[str, Any], list[str]]:
    """Every entry in the cache's packs, and the pack files that were read."""
    entries: dict[str, Any] = {}
    read: list[str] = []
    try:
        names = sorted(os.listdir(cache_root))
    except OSError:
        return entries, read
    for name in names:
        if not (name.startswith(_PACK_PREFIX) and name.endswith(".json")):
            continue
        path = os.path.join(cache_root, name)
        try:
            with open(path, encoding="utf-8") as fh:
                pack = json.load(fh)
        except (OSError, ValueError):
            continue  # being written by another scan, or damaged: its entries are recomputed
        if isinstance(pack, dict):
            entries.update(pack)
            read.append(path)
    return entries, read


def _write_pack(cache_root: str, entries: dict[str, Any]) -> bool:
    try:
        os.makedirs(cache_root, exist_ok=True)
        name = f"{_PACK_PREFIX}{os.getpid()}-{time.time_ns()}"
        tmp = os.path.join(cache_root, name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(entries))
        os.replace(tmp, os.path.join(cache_root, name + ".json"))
        return True
    except OSError:
        return False  # a cache that cannot be written only costs time


def _update_cache(
    cache_root: str, known: dict[str, Any], packs: list[str], per_file: list[dict[str, Any]]
) -> None:
    new = {
        item["digest"]: {"findings": item["findings"], "notices": item["notices"]}
        for item in per_file
        if "digest" in item
    }
    if len(packs) >= _MERGE_OVER:
        # one pack instead of many; packs another scan writes meanwhile are left alone
        if _write_pack(cache_root, {**known, **new}):
            for path in packs:
                try:
                    os.unlink(path)
                except OSError:
                    pass
    elif new:
        _write_pack(cache_root, new)


def _analyse(data: bytes, rel: str, test_file: bool) -> tuple[list[Any], list[Any]]:
    try:
        tree = ast.parse(data, rel)
    except SyntaxError as exc:
        return [], [["syntax-error", f"syntax error: {exc.msg}; not analysed", exc.lineno or 0]]
    except (ValueError, RecursionError, MemoryError) as exc:
        return [], [["parse-error", f"cannot parse: {type(exc).__name__}: {exc}; not analysed", 0]]
    try:
        raws = scan_tree(tree, test_file)
    except RecursionError:
        return [], [["parse-error", "nesting too deep to analyse", 0]]
    del tree
    if not raws:
        return [], []
    lines = data.decode("utf-8", "replace").splitlines()
    findings: list[Any] = []
    notices: list[Any] = []
    for rule, line, col, end_line, end_col, message, severity, confidence in raws:
        snippet = lines[line - 1].strip()[:240] if 0 < line <= len(lines) else ""
        suppression = None
        for number in dict.fromkeys((line, end_line)):
            if not 0 < number <= len(lines):
                continue
            found = _find_inline_suppression(lines[number - 1])
            if found and (rule in found[0] or "*" in found[0]):
                if found[1]:
                    suppression = {"kind": "inline", "reason": found[1], "line": number, "comment": found[2]}
                else:
                    notices.append(
                        [
                            "suppression-without-reason",
                            f"'{found[2]}' has no reason (write one after it, e.g. '-- why'); "
                            f"the {rule} finding is kept",
                            number,
                        ]
                    )
                break
        findings.append(
            [rule, line, col, end_line, end_col, message, severity, confidence, snippet, suppression]
        )
    return findings, notices


def _scan_chunk(items: list[tuple[str, str]], max_bytes: int) -> list[dict[str, Any]]:
    results = [_scan_file(abs_path, rel, max_bytes, _WORKER_CACHE) for abs_path, rel in items]
    gc.collect()
    return results


_WORKER_CACHE: Mapping[str, Any] | None = None  # the cache's entries, in a worker process


def _worker_init(cached: Mapping[str, Any] | None) -> None:
    global _WORKER_CACHE
    _WORKER_CACHE = cached
    # AST nodes hold no reference cycles; generational GC passes over millions of fresh nodes
    # cost more than the parse itself. Chunks end with an explicit collect, which need not
    # revisit what the worker inherited.
    gc.disable()
    gc.freeze()


def _chunks(files: list[tuple[str, str, int]], jobs: int) -> list[list[tuple[str, str]]]:
    total = sum(f[2] for f in files) or 1
    target = max(total // (jobs * 16), 64 * 1024)
    chunks: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    size = 0
    for abs_path, rel, nbytes in files:  # largest first: long chunks start early
        current.append((abs_path, rel))
        size += nbytes
        if size >= target or len(current) >= 200:
            chunks.append(current)
            current, size = [], 0
    if current:
        chunks.append(current)
    return chunks


def _pool_context() -> Any:
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")  # no re-import per worker: fastest start
    return multiprocessing.get_context()


def scan_code(settings: CodeScanSettings) -> CodeScanResult:
    started = time.perf_counter()
    files, notices = discover(settings)
    result = CodeScanResult(files_found=len(files))
    result.notices.extend(notices)
    cache_root = str(settings.cache_dir / "code" / f"rules-v{RULES_VERSION}") if settings.cache_dir else None
    known: dict[str, Any] | None = None
    packs: list[str] = []
    if cache_root:
        known, packs = _read_packs(cache_root)
    per_file = _scan_files(files, settings, known)
    if cache_root and known is not None:
        _update_cache(cache_root, known, packs, per_file)
    per_file.sort(key=lambda r: r["path"])
    _collect(per_file, result)
    result.duration_s = time.perf_counter() - started
    return result


def _scan_files(
    files: list[tuple[str, str, int]], settings: CodeScanSettings, known: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """Each file's findings and notices: in this process for a few files or one job, else in a
    pool of workers over chunks of files; progress as they come."""
    jobs = settings.jobs or os.cpu_count() or 1
    per_file: list[dict[str, Any]] = []
    if jobs <= 1 or len(files) < 16:
        was_enabled = gc.isenabled()
        gc.disable()  # see _worker_init
        try:
            for i, (abs_path, rel, _) in enumerate(files, 1):
                per_file.append(_scan_file(abs_path, rel, settings.max_file_bytes, known))
                if i % 50 == 0:
                    progress(i, len(files))
        finally:
            if was_enabled:
                gc.enable()
    else:
        chunks = _chunks(files, jobs)
        done = 0
        with ProcessPoolExecutor(
            max_workers=min(jobs, len(chunks)),
            mp_context=_pool_context(),
            initializer=_worker_init,
            initargs=(known,),  # inherited, not copied, by forked workers
        ) as pool:
            futures = [pool.submit(_scan_chunk, chunk, settings.max_file_bytes) for chunk in chunks]
            for future in as_completed(futures):
                chunk_results = future.result()
                per_file.extend(chunk_results)
                done += len(chunk_results)
                progress(done, len(files))
    progress(len(files), len(files))
    return per_file


def _collect(per_file: list[dict[str, Any]], result: CodeScanResult) -> None:
    """The per-file results, in path order, as findings (with a fingerprint that survives moves of
    the same snippet within a file) and notices."""
    occurrences: dict[tuple[str, str, str], int] = {}
    for item in per_file:
        rel = item["path"]
        if item["cached"]:
            result.cache_hits += 1
        for code, message, line in item["notices"]:
            result.notices.append(Notice("code", code, rel, message, line))
        if not any(
            n[0] in ("unreadable", "too-large", "binary", "syntax-error", "parse-error")
            for n in item["notices"]
        ):
            result.files_scanned += 1
            result.bytes_scanned += item["bytes"]
        for rule, line, col, end_line, end_col, message, severity, confidence, snippet, supp in item[
            "findings"
        ]:
            key = (rule, rel, snippet)
            nth = occurrences.get(key, 0)
            occurrences[key] = nth + 1
            fingerprint = hashlib.sha256(f"{rule}|{rel}|{snippet}|{nth}".encode()).hexdigest()[:32]
            result.findings.append(
                Finding(
                    kind="code",
                    rule_id=rule,
                    title=RULES[rule].title,
                    severity=severity,
                    confidence=confidence,
                    message=message,
                    location=Location(rel, line, col, end_line, end_col),
                    snippet=snippet,
                    fingerprint=fingerprint,
                    properties={"bandit_equivalent": list(RULES[rule].bandit), "cwe": RULES[rule].cwe},
                    suppression=supp,
                )
            )
