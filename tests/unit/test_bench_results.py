"""`make bench` bookkeeping: figures recorded with their conditions, a busy machine voids a wall-time
verdict, the README table is rebuilt between its markers only (no timing is asserted here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks import readme  # noqa: E402
from benchmarks.__main__ import parse_lines  # noqa: E402
from benchmarks.common import RESULTS_ENV, Load, report  # noqa: E402


def load(others: float | None) -> Load:
    return Load(cores=2, others_share=others, own_share=0.4, loadavg_start=1.0, loadavg_end=1.5, seconds=3.0)


@pytest.mark.parametrize(
    ("others", "ok", "sensitive", "verdict", "passed"),
    [
        (0.1, True, True, "PASS", True),
        (0.1, False, True, "FAIL", False),
        (0.8, False, True, "NOT JUDGED", True),  # a miss on a busy machine decides nothing
        (0.8, True, True, "NOT JUDGED", True),  # nor does a pass
        (0.8, False, False, "FAIL", False),  # counts and CPU seconds are judged whatever the load
        (None, False, True, "FAIL", False),  # no /proc/stat: judged
        (0.1, None, True, "INFO", True),
    ],
)
def test_verdicts_and_the_recorded_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    others: float | None, ok: bool | None, sensitive: bool, verdict: str, passed: bool,
) -> None:
    sink = tmp_path / "results.jsonl"
    monkeypatch.setenv(RESULTS_ENV, str(sink))
    got = report("bench_x", "thing", figure=130.0, unit="ms", baseline="slowest single", baseline_value=100.0,
                 target="<= 1.3x", ok=ok, ratio=1.3, load=load(others), load_sensitive=sensitive)
    assert got is passed
    line = capsys.readouterr().out
    assert line.startswith(
        "thing: measured 130 ms vs baseline slowest single 100 ms -> ratio 1.30 (target <= 1.3x) "
    )
    assert f" {verdict}" in line and "of 2 cores" in line
    [record] = [json.loads(x) for x in sink.read_text().splitlines()]
    assert record["verdict"] == verdict and record["figure"] == 130.0 and record["baseline_value"] == 100.0
    assert record["load"]["cores"] == 2 and record["date"].endswith("Z")
    # the canonical line is also what the runner parses for scripts that only print
    [parsed] = parse_lines("bench_x", [line], load(others))
    assert parsed["name"] == "thing" and parsed["verdict"] == verdict and parsed["target"] == "<= 1.3x"


def test_legacy_lines_are_parsed_and_others_ignored() -> None:
    lines = [
        "startup rpops --help: measured 61.2 ms vs baseline python -c 'import httpx' 98.0 ms -> ratio 0.62 "
        "(target <= 1.5) PASS\n",
        "info: something else\n",
        "  pairs: added ms 0.1\n",
    ]
    [record] = parse_lines("bench_startup", lines, load(0.2))
    assert record["name"] == "startup rpops --help" and record["verdict"] == "PASS"
    assert record["figure_text"] == "61.2 ms -> ratio 0.62" and record["load"]["others_share"] == 0.2


def test_readme_table_is_rebuilt_between_the_markers_only(tmp_path: Path) -> None:
    results = {"benchmarks": {"bench_x": {"exit": 0, "date": "2026-12-06T07:00:00Z", "load": {}, "results": [
        {"benchmark": "bench_x", "name": "thing", "figure": 130.0, "unit": "ms",
         "baseline": "slowest | single", "baseline_value": 100.0,
         "target": "<= 1.3x", "verdict": "PASS", "ratio": 1.3,
         "load": {"others_share": 0.12, "cores": 2, "loadavg_start": 0.4}, "date": "2026-12-06T07:00:00Z"},
    ]}, "bench_y": {"exit": 1, "date": "2026-12-06T07:01:00Z", "load": {"others_share": 0.0}, "results": []}}}
    (tmp_path / "results.json").write_text(json.dumps(results))
    doc = tmp_path / "README.md"
    doc.write_text(f"# title\nbefore\n{readme.START}\nold table\n{readme.END}\nafter\n")
    args = ["--results", str(tmp_path / "results.json"), "--readme", str(doc)]
    assert readme.main([*args, "--check"]) == 1
    assert readme.main(args) == 0
    text = doc.read_text()
    assert text.startswith("# title\nbefore\n") and text.endswith(f"{readme.END}\nafter\n")
    assert "old table" not in text
    assert (
        "| `bench_x` thing | 130 ms (1.30×) | slowest \\| single: 100 ms | <= 1.3x | PASS | "
        "others 12% of 2 cores; load avg 0.4 | 2026-12-06 07:00 |"
    ) in text
    assert "| `bench_y` | no figures recorded | | | FAIL (exit 1) |" in text
    assert readme.main([*args, "--check"]) == 0


def test_readme_without_markers_is_refused(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text("{}")
    doc = tmp_path / "README.md"
    doc.write_text("no markers\n")
    with pytest.raises(SystemExit, match="no <!-- bench-table:start -->"):
        readme.main(["--results", str(tmp_path / "r.json"), "--readme", str(doc)])
    assert doc.read_text() == "no markers\n"


def test_the_project_readme_carries_the_markers() -> None:
    text = (REPO / "README.md").read_text()
    assert text.count(readme.START) == 1 and text.count(readme.END) == 1


def test_a_figure_may_ask_for_a_quieter_machine(capsys: pytest.CaptureFixture[str]) -> None:
    args = {"figure": 10.0, "unit": "s", "baseline": "bandit", "baseline_value": 90.0, "target": ">= 8x",
            "ok": True, "ratio": 9.0}
    assert report("bench_x", "scan", load=load(0.3), max_others=0.25, **args)  # type: ignore[arg-type]
    assert report("bench_x", "scan", load=load(0.3), **args)  # type: ignore[arg-type]
    out = capsys.readouterr().out.splitlines()
    assert "NOT JUDGED" in out[0] and out[1].split(" (load")[0].endswith("PASS")
