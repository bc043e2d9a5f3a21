"""rpops.rules: correct results, the public interface, budgets, caching and table-style rules.

The escape and exhaustion corpus lives in test_rules_payloads.py.
"""

from __future__ import annotations

import enum
import math
import threading
import types
from collections import namedtuple
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from rpops.core.errors import UsageError
from rpops.rules import (
    BUILTIN_NAMES,
    DEFAULT_LIMITS,
    CompiledRule,
    Limits,
    RuleError,
    compile_rule,
    evaluate,
)


@dataclass(frozen=True)
class Observation:
    cpu: float
    p95_ms: float
    region: str

    def describe(self) -> str:
        return f"{self.region}: {self.cpu}"


class Status(enum.StrEnum):
    OK = "ok"
    DEGRADED = "degraded"


Point = namedtuple("Point", "x y")

NAMES: dict[str, Any] = {
    "cpu": 0.95,
    "p95_ms": 2500.0,
    "count": 7,
    "region": "eu-west",
    "regions": ["eu-west", "us-east"],
    "xs": [3, 1, 4, 1, 5, 9, 2, 6],
    "rows": [
        {"name": "a", "p95": 120.0, "region": "eu-west"},
        {"name": "b", "p95": 2400.0, "region": "us-east"},
        {"name": "c", "p95": 900.0, "region": "eu-west"},
    ],
    "d": {"a": 1, "b": {"c": 2}},
    "message": "ERROR: upstream timed out",
    "missing": None,
    "nan": float("nan"),
    "obs": Observation(cpu=0.5, p95_ms=300.0, region="us-east"),
    "status": Status.DEGRADED,
    "point": Point(1, 2),
}

# (rule, expected value) over NAMES.
RESULTS: list[tuple[str, Any]] = [
    # comparisons and boolean logic
    ("cpu > 0.9 and p95_ms > 2000", True),
    ("cpu > 0.99 or p95_ms < 100", False),
    ("0 < cpu <= 1", True),
    ("not (count == 7)", False),
    ("count != 7 or region == 'eu-west'", True),
    ("nan > 1 or nan <= 1", False),
    # arithmetic
    ("(count + 3) * 2 - 1", 19),
    ("count / 2", 3.5),
    ("count // 2", 3),
    ("count % 4", 3),
    ("2 ** 10", 1024),
    ("count ** 2", 49),
    ("2 ** -1", 0.5),
    ("-count", -7),
    ("~count", -8),
    ("+count", 7),
    ("count << 3", 56),
    ("count >> 1", 3),
    ("count & 3 | 8 ^ 1", 11),
    ("10 ** 100 // 10 ** 99", 10),
    ("2 ** 1000 > 10 ** 300", True),
    ("cpu * 100", 95.0),
    ("-(-count)", 7),
    # conditional and None handling
    ("missing is None", True),
    ("missing if missing is not None else 0", 0),
    ("(missing or 0) + 1", 1),
    ("'high' if cpu > 0.9 else 'ok'", "high"),
    # containers
    ("d['a']", 1),
    ("d['b']['c']", 2),
    ("d.get('zzz', 0)", 0),
    ("xs[0] + xs[-1]", 9),
    ("xs[1:3]", [1, 4]),
    ("xs[::-1][0]", 6),
    ("message[:5]", "ERROR"),
    ("sorted(d.keys())", ["a", "b"]),
    ("list(d.values())[0]", 1),
    ("[k for k, v in d.items() if v == 1]", ["a"]),
    ("region in regions", True),
    ("'ap-south' not in regions", True),
    ("region in ('eu-west', 'us-east')", True),
    ("'ERROR' in message", True),
    ("3 in range(10)", True),
    ("0.5 in range(10)", False),
    ("'a' in d", True),
    ("(1, 2) + (3,)", (1, 2, 3)),
    ("[1, 2] * 2", [1, 2, 1, 2]),
    ("{1, 2} | {3}", {1, 2, 3}),
    ("{1, 2} & {2, 3}", {2}),
    ("{1, 2} - {2}", {1}),
    ("{1, 2} ^ {2, 3}", {1, 3}),
    ("{'a': 1} | {'b': 2}", {"a": 1, "b": 2}),
    ("d.keys() - {'a'}", {"b"}),
    # comprehensions over the caller's names (nested scopes see them)
    ("[r['name'] for r in rows if r['p95'] > 1000]", ["b"]),
    ("[r['name'] for r in rows if r['region'] == region]", ["a", "c"]),
    ("{r['name']: r['p95'] * 2 for r in rows}", {"a": 240.0, "b": 4800.0, "c": 1800.0}),
    ("{r['region'] for r in rows}", {"eu-west", "us-east"}),
    ("sum(r['p95'] for r in rows) / len(rows)", 1140.0),
    ("[x * y for x in range(3) for y in range(3) if x != y]", [0, 0, 0, 2, 0, 2]),
    ("[[y for y in range(x)] for x in range(3)]", [[], [0], [0, 1]]),
    ("any(r['p95'] > 2000 for r in rows)", True),
    ("all(r['p95'] > 100 for r in rows)", True),
    ("max(rows, key=lambda r: r['p95'])['name']", "b"),
    ("sorted(rows, key=lambda r: -r['p95'])[0]['name']", "b"),
    ("(lambda a, b=2, *rest, k=3, **kw: a + b + k + len(rest) + len(kw))(1)", 6),
    # builtins
    ("min(xs)", 1),
    ("max(xs)", 9),
    ("min(3, 2, 5)", 2),
    ("max([], default=-1)", -1),
    ("abs(-count)", 7),
    ("round(cpu, 2)", 0.95),
    ("round(2.567, 2)", 2.57),
    ("round(1234, -2)", 1200),
    ("round(5, -10**9)", 0),
    ("round(2.5)", 2),
    ("len(xs)", 8),
    ("sum(xs)", 31),
    ("sum([[1], [2]], [])", [1, 2]),
    ("sum([0.5, 0.25], 1)", 1.75),
    ("int('42') + int(3.9)", 45),
    ("float('1.5') * 2", 3.0),
    ("str(count) + '!'", "7!"),
    ("str([1, 'a'])", "[1, 'a']"),
    ("str(b'ab', 'ascii')", "ab"),
    ("bool(xs) and not bool([])", True),
    ("list(range(3))", [0, 1, 2]),
    ("list('ab')", ["a", "b"]),
    ("tuple(xs[:2])", (3, 1)),
    ("set('aab')", {"a", "b"}),
    ("dict(a=1)", {"a": 1}),
    ("dict([('a', 1)])", {"a": 1}),
    ("dict(d)['a']", 1),
    ("sorted(xs)", [1, 1, 2, 3, 4, 5, 6, 9]),
    ("sorted(xs, reverse=True)[:2]", [9, 6]),
    ("list(zip('ab', range(2)))", [("a", 0), ("b", 1)]),
    ("list(enumerate('ab', 1))", [(1, "a"), (2, "b")]),
    ("range(10)[2]", 2),
    ("list(range(10)[::3])", [0, 3, 6, 9]),
    # strings and formatting
    ("message.lower().startswith('error')", True),
    ("message.split(':')[0]", "ERROR"),
    ("' x '.strip()", "x"),
    ("'-'.join(str(x) for x in xs[:3])", "3-1-4"),
    ("'ab'.replace('b', 'c')", "ac"),
    ("'7'.zfill(3)", "007"),
    ("'a'.center(5, '*')", "**a**"),
    ("'a\\tb'.expandtabs(4)", "a   b"),
    ("'Error'.upper()", "ERROR"),
    ("'ab' * 3", "ababab"),
    ("3 * 'ab'", "ababab"),
    ("f'{cpu:.1%} at {p95_ms:,.0f} ms'", "95.0% at 2,500 ms"),
    ("f'{region!r:>12}'", "   'eu-west'"),
    ("f'{xs[:2]}'", "[3, 1]"),
    ("f'{count:{count}d}'", "      7"),
    ("'%s=%05.1f' % ('cpu', cpu)", "cpu=000.9"),
    ("'%(n)s!' % {'n': count}", "7!"),
    ("'%d%%' % 50", "50%"),
    # attributes of the caller's values
    ("obs.cpu < 0.9 and obs.region == 'us-east'", True),
    ("point.x + point.y", 3),
    ("point.count(1)", 1),
    ("status.value", "degraded"),
    ("status.name", "DEGRADED"),
    ("status == 'degraded'", True),
    ("count.bit_length()", 3),
    ("cpu.is_integer()", False),
    ("(1 + 2j).imag", 2.0),
    ("range(2, 9, 3).step", 3),
    ("b'abc'.decode()", "abc"),
    ("{1}.issubset({1, 2})", True),
]


@pytest.mark.parametrize(("source", "expected"), RESULTS, ids=[source for source, _ in RESULTS])
def test_results(source: str, expected: Any) -> None:
    result = evaluate(source, NAMES)
    assert result == expected
    assert type(result) is type(expected)


def test_compiled_rule_evaluates_against_different_names() -> None:
    rule = compile_rule("cpu > 0.9 and p95_ms > 2000")
    assert isinstance(rule, CompiledRule)
    assert rule.evaluate({"cpu": 0.95, "p95_ms": 2500}) is True
    assert rule.evaluate({"cpu": 0.5, "p95_ms": 2500}) is False
    assert rule.evaluate({"cpu": 0.95, "p95_ms": 10}) is False


def test_rule_reports_the_names_it_reads() -> None:
    rule = compile_rule("[r['p95'] for r in rows if r['p95'] > limit] and max(xs) > 1 and obs.cpu")
    assert rule.names == frozenset({"rows", "limit", "xs", "obs"})
    assert "max" in BUILTIN_NAMES and "sorted" in BUILTIN_NAMES


def test_names_may_be_any_mapping() -> None:
    class Signals(Mapping[str, Any]):
        def __init__(self, data: dict[str, Any]) -> None:
            self._data = data

        def __getitem__(self, key: str) -> Any:
            return self._data[key]

        def __iter__(self) -> Iterator[str]:
            return iter(self._data)

        def __len__(self) -> int:
            return len(self._data)

    proxy = types.MappingProxyType({"cpu": 0.95, "xs": [1, 2]})
    assert evaluate("cpu > 0.9", proxy) is True
    assert evaluate("config.get('cpu') == 0.95 and list(config.keys()) == ['cpu', 'xs']",
                    {"config": proxy}) is True
    assert evaluate("signals.get('cpu') > 0.9 and sorted(signals.keys())[0] == 'cpu'",
                    {"signals": Signals({"cpu": 0.95})}) is True
    assert evaluate("[x * cpu for x in xs]", proxy) == [0.95, 1.9]
    assert evaluate("cpu > 0.9 and sum(x for x in xs) == 3", Signals({"cpu": 0.95, "xs": [1, 2]})) is True


def test_names_default_to_none() -> None:
    assert evaluate("1 + 1") == 2
    assert evaluate("[x for x in range(3)]", None) == [0, 1, 2]


def test_rules_do_not_change_the_callers_names() -> None:
    names = {"xs": [3, 1, 2], "d": {"a": 1}}
    evaluate("sorted(xs) and [x for x in xs] and dict(d) and d.copy()", names)
    assert names == {"xs": [3, 1, 2], "d": {"a": 1}}


@pytest.mark.parametrize("source", [
    "d.update(a=2)", "d.setdefault('b', 1)", "d.pop('a')", "d.clear()", "xs.append(1)",
    "xs.sort()", "xs.extend([1])", "xs.reverse()", "xs.pop()", "s.add(1)", "s.discard(1)",
])
def test_mutating_methods_are_refused_and_change_nothing(source: str) -> None:
    names = {"d": {"a": 1}, "xs": [1, 2], "s": {1}}
    with pytest.raises(RuleError, match="is not available in rules"):
        evaluate(source, names)
    assert names == {"d": {"a": 1}, "xs": [1, 2], "s": {1}}


def test_rule_error_is_a_usage_error_with_exit_code_2() -> None:
    with pytest.raises(RuleError) as caught:
        evaluate("1 +")
    assert isinstance(caught.value, UsageError)
    assert caught.value.exit_code == 2
    assert "'1 +'" in str(caught.value) and "not a valid expression" in str(caught.value)


@pytest.mark.parametrize(("source", "names", "fragment"), [
    ("1 / 0", {}, "failed: ZeroDivisionError: division by zero"),
    ("unknown > 1", {}, "failed: NameError: name 'unknown' is not defined"),
    ("d['zzz']", {"d": {}}, "failed: KeyError: 'zzz'"),
    ("xs[10]", {"xs": []}, "failed: IndexError"),
    ("'a' + 1", {}, "failed: TypeError"),
    ("x > 1", {"x": None}, "failed: TypeError"),
    ("int('x')", {}, "failed: ValueError"),
    ("max([])", {}, "failed: ValueError"),
    ("obs.nothing", {"obs": Observation(1, 1, "r")}, "failed: AttributeError"),
    ("float('1e999') * 0 == 1", {}, None),
])
def test_evaluation_failures_are_rule_errors(source: str, names: dict[str, Any],
                                             fragment: str | None) -> None:
    if fragment is None:  # nan comparisons are ordinary values, not failures
        assert evaluate(source, names) is False
        return
    with pytest.raises(RuleError) as caught:
        evaluate(source, names)
    assert fragment in str(caught.value)
    assert repr(source) in str(caught.value)


def test_names_that_are_not_a_mapping_are_refused() -> None:
    for names in ([1, 2], "cpu", 3):
        with pytest.raises(RuleError, match="names must be a mapping"):
            evaluate("cpu > 1", names)  # type: ignore[arg-type]
        with pytest.raises(RuleError, match="names must be a mapping"):
            evaluate("[x for x in cpu]", names)  # type: ignore[arg-type]


def test_source_must_be_a_string() -> None:
    for source in (None, 1, b"cpu > 1", ["cpu"]):
        with pytest.raises(RuleError, match="a rule must be a string"):
            evaluate(source)  # type: ignore[arg-type]
        with pytest.raises(RuleError, match="a rule must be a string"):
            compile_rule(source)  # type: ignore[arg-type]


def test_str_subclass_source_is_compiled_as_plain_text() -> None:
    class Sneaky(str):
        def strip(self, *args: Any) -> str:
            return "__import__('os')"

    assert evaluate(Sneaky(" 1 + 1 ")) == 2


def test_surrounding_whitespace_and_line_breaks_are_accepted() -> None:
    assert evaluate("  cpu > 0.5\n", {"cpu": 1}) is True
    assert evaluate("(cpu > 0.5 and\n # a comment\n cpu < 2)", {"cpu": 1}) is True


def test_limits_validate_their_values() -> None:
    assert Limits() == DEFAULT_LIMITS
    for bad in ({"max_size": 0}, {"timeout_s": -1.0}, {"max_iterations": 1.5}, {"max_exponent": True},
                {"timeout_s": float("inf")}, {"max_ast_depth": "5"}):
        with pytest.raises(RuleError, match=f"Limits.{next(iter(bad))} must be a positive number"):
            Limits(**bad)
    with pytest.raises(RuleError, match="limits must be a rpops.rules.Limits"):
        compile_rule("1", limits={"max_size": 1})  # type: ignore[arg-type]


def test_custom_limits_apply() -> None:
    small = Limits(max_iterations=10, max_size=20, max_exponent=8, max_int_bits=100)
    syntax = Limits(max_source_chars=30, max_ast_nodes=5, max_ast_depth=3)
    assert evaluate("[x for x in range(10)]", limits=small) == list(range(10))
    with pytest.raises(RuleError, match="max_iterations 10"):
        evaluate("[x for x in range(11)]", limits=small)
    with pytest.raises(RuleError, match="max_iterations 10"):
        evaluate("sum(range(11))", limits=small)
    with pytest.raises(RuleError, match="max_size 20"):
        evaluate("'a' * 21", limits=small)
    assert evaluate("2 ** 8", limits=small) == 256
    with pytest.raises(RuleError, match="max_exponent 8"):
        evaluate("2 ** 9", limits=small)
    with pytest.raises(RuleError, match="max_int_bits 100"):
        evaluate("x * x", {"x": 2**60}, limits=small)
    with pytest.raises(RuleError, match="max_source_chars 30"):
        evaluate("1" + " + 1" * 10, limits=syntax)
    with pytest.raises(RuleError, match="max_ast_nodes 5"):
        evaluate("[1, 2, 3, 4, 5]", limits=syntax)
    with pytest.raises(RuleError, match="max_ast_depth 3"):
        evaluate("-(-(-(-x)))", limits=syntax)
    assert evaluate("-(-x)", {"x": 1}, limits=syntax) == 1
    # The same source under the default limits is not affected by the small ones.
    assert len(evaluate("[x for x in range(11)]")) == 11


def test_budgets_add_up_within_one_evaluation() -> None:
    limits = Limits(timeout_s=60)  # a loaded machine must not turn this into a time-limit test
    one = "sum(1 for _ in range(600000))"
    assert evaluate(one, limits=limits) == 600000
    with pytest.raises(RuleError, match="max_iterations"):
        evaluate(f"{one} + {one}", limits=limits)
    half = "len('a' * 600000)"
    assert evaluate(half, limits=limits) == 600000
    with pytest.raises(RuleError, match="max_size"):
        evaluate(f"{half} + {half}", limits=limits)


def test_time_limit_stops_slow_evaluations() -> None:
    limits = Limits(timeout_s=0.05)
    with pytest.raises(RuleError, match="longer than timeout_s 0.05 s"):
        evaluate("[ys == ys for _ in range(10**6)]", {"ys": list(range(100_000))}, limits)
    with pytest.raises(RuleError, match="longer than timeout_s 0.05 s"):
        # no loop at all: each call of the lambda checks the clock
        evaluate("(lambda f: f(f))(lambda f: ys == ys and f(f))", {"ys": list(range(100_000))}, limits)


def test_loop_steps_grow_with_what_the_body_builds() -> None:
    limits = Limits(max_iterations=100)
    assert len(evaluate("[x for x in range(100)]", limits=limits)) == 100
    with pytest.raises(RuleError, match="max_iterations 100"):
        evaluate("[(x, x, x) for x in range(100)]", limits=limits)  # 4 steps per item
    assert len(evaluate("[(x, x, x) for x in range(25)]", limits=limits)) == 25


def test_each_evaluation_has_its_own_budget_across_threads() -> None:
    limits = Limits(timeout_s=60)  # threads share the GIL: only the step budget is under test
    source = "sum(1 for _ in range(600000))"
    results: list[Any] = []

    def run() -> None:
        try:
            results.append(evaluate(source, limits=limits))
        except RuleError as exc:
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [600000, 600000, 600000]


def test_a_rule_evaluated_inside_another_has_its_own_budget() -> None:
    limits = Limits(timeout_s=60)  # the inner evaluation's time counts in the outer's: steps are under test

    def inner() -> Any:
        return evaluate("sum(1 for _ in range(900000))", limits=limits)

    assert evaluate("inner() + sum(1 for _ in range(900000))", {"inner": inner}, limits) == 1_800_000


def test_compiled_rules_are_cached_by_source_and_limits() -> None:
    first = compile_rule("count > 1 and cpu < 2")
    assert compile_rule("count > 1 and cpu < 2") is first
    assert compile_rule("count > 1 and cpu < 2", DEFAULT_LIMITS) is first
    custom = compile_rule("count > 1 and cpu < 2", Limits(max_size=10))
    assert custom is not first
    assert custom.limits == Limits(max_size=10)
    assert compile_rule("count > 1 and cpu < 2", Limits(max_size=10)) is custom


def test_the_cache_is_bounded() -> None:
    first = compile_rule("count > -1")
    for i in range(1100):
        compile_rule(f"count > {i}")
    assert compile_rule("count > -1") is not first
    assert compile_rule("count > -1").evaluate({"count": 0}) is True


def test_refused_rules_are_refused_every_time() -> None:
    for _ in range(3):
        with pytest.raises(RuleError, match="max_exponent"):
            evaluate("9 ** 9 ** 9")


# --- classification rules: ordered (status, expression), first match wins ---------------------

CLASSIFICATION = [
    ("unhealthy", "unreachable > 0 or error_rate >= 0.5"),
    ("overloaded", "cpu_percent >= thresholds['cpu_critical'] or p95_ms >= thresholds['p95_critical']"),
    ("degraded", "p95_ms >= thresholds['p95_acceptable'] or any(e > 0.05 for e in error_rates)"),
    ("healthy", "True"),
]
THRESHOLDS = {"cpu_critical": 90, "p95_critical": 2000, "p95_acceptable": 1000}


def classify(observation: dict[str, Any]) -> str:
    names = {"thresholds": THRESHOLDS, **observation}
    for status, expression in CLASSIFICATION:
        if evaluate(expression, names):
            return status
    raise AssertionError("the last rule always matches")


def signals(unreachable: int = 0, error_rate: float = 0.0, cpu_percent: float = 10, p95_ms: float = 100,
            error_rates: tuple[float, ...] = ()) -> dict[str, Any]:
    return {"unreachable": unreachable, "error_rate": error_rate, "cpu_percent": cpu_percent,
            "p95_ms": p95_ms, "error_rates": list(error_rates)}


@pytest.mark.parametrize(("observation", "status"), [
    (signals(unreachable=1), "unhealthy"),
    (signals(error_rate=0.6, cpu_percent=95), "unhealthy"),
    (signals(cpu_percent=95), "overloaded"),
    (signals(p95_ms=2500), "overloaded"),
    (signals(p95_ms=1500), "degraded"),
    (signals(error_rates=(0.1,)), "degraded"),
    (signals(error_rates=(0.01,)), "healthy"),
    (signals(cpu_percent=math.nan, p95_ms=math.nan), "healthy"),
])
def test_classification_rules_first_match_wins(observation: dict[str, Any], status: str) -> None:
    assert classify(observation) == status


def test_classification_rule_that_fails_names_itself() -> None:
    with pytest.raises(RuleError, match="cpu_percent >= thresholds") as caught:
        classify(signals(cpu_percent="high"))  # type: ignore[arg-type]
    assert "TypeError" in str(caught.value)
