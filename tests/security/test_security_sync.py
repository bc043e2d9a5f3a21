"""`rpops advisories sync` and `--online` against a real HTTP server on 127.0.0.1
(pytest-httpserver) serving archives and API answers built here. No other network."""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from pytest_httpserver import HTTPServer
from rpops.steps.security.osv import AdvisoryDB
from security_helpers import ADVISORIES, run_rpops
from werkzeug import Request, Response


@pytest.fixture
def server() -> Iterator[HTTPServer]:
    srv = HTTPServer(host="127.0.0.1", port=0)
    srv.start()
    try:
        yield srv
    finally:
        srv.clear()
        if srv.is_running():
            srv.stop()


def record(rel: str) -> dict:
    return yaml.safe_load((ADVISORIES / "vulns" / rel).read_text())


def ghsa_for_jinja() -> dict:
    # A GHSA record as OSV exports it, aliasing PYSEC-2019-217 through CVE-2019-10906.
    return {
        "id": "GHSA-462w-v97r-4m45",
        "modified": "2026-11-20T00:00:00Z",
        "aliases": ["CVE-2019-10906"],
        "summary": "Jinja2 sandbox escape via str.format_map",
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:N/A:N"}],
        "affected": [
            {
                "package": {"name": "jinja2", "ecosystem": "PyPI"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.10.1"}]}],
            }
        ],
    }


def make_zip(records: list[dict], extra: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for rec in records:
            zf.writestr(f"{rec['id']}.json", json.dumps(rec))
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buffer.getvalue()


def serve_zip(server: HTTPServer, payload: bytes, etag: str = '"v1"') -> list[dict[str, str]]:
    seen: list[dict[str, str]] = []

    def handler(request: Request) -> Response:
        seen.append(dict(request.headers))
        if request.headers.get("If-None-Match") == etag:
            return Response(status=304)
        return Response(payload, status=200, headers={"ETag": etag}, content_type="application/zip")

    server.expect_request("/PyPI/all.zip").respond_with_handler(handler)
    return seen


def sync(server: HTTPServer, db: Path, tmp_path: Path, *extra: str):  # type: ignore[no-untyped-def]
    return run_rpops(
        "advisories",
        "sync",
        "--db",
        str(db),
        "--url",
        server.url_for("/PyPI/all.zip"),
        "--retries",
        "1",
        "--retry-delay",
        "0",
        *extra,
        outputs=tmp_path / "out",
    )


def test_sync_verifies_swaps_and_is_used_by_the_scan(server: HTTPServer, tmp_path: Path) -> None:
    records = [record("jinja2/PYSEC-2019-217.yaml"), record("pyyaml/PYSEC-2021-142.yaml"), ghsa_for_jinja()]
    seen = serve_zip(server, make_zip(records))
    db = tmp_path / "advisories"
    result = sync(server, db, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"advisories sync: updated {db}: 3 records for 2 packages")
    assert db.is_symlink() and (db / "vulns" / "jinja2" / "GHSA-462w-v97r-4m45.json").exists()
    meta = json.loads((db / ".rpops-sync.json").read_text())
    assert meta["records"] == 3 and meta["etag"] == '"v1"' and meta["source"].startswith("http://127.0.0.1:")
    first_target = db.resolve()

    # the index was built into the new database: the scan uses it without rebuilding
    opened = AdvisoryDB.open(db, tmp_path / "cache")
    assert opened.index_source.startswith("cached:") and opened.index_source.endswith(".rpops-index.json")
    project = tmp_path / "project"
    project.mkdir()
    (project / "requirements.txt").write_text("jinja2==2.10\n")
    scan = run_rpops(
        "security-scan",
        "--target",
        str(project),
        "--db",
        str(db),
        "--cache-dir",
        str(tmp_path / "cache"),
        outputs=tmp_path / "scan",
    )
    report = json.loads((tmp_path / "scan" / "report.json").read_text())
    assert scan.returncode == 0, scan.stdout  # fresh data; one high finding is under the critical gate
    [finding] = report["findings"]
    assert finding["rule_id"] == "PYSEC-2019-217"  # merged with the GHSA record through the CVE alias
    assert "GHSA-462w-v97r-4m45" in finding["properties"]["advisories"] and finding["severity"] == "high"
    assert report["scanned"]["advisory_db"]["age_days"] < 1

    # a second sync sends the ETag; 304 leaves the data alone
    result = sync(server, db, tmp_path)
    assert result.returncode == 0 and "is current" in result.stdout
    assert seen[-1].get("If-None-Match") == '"v1"' and db.resolve() == first_target

    # new data replaces the old version, which is removed
    server.clear()
    serve_zip(server, make_zip(records[:1]), etag='"v2"')
    result = sync(server, db, tmp_path)
    assert result.returncode == 0 and "1 records" in result.stdout
    assert db.resolve() != first_target and not first_target.exists()
    info = run_rpops(
        "advisories",
        "info",
        "--db",
        str(db),
        "--json",
        "--cache-dir",
        str(tmp_path / "cache"),
        outputs=tmp_path / "out",
    )
    assert json.loads(info.stdout)["records"] == 1


def _corrupt_crc(payload: bytes) -> bytes:
    data = bytearray(payload)
    at = data.find(b"PK\x03\x04")
    name_len = int.from_bytes(data[at + 26 : at + 28], "little")
    extra_len = int.from_bytes(data[at + 28 : at + 30], "little")
    start = at + 30 + name_len + extra_len
    data[start + 5] ^= 0xFF  # flip a byte of the first member's compressed data
    return bytes(data)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (_corrupt_crc(make_zip([ghsa_for_jinja(), {"id": "X-1", "affected": []}])), "failed verification"),
        (make_zip([ghsa_for_jinja()], {"BROKEN.json": b"{not json"}), "not a JSON record"),
        (make_zip([ghsa_for_jinja()], {"NOID.json": b'{"affected": []}'}), "no string 'id'"),
        (
            make_zip([ghsa_for_jinja()], {"BAD.json": b'{"id": "../../etc/passwd", "affected": []}'}),
            "safe file name",
        ),
        (b"this is not a zip", "not a zip archive"),
    ],
)
def test_bad_downloads_leave_the_database_unchanged(
    server: HTTPServer, tmp_path: Path, payload: bytes, message: str
) -> None:
    db = tmp_path / "advisories"
    serve_zip(server, make_zip([record("jinja2/PYSEC-2014-8.yaml")]), etag='"good"')
    assert sync(server, db, tmp_path).returncode == 0
    before = db.resolve()
    server.clear()
    serve_zip(server, payload, etag='"bad"')
    result = sync(server, db, tmp_path)
    assert result.returncode == 3, result.stdout
    assert message in result.stderr and "database unchanged" in result.stderr
    assert db.resolve() == before and (db / "vulns" / "jinja2" / "PYSEC-2014-8.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".advisories")) == [before.name]


def test_server_errors_are_retried_then_exit_3(server: HTTPServer, tmp_path: Path) -> None:
    server.expect_request("/PyPI/all.zip").respond_with_data("busy", status=503)
    result = sync(server, tmp_path / "advisories", tmp_path)
    assert result.returncode == 3 and "after 2 attempts (HTTP 503)" in result.stderr
    assert len(server.log) == 2 and not (tmp_path / "advisories").exists()


def test_sync_replaces_a_plain_directory(server: HTTPServer, tmp_path: Path) -> None:
    db = tmp_path / "advisories"
    (db / "vulns" / "old").mkdir(parents=True)
    (db / "vulns" / "old" / "OLD-1.json").write_text("{}")
    serve_zip(server, make_zip([ghsa_for_jinja()]))
    assert sync(server, db, tmp_path).returncode == 0
    assert db.is_dir() and not db.is_symlink() and not (db / "vulns" / "old").exists()
    assert [p.name for p in (db / "vulns" / "jinja2").iterdir()] == ["GHSA-462w-v97r-4m45.json"]


def test_online_querybatch_adds_unknown_advisories(
    server: HTTPServer, tmp_path: Path, cache_dir: Path, advisory_db: AdvisoryDB
) -> None:
    del advisory_db
    queries: list[dict] = []

    def querybatch(request: Request) -> Response:
        body = request.get_json()
        queries.append(body)
        results = []
        for q in body["queries"]:
            name = q["package"]["name"]
            vulns = (
                [{"id": "PYSEC-2019-217", "modified": "x"}, {"id": "GHSA-online-only", "modified": "x"}]
                if name == "jinja2"
                else []
            )
            results.append({"vulns": vulns})
        return Response(json.dumps({"results": results}), content_type="application/json")

    online_record = {
        "id": "GHSA-online-only",
        "modified": "2026-11-27T00:00:00Z",
        "aliases": ["CVE-2099-1234"],
        "summary": "published after the offline snapshot",
        "affected": [
            {
                "package": {"name": "jinja2", "ecosystem": "PyPI"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.1.5"}]}],
            }
        ],
    }
    server.expect_request("/v1/querybatch", method="POST").respond_with_handler(querybatch)
    server.expect_request("/v1/vulns/GHSA-online-only").respond_with_json(online_record)
    project = tmp_path / "project"
    project.mkdir()
    (project / "requirements.txt").write_text("jinja2==2.10\nsix==1.16.0\n")
    result = run_rpops(
        "security-scan",
        "--target",
        str(project),
        "--db",
        str(ADVISORIES),
        "--max-db-age",
        "0",
        "--cache-dir",
        str(cache_dir),
        "--online",
        "--osv-api-url",
        server.url_for("/").rstrip("/"),
        outputs=tmp_path / "out",
    )
    assert result.returncode == 0, result.stderr
    assert queries == [
        {
            "queries": [
                {"package": {"name": "jinja2", "ecosystem": "PyPI"}, "version": "2.10"},
                {"package": {"name": "six", "ecosystem": "PyPI"}, "version": "1.16.0"},
            ]
        }
    ]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    rules = {f["rule_id"]: f for f in report["findings"]}
    assert "GHSA-online-only" in rules and "PYSEC-2019-217" in rules
    assert rules["GHSA-online-only"]["properties"]["fix_version"] == "3.1.5"  # the upgrade now clears it too
    assert report["scanned"]["dependencies"]["online"] is True


def test_online_unreachable_exits_3_with_offline_results(
    server: HTTPServer, tmp_path: Path, cache_dir: Path, advisory_db: AdvisoryDB
) -> None:
    del advisory_db
    server.expect_request("/v1/querybatch", method="POST").respond_with_data("down", status=502)
    project = tmp_path / "project"
    project.mkdir()
    (project / "requirements.txt").write_text("jinja2==2.10\n")
    result = run_rpops(
        "security-scan",
        "--target",
        str(project),
        "--db",
        str(ADVISORIES),
        "--max-db-age",
        "0",
        "--cache-dir",
        str(cache_dir),
        "--online",
        "--retries",
        "0",
        "--osv-api-url",
        server.url_for("/").rstrip("/"),
        outputs=tmp_path / "out",
    )
    assert result.returncode == 3 and "OSV API" in result.stdout
    assert json.loads((tmp_path / "out" / "report.json").read_text())["summary"]["total"] >= 1
    assert os.path.exists(tmp_path / "out" / "results.sarif")


def scan_with_sync(server: HTTPServer, db: Path, project: Path, tmp_path: Path, *extra: str):  # type: ignore[no-untyped-def]
    return run_rpops(
        "security-scan",
        "--target",
        str(project),
        "--db",
        str(db),
        "--sync-db",
        "true",
        "--advisory-url",
        server.url_for("/PyPI/all.zip"),
        "--no-code",
        "--cache-dir",
        str(tmp_path / "cache"),
        *extra,
        outputs=tmp_path / "scan",
    )


def test_scan_with_sync_db_reads_what_it_just_downloaded(server: HTTPServer, tmp_path: Path) -> None:
    """The daily CronWorkflow's way to fresh data: one pod syncs into a writable --db, then scans."""
    serve_zip(server, make_zip([record("jinja2/PYSEC-2019-217.yaml")]))
    project = tmp_path / "project"
    project.mkdir()
    (project / "requirements.txt").write_text("jinja2==2.10\n")
    db = tmp_path / "fresh" / "advisories"  # does not exist yet
    scan = scan_with_sync(server, db, project, tmp_path)
    assert scan.returncode == 0, scan.stderr  # fresh data within the default --max-db-age 7d
    report = json.loads((tmp_path / "scan" / "report.json").read_text())
    assert [f["rule_id"] for f in report["findings"]] == ["PYSEC-2019-217"]
    assert report["scanned"]["advisory_db"]["age_days"] < 1 and report["settings"]["sync_db"] is True
    assert len(server.log) == 1 and db.is_symlink()


def test_scan_with_sync_db_unreachable_uses_the_old_data_and_exits_3(
    server: HTTPServer, tmp_path: Path
) -> None:
    server.expect_request("/PyPI/all.zip").respond_with_data("busy", status=503)
    project = tmp_path / "project"
    project.mkdir()
    (project / "requirements.txt").write_text("jinja2==2.10\n")
    db = tmp_path / "advisories"
    shutil.copytree(ADVISORIES, db)  # the old data: the vendored snapshot
    scan = scan_with_sync(server, db, project, tmp_path, "--retries", "0", "--max-db-age", "0")
    assert scan.returncode == 3, scan.stderr
    assert "--sync-db: " in scan.stderr and "HTTP 503" in scan.stderr
    report = json.loads((tmp_path / "scan" / "report.json").read_text())
    assert report["status"] == "error"
    assert "PYSEC-2019-217" in [f["rule_id"] for f in report["findings"]]  # scanned with the old data
    assert (tmp_path / "scan" / "status").read_text() == "error"
    assert not db.is_symlink()  # left as it was
