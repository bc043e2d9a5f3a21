"""OSV matching on real advisories from the vendored PyPA snapshot, every edge case its SOURCE.md
lists, and the semantics the snapshot does not exercise (limit, SEMVER-free PEP 440 ordering),
on small records written for the test."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from rpops.core.errors import Unreachable
from rpops.steps.security.osv import AdvisoryDB, build_range, match_package, merge_aliases, parse_version
from security_helpers import ADVISORIES, run_rpops


def ids(db: AdvisoryDB, name: str, version: str) -> set[str]:
    groups, _ = match_package(db, name, version)
    return {a.id for g in groups for a in g.advisories}


@pytest.mark.parametrize(
    ("name", "version", "advisory", "affected"),
    [
        # known vulnerable / known fixed versions taken from the records
        ("jinja2", "2.7.1", "PYSEC-2014-8", True),
        ("jinja2", "2.7.2", "PYSEC-2014-8", False),  # fixed: 2.7.2
        ("pyyaml", "5.3.1", "PYSEC-2021-142", True),
        ("pyyaml", "5.4", "PYSEC-2021-142", False),
        ("requests", "2.30.0", "PYSEC-2023-74", True),
        ("requests", "2.31.0", "PYSEC-2023-74", False),
        ("PyYAML", "5.3", "PYSEC-2020-96", True),  # names are canonicalized (PEP 503)
        # several introduced/fixed pairs in one range: [4.0, 4.3) and [5.0, 5.2)
        ("accesscontrol", "4.2", "PYSEC-2021-335", True),
        ("accesscontrol", "4.5", "PYSEC-2021-335", False),  # between the pairs
        ("accesscontrol", "5.1", "PYSEC-2021-335", True),
        ("accesscontrol", "5.2", "PYSEC-2021-335", False),
        ("accesscontrol", "3.9", "PYSEC-2021-335", False),
        # events out of order: 2.16.0/2.16.3, 2.15.0/2.15.9, 0/2.14.4 must be sorted before use
        ("ansible-core", "2.15.5", "PYSEC-2024-36", True),
        ("ansible-core", "2.14.5", "PYSEC-2024-36", False),
        ("ansible-core", "2.14.3", "PYSEC-2024-36", True),
        ("ansible-core", "2.16.3", "PYSEC-2024-36", False),
        # a range with no fix: every version
        ("apache-skywalking", "8.0.0", "PYSEC-2020-342", True),
        # last_affected is inclusive
        ("py", "1.11.0", "PYSEC-2022-42969", True),
        ("py", "1.11.1", "PYSEC-2022-42969", False),
        # versions[] entries outside the ranges still count (IncludedInVersions)
        ("django", "3.2a1", "PYSEC-2023-61", True),  # range starts at 3.2
        ("gevent", "23.9.0", "PYSEC-2023-177", True),  # range says fixed: 23.9.0
        ("gevent", "23.9.1", "PYSEC-2023-177", False),
        # pre-releases order before their release (PEP 440)
        ("jinja2", "2.7.2rc1", "PYSEC-2014-8", True),
    ],
)
def test_real_advisories(
    advisory_db: AdvisoryDB, name: str, version: str, advisory: str, affected: bool
) -> None:
    assert (advisory in ids(advisory_db, name, version)) is affected


def test_unsorted_evaluation_would_be_wrong() -> None:
    # The record lists introduced 0 / fixed 2.14.4 last; read in file order, 2.15.5 looks fixed.
    record = yaml.safe_load((ADVISORIES / "vulns/ansible-core/PYSEC-2024-36.yaml").read_text())
    events = record["affected"][0]["ranges"][0]["events"]
    assert list(events[-1]) == ["fixed"] and events[-2] == {"introduced": "0"}
    rng = build_range(record["affected"][0]["ranges"][0])
    assert rng.contains(parse_version("2.15.5"))  # type: ignore[arg-type]


def test_withdrawn_records_are_ignored(advisory_db: AdvisoryDB) -> None:
    record = yaml.safe_load((ADVISORIES / "vulns/redis/PYSEC-2023-73.yaml").read_text())
    assert record["withdrawn"]
    assert "PYSEC-2023-73" not in ids(advisory_db, "redis", "4.5.5")  # the range would match every version
    assert "PYSEC-2023-73" in advisory_db.index["withdrawn"]


@pytest.mark.parametrize(
    ("name", "advisory", "bad"),
    [
        ("binderhub", "PYSEC-2021-371", "0.2.0-n653"),
        ("steam", "PYSEC-2019-125", "2019-09-12"),
    ],
)
def test_invalid_range_versions_are_reported_not_fatal(
    advisory_db: AdvisoryDB, name: str, advisory: str, bad: str
) -> None:
    groups, _ = match_package(advisory_db, name, "0.1.0")
    assert advisory not in {a.id for g in groups for a in g.advisories}  # range skipped, no crash
    problems = [p for p in advisory_db.index["problems"] if p.get("id") == advisory]
    assert any(bad in p["problem"] for p in problems)


def test_invalid_versions_entries_match_by_exact_string(advisory_db: AdvisoryDB) -> None:
    # PYSEC-2019-6 lists '0.8.4p1', not PEP 440: only an exact string match can find it
    assert "PYSEC-2019-6" in ids(advisory_db, "buildbot", "0.8.4p1")


def test_invalid_installed_version_is_reported(advisory_db: AdvisoryDB) -> None:
    groups, notices = match_package(advisory_db, "jinja2", "2.x-custom")
    assert groups == []
    assert notices and notices[0].code == "invalid-version" and "2.x-custom" in notices[0].message


def test_aliases_merge_records_of_one_vulnerability(advisory_db: AdvisoryDB) -> None:
    # PYSEC-2021-335 and PYSEC-2021-370 share GHSA-qcx9-j53g-ccgf for accesscontrol
    groups, _ = match_package(advisory_db, "accesscontrol", "4.2")
    merged = [g for g in groups if {"PYSEC-2021-335", "PYSEC-2021-370"} <= {a.id for a in g.advisories}]
    assert len(merged) == 1
    assert "GHSA-qcx9-j53g-ccgf" in merged[0].aliases and merged[0].primary_id.startswith("PYSEC-")


def test_severity_from_cvss_vector(advisory_db: AdvisoryDB) -> None:
    groups, _ = match_package(advisory_db, "apache-skywalking", "8.0.0")
    group = next(g for g in groups if g.primary_id == "PYSEC-2020-342")
    assert group.severity == {
        "type": "CVSS_V3",
        "vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        "score": 9.8,
        "rating": "critical",
    }
    groups, _ = match_package(advisory_db, "urllib3", "1.24.1")
    ratings = {g.primary_id: (g.severity or {}).get("rating") for g in groups}
    assert ratings["PYSEC-2023-192"] == "high"  # AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:N/A:N = 8.1
    assert ratings["PYSEC-2019-132"] is None  # no vector in the record


def _write(root: Path, package: str, record: dict) -> None:
    folder = root / "vulns" / package
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{record['id']}.json").write_text(json.dumps(record))


def _record(rid: str, events: list[dict], versions: list[str] | None = None, **extra: object) -> dict:
    return {
        "id": rid,
        "modified": "2026-11-01T00:00:00Z",
        "affected": [
            {
                "package": {"name": "demo", "ecosystem": "PyPI"},
                "ranges": [{"type": "ECOSYSTEM", "events": events}],
                "versions": versions or [],
            }
        ],
        **extra,
    }


def test_limit_events_and_synthetic_semantics(tmp_path: Path) -> None:
    _write(tmp_path, "demo", _record("TEST-LIMIT", [{"introduced": "1.0"}, {"limit": "1.5"}]))
    _write(tmp_path, "demo", _record("TEST-STAR", [{"introduced": "2.0"}, {"limit": "*"}]))
    _write(tmp_path, "demo", _record("TEST-LAST", [{"introduced": "0"}, {"last_affected": "0.9"}]))
    _write(
        tmp_path,
        "demo",
        _record("TEST-DUP-A", [{"introduced": "3.0"}, {"fixed": "3.1"}], aliases=["CVE-2099-0001"]),
    )
    _write(
        tmp_path,
        "demo",
        _record(
            "GHSA-test-dup-b",
            [{"introduced": "3.0"}, {"fixed": "3.2"}],
            aliases=["CVE-2099-0001"],
            severity=[{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N"}],
        ),
    )
    _write(
        tmp_path, "demo", _record("TEST-WITHDRAWN", [{"introduced": "0"}], withdrawn="2026-01-01T00:00:00Z")
    )
    db = AdvisoryDB.open(tmp_path, tmp_path / "cache")
    assert ids(db, "demo", "1.2") == {"TEST-LIMIT"}
    assert ids(db, "demo", "1.5") == set()  # at or above every limit
    assert ids(db, "demo", "7.0") == {"TEST-STAR"}  # '*' is infinity
    assert ids(db, "demo", "0.9") == {"TEST-LAST"} and ids(db, "demo", "0.9.1") == set()
    groups, _ = match_package(db, "demo", "3.0.5")  # TEST-STAR ([2.0, *)) matches too, on its own
    assert sorted(sorted(a.id for a in g.advisories) for g in groups) == [
        ["GHSA-test-dup-b", "TEST-DUP-A"],
        ["TEST-STAR"],
    ]
    dup = next(g for g in groups if len(g.advisories) == 2)
    assert (
        dup.primary_id == "GHSA-test-dup-b"
        and dup.severity is not None
        and dup.severity["rating"] == "medium"
    )
    assert "TEST-WITHDRAWN" in db.index["withdrawn"]


def test_index_is_cached_and_rebuilt_when_records_change(tmp_path: Path) -> None:
    _write(tmp_path, "demo", _record("TEST-1", [{"introduced": "0"}, {"fixed": "2.0"}]))
    first = AdvisoryDB.open(tmp_path, tmp_path / ".cache")
    assert first.index_source.startswith("built:")
    again = AdvisoryDB.open(tmp_path, tmp_path / ".cache")
    assert again.index_source.startswith("cached:")
    time.sleep(0.01)
    _write(tmp_path, "demo", _record("TEST-2", [{"introduced": "0"}]))
    rebuilt = AdvisoryDB.open(tmp_path, tmp_path / ".cache")
    assert rebuilt.index_source.startswith("built:") and ids(rebuilt, "demo", "3.0") == {"TEST-2"}


def test_unreadable_record_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    _write(tmp_path, "demo", _record("TEST-OK", [{"introduced": "0"}]))
    (tmp_path / "vulns" / "demo" / "BROKEN.yaml").write_text("id: [unclosed\n")
    db = AdvisoryDB.open(tmp_path, None)
    assert ids(db, "demo", "1.0") == {"TEST-OK"}
    assert any("BROKEN.yaml" in p["file"] for p in db.index["problems"])


def test_missing_database_is_unreachable(tmp_path: Path) -> None:
    with pytest.raises(Unreachable, match="rpops advisories sync"):
        AdvisoryDB.open(tmp_path / "nope", None)


def test_age_comes_from_sync_time_else_newest_record(advisory_db: AdvisoryDB, tmp_path: Path) -> None:
    now = datetime(2026, 11, 28, tzinfo=UTC)
    assert advisory_db.data_time() == datetime(2024, 10, 10, 17, 22, 0, 587279, tzinfo=UTC)
    assert 778 < advisory_db.age_seconds(now) / 86400 < 780  # type: ignore[operator]
    _write(tmp_path, "demo", _record("TEST-1", [{"introduced": "0"}]))
    (tmp_path / ".rpops-sync.json").write_text(json.dumps({"synced_at": "2026-11-27T00:00:00+00:00"}))
    assert AdvisoryDB.open(tmp_path, None).age_seconds(now) == 86400


def test_merge_aliases_is_transitive(advisory_db: AdvisoryDB) -> None:
    advisories = advisory_db.advisories_for("zope")
    groups = merge_aliases([a for a in advisories if a.id in ("PYSEC-2021-104", "PYSEC-2021-88")])
    assert len(groups) == 1


def test_scans_never_write_into_the_database_but_info_can(tmp_path: Path) -> None:
    db_dir = tmp_path / "db"
    _write(db_dir, "demo", _record("TEST-1", [{"introduced": "0"}]))
    assert AdvisoryDB.open(db_dir, None).index_source == "built:not-cached"
    assert AdvisoryDB.open(db_dir, tmp_path / "cache").index_source.startswith("built:")
    assert not (db_dir / ".rpops-index.json").exists()
    result = run_rpops(
        "advisories",
        "info",
        "--db",
        str(db_dir),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--write-index",
        outputs=tmp_path / "out",
    )
    assert result.returncode == 0 and "1 records, 1 packages" in result.stdout
    assert AdvisoryDB.open(db_dir, None).index_source == f"cached:{db_dir / '.rpops-index.json'}"
