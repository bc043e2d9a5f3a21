"""Bad command line input through the real CLI (`python -m rpops.core.cli`, a new process each):
broken URLs, devices, FIFOs, nesting bombs and non-finite numbers exit 2 with a message naming
the input, without a traceback and without writing anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGET = "a=http://127.0.0.1:1"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    fifo = tmp_path / "rules.fifo"
    os.mkfifo(fifo)
    deep = tmp_path / "deep.yaml"
    deep.write_text("[" * 50_000)
    deep_map = tmp_path / "deep-map.yaml"
    deep_map.write_text("a: {" * 5_000)
    big = tmp_path / "big.yaml"
    with open(big, "wb") as fh:
        fh.truncate(5 * 1024 * 1024)  # sparse: over the 4 MiB cap without writing it
    return {"FIFO": str(fifo), "DEEP": str(deep), "DEEPMAP": str(deep_map), "BIG": str(big),
            "DIR": str(tmp_path), "MANIFESTS": str(ROOT / "manifests" / "argo")}


CASES = [
    (["health-check", "--target", "a=http://[::1"], "--target"),
    (["health-check", "--target", "a=http://[::1]:99999"], "--target"),
    (["validate", "--url", "http://[::1"], "--url"),
    (["validate", "--url", "http://exa mple.com"], "--url"),
    (["health-check", "--target", TARGET, "--prometheus", "http://[zz"], "--prometheus"),
    (["scale", "--service", "rp", "--prometheus", "http://[zz"], "--prometheus"),
    (["health-check", "--target", TARGET, "--rules", "/dev/zero"], "--rules /dev/zero"),
    (["health-check", "--target", TARGET, "--rules", "FIFO"], "--rules"),
    (["health-check", "--target", TARGET, "--rules", "DEEP"], "nested too deeply"),
    (["health-check", "--target", TARGET, "--rules", "DEEPMAP"], "--rules"),
    (["health-check", "--target", TARGET, "--rules", "BIG"], "over the limit"),
    (["health-check", "--target", TARGET, "--rules", "DIR"], "not a regular file"),
    (["scale", "--service", "rp", "--policy", "/dev/zero"], "--policy /dev/zero"),
    (["scale", "--service", "rp", "--policy", "FIFO"], "--policy"),
    (["scale", "--service", "rp", "--policy", "DEEP"], "nested too deeply"),
    (["workload", "serve", "--graceful-timeout", "nan"], "--graceful-timeout"),
    (["workload", "serve", "--graceful-timeout", "inf"], "--graceful-timeout"),
    (["local", "serve", "--dedup-window", "nan"], "--dedup-window"),
    (["local", "run", "--kill-grace", "nan", "x"], "--kill-grace"),
    (["local", "run", "--kill-grace", "-inf", "x"], "--kill-grace"),
    (["health-check", "--target", TARGET, "--timeout", "nan"], "--timeout"),
    (["validate", "--url", "http://127.0.0.1:1", "--max-response-ms", "inf"], "--max-response-ms"),
]


@pytest.mark.parametrize(("argv", "named"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_exits_2_naming_it(tmp_path: Path, files: dict[str, str], argv: list[str],
                                     named: str) -> None:
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    argv = [files.get(a, a) for a in argv]
    done = subprocess.run(
        [sys.executable, "-m", "rpops", *argv],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={**os.environ, "RPOPS_OUTPUTS": str(outputs), "PYTHONPATH": str(ROOT / "steps")},
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "Error:" not in done.stderr.replace("error:", "")
    assert files.get(named, named) in done.stderr
    assert list(outputs.iterdir()) == []  # nothing written
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["outputs", *(
        Path(v).name for k, v in files.items() if k not in ("DIR", "MANIFESTS"))])  # nothing created


MORE_FILES = [
    (["bluegreen", "analyze", "--service", "rp", "--analysis", "/dev/zero"], "--analysis /dev/zero"),
    (["bluegreen", "analyze", "--service", "rp", "--analysis", "FIFO"], "--analysis"),
    (["bluegreen", "analyze", "--service", "rp", "--analysis", "DEEP"], "nested too deeply"),
    (["optimize", "--service", "rp", "--prometheus", "http://127.0.0.1:1", "--queries", "/dev/zero"],
     "--queries /dev/zero"),
    (["optimize", "--service", "rp", "--prometheus", "http://127.0.0.1:1", "--queries", "DEEP"],
     "nested too deeply"),
    (["local", "serve", "--manifests", "MANIFESTS", "--token-file", "/dev/zero"], "--token-file /dev/zero"),
    (["local", "serve", "--manifests", "MANIFESTS", "--token-file", "FIFO"], "--token-file"),
]


@pytest.mark.parametrize(("argv", "named"), MORE_FILES, ids=[" ".join(a) for a, _ in MORE_FILES])
def test_input_files_are_read_with_a_cap(tmp_path: Path, files: dict[str, str], argv: list[str],
                                         named: str) -> None:
    test_bad_input_exits_2_naming_it(tmp_path, files, argv, named)
