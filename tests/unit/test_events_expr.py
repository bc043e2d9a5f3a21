"""rpops.local.expr.eventexpr: the expr-lang subset of WorkflowEventBindings, and Argo's parameter strings."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from rpops.core.errors import UsageError
from rpops.local.expr.eventexpr import ExprError, argo_string, compile_expression

from workflows import alerts_binding

ENV: dict[str, Any] = {
    "discriminator": "alertmanager",
    "namespace": "argo",
    "payload": {
        "version": "4",
        "status": "firing",
        "commonLabels": {
            "alertname": "HighCPU",
            "service": "rp",
            "remediation": "research-platform-recovery",
        },
        "alerts": [{"labels": {"a": "1"}}, {"labels": {"a": "2"}}],
        "count": 3,
        "ratio": 0.5,
        "flag": True,
    },
    "metadata": {"x-source": ["test"]},
}


def ev(source: str, env: dict[str, Any] | None = None) -> Any:
    return compile_expression(source).evaluate(ENV if env is None else env)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('discriminator == "alertmanager"', True),
        ("payload.version == '4' && payload.status == \"firing\"", True),
        ("payload.commonLabels.service", "rp"),
        ('payload["commonLabels"]["alertname"]', "HighCPU"),
        ("payload.alerts[1].labels.a", "2"),
        ("payload.commonLabels.region", None),
        ('payload.commonLabels.region ?? ""', ""),
        ('payload.commonLabels.service ?? "x"', "rp"),
        ("payload.commonLabels.region == nil", True),
        ("payload.commonLabels.service != nil", True),
        ('"service" in payload.commonLabels', True),
        ('"region" not in payload.commonLabels', True),
        ('payload.commonLabels.alertname in ["HighCPU", "HighMemory"]', True),
        ("payload.count > 2 && payload.count <= 3 && payload.ratio < 1", True),
        ("payload.count == 3.0", True),
        ("!payload.flag || not true", False),
        ("!(payload.count == 3)", False),
        ("payload.missing?.deeper", None),
        ('metadata["x-source"][0]', "test"),
        ("[1, 'a', nil, false]", [1, "a", None, False]),
        ("payload.version == 4", False),  # a string is not a number
        ('"a" < "b"', True),
        ('"a\\"b\\u00e9\\n"', 'a"b\u00e9\n'),
    ],
)
def test_values(source: str, expected: Any) -> None:
    assert ev(source) == expected


def test_and_or_stop_at_the_deciding_operand() -> None:
    """The FIELD-NOTES pattern: the discriminator first keeps foreign payloads away from payload.*."""
    selector = compile_expression(alerts_binding.SELECTOR)
    assert selector.evaluate_bool({"discriminator": "github", "payload": ["not", "a", "map"]}) is False
    assert compile_expression("true || payload.a.b.c").evaluate_bool({"payload": {}}) is True
    with pytest.raises(ExprError, match=r"cannot fetch \.b from nil"):
        compile_expression("payload.a.b").evaluate({"payload": {}})


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("len(payload)", "unknown name 'len'"),
        ("payload.items()", "function calls"),
        ("payload.a + 1", "'\\+'"),
        ("payload.a ? 1 : 2", "'\\?'"),
        ('payload.a matches "x"', "'matches' is not supported"),
        ("env.HOME", "unknown name 'env'"),
        ("-1", "outside the supported subset"),
        ("(payload.a", "expected '\\)'"),
        ("payload.", "field name"),
        ('"unterminated', "outside the supported subset"),
        ('"\\q"', "unknown escape"),
        ("", "empty expression"),
        ("payload == 1 payload", "expected an operator"),
        ("(" * 60 + "true" + ")" * 60, "deeper than"),
        ("x" * 3000, "longer than"),
    ],
)
def test_outside_the_subset_is_refused_at_compile_time(source: str, error: str) -> None:
    with pytest.raises(ExprError, match=error) as info:
        compile_expression(source)
    assert isinstance(info.value, UsageError)


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("payload.count && true", "needs bools"),
        ('payload.alerts["x"]', "whole number"),
        ("payload.alerts[5]", "out of range"),
        ("payload.version.major", "from a string"),
        ('"a" in "abc"', "array or a map"),
        ('payload.count < "4"', "cannot compare"),
        ("!payload.count", "needs bools"),
    ],
)
def test_errors_on_an_event(source: str, error: str) -> None:
    with pytest.raises(ExprError, match=error):
        ev(source)


def test_evaluate_bool_refuses_a_non_bool() -> None:
    with pytest.raises(ExprError, match="not a bool"):
        compile_expression("payload.version").evaluate_bool(ENV)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("plain", "plain"),
        ('with "quotes"', 'with \\"quotes\\"'),  # Argo keeps JSON's escapes inside a string
        ("a<b&c", "a<b&c"),
        (None, "null"),
        (True, "true"),
        (3, "3"),
        (2.0, "2"),
        (0.25, "0.25"),
        ({"b": "2", "a": "1"}, '{"a":"1","b":"2"}'),
        (["x", 1], '["x",1]'),
    ],
)
def test_argo_string(value: Any, text: str) -> None:
    assert argo_string(value) == text


def test_every_rendered_binding_expression_is_inside_the_subset() -> None:
    from pathlib import Path

    doc = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "manifests/argo/research-platform-alerts.yaml").read_text()
    )
    assert compile_expression(doc["spec"]["event"]["selector"]).source == alerts_binding.SELECTOR
    for p in doc["spec"]["submit"]["arguments"]["parameters"]:
        compile_expression(p["valueFrom"]["event"])
