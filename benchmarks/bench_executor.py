"""rpops local's executor overhead.

    .venv/bin/python benchmarks/bench_executor.py [--nodes 50] [--repeat 5]

- A DAG of 50 `true` tasks, each depending on the one before, against a plain loop that starts
  the same 50 processes one after another (median of --repeat runs each): the executor's cost
  per node beyond the bare process start must stay <= 50 ms.
- A step group of 5 parallel steps that each sleep 1 s must finish within 1.2x the longest one.
- Start-up: `rpops local run` of a one-node workflow (a new process, as a user runs it, from
  start to the run's record) against the start of `python -c "import yaml, httpx"` (the
  libraries any such tool loads): ratio of the medians <= 1.5.
- Substitution is linear: a text with 40,000 `{{` takes <= 15x the time of one with 4,000
  (quadratic would be 100x).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from rpops.local.api import submit
from rpops.local.load.catalog import load_documents
from rpops.local.run.executor import Options

OVERHEAD_TARGET_MS = 50.0
PARALLEL_TARGET = 1.2
STARTUP_TARGET = 1.5
LINEAR_TARGET = 15.0


def _doc(name: str, templates: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {"name": name},
        "spec": {"entrypoint": "main", "templates": templates},
    }


def chain(nodes: int) -> dict[str, Any]:
    tasks = [{"name": "t0", "template": "true"}]
    tasks += [{"name": f"t{i}", "depends": f"t{i - 1}", "template": "true"} for i in range(1, nodes)]
    return _doc(
        "bench-chain",
        [
            {"name": "main", "dag": {"tasks": tasks}},
            {"name": "true", "container": {"image": "busybox", "command": ["true"]}},
        ],
    )


def parallel_sleeps(count: int, seconds: float) -> dict[str, Any]:
    group = [{"name": f"s{i}", "template": "sleep"} for i in range(count)]
    return _doc(
        "bench-parallel",
        [
            {"name": "main", "steps": [group]},
            {"name": "sleep", "container": {"image": "busybox", "command": ["sleep", str(seconds)]}},
        ],
    )


def plain_loop(nodes: int) -> float:
    started = time.perf_counter()
    for _ in range(nodes):
        subprocess.run(["true"], check=True)  # noqa: S607 - the same command the DAG runs
    return time.perf_counter() - started


def run_workflow(path: Path, name: str, runs: Path) -> float:
    catalog = load_documents([path])
    started = time.perf_counter()
    result = submit(catalog, name, {}, options=Options(runs_dir=runs, secrets_file=None))
    elapsed = time.perf_counter() - started
    if result.phase != "Succeeded":
        raise SystemExit(f"{name} ended {result.phase}: {result.message}")
    return elapsed


def one_node(path: Path) -> None:
    path.write_text(
        yaml.safe_dump(
            _doc("bench-one", [{"name": "main", "container": {"image": "busybox", "command": ["true"]}}])
        )
    )


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)  # noqa: S603 - fixed argv
    return time.perf_counter() - started


def startup(root: Path, repeat: int) -> tuple[float, float]:
    """Medians of the one-node run and of the baseline import, interleaved."""
    path = root / "one.yaml"
    one_node(path)
    base = [sys.executable, "-c", "import yaml, httpx"]
    runs, bases = [], []
    for i in range(repeat):
        bases.append(timed(base))
        argv = [sys.executable, "-m", "rpops", "local", "run", str(path), "--manifests", str(path)]
        argv += [
            "--runs-dir",
            str(root / f"one-{i}"),
            "--secrets",
            str(root / "none.yaml"),
            "--output",
            "json",
        ]
        runs.append(timed(argv))
    return statistics.median(runs), statistics.median(bases)


def substitution(tags: int) -> float:
    from rpops.local.expr.substitute import render
    from rpops.local.expr.substitute import tags as find_tags

    text = "{{a}} {{" * tags  # paired and unpaired tags, the worst case of a lazy regex
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        render(text, {"a": "1"}, strict=False)
        find_tags(text)
        best = min(best, time.perf_counter() - started)
    return best


def report(name: str, measured: float, baseline: float, ratio: float, target: str, ok: bool) -> bool:
    print(
        f"{name}: measured {measured:.3g} vs baseline {baseline:.3g} -> ratio {ratio:.2f} "
        f"(target {target}) {'PASS' if ok else 'FAIL'}"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rpops-bench-") as tmp:
        root = Path(tmp)
        chain_file, parallel_file = root / "chain.yaml", root / "parallel.yaml"
        chain_file.write_text(yaml.safe_dump(chain(args.nodes)))
        parallel_file.write_text(yaml.safe_dump(parallel_sleeps(5, 1.0)))
        run_workflow(chain_file, "bench-chain", root / "warmup")
        loops, dags = [], []
        for i in range(args.repeat):  # interleaved, so that background load hits both alike
            loops.append(plain_loop(args.nodes))
            dags.append(run_workflow(chain_file, "bench-chain", root / f"runs-{i}"))
        loop_ms = statistics.median(loops) * 1000 / args.nodes
        dag_ms = statistics.median(dags) * 1000 / args.nodes
        overhead = dag_ms - loop_ms
        ok = report(
            f"dag_{args.nodes}_true_ms_per_node",
            dag_ms,
            loop_ms,
            dag_ms / loop_ms,
            f"<= {OVERHEAD_TARGET_MS:.0f} ms/node beyond the bare start; overhead {overhead:.1f} ms",
            overhead <= OVERHEAD_TARGET_MS,
        )
        walls = [run_workflow(parallel_file, "bench-parallel", root / f"par-{i}") for i in range(3)]
        wall = statistics.median(walls)
        ok &= report(
            "parallel_5x_sleep_1s_seconds",
            wall,
            1.0,
            wall / 1.0,
            f"<= {PARALLEL_TARGET}",
            wall / 1.0 <= PARALLEL_TARGET,
        )
        small, large = substitution(4_000), substitution(40_000)
        ok &= report(
            "substitution_40000_vs_4000_tags_seconds",
            large,
            small,
            large / small,
            f"<= {LINEAR_TARGET:.0f}, linear is 10",
            large / small <= LINEAR_TARGET,
        )
        run_s, base_s = startup(root, max(args.repeat, 7))
        ok &= report(
            "local_run_one_node_startup_seconds",
            run_s,
            base_s,
            run_s / base_s,
            f"<= {STARTUP_TARGET} x python -c 'import yaml, httpx'",
            run_s / base_s <= STARTUP_TARGET,
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
