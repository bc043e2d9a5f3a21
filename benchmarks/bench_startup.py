"""Start-up cost of the probing steps, and what they import.

    .venv/bin/python benchmarks/bench_startup.py [--runs 9]

Targets:
- `rpops health-check --help` and `rpops validate --help` cost at most 1.5x
  `python -c "import httpx"` (median wall time of several runs each);
- neither imports the Kubernetes client or Hera (checked in `sys.modules` after the command).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_RATIO = 1.5
HEAVY = ("kubernetes", "hera")
BIN = Path(sys.executable).parent
RPOPS = str(BIN / "rpops")

# Runs a command through rpops.core.cli.main, then lists every top-level package imported.
WRAPPER = """
import sys
from rpops.core.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print('MODULES=' + ','.join(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)
"""


def wall(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def heavy_imports(args: list[str], env: dict[str, str]) -> list[str]:
    done = subprocess.run([sys.executable, "-c", WRAPPER, *args], capture_output=True, text=True, env=env,
                          timeout=60)
    marker = [line for line in done.stderr.splitlines() if line.startswith("MODULES=")]
    if not marker:
        raise SystemExit(f"import check of {args} did not finish:\n{done.stderr}")
    return sorted(set(marker[-1].removeprefix("MODULES=").split(",")) & set(HEAVY))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=9)
    runs = parser.parse_args().runs
    failures = 0

    # Warm the file cache once so the first measured run is not an outlier.
    wall([sys.executable, "-c", "import httpx"], 1)
    wall([RPOPS, "health-check", "--help"], 1)

    baseline = wall([sys.executable, "-c", "import httpx"], runs)
    for command in ("health-check", "validate"):
        measured = wall([RPOPS, command, "--help"], runs)
        ratio = measured / baseline
        ok = ratio <= TARGET_RATIO
        failures += not ok
        print(f"startup {command} --help: measured {measured * 1000:.1f} ms vs baseline "
              f"'python -c \"import httpx\"' {baseline * 1000:.1f} ms -> ratio {ratio:.2f} "
              f"(target <= {TARGET_RATIO}) {'PASS' if ok else 'FAIL'}")

    with tempfile.TemporaryDirectory() as outputs:
        env = {**os.environ, "RPOPS_OUTPUTS": outputs}
        checks = {
            "health-check --help": ["health-check", "--help"],
            "validate --help": ["validate", "--help"],
            # A real run (against a closed port: nothing answers, nothing else is touched).
            "health-check run": ["health-check", "--target", "a=http://127.0.0.1:9", "--samples", "1",
                                 "--retries", "0", "--timeout", "0.5"],
            "validate run": ["validate", "--url", "http://127.0.0.1:9", "--retries", "0", "--timeout", "0.5"],
        }
        for label, args in checks.items():
            heavy = heavy_imports(args, env)
            ok = not heavy
            failures += not ok
            print(f"imports {label}: kubernetes/hera imported: {', '.join(heavy) or 'none'} "
                  f"(target: none) {'PASS' if ok else 'FAIL'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
