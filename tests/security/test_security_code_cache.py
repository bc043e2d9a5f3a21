"""The code scan's result cache: packs of entries by content digest, merged when they pile up,
and a damaged pack only costs a new analysis."""

from __future__ import annotations

from pathlib import Path

from rpops.steps.security.code import CodeScanResult, CodeScanSettings, scan_code

CORPUS = Path(__file__).parent / "data" / "corpus"


def _packs(cache: Path) -> list[Path]:
    return sorted(cache.glob("code/rules-v*/pack-*.json"))


def _scan(root: Path, cache: Path, jobs: int = 1) -> CodeScanResult:
    return scan_code(CodeScanSettings(roots=[root], base=root, jobs=jobs, cache_dir=cache))


def test_one_pack_per_scan_that_analysed_something(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cold = _scan(CORPUS, cache, jobs=2)
    assert cold.cache_hits == 0 and len(_packs(cache)) == 1
    warm = _scan(CORPUS, cache, jobs=2)
    assert warm.cache_hits == warm.files_found > 0
    assert len(_packs(cache)) == 1  # nothing new: nothing written
    assert [f.to_dict() for f in cold.findings] == [f.to_dict() for f in warm.findings]


def test_packs_are_merged_and_keep_every_entry(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    roots = []
    for i in range(20):
        root = tmp_path / f"p{i}"
        root.mkdir()
        (root / "app.py").write_text(f"import subprocess\nsubprocess.run(cmd{i}, shell=True)\n")
        roots.append(root)
        _scan(root, cache)
    assert 1 <= len(_packs(cache)) < 16
    for root in roots:
        again = _scan(root, cache)
        assert again.cache_hits == 1 and [f.rule_id for f in again.findings] == ["py-subprocess-shell"]


def test_a_damaged_pack_is_ignored(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cold = _scan(CORPUS, cache)
    (pack,) = _packs(cache)
    pack.write_text('{"truncated": ')
    again = _scan(CORPUS, cache)
    assert again.cache_hits == 0
    assert [f.to_dict() for f in cold.findings] == [f.to_dict() for f in again.findings]
    entry = next(iter(_packs(cache)))
    entry.write_text('{"' + "0" * 64 + '": {"findings": "not a list"}}')  # a malformed entry
    assert [f.to_dict() for f in _scan(CORPUS, cache).findings] == [f.to_dict() for f in cold.findings]
