"""`when` (govaluate subset), `depends`, and the expr-lang subset of retry expressions."""

from __future__ import annotations

import pytest
from rpops.local.expr import exprlang
from rpops.local.expr.expressions import ExpressionError, evaluate_when, parse_depends

WHEN_TRUE_FALSE = [
    ("healthy == healthy", True),
    ("healthy == unhealthy", False),
    ("healthy != unhealthy", True),
    ("'healthy' == healthy", True),
    ("\"a b\" == 'a b'", True),
    ("5 > 3", True),
    ("5 >= 5", True),
    ("2.5 < 10", True),  # numbers compare as numbers ...
    ("10 <= 9", False),
    ("'10' < '9'", True),  # ... strings as strings
    ("b > a", True),
    ("5 == '5'", False),  # different types are never equal (govaluate's DeepEqual)
    ("true", True),
    ("false || true", True),
    ("true && false", False),
    ("!false", True),
    ("!(1 == 1)", False),
    ("(a == a && b == c) || 1 < 2", True),
    ("a == a && (b == c || 1 > 2)", False),
    ("-1 < 0", True),
    ("v1.2.3 == v1.2.3", True),  # dots belong to bare words
    ("'v1.2.3' =~ '^v1\\\\.'", True),
    ("'v2.0' =~ '^v1'", False),
    ("'v2.0' !~ '^v1'", True),
    ("'eu-west-1' =~ 'west'", True),  # unanchored, as Go's regexp.MatchString
    ("true == true", True),
    ("unknown == unknown && 3 > 2.5", True),
]


@pytest.mark.parametrize(("text", "want"), WHEN_TRUE_FALSE, ids=[t for t, _ in WHEN_TRUE_FALSE])
def test_when(text: str, want: bool) -> None:
    assert evaluate_when(text) is want


WHEN_ERRORS = [
    ("", "empty expression"),
    ("a ==", "a value was expected"),
    ("(a == a", "missing ')'"),
    ("a == a)", "unexpected ')'"),
    ("eu-west == eu-west", "quote values that contain '-'"),
    ("5 > abc", "cannot be compared"),
    ("1 + 1 == 2", "operator '+'"),
    ("a && b", "it is not a bool"),
    ("!a", "it is not a bool"),
    ("'unclosed == a", "unclosed quote"),
    ("5", "Expected boolean evaluation"),
    ("1.2.3 == 1", "invalid number"),
    ("x in (a, b)", "'in' operator is not supported"),
    ("'aaaa' =~ '(a+)+$'", "nested repetition"),
    ("'ab' =~ '(ab|cd)*'", "alternation inside a repetition"),
    ("'a' =~ '(?=a)'", "lookarounds"),
    ("'a' =~ '('", "invalid regular expression"),
    ("'a' =~ '" + "a" * 300 + "'", "longer than 256"),
    ("a == b ; c", "invalid character"),
]


@pytest.mark.parametrize(("text", "needle"), WHEN_ERRORS, ids=[t[:30] for t, _ in WHEN_ERRORS])
def test_when_errors_say_why(text: str, needle: str) -> None:
    with pytest.raises(ExpressionError) as err:
        evaluate_when(text)
    assert needle in str(err.value)
    if text:
        assert f"'{text}'" in str(err.value)  # Argo names the expression


def test_when_short_circuits_like_govaluate() -> None:
    assert evaluate_when("false && (5 > abc)") is False
    assert evaluate_when("true || (5 > abc)") is True


def _no_continue(task: str) -> tuple[bool, bool]:
    return False, False


PHASES = {"a": "Succeeded", "b": "Failed", "c": "Error", "d": "Skipped", "e": "Omitted"}
RESULT_PHASE = {
    "Succeeded": "Succeeded",
    "Failed": "Failed",
    "Errored": "Error",
    "Skipped": "Skipped",
    "Omitted": "Omitted",
}


def _results(task: str, result: str) -> bool:
    return RESULT_PHASE.get(result) == PHASES[task]


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("a", True),  # bare name: Succeeded || Skipped || Daemoned
        ("d", True),
        ("b", False),
        ("e", False),  # omitted is not skipped
        ("a.Succeeded && b.Failed", True),
        ("c.Errored && d.Skipped && e.Omitted", True),
        ("b.Succeeded || c.Failed", False),
        ("!b.Succeeded", True),
        ("!(a.Succeeded || b.Succeeded)", False),
        ("(a.Failed || b.Failed) && (c.Errored || a.Failed)", True),
        ("a && !b", True),
        ("a.Daemoned", False),
    ],
)
def test_depends(text: str, want: bool) -> None:
    assert parse_depends(text, _no_continue).evaluate(_results) is want


def test_bare_names_expand_with_continue_on() -> None:
    expr = parse_depends("b && task-with-dash", lambda t: (True, False) if t == "b" else (False, True))
    assert expr.tasks == ("b", "task-with-dash")
    results = {("b", "Failed"): True, ("task-with-dash", "Errored"): True}
    assert expr.evaluate(lambda t, r: results.get((t, r), False)) is True


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("a.Completed", "Argo has no .Completed"),
        ("a.Finished", "task result 'Finished' for task 'a' is invalid"),
        ("a &&", "ends where a task was expected"),
        ("(a || b", "missing ')'"),
        ("a b", "unexpected 'b'"),
        ("", "depends is empty"),
        ("a | b", "invalid depends"),
    ],
)
def test_depends_errors(text: str, needle: str) -> None:
    with pytest.raises(ExpressionError) as err:
        parse_depends(text, _no_continue)
    assert needle in str(err.value)


RETRY_NAMES = {  # as Argo's buildRetryStrategyLocalScope builds them: every value a string
    "lastRetry.exitCode": "1",
    "lastRetry.status": "Failed",
    "lastRetry.duration": "3",
    "lastRetry.message": "Error (exit code 1)",
    "retries": "0",
}


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ('lastRetry.status == "Error" || lastRetry.exitCode not in ["1", "2"]', False),
        ('lastRetry.status == "Failed" && lastRetry.exitCode in ["1"]', True),
        ("lastRetry.exitCode == 1", False),  # a string is not a number, as in Argo ...
        ("asInt(lastRetry.exitCode) == 1", True),  # ... so Argo's docs convert it
        ("asInt(lastRetry.exitCode) > 1", False),
        ("asInt(lastRetry.duration) < 120 && asFloat(lastRetry.duration) >= 2.5", True),
        ("lastRetry.exitCode == '1'", True),
        ("not (lastRetry.status == 'Error')", True),
        ("lastRetry.message matches 'exit code [0-9]+'", True),
        ("lastRetry.message contains 'exit code' and lastRetry.status startsWith 'Fail'", True),
        ("lower(lastRetry.status) == 'failed' && len(split(lastRetry.message, ' ')) == 4", True),
        ("1 < 2 and 2 <= 2 or false", True),
        ("-1 < 0", True),
        ("asInt(retries) < 2 ? true : false", True),
        # the docs' example once {{inputs.parameters.safe-to-retry}} is substituted
        (
            'asInt(lastRetry.exitCode) > 0 && lastRetry.status != "Error" && asInt(lastRetry.duration) < 120 '
            "&& (true == true || lastRetry.message matches 'imminent node shutdown|pod deleted')",
            True,
        ),
    ],
)
def test_retry_expressions(text: str, want: bool) -> None:
    assert exprlang.evaluate_bool(text, RETRY_NAMES) is want


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("lastRetry.status ==", "expected a value"),
        ("lastRetry.status", "not a bool"),
        ("'a' < 1", "cannot compare"),
        ("1 in 2", "needs an array or a map"),
        ("asInt(lastRetry.message) > 1", "cannot convert"),
        ("__import__('os')", "function '__import__' is not supported"),
        ("sprig.env('HOME') == ''", "function 'sprig.env' is not supported"),
        ("lastRetry.status matches '(a+)+'", "nested repetition"),
    ],
)
def test_retry_expression_errors(text: str, needle: str) -> None:
    with pytest.raises(ExpressionError) as err:
        exprlang.evaluate_bool(text, RETRY_NAMES)
    assert needle in str(err.value)


def test_one_parser_for_bindings_retries_and_expression_tags() -> None:
    """The bindings' subset is the same parser with a narrower profile, not a second one."""
    from rpops.local.expr import eventexpr
    from rpops.local.expr.substitute import render

    assert eventexpr.compile_expression is not exprlang.compile_expression
    binding = eventexpr.compile_expression('payload.a == "x"')
    assert isinstance(binding, exprlang.Expression)
    with pytest.raises(exprlang.ExprError, match="function calls"):
        eventexpr.compile_expression("payload.a.b()")
    values = {"inputs.parameters.should-print": "true", "inputs.parameters.n": "4"}
    assert render("{{= inputs.parameters['should-print'] == 'true' }}", values) == "true"
    assert (
        render("{{=asInt(inputs.parameters.n) * 10}} / {{=asInt(inputs.parameters.n) / 8}}", values)
        == "40 / 0.5"
    )


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("jsonpath(doc, '$.a')", "1"),
        ("jsonpath(doc, '$.b.c[1]')", "y"),
        ("jsonpath(doc, '$.b.c[*]')", ["x", "y"]),
        ("jsonpath(doc, \"$['b']['c'][0]\")", "x"),
        ("toJson(fromJSON(doc).b)", '{"c":["x","y"]}'),
        ("string(1.0) + '/' + string(2)", "1/2"),
        ("steps['flip-coin'].outputs.result == 'heads' ? 'H' : 'T'", "T"),
        ("steps.x?.outputs ?? 'none'", "none"),
        ("7 % 3 + -7 % 3", 0),
    ],
)
def test_expression_values(text: str, want: object) -> None:
    values = {"doc": '{"a": "1", "b": {"c": ["x", "y"]}}', "steps.flip-coin.outputs.result": "tails"}
    assert exprlang.evaluate(text, values) == want


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("jsonpath(doc, '$.a[?(@.x > 1)]')", "only .name"),
        ("repeat('a', 10)", "function 'repeat' is not supported"),
        ("join(split(doc, ''), doc)", "over 1048576"),
        ("asInt('9' + '9') * 99999999999999999999", "overflow"),
        ("1 / 0", "division by zero"),
    ],
)
def test_expression_limits_and_refusals(text: str, needle: str) -> None:
    values = {"doc": "ab" * 600}
    with pytest.raises(ExpressionError) as err:
        exprlang.evaluate(text, values)
    assert needle in str(err.value)
