"""The advisory index read from YAML records: OSV's strings kept as written (versions such as
`1.10` are never floats), nulls, the same index as yaml's SafeLoader gives for the vendored
snapshot, and the progress shown when a cold build takes over a second."""

from __future__ import annotations

import io
import json
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from rpops.steps.security.osv import AdvisoryDB, IndexProgress, build_index, match_package
from security_helpers import ADVISORIES

RECORD = """\
id: TEST-2026-1
modified: 2026-11-01T00:00:00Z
published: 2026-10-01T00:00:00Z
summary: null
details: versions 1.9 and below
aliases: []
affected:
- package:
    ecosystem: PyPI
    name: Demo_Pkg
  ranges:
  - type: ECOSYSTEM
    events:
    - introduced: 0
    - fixed: 1.10
  versions:
  - 1.0
  - 1.9
database_specific:
  severity: HIGH
  cwe_ids: ~
"""


def test_unquoted_versions_stay_strings(tmp_path: Path) -> None:
    folder = tmp_path / "vulns" / "demo-pkg"
    folder.mkdir(parents=True)
    (folder / "TEST-2026-1.yaml").write_text(RECORD)
    index = build_index(tmp_path)
    entry = index["packages"]["demo-pkg"][0]
    assert entry["ranges"][0]["events"] == [{"introduced": "0"}, {"fixed": "1.10"}]
    assert entry["versions"] == ["1.0", "1.9"]
    assert entry["modified"] == "2026-11-01T00:00:00Z" and entry["summary"] == "versions 1.9 and below"
    assert entry["severity"]["rating"] == "high"
    # yaml's SafeLoader reads `fixed: 1.10` as the float 1.1: 1.9 would look fixed
    assert yaml.safe_load(RECORD)["affected"][0]["ranges"][0]["events"][1] == {"fixed": 1.1}
    db = AdvisoryDB.open(tmp_path, tmp_path / "cache")
    assert [g.primary_id for g in match_package(db, "demo-pkg", "1.9")[0]] == ["TEST-2026-1"]
    assert match_package(db, "demo-pkg", "1.10")[0] == []


def _safe_loaded_record(path: Path) -> object:
    """What yaml's own SafeLoader gives, with timestamps back to OSV's RFC 3339 text."""
    return json.loads(json.dumps(yaml.safe_load(path.read_text()), default=lambda v: v.isoformat()))


def test_the_snapshot_reads_as_safe_loader_reads_it() -> None:
    files = sorted((ADVISORIES / "vulns").rglob("*.yaml"))[::7]
    assert len(files) > 300
    from rpops.steps.security.osv import _load_record

    for path in files:
        ours = _load_record(path)
        theirs = _safe_loaded_record(path)
        assert _strings(ours) == _strings(theirs), path


def _strings(value: object) -> object:
    """Both sides as text: SafeLoader's ints and timestamps vs the record's own strings."""
    if isinstance(value, dict):
        return {str(k): _strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strings(v) for v in value]
    if value is None:
        return None
    text = str(value)
    if text[:4].isdigit() and "T" in text:  # a timestamp: compare the instant, not its spelling
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    return text


def test_progress_only_after_a_second(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    progress_file = tmp_path / "progress"
    monkeypatch.setenv("ARGO_PROGRESS_FILE", str(progress_file))
    quiet = io.StringIO()
    build_index(ADVISORIES, progress=IndexProgress(ADVISORIES, after_s=60, stream=quiet))
    assert quiet.getvalue() == "" and not progress_file.exists()
    shown = io.StringIO()
    index = build_index(ADVISORIES, progress=IndexProgress(ADVISORIES, after_s=0, stream=shown))
    lines = shown.getvalue().splitlines()
    total = index["records"] + len([p for p in index["problems"] if "unreadable" in p["problem"]])
    assert lines and lines[-1].endswith(f"{total}/{total} records"), lines
    assert progress_file.read_text() == f"{total}/{total}"
