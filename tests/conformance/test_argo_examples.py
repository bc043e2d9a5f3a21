"""Argo's own examples (tests/conformance/examples, v4.1.2) run through `rpops local run`.

Each example's expectation in expectations.yaml was judged from Argo's documented semantics,
its controller code and the example itself, not from what rpops local does:

- `phase` (one phase, or the phases a random example can reach), and where the example is
  about outputs, the node results and output parameters Argo gives;
- `refused`: outside what rpops local runs; the refusal must be clean (exit 2, the field
  named, nothing started, no traceback);
- `accepted`: valid and accepted, but not run here (why: e.g. it runs for minutes).

Images' commands a host lacks come from tests/conformance/shims (see README.md there).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE / "examples"
SHIMS = HERE / "shims"
EXPECTATIONS: dict[str, dict[str, Any]] = yaml.safe_load((HERE / "expectations.yaml").read_text())
RUN_TIMEOUT_S = 180


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RPOPS_")}
    env["PATH"] = f"{SHIMS}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["NO_COLOR"] = "1"
    env["HOME"] = str(tmp_path)
    return env


def _run(example: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "rpops", "local", "run", str(example), "--manifests", str(example)]
    argv += ["--runs-dir", str(tmp_path / "runs"), "--secrets", str(tmp_path / "secrets.yaml")]
    argv += ["--output", "json", "--kill-grace", "1", *extra]
    return subprocess.run(  # noqa: S603 - our own CLI
        argv,
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


def _nodes_by_display(status: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for node in status["nodes"].values():
        out.setdefault(node["displayName"], []).append(node)
    return out


def check_status(doc: dict[str, Any], expect: dict[str, Any]) -> None:
    status = doc["status"]
    phases = expect["phase"] if isinstance(expect["phase"], list) else [expect["phase"]]
    summary = [f"{n['displayName']}:{n['phase']}:{n.get('message', '')}" for n in status["nodes"].values()]
    assert status["phase"] in phases, (status["phase"], status.get("message"), summary)
    if "message" in expect:
        assert expect["message"] in status.get("message", ""), status.get("message")
    nodes = _nodes_by_display(status)
    root = status["nodes"][doc["metadata"]["name"]]
    nodes["@root"] = [root]  # the workflow's own node, whatever its display name
    for name, want in (expect.get("nodes") or {}).items():
        found = nodes.get(name)
        assert found, f"no node {name!r}: {sorted(nodes)}"
        if "count" in want:
            assert len(found) == want["count"], (name, len(found))
        for node in found:
            outs = node.get("outputs") or {}
            where = f"node {name}: {node}"
            if "phase" in want:
                assert node["phase"] in (
                    want["phase"] if isinstance(want["phase"], list) else [want["phase"]]
                ), where
            if "type" in want:
                assert node["type"] == want["type"], where
            if "result" in want:
                assert outs.get("result") == want["result"], where
            if "result_contains" in want:
                assert want["result_contains"] in outs.get("result", ""), where
            if "outputs" in want:
                params = {p["name"]: p.get("value") for p in outs.get("parameters") or ()}
                assert params == want["outputs"], where
            if "artifacts" in want:
                arts = {a["name"]: Path(a["path"]) for a in outs.get("artifacts") or ()}
                assert sorted(arts) == sorted(want["artifacts"]), where
                for art, text in want["artifacts"].items():
                    path = arts[art]
                    if text is not None:
                        assert path.is_file() and path.read_text().strip() == text, (art, path)
                    else:
                        assert path.exists(), (art, path)
            if "message_contains" in want:
                assert want["message_contains"] in node.get("message", ""), where
            if "inputs" in want:
                given = {
                    p["name"]: p.get("value") for p in (node.get("inputs") or {}).get("parameters") or ()
                }
                assert given == want["inputs"], where
    for name in expect.get("absent") or ():
        assert name not in nodes, f"{name} should not have run"
    params = {p["name"]: p.get("value") for p in (root.get("outputs") or {}).get("parameters") or ()}
    if "outputs" in expect:
        assert params == expect["outputs"], root
    for name, node_name in (expect.get("outputs_from_result") or {}).items():
        (source,) = nodes[node_name]  # e.g. the coin that was flipped
        assert params.get(name) == (source.get("outputs") or {}).get("result"), (params, source)


CASES = sorted(EXPECTATIONS)
RUN = [c for c in CASES if "phase" in EXPECTATIONS[c] and not EXPECTATIONS[c].get("resume")]
REFUSED = [c for c in CASES if "refused" in EXPECTATIONS[c] or "refused_message" in EXPECTATIONS[c]]
ACCEPTED = [c for c in CASES if "accepted" in EXPECTATIONS[c]]
RESUMED = [c for c in CASES if EXPECTATIONS[c].get("resume")]


def test_every_example_has_one_expectation() -> None:
    files = sorted(p.name for p in EXAMPLES.glob("*.yaml"))
    assert files == CASES, set(files) ^ set(CASES)
    for name in CASES:
        kinds = [k for k in ("phase", "refused", "refused_message", "accepted") if k in EXPECTATIONS[name]]
        assert len(kinds) == 1 or kinds == ["refused", "refused_message"], (name, kinds)
        assert EXPECTATIONS[name].get("why") or kinds == ["phase"], f"{name}: say why it is not run"


@pytest.mark.parametrize("name", RUN)
def test_example_ends_as_argo_ends_it(name: str, tmp_path: Path) -> None:
    expect = EXPECTATIONS[name]
    extra = [f"-p{k}={v}" for k, v in (expect.get("parameters") or {}).items()]
    proc = _run(EXAMPLES / name, tmp_path, *extra)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 1), (proc.returncode, proc.stderr)
    doc = json.loads(proc.stdout)
    check_status(doc, expect)
    assert proc.returncode == (0 if doc["status"]["phase"] == "Succeeded" else 1)


@pytest.mark.parametrize("name", REFUSED)
def test_out_of_scope_example_is_refused_cleanly(name: str, tmp_path: Path) -> None:
    expect = EXPECTATIONS[name]
    proc = _run(EXAMPLES / name, tmp_path)
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-500:], proc.stderr)
    assert "Traceback" not in proc.stderr
    if "refused" in expect:
        assert f"field '{expect['refused']}'" in proc.stderr, proc.stderr
        assert "nothing was started" in proc.stderr, proc.stderr
    if "refused_message" in expect:
        assert expect["refused_message"] in proc.stderr, proc.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("name", ACCEPTED)
def test_long_example_is_accepted(name: str) -> None:
    """Valid examples that run for minutes: checked completely before a run, not run here."""
    from rpops.local.load.catalog import load_documents
    from rpops.local.load.plan import prepare

    catalog = load_documents([EXAMPLES / name])
    (doc,) = catalog.runnable()
    prepare(catalog, doc, EXPECTATIONS[name].get("parameters") or {})


@pytest.mark.parametrize("name", RESUMED)
def test_suspended_example_resumes(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`argo resume` ends a suspend node that has no duration; the rest runs as Argo runs it."""
    from rpops.local.api import Options, start
    from rpops.local.load.catalog import load_documents

    monkeypatch.setenv("PATH", _env(tmp_path)["PATH"])
    catalog = load_documents([EXAMPLES / name])
    (doc,) = catalog.runnable()
    handle = start(catalog, doc, {}, options=Options(runs_dir=tmp_path / "runs", secrets_file=None))
    resumed, deadline = 0, time.monotonic() + 60
    while not handle.run.done.is_set() and time.monotonic() < deadline:
        suspended = [
            n
            for n in handle.status()["status"]["nodes"].values()
            if n["type"] == "Suspend" and n["phase"] == "Running"
        ]
        if suspended and resumed < EXPECTATIONS[name]["resume"]:
            handle.resume()
            resumed += 1
        time.sleep(0.1)
    assert handle.wait(60), "the run did not end"
    check_status(handle.status(), EXPECTATIONS[name])
