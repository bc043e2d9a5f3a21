"""`make bench`: run every benchmarks/bench_*.py as its own process, record its figures, summarise.

Each script prints `name: measured ... vs baseline ... -> ratio R (target ...) VERDICT` lines and
exits non-zero when a judged target is missed. Scripts that report through
`benchmarks.common.report` write their figures (with baseline, target, verdict, load and date) to
the file named by `$RPOPS_BENCH_RESULTS`; for the others their printed lines are parsed. Either way
the figures of the run go to `benchmarks/results.json` with the machine's load while each script
ran (CPU taken by other work, outside the script's own process tree), replacing that script's
previous entry; `python -m benchmarks.readme` then rebuilds the README's table from that file.

Pass script names to run only those (`python -m benchmarks rules health`); `--results PATH`
writes elsewhere, `--no-results` writes nothing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.common import RESULTS_ENV, Load, LoadMonitor  # noqa: E402

RESULTS = HERE / "results.json"
_LINE = re.compile(
    r"^(?P<name>[^:\n]+): measured (?P<measured>.+?) vs baseline (?P<baseline>.+?) -> (?P<result>.+?) "
    r"\(target (?P<target>[^)]*)\)\s*(?P<verdict>PASS|FAIL|NOT JUDGED)?"
)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _load_dict(load: Load) -> dict[str, Any]:
    return {
        "others_share": None if load.others_share is None else round(load.others_share, 3),
        "loadavg_start": round(load.loadavg_start, 2),
        "loadavg_end": round(load.loadavg_end, 2),
        "cores": load.cores,
        "seconds": round(load.seconds, 1),
    }


def parse_lines(benchmark: str, lines: list[str], load: Load) -> list[dict[str, Any]]:
    """Figures of a script that only prints: one record per canonical line."""
    out = []
    for line in lines:
        match = _LINE.match(line.strip())
        if not match:
            continue
        out.append(
            {
                "benchmark": benchmark,
                "name": match["name"].strip(),
                "figure_text": f"{match['measured']} -> {match['result']}",
                "baseline": match["baseline"],
                "target": match["target"],
                "verdict": match["verdict"] or "INFO",
                "load": _load_dict(load),
                "date": _now(),
            }
        )
    return out


def run_one(script: Path) -> tuple[int, dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="rpops-bench-") as tmp:
        sink = Path(tmp) / "results.jsonl"
        captured: list[str] = []
        with LoadMonitor() as monitor:
            env = {**os.environ, RESULTS_ENV: str(sink)}  # after the monitor set its process tag
            process = subprocess.Popen(
                [sys.executable, str(script)], cwd=HERE.parent, env=env, stdout=subprocess.PIPE, text=True
            )
            assert process.stdout is not None
            for line in process.stdout:
                print(line, end="", flush=True)
                captured.append(line)
            code = process.wait()
        load = monitor.load()
        records = [json.loads(x) for x in sink.read_text().splitlines()] if sink.exists() else []
        if not records:
            records = parse_lines(script.stem, captured, load)
    entry = {"exit": code, "date": _now(), "load": _load_dict(load), "results": records}
    print(f"   {script.stem} {load.describe()}", flush=True)
    return code, entry


def main(argv: list[str]) -> int:
    results_path: Path | None = RESULTS
    names: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--results":
            results_path = Path(next(args, "") or RESULTS)
        elif arg == "--no-results":
            results_path = None
        else:
            names.append(arg)
    scripts = sorted(HERE.glob("bench_*.py"))
    if names:
        wanted = {a.removeprefix("bench_").removesuffix(".py") for a in names}
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in wanted]
        if not scripts:
            print(f"no benchmark named {', '.join(sorted(wanted))}; see {HERE}/bench_*.py", file=sys.stderr)
            return 2
    stored: dict[str, Any] = {"benchmarks": {}}
    if results_path is not None and results_path.exists():
        try:
            stored = json.loads(results_path.read_text())
        except ValueError:
            print(f"{results_path}: not JSON, starting it afresh", file=sys.stderr)
    failed: list[str] = []
    for script in scripts:
        print(f"== {script.stem} ==", flush=True)
        start = time.monotonic()
        code, entry = run_one(script)
        print(f"-- {script.stem}: {'ok' if code == 0 else f'FAILED (exit {code})'} "
              f"in {time.monotonic() - start:.1f} s\n", flush=True)
        if code != 0:
            failed.append(script.stem)
        stored.setdefault("benchmarks", {})[script.stem] = entry
        if results_path is not None:  # after each script: an interrupted run keeps what it measured
            stored["machine"] = {"cores": os.cpu_count(), "platform": sys.platform}
            stored["updated"] = _now()
            results_path.write_text(json.dumps(stored, indent=1, sort_keys=True) + "\n")
    print(f"benchmarks: {len(scripts) - len(failed)} passed, {len(failed)} failed"
          + (f" ({', '.join(failed)})" if failed else ""))
    if results_path is not None:
        print(f"results: {results_path} (README table: python -m benchmarks.readme)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
