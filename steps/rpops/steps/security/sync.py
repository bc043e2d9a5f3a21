"""`rpops advisories sync`: refresh the offline database from OSV's PyPI export (all.zip).

The download is verified before anything changes: the zip's CRCs, size and member limits, and every
record parsed and checked for an id. The new database is written beside the old one, indexed, and
swapped in atomically (a symlink replaced with os.replace). On any failure the old one stays.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from packaging.utils import canonicalize_name

from rpops.core.errors import Unreachable, UsageError
from rpops.steps.security import osv

log = logging.getLogger("rpops.steps.security.sync")

DEFAULT_URL = "https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip"
MAX_DOWNLOAD_BYTES = 1024 * 1024 * 1024
MAX_UNCOMPRESSED_BYTES = 4 * 1024 * 1024 * 1024
MAX_MEMBERS = 500_000
_SAFE_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


@dataclass
class SyncResult:
    status: str  # updated | not-modified
    db: Path
    records: int = 0
    packages: int = 0
    bytes: int = 0
    sha256: str = ""


class VerificationError(Exception):
    pass


def _read_meta(db: Path) -> dict[str, Any]:
    try:
        return json.loads((db / osv.SYNC_META).read_text())
    except (OSError, ValueError):
        return {}


def _download(
    url: str,
    dest: Path,
    meta: dict[str, Any],
    timeout: float,
    retries: int,
    backoff: float,
    sleep: Callable[[float], None],
) -> dict[str, Any] | None:
    """Stream `url` into `dest`; None when the server says the copy we have is current."""
    headers = {"User-Agent": "rpops-advisories-sync"}
    if meta.get("etag"):
        headers["If-None-Match"] = str(meta["etag"])
    last = ""
    for attempt in range(retries + 1):
        try:
            with (
                httpx.Client(timeout=timeout, follow_redirects=True) as client,
                client.stream("GET", url, headers=headers) as response,
            ):
                if response.status_code == 304:
                    return None
                if response.status_code >= 500 or response.status_code == 429:
                    last = f"HTTP {response.status_code}"
                elif response.status_code != 200:
                    raise Unreachable(
                        f"advisory download {url} refused: HTTP {response.status_code}; database unchanged"
                    )
                else:
                    digest = hashlib.sha256()
                    size = 0
                    with open(dest, "wb") as fh:
                        for chunk in response.iter_bytes(1 << 20):
                            size += len(chunk)
                            if size > MAX_DOWNLOAD_BYTES:
                                raise VerificationError(f"download larger than {MAX_DOWNLOAD_BYTES} bytes")
                            digest.update(chunk)
                            fh.write(chunk)
                    return {
                        "etag": response.headers.get("etag", ""),
                        "bytes": size,
                        "sha256": digest.hexdigest(),
                        "last_modified": response.headers.get("last-modified", ""),
                    }
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
        if attempt < retries:
            sleep(backoff * 2**attempt)
    raise Unreachable(
        f"advisory download {url} failed after {retries + 1} attempts ({last}); database unchanged"
    )


def _safe_id(value: str) -> str:
    if (
        not value
        or len(value) > 200
        or any(ch not in _SAFE_ID_CHARS for ch in value)
        or value.startswith(".")
    ):
        raise VerificationError(f"record id {value!r} is not a safe file name")
    return value


def _unpack_verified(archive: Path, into: Path) -> int:
    """Check the whole archive, then write each record as vulns/<package>/<ID>.json."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise VerificationError(f"not a zip archive: {exc}") from None
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        if not members:
            raise VerificationError("the archive holds no records")
        if len(members) > MAX_MEMBERS:
            raise VerificationError(f"{len(members)} members exceeds the limit of {MAX_MEMBERS}")
        if sum(m.file_size for m in members) > MAX_UNCOMPRESSED_BYTES:
            raise VerificationError("uncompressed size exceeds the limit")
        try:
            bad = zf.testzip()
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
            raise VerificationError(f"corrupt archive: {exc}") from None
        if bad is not None:
            raise VerificationError(f"CRC check failed for member {bad!r}")
        count = 0
        for member in members:
            if not member.filename.endswith(".json"):
                continue
            try:
                record = json.loads(zf.read(member))
            except (ValueError, zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
                raise VerificationError(f"{member.filename}: not a JSON record ({exc})") from None
            if not isinstance(record, dict) or not isinstance(record.get("id"), str):
                raise VerificationError(f"{member.filename}: not an OSV record (no string 'id')")
            affected = record.get("affected") or []
            if not isinstance(affected, list) or not all(isinstance(a, dict) for a in affected):
                raise VerificationError(f"{member.filename}: 'affected' is not a list of objects")
            names = [
                str((a.get("package") or {}).get("name") or "")
                for a in affected
                if str((a.get("package") or {}).get("ecosystem", "")).startswith("PyPI")
            ]
            folder = canonicalize_name(names[0]) if names and names[0] else "_unscoped"
            target = into / "vulns" / folder / f"{_safe_id(record['id'])}.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(record, separators=(",", ":")))
            count += 1
        if count == 0:
            raise VerificationError("the archive holds no .json records")
        return count


def _swap(db: Path, new_dir: Path) -> None:
    """Put `new_dir` in place of `db` atomically when db is (or will be) a symlink."""
    if db.exists() and not db.is_symlink():
        # A plain directory (e.g. a copied snapshot): move it aside, move the new one in.
        aside = db.with_name(f".{db.name}.old-{os.getpid()}")
        os.rename(db, aside)
        try:
            os.rename(new_dir, db)
        except OSError:
            os.rename(aside, db)
            raise
        shutil.rmtree(aside, ignore_errors=True)
        return
    old_target = db.resolve() if db.is_symlink() else None
    link = db.with_name(f".{db.name}.link-{os.getpid()}")
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(new_dir.name, link)
    os.replace(link, db)
    if (
        old_target is not None
        and old_target.parent == db.parent
        and old_target.name.startswith(f".{db.name}.")
    ):
        shutil.rmtree(old_target, ignore_errors=True)


def sync(
    db: Path,
    url: str = DEFAULT_URL,
    timeout: float = 120.0,
    retries: int = 2,
    backoff: float = 2.0,
    now: datetime | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> SyncResult:
    now = now or datetime.now(UTC)
    if db.exists() and not db.is_dir():
        raise UsageError(f"--db {db} exists and is not a directory; point --db at a directory")
    parent = db.parent
    parent.mkdir(parents=True, exist_ok=True)
    meta = _read_meta(db) if db.is_dir() else {}
    work = Path(tempfile.mkdtemp(prefix=f".{db.name}.", dir=parent))
    try:
        archive = work / "all.zip"
        fetched = _download(url, archive, meta, timeout, retries, backoff, sleep)
        if fetched is None:
            meta["synced_at"] = now.isoformat()
            meta["checked_at"] = now.isoformat()
            tmp = db / f".{osv.SYNC_META}.tmp"
            tmp.write_text(json.dumps(meta, indent=2))
            tmp.replace(db / osv.SYNC_META)
            return SyncResult("not-modified", db, int(meta.get("records", 0)))
        new_dir = work / "db"
        new_dir.mkdir()
        try:
            count = _unpack_verified(archive, new_dir)
            index = osv.build_index(new_dir, strict=True)
        except VerificationError as exc:
            raise Unreachable(
                f"advisory download from {url} failed verification: {exc}; database unchanged"
            ) from None
        except ValueError as exc:
            raise Unreachable(
                f"advisory download from {url} has an unreadable record: {exc}; database unchanged"
            ) from None
        archive.unlink()
        new_meta = {
            "source": url,
            "synced_at": now.isoformat(),
            "etag": fetched["etag"],
            "last_modified": fetched["last_modified"],
            "sha256": fetched["sha256"],
            "bytes": fetched["bytes"],
            "records": count,
        }
        (new_dir / osv.SYNC_META).write_text(json.dumps(new_meta, indent=2))
        index["sync"] = new_meta
        index["fingerprint"] = osv.fingerprint(new_dir)
        osv.write_index(new_dir / osv.INDEX_NAME, index)
        final = parent / f".{db.name}.{now.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        os.rename(new_dir, final)
        try:
            _swap(db, final)
        except OSError:
            shutil.rmtree(final, ignore_errors=True)
            raise
        log.info("advisory database %s updated: %d records", db, count)
        return SyncResult("updated", db, count, len(index["packages"]), fetched["bytes"], fetched["sha256"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
