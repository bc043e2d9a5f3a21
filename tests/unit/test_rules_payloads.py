"""rpops.rules against escape and exhaustion payloads: every one is refused with a RuleError
saying what was refused, nothing escapes as another exception, and the process keeps working."""

from __future__ import annotations

import json
import string
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from rpops.rules import Limits, RuleError, compile_rule, evaluate


class Liar(str):
    """A caller's str subclass that lies about its length and overrides methods."""

    def __len__(self) -> int:
        return 0

    def upper(self) -> str:
        return "overridden"

    def __format__(self, spec: str) -> str:
        return "x" * 3_000_000


class Gadget:
    """A caller's object with data and a method."""

    level = 3

    def reset(self) -> None:
        raise AssertionError("a rule must not be able to call this")


TEXT = "ab" * 1000
NAMES: dict[str, Any] = {
    "x": 10**100,
    "big": 2**4000,
    "d": {i: i for i in range(50)},
    # 300,000 items: one union charges 600,000 (under max_size), the second crosses it, after
    # milliseconds of work whatever the machine's speed or load
    "wide": dict.fromkeys(range(300_000), 0),
    "xs": list(range(1000)),
    "ys": list(range(100_000)),
    "s": "a" * 100_000,
    "text": TEXT,
    "nested": [[TEXT] * 1000] * 1000,
    "w": 10**9,
    "fmt": "%2000000000d",
    "liar": Liar("abc"),
    "gadget": Gadget(),
    "string": string,
    "gen": (i for i in range(3)),
}

# Refused when compiled: (id, source, what the message must say).
COMPILE_TIME: list[tuple[str, str, str]] = [
    # class traversal and private names
    ("subclasses", "().__class__.__bases__[0].__subclasses__()", "starts with '_'"),
    ("type-mro", "type(x).__mro__", "starts with '_'"),
    ("mro-method", "x.mro()", "'mro' is not available"),
    ("dunder-dict", "gadget.__dict__", "starts with '_'"),
    ("private-attr", "gadget._secret", "starts with '_'"),
    ("globals-of-builtin", "min.__self__", "starts with '_'"),
    ("import", "__import__('os')", "'__import__' starts with '_'"),
    ("builtins-name", "__builtins__", "starts with '_'"),
    ("private-name", "_x + 1", "'_x' starts with '_'"),
    # format-string traversal
    ("str-format", "'{0.__class__}'.format(1)", "'format' is not available"),
    ("format-map", "'{a.__class__}'.format_map({'a': 1})", "'format_map' is not available"),
    ("formatter", "string.Formatter().format('{0.__class__}', 1)", "'format' is not available"),
    # generator frames and methods
    ("gi-frame", "(v for v in []).gi_frame.f_back.f_globals", "is not available"),
    ("gi-code", "(v for v in []).gi_code", "'gi_code' is not available"),
    ("gi-yieldfrom", "gen.gi_yieldfrom", "'gi_yieldfrom' is not available"),
    ("throw", "(v for v in [1]).throw(SystemExit)", "'throw' is not available"),
    ("send", "gen.send(None)", "'send' is not available"),
    # guard names shadowed through parameters and assignment expressions
    ("posonly-guard", "(lambda _getattr_, /: _getattr_)(1)", "'_getattr_' starts with '_'"),
    ("kwonly-guard", "(lambda *, _getiter_=1: 1)()", "'_getiter_' starts with '_'"),
    ("vararg-guard", "(lambda *_getitem_: 1)()", "'_getitem_' starts with '_'"),
    ("kwarg-guard", "(lambda **_write_: 1)()", "'_write_' starts with '_'"),
    ("walrus-guard", "(_getiter_ := iter)", "(:=) are not allowed"),
    ("walrus-in-comprehension", "[(_getattr_ := 1) for v in [1]]", "(:=) are not allowed"),
    ("walrus", "(y := 5) > 1", "(:=) are not allowed"),
    ("keyword-guard", "sorted(xs, _key=1)", "keyword argument '_key' starts with '_'"),
    ("comprehension-target-guard", "[1 for _getiter_ in xs]", "'_getiter_' starts with '_'"),
    # statements: a rule is one expression
    ("try-star", "try:\n    pass\nexcept* ValueError:\n    pass", "statements (TryStar)"),
    ("try", "try:\n    x\nexcept Exception:\n    pass", "statements (Try)"),
    ("assign", "x = 1", "statements (Assign)"),
    ("aug-assign", "x += 1", "statements (AugAssign)"),
    ("import-statement", "import os", "statements (Import)"),
    ("import-from", "from os import path", "statements (ImportFrom)"),
    ("def", "def f():\n    pass", "statements (FunctionDef)"),
    ("class", "class A:\n    pass", "statements (ClassDef)"),
    ("for", "for v in xs:\n    pass", "statements (For)"),
    ("while", "while True:\n    pass", "statements (While)"),
    ("with", "with gadget as g:\n    pass", "statements (With)"),
    ("raise", "raise SystemExit", "statements (Raise)"),
    ("assert", "assert False", "statements (Assert)"),
    ("delete", "del x", "statements (Delete)"),
    ("global", "global x", "statements (Global)"),
    ("pass", "pass", "statements (Pass)"),
    ("two-expressions", "1\n2", "not several lines"),
    ("semicolon", "1; x = 2", "statements (Assign)"),
    # forbidden calls and forms
    ("exec", "exec('1')", "Exec calls are not allowed"),
    ("eval", "eval('1')", "Eval calls are not allowed"),
    ("print", "print(1)", "'print' is not available"),
    ("printed", "printed", "'printed' is not available"),
    ("breakpoint", "breakpoint()", "'breakpoint' is not available"),
    ("starred-call", "max(*xs)", "starred expressions"),
    ("starred-list", "[*xs]", "starred expressions"),
    ("dict-unpack", "{**d}", "**mapping unpacking"),
    ("kwargs-unpack", "dict(**d)", "**keyword unpacking"),
    ("yield", "(lambda: (yield))()", "yield is not allowed"),
    ("yield-from", "(lambda: (yield from xs))()", "yield is not allowed"),
    ("async-comprehension", "[v async for v in xs]", "refused"),
    ("await", "await x", "refused"),
    ("matmul", "x @ x", "@ operator"),
    ("attribute-target", "[1 for gadget.level in xs]", "comprehension targets must be plain names"),
    ("item-target", "[1 for d[0] in xs]", "comprehension targets must be plain names"),
    ("chained-in", "1 < x in xs", "chained comparisons with 'in'"),
    ("null-byte", "1\x00", "refused"),
    ("empty", "   ", "the rule is empty"),
    ("syntax", "x +* 2", "not a valid expression"),
    # exhaustion visible in the source
    ("pow-tower", "9**9**9", "max_exponent"),
    ("huge-pow", "2**10000", "max_exponent"),
    ("huge-product", "10**1000 * 10**1000", "max_int_bits"),
    ("huge-shift", "1 << 10**9", "max_int_bits"),
    ("str-repeat", "'a'*2**34", "max_size"),
    ("percent-width-constant", "'%2000000000d' % 1", "%-formatting would build"),
    ("bytes-repeat", "b'a'*2**34", "max_size"),
    ("long-source", "x + " * 600 + "x", "max_source_chars"),
    ("100k-terms", "+".join(["1"] * 100_000), "max_source_chars"),
    ("many-nodes", "[" + "x, " * 600 + "]", "max_ast_nodes"),
    ("deep-unary", "-" * 60 + "x", "max_ast_depth"),
    ("deep-lists", "[" * 60 + "]" * 60, "max_ast_depth"),
    ("deep-parens", "(" * 300 + "1" + ")" * 300, "too many nested parentheses"),
    ("deep-unary-max-source", "-" * 1999 + "1", "max_ast_depth"),
]

# Refused when evaluated over NAMES: (id, source, regular expression the message must match).
EVALUATION: list[tuple[str, str, str]] = [
    ("list-repeat", "[0]*2**32", "max_size"),
    ("tuple-repeat", "(0,)*2**40", "max_size"),
    ("fstring-width", "f'{1:>{2**33}}'", "format width/precision 8589934592"),
    ("fstring-width-name", "f'{1:>{w}}'", "format width/precision 1000000000"),
    ("fstring-precision", "f'{1.5:.{w}f}'", "format width/precision"),
    ("percent-star", "'%*d' % (2**33, 1)", "'\\*' widths and precisions"),
    ("percent-width", "fmt % 1", "%-formatting would build"),
    ("percent-many", "'%s' * 1000 % tuple([text] * 1000)", "%-formatting would build"),
    ("percent-nested", "'%s' % (nested,)", "converting a list to text"),
    ("range-huge", "[v for v in range(10**12)]", "range\\(\\) of 1,000,000,000,000 items"),
    ("range-sum", "sum(v*v for v in range(10**9))", "range\\(\\) of 1,000,000,000 items"),
    ("nested-loops", "[[a*b for a in range(10**4)] for b in range(10**4)]", "max_iterations|timeout_s"),
    ("nested-generator", "sum(a*b for a in range(5000) for b in range(5000))", "max_iterations|timeout_s"),
    ("moderate-products", "[t*1000 for t in ['a'*1000]*1000]", "max_size"),
    ("repeated-copies", "[s[1:] for _ in range(10000)]", "max_size"),
    ("repeated-upper", "[s.upper() for _ in range(10000)]", "max_size"),
    ("repeated-split", "[s.split('a') for _ in range(10000)]", "max_size"),
    ("repeated-concat", "[s + s for _ in range(10000)]", "max_size"),
    ("repeated-fstring", "[f'{s}!' for _ in range(10000)]", "max_size"),
    # sizes add up over iterations: the second union of a large mapping is refused by size
    ("repeated-set-union", "[wide | wide for _ in range(10**6)]", "max_size"),
    # 20,000 small unions reach max_size after tens of milliseconds; on a loaded machine the time
    # budget may stop them first, and either limit is a correct refusal
    ("many-small-set-unions", "[d | d for _ in range(10**6)]", "max_size|timeout_s"),
    ("repeated-negation", "[-big for _ in range(10**6)]", "max_size"),
    ("wide-display", "[[v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v] for v in range(10**6)]",
     "max_iterations"),
    ("ljust", "'x'.ljust(2**40)", "max_size"),
    ("zfill", "'1'.zfill(w)", "max_size"),
    ("replace", "text.replace('', text)", "max_size"),
    ("join", "''.join([text] * 1000)", "max_size"),
    ("expandtabs", "('\\t' * 1000).expandtabs(10**6)", "max_size"),
    ("str-of-shared", "str(nested)", "converting a list to text"),
    ("repr-of-shared", "f'{nested!r}'", "converting a list to text"),
    ("sum-of-lists", "sum([[1] * 1000] * 1000, [])", "max_size"),
    ("sorted-huge", "sorted(range(10**6), key=lambda v: -v)", "max_iterations|timeout_s"),
    ("big-power", "x ** 1000", "max_int_bits"),
    ("big-product", "big * big", "max_int_bits"),
    ("big-int-parse", "int('9' * 4000)", "max_int_bits"),
    ("long-int-text", "int('1' * 6000)", "int\\(\\) of a text of 6,000 characters"),
    ("big-range-items", "list(range(big, big + 10**6))", "range\\(\\) bounds must lie between"),
    ("huge-range-length", "range(-2**62, 2**62)", "range\\(\\) of 9,223,372,036,854,775,808 items"),
    ("big-enumerate-items", "list(enumerate(ys, big))", "start of enumerate\\(\\) must lie between"),
    ("recursion", "(lambda f: f(f))(lambda f: f(f))", "recursion too deep"),
    ("exponential-calls", "(lambda f, n: f(f, n))(lambda f, n: n and f(f, n-1) + f(f, n-1), 40)",
     "max_iterations|timeout_s"),
    ("call-tree", "(lambda f: f(f, 30))(lambda f, n: [f(f, n-1), f(f, n-1)] if n else 0)",
     "max_iterations|timeout_s"),
    ("linear-compares", "[ys == ys for _ in range(10**6)]", "timeout_s"),
    ("float-in-range", "[0.5 in range(10**6) for _ in range(10**6)]", "timeout_s"),
    # attributes outside the allow-list
    ("dict-fromkeys", "{}.fromkeys(range(10))", "dict.fromkeys is not available"),
    ("list-append", "[].append(1)", "list.append is not available"),
    ("function-attribute", "len.x", "builtin_function_or_method objects"),
    ("lambda-attribute", "(lambda: 1).x", "function objects"),
    ("generator-close", "gen.close()", "generator objects"),
    ("module-attribute", "string.Formatter", "module objects"),
    ("caller-method", "gadget.reset()", "is a method or class"),
    ("none-attribute", "None.x", "NoneType.x is not available"),
    ("str-translate", "s.translate({97: s})", "str.translate is not available"),
    ("str-encode-into-bytes-methods", "'a'.encode().hex()", "bytes.hex is not available"),
    # a caller's str subclass cannot lie its way past the checks
    ("liar-repeat", "liar * 10**9", "max_size"),
    ("liar-concat", "[liar + s for _ in range(100)]", "max_size"),
    ("liar-format-output", "f'{liar}'", "max_size"),
    # rule-made functions and generators are not values
    ("generator-result", "(v for v in xs)", "function or generator"),
    ("lambda-result", "lambda: 1", "function or generator"),
]

ALL = [(f"compile-{name}", source, fragment) for name, source, fragment in COMPILE_TIME] + \
      [(f"evaluate-{name}", source, pattern) for name, source, pattern in EVALUATION]


@pytest.mark.parametrize(("source", "fragment"), [(s, f) for _, s, f in COMPILE_TIME],
                         ids=[name for name, _, _ in COMPILE_TIME])
def test_refused_when_compiled(source: str, fragment: str) -> None:
    with pytest.raises(RuleError) as caught:
        compile_rule(source)
    assert fragment in str(caught.value)
    assert "refused" in str(caught.value)


@pytest.mark.parametrize(("source", "pattern"), [(s, p) for _, s, p in EVALUATION],
                         ids=[name for name, _, _ in EVALUATION])
def test_refused_when_evaluated(source: str, pattern: str) -> None:
    rule = compile_rule(source)  # the language allows it; the limits stop it
    with pytest.raises(RuleError, match=pattern) as caught:
        rule.evaluate(NAMES)
    assert "refused" in str(caught.value)


def test_caller_method_was_not_called_and_liar_methods_are_the_real_ones() -> None:
    assert evaluate("liar.upper()", NAMES) == "ABC"  # str.upper, not the subclass override
    assert evaluate("gadget.level", NAMES) == 3  # data attributes of caller objects are readable


@pytest.mark.parametrize("exception", [SystemExit, KeyboardInterrupt, GeneratorExit, MemoryError,
                                       RecursionError, BaseException])
def test_base_exceptions_raised_during_evaluation_become_rule_errors(exception: type[BaseException]) -> None:
    def boom() -> None:
        raise exception("from the caller's function")

    def throw_into_generator() -> Any:
        return (v for v in [1]).throw(exception)

    class Raising(Mapping[str, Any]):  # even a simple rule's name lookup may raise
        def __getitem__(self, key: str) -> Any:
            raise exception("from the caller's mapping")

        def __iter__(self) -> Iterator[str]:
            return iter(())

        def __len__(self) -> int:
            return 0

    for source, names in [("boom()", {"boom": boom}), ("[boom() for v in [1]]", {"boom": boom}),
                          ("f()", {"f": throw_into_generator}), ("cpu > 1", Raising())]:
        for _ in range(2):  # compiling, then from the cache
            with pytest.raises(RuleError) as caught:
                evaluate(source, names)
            assert exception.__name__ in str(caught.value) or "recursion" in str(caught.value) \
                or "out of memory" in str(caught.value)
            with pytest.raises(RuleError):
                compile_rule(source).evaluate(names)


def test_exception_with_a_broken_str_still_becomes_a_rule_error() -> None:
    class Broken(Exception):
        def __str__(self) -> str:
            raise SystemExit("from __str__")

    def boom() -> None:
        raise Broken()

    with pytest.raises(RuleError, match="failed: Broken"):
        evaluate("boom()", {"boom": boom})


def test_compile_time_failures_of_huge_sources_become_rule_errors() -> None:
    roomy = Limits(max_source_chars=10**7, max_ast_nodes=10**8, max_ast_depth=10**8)
    for source in ("+".join(["1"] * 100_000), "-" * 100_000 + "1", "not " * 50_000 + "x",
                   "a if b else " * 20_000 + "c"):
        with pytest.raises(RuleError, match="refused"):
            compile_rule(source, roomy)


def test_names_cannot_replace_guards() -> None:
    calls: list[Any] = []

    def spy(*args: Any) -> Any:
        calls.append(args)
        return iter([])

    with pytest.raises(RuleError, match="'_getitem_' is reserved"):
        evaluate("xs[i]", {"xs": [1], "i": 0, "_getitem_": spy})
    # Where the names are merged into the globals, the guards win.
    assert evaluate("[v for v in xs]", {"xs": [1, 2], "_getiter_": spy}) == [1, 2]
    assert calls == []


def test_a_mapping_that_answers_every_key_cannot_replace_guards() -> None:
    class Anything(Mapping[str, Any]):
        def __init__(self, data: dict[str, Any]) -> None:
            self._data = data

        def __getitem__(self, key: str) -> Any:
            return self._data.get(key, "invented")

        def __iter__(self) -> Iterator[str]:
            return iter(self._data)

        def __len__(self) -> int:
            return len(self._data)

    names = Anything({"d": {"a": 1}, "xs": [1, 2]})
    assert evaluate("d.get('a') == 1 and xs[1:] == [2] and max(xs) == 2", names) is True


def test_functions_and_generators_made_by_a_rule_do_not_outlive_it() -> None:
    functions = evaluate("[lambda: 1]")
    with pytest.raises(RuleError, match="can only run while its rule is evaluated"):
        functions[0]()
    generators = evaluate("[(v for v in range(100))]")
    with pytest.raises(RuleError, match="cannot run after its evaluation ended"):
        list(generators[0])


def test_refusals_leave_the_caller_data_untouched() -> None:
    before = json.dumps({k: v for k, v in NAMES.items() if k in ("d", "xs", "text")})
    for source in ("d.update({1: 2})", "xs.append(1)", "[xs.pop() for _ in range(3)]"):
        with pytest.raises(RuleError):
            evaluate(source, NAMES)
    assert json.dumps({k: v for k, v in NAMES.items() if k in ("d", "xs", "text")}) == before


_RUNNER = textwrap.dedent("""
    import json, resource, sys
    from rpops.rules import RuleError, evaluate
    payloads = json.load(sys.stdin)
    names = {"x": 10**100, "big": 2**4000, "d": {i: i for i in range(50)}, "xs": list(range(1000)),
             "wide": dict.fromkeys(range(300_000), 0),
             "ys": list(range(100_000)), "s": "a" * 100_000, "text": "ab" * 1000,
             "nested": [["ab" * 1000] * 1000] * 1000, "w": 10**9, "fmt": "%2000000000d"}
    results = {}
    for name, source in payloads:
        try:
            evaluate(source, names)
            results[name] = "allowed"
        except RuleError as exc:
            results[name] = str(exc)
    results["after"] = evaluate("sum(v for v in range(10)) + len(xs)", names)
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(json.dumps(results))
""")


def test_a_process_survives_the_whole_corpus_with_bounded_memory() -> None:
    """Run every payload in one fresh process capped at 2 GB of address space: each must be
    refused by a limit (not by running out of memory) and the process must keep working."""
    payloads = [(name, source) for name, source, _ in ALL
                if not any(key in source for key in ("liar", "gadget", "string", "gen"))]
    cap = "import resource; resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30)); "
    completed = subprocess.run(
        [sys.executable, "-c", cap + _RUNNER],
        input=json.dumps(payloads), capture_output=True, text=True, timeout=240, check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    results = json.loads(completed.stdout)
    for name, _ in payloads:
        assert results[name] != "allowed", name
        assert "refused" in results[name], (name, results[name])
        assert "out of memory" not in results[name], (name, results[name])
    assert results["after"] == 1045
    assert results["peak_rss_mb"] < 600
