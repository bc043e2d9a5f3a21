"""Properties of the rules engine over random expressions and contexts (Hypothesis): every
outcome is a value or a RuleError, no message or text shows internals, and results that are
data encode as the service would send them (or are refused with a ResultError)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from rpops.rules import RuleError, evaluate
from rpops.workload.result_json import ResultError, encode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from property_strategies import CONTEXT, EXPRESSIONS, FAST, INTERNALS, JSON  # noqa: E402


def outcome(expression: str, context: dict[str, Any]) -> tuple[str, Any]:
    try:
        return "value", evaluate(expression, context)
    except RuleError as exc:  # the only exception the engine may raise
        return "refused", str(exc)


@FAST
@given(EXPRESSIONS, CONTEXT)
def test_random_expressions_give_a_value_or_a_rule_error(expression: str, context: dict[str, Any]) -> None:
    kind, value = outcome(expression, context)
    if kind == "refused":
        assert not INTERNALS.search(value), value
        return
    try:
        text = encode(value)
    except ResultError as exc:
        assert not INTERNALS.search(str(exc)), str(exc)
        return
    assert not INTERNALS.search(text), text
    assert json.loads(text) == json.loads(json.dumps(value, allow_nan=False))  # same as json's own


@FAST
@given(st.text(max_size=60), CONTEXT)
def test_any_text_gives_a_value_or_a_rule_error(expression: str, context: dict[str, Any]) -> None:
    kind, value = outcome(expression, context)
    if kind == "refused":
        assert not INTERNALS.search(value), value


@FAST
@given(EXPRESSIONS)
def test_the_engine_is_deterministic_over_its_cache(expression: str) -> None:
    """The cached compiled rule answers as the first evaluation did."""
    context = {"x": 3, "y": 0.5, "s": "ab", "xs": [1, 2], "d": {"a": 1}}
    first, second = outcome(expression, context), outcome(expression, context)
    assert first[0] == second[0]
    if first[0] == "value" and first[1] == first[1]:  # NaN is the one value unequal to itself
        assert type(first[1]) is type(second[1])


@FAST
@given(JSON)
def test_the_result_encoder_matches_json_dumps(value: Any) -> None:
    assert encode(value) == json.dumps(value, allow_nan=False, separators=(",", ":"))


@FAST
@given(JSON, st.integers(1, 400))
def test_the_result_encoder_never_passes_its_cap(value: Any, cap: int) -> None:
    full = json.dumps(value, allow_nan=False, separators=(",", ":"))
    try:
        text = encode(value, max_bytes=cap)
    except ResultError as exc:
        assert len(full) > cap and "larger than" in str(exc)
    else:
        assert text == full and len(text) <= cap
