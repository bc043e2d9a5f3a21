"""Pure pieces of rpops local: substitution, durations, node IDs, loop items, DAG phase, schema."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from rpops.core.durations import parse_duration
from rpops.local.expr.substitute import Unresolved, render, tags
from rpops.local.load import schema
from rpops.local.load.model import Sequence, scalar_str
from rpops.local.records.nodes import Node, node_id
from rpops.local.run import locks
from rpops.local.run.dag import assess_dag_phase
from rpops.local.run.secretstore import SecretMissing, SecretStore, env_name
from rpops.local.run.values import (
    aggregate_values,
    expand_sequence,
    item_label,
    item_values,
    parse_with_param,
)


def test_tags_and_render() -> None:
    assert tags("a {{ inputs.parameters.x }} b {{item}}") == ["inputs.parameters.x", "item"]
    assert render("{{ a }}-{{b}}", {"a": "1", "b": "{{c}}"}) == "1-{{c}}"  # values are not re-scanned
    assert render("x {{missing}}", {}, strict=False) == "x {{missing}}"
    with pytest.raises(Unresolved, match=r"failed to resolve \{\{missing\}\}"):
        render("x {{missing}}", {})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30", 30),
        ("1s", 1),
        ("500ms", 0.5),
        ("1m30s", 90),
        ("2h", 7200),
        ("1.5s", 1.5),
        ("0", 0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "1x", "s", "1 s", "--1s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_node_ids_are_argo_fnv32a() -> None:
    assert node_id("wf", "wf") == "wf"
    assert node_id("wf", "a") == "wf-3826002220"  # FNV-1a 32 of "a" is 0xe40c292c


def test_scalar_strings_as_argo_anystring() -> None:
    assert [scalar_str(v) for v in (True, False, 3, 3.0, 2.5, "x")] == ["true", "false", "3", "3", "2.5", "x"]


def test_loop_items() -> None:
    assert item_label(0, "a") == "(0:a)"
    assert item_label(1, {"size": 2, "name": "eu"}) == "(1:name:eu,size:2)"
    assert item_label(2, [1, "x"]) == "(2:[1 x])"
    assert item_label(3, True) == "(3:true)"
    assert item_values({"name": "eu", "tags": ["a"]}) == {
        "item": '{"name":"eu","tags":["a"]}',
        "item.name": "eu",
        "item.tags": '["a"]',
    }
    assert item_values(2.0) == {"item": "2"}
    assert parse_with_param(' [1, "b"] ') == [1, "b"]
    with pytest.raises(ValueError, match="could not be parsed as a JSON list"):
        parse_with_param('{"a": 1}')
    assert expand_sequence(Sequence(count="3", start="1", format="%02d")) == ["01", "02", "03"]
    assert expand_sequence(Sequence(start="3", end="1")) == ["3", "2", "1"]


def _node(nid: str, phase: str, children: list[str] = (), type_: str = "Pod") -> Node:  # type: ignore[assignment]
    return Node(
        id=nid,
        name=nid,
        display_name=nid,
        type=type_,
        template_name="t",
        phase=phase,
        boundary_id="dag",
        parent="dag",
        children=list(children),
    )


def _nodes(*nodes: Node) -> dict[str, Node]:
    return {n.id: n for n in nodes}


def _never(task: str, phase: str) -> bool:
    return False


def test_dag_phase_omitted_target_below_a_failure_fails_the_dag() -> None:
    nodes = _nodes(
        _node("dag", "Running", ["a"], "DAG"),
        _node("a", "Failed", ["handle", "c"]),
        _node("handle", "Succeeded"),
        _node("c", "Omitted", type_="Skipped"),
    )
    assert assess_dag_phase(nodes, "dag", [("handle", "handle"), ("c", "c")], True, _never) == "Failed"
    assert assess_dag_phase(nodes, "dag", [("handle", "handle")], True, _never) == "Succeeded"


def test_dag_phase_failed_wins_when_a_target_is_reached_twice() -> None:
    for order in (["a", "b"], ["b", "a"]):
        nodes = _nodes(
            _node("dag", "Running", order, "DAG"),
            _node("a", "Failed", ["t"]),
            _node("b", "Succeeded", ["t"]),
            _node("t", "Omitted", type_="Skipped"),
        )
        assert assess_dag_phase(nodes, "dag", [("t", "t")], True, _never) == "Failed"


def test_dag_phase_continue_on_and_retry_and_running() -> None:
    nodes = _nodes(_node("dag", "Running", ["a"], "DAG"), _node("a", "Failed"))
    assert assess_dag_phase(nodes, "dag", [("a", "a")], True, lambda t, p: p == "Failed") == "Succeeded"
    retry = _nodes(
        _node("dag", "Running", ["r"], "DAG"),
        _node("r", "Succeeded", ["r0", "r1"], "Retry"),
        _node("r0", "Failed", []),
        _node("r1", "Succeeded", ["t"]),
        _node("t", "Succeeded"),
    )
    assert assess_dag_phase(retry, "dag", [("t", "t")], True, _never) == "Succeeded"
    running = _nodes(_node("dag", "Running", ["a"], "DAG"), _node("a", "Running"))
    assert assess_dag_phase(running, "dag", [("a", "a")], True, _never) == "Running"
    unreached = _nodes(_node("dag", "Running", ["a"], "DAG"), _node("a", "Succeeded"))
    assert assess_dag_phase(unreached, "dag", [("a", "a"), ("z", "z")], False, _never) == "Running"


def test_aggregate_outputs_of_a_loop() -> None:
    a = _node("a", "Succeeded")
    a.outputs = {"result": '{"k": 1}', "parameters": [{"name": "x", "value": "1"}]}
    b = _node("b", "Succeeded")
    b.outputs = {"result": "plain", "parameters": [{"name": "x", "value": "2"}]}
    skipped = _node("s", "Skipped", type_="Skipped")
    v = aggregate_values("steps.loop", [a, skipped, b])
    assert json.loads(v["steps.loop.outputs.result"]) == [{"k": 1}, "plain"]
    assert json.loads(v["steps.loop.outputs.parameters.x"]) == ["1", "2"]
    assert json.loads(v["steps.loop.outputs.parameters"]) == [{"x": "1"}, {"x": "2"}]


def test_schema_reports_every_problem_with_its_place() -> None:
    doc = {
        "name": "t",
        "container": {"command": ["x"], "envFrom": [], "imagePullPolicy": "Always"},
        "activeDeadlineSeconds": True,
        "retyStrategy": {},
    }
    problems = [p.render() for p in schema.check(doc, "obj:Template", template="t")]
    assert (
        "template 't', field 'container.envFrom': not supported by rpops local: envFrom is not supported "
        "locally; list each variable under env" in problems
    )
    assert any("field 'activeDeadlineSeconds': must be an integer or a string" in p for p in problems)
    assert any("field 'retyStrategy': unknown field (did you mean 'retryStrategy'?)" in p for p in problems)
    assert len(problems) == 3  # imagePullPolicy is accepted and ignored


def test_secret_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secrets.yaml"
    path.write_text("api-token: {token: from-file}\n")
    store = SecretStore(path)
    assert env_name("api-token", "token.value") == "RPOPS_SECRET_API_TOKEN_TOKEN_VALUE"
    assert store.get("api-token", "token") == "from-file"
    monkeypatch.setenv("RPOPS_SECRET_API_TOKEN_TOKEN", "from-env")
    assert store.get("api-token", "token") == "from-env"
    with pytest.raises(SecretMissing, match="RPOPS_SECRET_API_TOKEN_OTHER"):
        store.get("api-token", "other")


def test_mutex_excludes_holders_in_one_process(tmp_path: Path) -> None:
    first = locks.acquire(tmp_path, "svc", "one")
    assert first is not None
    assert "one pid=" in locks.holder(tmp_path, "svc")
    waited: list[str] = []
    got: list[float] = []

    def second() -> None:
        m = locks.acquire(tmp_path, "svc", "two", on_wait=waited.append)
        got.append(time.monotonic())
        assert m is not None
        m.release()

    th = threading.Thread(target=second)
    th.start()
    time.sleep(0.3)
    released = time.monotonic()
    first.release()
    th.join(5)
    assert got and got[0] >= released
    assert waited and "one pid=" in waited[0]
    cancelled = threading.Event()
    cancelled.set()
    holder = locks.acquire(tmp_path, "svc", "three")
    assert locks.acquire(tmp_path, "svc", "four", cancelled=cancelled) is None
    assert holder is not None
    holder.release()
