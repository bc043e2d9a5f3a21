"""`rpops advisories sync|info`: refresh and describe the offline advisory database."""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime
from pathlib import Path

from rpops.core.io import write_output
from rpops.core.parsers import argparse_float


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="{sync,info}")
    sync = sub.add_parser("sync", help="Download OSV's PyPI export, verify it, and swap it in atomically")
    sync.add_argument(
        "--db",
        default="",
        help="Database directory (default: $RPOPS_ADVISORY_DB, else /opt/rpops/advisories)",
    )
    sync.add_argument(
        "--url", default="", help="Export to download (default: $RPOPS_ADVISORY_URL, else OSV's PyPI all.zip)"
    )
    sync.add_argument(
        "--timeout", type=argparse_float, default=120.0, help="HTTP timeout in seconds (default: 120)"
    )
    sync.add_argument("--retries", type=int, default=2, help="Retries after a failed download (default: 2)")
    sync.add_argument(
        "--retry-delay",
        type=float,
        default=2.0,
        help="Seconds before the first retry, doubling each time (default: 2)",
    )
    info = sub.add_parser("info", help="Records, packages, age and source of the database (builds its index)")
    info.add_argument(
        "--db",
        default="",
        help="Database directory (default: $RPOPS_ADVISORY_DB, else /opt/rpops/advisories)",
    )
    info.add_argument(
        "--cache-dir",
        default="",
        help="Where the index is cached (default: $RPOPS_CACHE_DIR, else ~/.cache/rpops)",
    )
    info.add_argument("--json", action="store_true", help="Print JSON")
    info.add_argument(
        "--write-index",
        action="store_true",
        help="Also store the index inside the database directory (do this when baking a "
        "read-only copy into an image, so scans never rebuild it)",
    )
    parser.add_argument("--verbose", action="store_true", help="Debug logging")


def run(args: argparse.Namespace) -> int:
    from rpops.core.errors import UsageError
    from rpops.steps.security import osv

    db = Path(args.db) if args.db else osv.default_db()
    if args.action == "sync":
        from rpops.steps.security import sync

        if args.retries < 0 or args.timeout <= 0 or args.retry_delay < 0:
            raise UsageError("--retries and --retry-delay must be >= 0 and --timeout > 0")
        url = args.url or os.environ.get("RPOPS_ADVISORY_URL") or sync.DEFAULT_URL
        result = sync.sync(db, url, timeout=args.timeout, retries=args.retries, backoff=args.retry_delay)
        write_output("status", result.status)
        write_output("records", str(result.records))
        if result.status == "updated":
            print(
                f"advisories sync: updated {db}: {result.records} records for {result.packages} packages "
                f"({result.bytes} bytes, sha256 {result.sha256[:12]})"
            )
        else:
            print(f"advisories sync: {db} is current (server answered 304 Not Modified)")
        return 0
    cache_dir = Path(args.cache_dir) if args.cache_dir else osv.default_cache_dir()
    database = osv.AdvisoryDB.open(db, cache_dir)
    if args.write_index:
        database.store_index_in_db()
    facts = database.describe(datetime.now(UTC))
    if args.json:
        print(json.dumps(facts, indent=2, default=str))
    else:
        age = facts["age_days"]
        source = (facts["sync"] or {}).get("source") or "copied snapshot (never synced)"
        print(
            f"advisory db {db}: {facts['records']} records, {facts['packages']} packages, "
            f"{facts['withdrawn_ignored']} withdrawn ignored, {facts['problems']} record problems; data from "
            f"{facts['data_time']} ({'unknown' if age is None else f'{age:g} days'} old); source: {source}; "
            f"index: {facts['index']}"
        )
    return 0
