"""Offline OSV advisory database: a directory of OSV records (YAML or JSON, PyPA's layout
`vulns/<package>/<ID>.yaml` or any tree of `*.json`), read once into a JSON index that is cached
and reused while the directory is unchanged.

Matching follows the OSV schema's evaluation algorithm: a version is affected when it is listed in
`versions[]` or falls inside an ECOSYSTEM range, whose events are sorted by PEP 440 order
(`packaging`) before use; `introduced: "0"` sorts first; `last_affected` is inclusive; a range with
`limit` events only applies below one of its limits. Events with the same version keep the order
in which the record lists them. Withdrawn records are skipped. Versions that are not valid PEP 440
are reported and never crash the scan.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import yaml
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from rpops.core.errors import Unreachable
from rpops.steps.security.model import Notice

log = logging.getLogger("rpops.steps.security.osv")

INDEX_FORMAT = 3  # 3: OSV strings as written (timestamps, versions)
INDEX_NAME = ".rpops-index.json"
SYNC_META = ".rpops-sync.json"
RECORD_SUFFIXES = (".yaml", ".yml", ".json")
_RANGE_TYPES = ("ECOSYSTEM", "SEMVER")  # PyPI ranges are ECOSYSTEM; SEMVER is read with PEP 440 too
_ID_PREFERENCE = ("PYSEC-", "GHSA-", "CVE-")
_RATINGS = ((9.0, "critical"), (7.0, "high"), (4.0, "medium"), (0.1, "low"), (0.0, "info"))


def rating_for_score(score: float) -> str:
    for floor, name in _RATINGS:
        if score >= floor:
            return name
    return "info"


@lru_cache(maxsize=65536)
def parse_version(text: str) -> Version | None:
    try:
        return Version(text)
    except (InvalidVersion, TypeError):
        return None


def _normalized(text: str) -> str:
    parsed = parse_version(text)
    return str(parsed) if parsed is not None else text


# ---- severity -----------------------------------------------------------------------------------


def score_severity(entries: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """Base score from CVSS vectors (v3 preferred, then v4, then v2), computed with `cvss`."""
    import cvss  # small, pure Python; imported here to keep `rpops --help` fast

    best: dict[str, Any] | None = None
    order = {"CVSS_V3": 0, "CVSS_V4": 1, "CVSS_V2": 2}
    for entry in sorted(entries, key=lambda e: order.get(str(e.get("type")), 9)):
        kind, vector = str(entry.get("type", "")), str(entry.get("score", ""))
        try:
            if kind == "CVSS_V3":
                score = float(cvss.CVSS3(vector).base_score)
            elif kind == "CVSS_V4":
                score = float(cvss.CVSS4(vector).base_score)
            elif kind == "CVSS_V2":
                score = float(cvss.CVSS2(vector).base_score)
            else:
                continue
        except Exception as exc:  # noqa: BLE001 - the library raises several kinds on bad vectors
            log.debug("bad %s vector %r: %s", kind, vector, exc)
            continue
        candidate = {"type": kind, "vector": vector, "score": score, "rating": rating_for_score(score)}
        if best is None or order[kind] < order[best["type"]]:
            best = candidate
    return best


# ---- records and ranges --------------------------------------------------------------------------


@dataclass
class Range:
    """One ECOSYSTEM range, its events sorted; `problem` says why it cannot be evaluated."""

    events: list[tuple[str, Version | None]]  # (kind, version); None stands for introduced "0"
    limits: list[Version | None]  # None stands for "*"
    problem: str = ""

    def contains(self, v: Version) -> bool:
        if self.limits and not any(limit is None or v < limit for limit in self.limits):
            return False
        vulnerable = False
        for kind, at in self.events:
            if kind == "introduced":
                if at is None or v >= at:
                    vulnerable = True
            elif kind == "fixed":
                if at is not None and v >= at:
                    vulnerable = False
            elif kind == "last_affected" and at is not None and v > at:
                vulnerable = False
        return vulnerable


def build_range(raw: dict[str, Any]) -> Range:
    events: list[tuple[str, Version | None]] = []
    limits: list[Version | None] = []
    bad: list[str] = []
    for event in raw.get("events") or []:
        for kind in ("introduced", "fixed", "last_affected", "limit"):
            if kind not in event:
                continue
            text = str(event[kind])
            if kind == "introduced" and text == "0":
                events.append((kind, None))
            elif kind == "limit" and "*" in text:
                limits.append(None)
            else:
                parsed = parse_version(text)
                if parsed is None:
                    bad.append(f"{kind}: {text!r}")
                elif kind == "limit":
                    limits.append(parsed)
                else:
                    events.append((kind, parsed))
    if bad:
        return Range([], [], "not valid PEP 440: " + ", ".join(bad))
    # Stable sort: events at one version keep the record's order; "0" sorts before everything.
    events.sort(key=lambda e: (e[1] is not None, e[1] or Version("0")))
    return Range(events, limits)


@dataclass
class Advisory:
    """One OSV record's entry for one package."""

    id: str
    package: str
    aliases: tuple[str, ...]
    summary: str
    severity: dict[str, Any] | None
    raw_ranges: list[dict[str, Any]]
    versions: frozenset[str]  # raw and normalized forms
    published: str = ""
    modified: str = ""
    references: tuple[str, ...] = ()
    source_file: str = ""

    @cached_property
    def ranges(self) -> list[Range]:
        return [build_range(r) for r in self.raw_ranges]

    @cached_property
    def fix_versions(self) -> list[Version]:
        fixes = {at for r in self.ranges for kind, at in r.events if kind == "fixed" and at is not None}
        return sorted(fixes)

    @property
    def problems(self) -> list[str]:
        return [r.problem for r in self.ranges if r.problem]

    def affects(self, version: str, parsed: Version | None) -> bool:
        if version in self.versions or (parsed is not None and str(parsed) in self.versions):
            return True
        if parsed is None:
            return False
        return any(not r.problem and r.contains(parsed) for r in self.ranges)

    @property
    def ids(self) -> set[str]:
        return {self.id, *self.aliases}


# ---- index ---------------------------------------------------------------------------------------


_NULLS = frozenset({"", "~", "null", "Null", "NULL"})


def _plain(node: yaml.Node) -> Any:
    """A composed YAML node as plain values: every scalar a string (OSV's types: versions such as
    `1.10` stay "1.10", never the float 1.1; timestamps stay as written), plain nulls None."""
    if isinstance(node, yaml.ScalarNode):
        plain = not node.style  # libyaml says "" for a plain scalar, the pure-Python parser None
        return None if plain and node.value in _NULLS else node.value
    if isinstance(node, yaml.SequenceNode):
        return [_plain(item) for item in node.value]
    return {_plain(key): _plain(value) for key, value in node.value}


class _RecordLoader(getattr(yaml, "CBaseLoader", yaml.BaseLoader)):  # type: ignore[misc]
    """The base schema resolves no tags: skip the resolver's per-node Python calls altogether."""

    def descend_resolver(self, *args: Any) -> None:
        pass

    def ascend_resolver(self, *args: Any) -> None:
        pass

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        return ""


def _load_record(path: Path) -> Any:
    with open(path, "rb") as fh:
        if path.suffix == ".json":
            return json.load(fh)
        # libyaml composes the node tree (the base schema: no tags resolved, no objects built);
        # converting the nodes here is twice as fast as yaml's constructors and keeps strings.
        loader = _RecordLoader(fh)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
        return None if node is None else _plain(node)


def _record_files(root: Path) -> list[Path]:
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files.extend(
            Path(dirpath, f)
            for f in sorted(filenames)
            if f.endswith(RECORD_SUFFIXES) and not f.startswith(".")
        )
    return files


def fingerprint(root: Path) -> str:
    """Names, sizes and mtimes of every record file: cheap (one stat each), changes with any edit."""
    digest = hashlib.sha256(f"format={INDEX_FORMAT}".encode())
    lines: list[str] = []
    stack = [("", str(root))]
    while stack:
        prefix, directory = stack.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith("."):
                    continue
                if entry.is_dir():
                    stack.append((f"{prefix}{name}/", entry.path))
                elif name.endswith(RECORD_SUFFIXES):
                    st = entry.stat()
                    lines.append(f"{prefix}{name}|{st.st_size}|{st.st_mtime_ns}")
    lines.sort()
    digest.update("\n".join(lines).encode())
    return digest.hexdigest()


def read_sync_meta(root: Path) -> dict[str, Any]:
    """What the last sync recorded (source, synced_at, etag); read live, not from the index."""
    try:
        meta = json.loads((root / SYNC_META).read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _references(record: dict[str, Any]) -> list[str]:
    refs = record.get("references") or []
    ranked = sorted(refs, key=lambda r: {"ADVISORY": 0, "FIX": 1, "WEB": 2}.get(str(r.get("type")), 3))
    return [str(r.get("url")) for r in ranked[:5] if r.get("url")]


Progress = Callable[[int, int], None]


def build_index(root: Path, *, strict: bool = False, progress: Progress | None = None) -> dict[str, Any]:
    """Read every record under `root` into the index structure (also used to verify a download).
    `progress(done, total)` is called every 100 records and once at the end."""
    started = time.perf_counter()
    packages: dict[str, list[dict[str, Any]]] = {}
    problems: list[dict[str, str]] = []
    withdrawn: list[str] = []
    newest = ""
    count = 0
    files = _record_files(root)
    for number, path in enumerate(files):
        if progress is not None and number % 100 == 0:
            progress(number, len(files))
        rel = path.relative_to(root).as_posix()
        try:
            record = _load_checked_record(path)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            if strict:
                raise ValueError(f"{rel}: {exc}") from exc
            problems.append({"file": rel, "problem": f"unreadable record: {exc}"})
            continue
        count += 1
        newest = max(newest, str(record.get("modified") or ""))
        if record.get("withdrawn"):
            withdrawn.append(record["id"])
            continue
        for name, entry in _index_entries(record, rel, problems):
            packages.setdefault(name, []).append(entry)
    if progress is not None:
        progress(len(files), len(files))
    meta = read_sync_meta(root)
    log.info(
        "indexed %d advisories for %d packages in %.1fs", count, len(packages), time.perf_counter() - started
    )
    return {
        "format": INDEX_FORMAT,
        "records": count,
        "packages": packages,
        "problems": problems,
        "withdrawn": sorted(withdrawn),
        "newest_modified": newest,
        "sync": meta,
        "built_at": datetime.now(UTC).isoformat(),
    }


def _load_checked_record(path: Path) -> dict[str, Any]:
    """One OSV record; ValueError when it is not one (no string id, `affected` not a list)."""
    record = _load_record(path)
    if not isinstance(record, dict) or not isinstance(record.get("id"), str):
        raise ValueError("not an OSV record (no string 'id')")
    if not isinstance(record.get("affected") or [], list):
        raise ValueError("'affected' is not a list")
    return record


def _index_entries(
    record: dict[str, Any], rel: str, problems: list[dict[str, str]]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The record's index entry for each PyPI package it affects; versions and ranges that cannot
    be used are added to `problems`."""
    modified = str(record.get("modified") or "")
    top_severity = score_severity(record.get("severity") or [])
    aliases = sorted({str(a) for a in record.get("aliases") or []})
    db_severity = (record.get("database_specific") or {}).get("severity")
    for entry in record.get("affected") or []:
        pkg = entry.get("package") or {}
        if not str(pkg.get("ecosystem", "")).startswith("PyPI") or not pkg.get("name"):
            continue
        name = canonicalize_name(str(pkg["name"]))
        severity = score_severity(entry.get("severity") or []) or top_severity
        if (
            severity is None
            and isinstance(db_severity, str)
            and db_severity.lower() in ("low", "medium", "moderate", "high", "critical")
        ):
            label = "medium" if db_severity.lower() == "moderate" else db_severity.lower()
            severity = {"type": "database_specific", "vector": "", "score": None, "rating": label}
        versions = [str(v) for v in entry.get("versions") or []]
        for v in versions:
            if parse_version(v) is None:
                problems.append(
                    {
                        "file": rel,
                        "id": record["id"],
                        "problem": f"versions[] entry {v!r} is not "
                        "valid PEP 440 (matched by exact string only)",
                    }
                )
        ranges = [r for r in entry.get("ranges") or [] if r.get("type") in _RANGE_TYPES]
        for r in ranges:
            problem = build_range(r).problem
            if problem:
                problems.append(
                    {"file": rel, "id": record["id"], "problem": f"range {problem}; range skipped"}
                )
        yield (
            name,
            {
                "id": record["id"],
                "aliases": aliases,
                "summary": str(record.get("summary") or record.get("details") or "")[:300],
                "severity": severity,
                "ranges": ranges,
                "versions": sorted({*versions, *(_normalized(v) for v in versions)}),
                "published": str(record.get("published") or ""),
                "modified": modified,
                "references": _references(record),
                "file": rel,
            },
        )


def _cache_index_path(root: Path, cache_dir: Path) -> Path:
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return cache_dir / "advisory-index" / f"{key}.json"


class LazyPackages(Mapping[str, list[dict[str, Any]]]):
    """Package entries of an index file, parsed only when a package is looked up."""

    def __init__(self, raw: dict[str, str]) -> None:
        self._raw = raw
        self._parsed: dict[str, list[dict[str, Any]]] = {}

    def __getitem__(self, name: str) -> list[dict[str, Any]]:
        parsed = self._parsed.get(name)
        if parsed is None:
            parsed = json.loads(self._raw[name])
            self._parsed[name] = parsed
        return parsed

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


def write_index(path: Path, index: dict[str, Any]) -> None:
    """Index file: one JSON header line, then one `name<TAB>entries-json` line per package, so that
    a scan parses only the packages it looks up."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    header = {k: v for k, v in index.items() if k != "packages"}
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(header, separators=(",", ":")) + "\n")
        for name in sorted(index["packages"]):
            fh.write(f"{name}\t{json.dumps(index['packages'][name], separators=(',', ':'))}\n")
    tmp.replace(path)


def read_index(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        header = json.loads(fh.readline())
        raw: dict[str, str] = {}
        for line in fh:
            name, _, entries = line.partition("\t")
            raw[name] = entries
    header["packages"] = LazyPackages(raw)
    return header


class IndexProgress:
    """Progress of a cold index build, shown only once it has taken over a second: a line that
    updates in place on a terminal, a log line a second otherwise; `N/M` to Argo's progress file."""

    def __init__(self, root: Path, *, after_s: float = 1.0, stream: Any = None) -> None:
        import sys

        self.root = root
        self.after_s = after_s
        self.stream = stream if stream is not None else sys.stderr
        self.started = time.monotonic()
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        from rpops.core.io import progress

        now = time.monotonic()
        if now - self.started < self.after_s:
            return
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        if done < total and now - self.last < (0.25 if tty else 1.0):
            return
        self.last = now
        progress(done, total)
        line = f"indexing advisory database {self.root}: {done}/{total} records"
        if tty:
            self.stream.write("\r" + line + ("\n" if done >= total else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


@dataclass
class AdvisoryDB:
    root: Path
    index: dict[str, Any]
    index_source: str  # "built", "cache:<path>", "db:<path>"
    _cache: dict[str, list[Advisory]] = field(default_factory=dict)

    @classmethod
    def open(cls, root: Path, cache_dir: Path | None = None) -> AdvisoryDB:
        """Open the database, reusing a cached index while the directory is unchanged."""
        if not root.is_dir():
            raise Unreachable(
                f"advisory database {root} is missing; run 'rpops advisories sync --db {root}' "
                "or set --db / RPOPS_ADVISORY_DB to a copy"
            )
        fp = fingerprint(root)
        candidates = [root / INDEX_NAME]
        if cache_dir is not None:
            candidates.append(_cache_index_path(root, cache_dir))
        for candidate in candidates:
            try:
                index = read_index(candidate)
            except (OSError, ValueError):
                continue
            if index.get("fingerprint") == fp and index.get("format") == INDEX_FORMAT:
                index["sync"] = read_sync_meta(root)
                return cls(root, index, f"cached:{candidate}")
        index = build_index(root, progress=IndexProgress(root))
        if index["records"] == 0:
            raise Unreachable(
                f"advisory database {root} holds no OSV records; run 'rpops advisories sync --db {root}'"
            )
        index["fingerprint"] = fp
        if cache_dir is not None:  # a scan never writes into the database directory; only sync does
            target = _cache_index_path(root, cache_dir)
            try:
                write_index(target, index)
                return cls(root, index, f"built:{target}")
            except OSError as exc:
                log.warning("cannot cache the advisory index in %s: %s", target, exc)
        return cls(root, index, "built:not-cached")

    def store_index_in_db(self) -> Path:
        """Write the index into the database directory (for a read-only copy baked into an image)."""
        target = self.root / INDEX_NAME
        write_index(target, self.index)
        return target

    # ---- facts about the database ---------------------------------------------------------
    @property
    def records(self) -> int:
        return int(self.index["records"])

    @property
    def package_count(self) -> int:
        return len(self.index["packages"])

    def data_time(self) -> datetime | None:
        """When the data was current: the sync time if synced, else the newest `modified`."""
        stamp = (self.index.get("sync") or {}).get("synced_at") or self.index.get("newest_modified")
        if not stamp:
            return None
        try:
            parsed = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

    def age_seconds(self, now: datetime) -> float | None:
        stamp = self.data_time()
        return None if stamp is None else max(0.0, (now - stamp).total_seconds())

    def describe(self, now: datetime) -> dict[str, Any]:
        age = self.age_seconds(now)
        return {
            "path": str(self.root),
            "records": self.records,
            "packages": self.package_count,
            "withdrawn_ignored": len(self.index["withdrawn"]),
            "problems": len(self.index["problems"]),
            "newest_modified": self.index.get("newest_modified"),
            "sync": self.index.get("sync") or {},
            "data_time": stamp.isoformat() if (stamp := self.data_time()) else None,
            "age_days": None if age is None else round(age / 86400, 1),
            "index": self.index_source,
        }

    def problem_notices(self) -> list[Notice]:
        return [
            Notice(
                "advisory-db",
                "record-problem",
                p.get("file", ""),
                (f"{p['id']}: " if p.get("id") else "") + p["problem"],
            )
            for p in self.index["problems"]
        ]

    # ---- lookups ------------------------------------------------------------------------------
    def advisories_for(self, name: str) -> list[Advisory]:
        canonical = canonicalize_name(name)
        cached = self._cache.get(canonical)
        if cached is None:
            cached = [
                Advisory(
                    id=e["id"],
                    package=canonical,
                    aliases=tuple(e["aliases"]),
                    summary=e["summary"],
                    severity=e["severity"],
                    raw_ranges=e["ranges"],
                    versions=frozenset(e["versions"]),
                    published=e["published"],
                    modified=e["modified"],
                    references=tuple(e["references"]),
                    source_file=e["file"],
                )
                for e in self.index["packages"].get(canonical, [])
            ]
            self._cache[canonical] = cached
        return cached

    def add(self, advisory: Advisory) -> None:
        """Add an advisory learnt elsewhere (the OSV API) for this run only."""
        existing = self.advisories_for(advisory.package)
        if all(advisory.id not in a.ids for a in existing):
            existing.append(advisory)


def advisory_from_record(record: dict[str, Any], package: str) -> Advisory | None:
    """One package's Advisory from a full OSV record (as the OSV API returns it)."""
    canonical = canonicalize_name(package)
    top = score_severity(record.get("severity") or [])
    for entry in record.get("affected") or []:
        pkg = entry.get("package") or {}
        if (
            not str(pkg.get("ecosystem", "")).startswith("PyPI")
            or canonicalize_name(str(pkg.get("name"))) != canonical
        ):
            continue
        versions = [str(v) for v in entry.get("versions") or []]
        return Advisory(
            id=str(record["id"]),
            package=canonical,
            aliases=tuple(sorted({str(a) for a in record.get("aliases") or []})),
            summary=str(record.get("summary") or record.get("details") or "")[:300],
            severity=score_severity(entry.get("severity") or []) or top,
            raw_ranges=[r for r in entry.get("ranges") or [] if r.get("type") in _RANGE_TYPES],
            versions=frozenset({*versions, *(_normalized(v) for v in versions)}),
            published=str(record.get("published") or ""),
            modified=str(record.get("modified") or ""),
            references=tuple(_references(record)),
            source_file="osv-api",
        )
    return None


# ---- matching ------------------------------------------------------------------------------------


@dataclass
class VulnGroup:
    """Advisories for one package version that describe the same vulnerability (shared aliases)."""

    package: str
    version: str
    advisories: list[Advisory]

    @property
    def primary_id(self) -> str:
        ids = sorted({a.id for a in self.advisories})
        for prefix in _ID_PREFERENCE:
            for candidate in ids:
                if candidate.startswith(prefix):
                    return candidate
        return ids[0]

    @property
    def aliases(self) -> list[str]:
        every: set[str] = set()
        for a in self.advisories:
            every |= a.ids
        every.discard(self.primary_id)
        return sorted(every)

    @property
    def severity(self) -> dict[str, Any] | None:
        rated = [a.severity for a in self.advisories if a.severity]
        if not rated:
            return None
        order = ("info", "low", "medium", "high", "critical")
        return max(rated, key=lambda s: (order.index(s["rating"]), s.get("score") or 0))


def merge_aliases(advisories: list[Advisory]) -> list[list[Advisory]]:
    """Union advisories whose id/alias sets overlap (CVE and GHSA ids tie PYSEC and GHSA records)."""
    parent = list(range(len(advisories)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for i, adv in enumerate(advisories):
        for ident in adv.ids:
            if ident in owner:
                parent[find(i)] = find(owner[ident])
            else:
                owner[ident] = i
    groups: dict[int, list[Advisory]] = {}
    for i, adv in enumerate(advisories):
        groups.setdefault(find(i), []).append(adv)
    return sorted(groups.values(), key=lambda g: min(a.id for a in g))


def match_package(db: AdvisoryDB, name: str, version: str) -> tuple[list[VulnGroup], list[Notice]]:
    parsed = parse_version(version)
    notices: list[Notice] = []
    advisories = db.advisories_for(name)
    if parsed is None and advisories:
        notices.append(
            Notice(
                "dependency",
                "invalid-version",
                name,
                f"{name} {version!r} is not a valid PEP 440 version: ranges cannot be evaluated, "
                "only exact versions[] entries were matched",
            )
        )
    hits = [a for a in advisories if a.affects(version, parsed)]
    return [VulnGroup(canonicalize_name(name), version, g) for g in merge_aliases(hits)], notices


def affecting(advisories: list[Advisory], version: Version) -> list[Advisory]:
    text = str(version)
    return [a for a in advisories if a.affects(text, version)]


DEFAULT_DB = "/opt/rpops/advisories"


def default_db() -> Path:
    """--db default: $RPOPS_ADVISORY_DB, else the copy the step image carries."""
    return Path(os.environ.get("RPOPS_ADVISORY_DB") or DEFAULT_DB)


def default_cache_dir() -> Path:
    return Path(os.environ.get("RPOPS_CACHE_DIR") or Path.home() / ".cache" / "rpops")
