"""`make bench`: run every benchmarks/bench_*.py as its own process, print its ratios, summarise.

Each script prints `name: measured ... vs baseline ... -> ratio R (target ...) PASS/FAIL` lines
and exits non-zero when a target is missed. Pass script names to run only those
(`python -m benchmarks rules health`).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if argv:
        wanted = {a.removeprefix("bench_").removesuffix(".py") for a in argv}
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in wanted]
        if not scripts:
            print(f"no benchmark named {', '.join(sorted(wanted))}; see {HERE}/bench_*.py", file=sys.stderr)
            return 2
    failed: list[str] = []
    for script in scripts:
        print(f"== {script.stem} ==", flush=True)
        start = time.monotonic()
        code = subprocess.call([sys.executable, str(script)], cwd=HERE.parent)
        print(f"-- {script.stem}: {'ok' if code == 0 else f'FAILED (exit {code})'} "
              f"in {time.monotonic() - start:.1f} s\n", flush=True)
        if code != 0:
            failed.append(script.stem)
    print(f"benchmarks: {len(scripts) - len(failed)} passed, {len(failed)} failed"
          + (f" ({', '.join(failed)})" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
