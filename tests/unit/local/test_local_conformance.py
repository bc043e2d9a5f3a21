"""The conformance suite: small Argo workflows under tests/local_workflows/, each run for real
(local processes) and checked against the expectation in its `rpops.test/expect` annotation."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from local_helpers import WORKFLOWS, run
from rpops.local.api import RunResult

EXPECT = "rpops.test/expect"


def _cases() -> list[tuple[str, dict[str, Any]]]:
    cases = []
    for path in sorted(WORKFLOWS.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            note = ((doc or {}).get("metadata") or {}).get("annotations", {}).get(EXPECT)
            if note:
                meta = doc["metadata"]
                cases.append((meta.get("name") or meta["generateName"].rstrip("-"), yaml.safe_load(note)))
    return cases


CASES = _cases()


def _node(result: RunResult, key: str) -> dict[str, Any]:
    nodes = result.status["status"]["nodes"]
    if key == "@root":
        return nodes[result.name]
    found = [n for n in nodes.values() if n["displayName"] == key]
    assert found, f"no node {key!r}; nodes: {sorted(n['displayName'] for n in nodes.values())}"
    assert len(found) == 1, f"several nodes named {key!r}"
    return found[0]


def check(result: RunResult, expect: dict[str, Any]) -> None:
    status = result.status["status"]
    assert result.phase == expect["phase"], (result.phase, result.message, _summary(result))
    if "message" in expect:
        assert result.message == expect["message"]
    if "message_contains" in expect:
        assert expect["message_contains"] in result.message
    for name, value in (expect.get("outputs") or {}).items():
        assert result.outputs.get(name) == value, (name, result.outputs)
    for key, want in (expect.get("nodes") or {}).items():
        node = _node(result, key)
        outs = node.get("outputs") or {}
        where = f"node {key}: {node}"
        assert node["phase"] == want["phase"], where
        if "type" in want:
            assert node["type"] == want["type"], where
        if "message" in want:
            assert node.get("message", "") == want["message"], where
        if "message_contains" in want:
            assert want["message_contains"] in node.get("message", ""), where
        if "result" in want:
            assert outs.get("result") == want["result"], where
        if "result_contains" in want:
            assert want["result_contains"] in outs.get("result", ""), where
        if "result_length" in want:
            assert len(outs.get("result", "")) == want["result_length"], where[:300]
        if "log_length_at_least" in want:
            log = result.run_dir / "logs" / f"{node['id']}.log"
            assert log.stat().st_size >= want["log_length_at_least"], where[:300]
        if "outputs" in want:
            params = {p["name"]: p["value"] for p in outs.get("parameters") or ()}
            assert params == want["outputs"], where
        if "artifacts" in want:
            arts = outs.get("artifacts") or []
            assert [a["name"] for a in arts] == want["artifacts"], where
            assert all(Path(a["path"]).is_file() for a in arts)
        if "progress" in want:
            assert node.get("progress") == want["progress"], where
    if "metrics" in expect:
        got = [
            {k: m.get(k) for k in ("name", "type", "value", "labels")} for m in status.get("metrics") or ()
        ]
        assert got == expect["metrics"], status.get("metrics")
    names = {n["displayName"] for n in status["nodes"].values()}
    for absent in expect.get("absent") or ():
        assert absent not in names, f"{absent} should not have run"


def _summary(result: RunResult) -> list[str]:
    return [
        f"{n['displayName']}:{n['phase']}:{n.get('message', '')}"
        for n in result.status["status"]["nodes"].values()
    ]


@pytest.mark.parametrize(("name", "expect"), CASES, ids=[c[0] for c in CASES])
def test_conformance(
    name: str, expect: dict[str, Any], runs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if expect.get("secrets"):
        (runs_dir.parent / "secrets.yaml").write_text(yaml.safe_dump(expect["secrets"]))
    for key, value in (expect.get("environment") or {}).items():
        monkeypatch.setenv(key, value)
    result = run(name, runs_dir, expect.get("parameters"))
    check(result, expect)
    record = runs_dir / result.name / "status.json"
    assert record.is_file()
    for node in result.status["status"]["nodes"].values():
        if node["type"] == "Pod" and node["phase"] in ("Succeeded", "Failed"):
            assert (runs_dir / result.name / "logs" / f"{node['id']}.log").is_file(), node["name"]


def test_every_workflow_has_a_test() -> None:
    """Every document in the suite is either checked by its annotation or named by a test here."""
    special = {"library.yaml", "template-ref-base.yaml", "suspend.yaml", "mutex.yaml", "stoppable.yaml"}
    annotated = {p.name for p in WORKFLOWS.glob("*.yaml") if EXPECT in p.read_text()}
    assert {p.name for p in WORKFLOWS.glob("*.yaml")} == annotated | special
    assert os.path.isdir(WORKFLOWS / "bad")
