"""Hypothesis strategies shared by the property tests: JSON values, rule expressions, and the
bounded settings every property runs under (no example database written, CI-sized runs)."""

from __future__ import annotations

import re
import string
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Small runs, no timing deadline (a loaded 2-core machine), nothing written to .hypothesis/.
FAST = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
OVER_HTTP = settings(max_examples=40, deadline=None, database=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# Python's texts of non-data objects: an address, a closure, a builtin, an object.
INTERNALS = re.compile(r" at 0x[0-9a-fA-F]+|<locals>|<(?:built-in|function|bound|method|class|module|"
                       r"generator|zip|enumerate|\w+ object)\b")

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20),
)
JSON: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=5),
                            st.dictionaries(st.text(max_size=8), inner, max_size=5)),
    max_leaves=25,
)

NAMES = ("x", "y", "s", "xs", "d")
CONTEXT = st.fixed_dictionaries({
    "x": st.integers(-1000, 1000), "y": st.floats(-1e6, 1e6),
    "s": st.text(string.ascii_letters, max_size=10), "xs": st.lists(st.integers(-100, 100), max_size=8),
    "d": st.dictionaries(st.sampled_from("abc"), st.integers()),
})

_TEXT = st.text(alphabet=string.ascii_letters + " _-", max_size=8).map(repr)
_ATOMS = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.sampled_from(["0", "1", "2", "10", "100", "1000", "10**6", "2**31", "0.5", "-1", "1e308"]),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
    _TEXT,
    st.sampled_from(NAMES),
    st.sampled_from(["True", "False", "None", "[]", "{}", "''", "()", "max", "len", "str", "sorted",
                     "zip", "range(5)", "s.upper", "d.get", "xs.count"]),
)
_BINARY = ["+", "-", "*", "/", "//", "%", "**", "<", "<=", "==", "!=", ">", "and", "or", "in", "not in",
           "<<", ">>", "&", "|", "^"]
_CALLS = ["len", "str", "int", "float", "abs", "sum", "max", "min", "sorted", "list", "tuple", "set",
          "any", "all", "range", "round", "dict", "zip", "enumerate", "bool"]
_METHODS = ["upper()", "lower()", "split()", "strip()", "join(xs)", "replace('a', 'b')", "count(1)",
            "get('a')", "keys()", "values()", "items()", "startswith('a')", "index(0)", "zfill(3)",
            "center(5)", "__class__", "format(1)", "real"]


def _extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, st.sampled_from(_BINARY), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(st.sampled_from(["-", "not ", "~"]), inner).map(lambda t: f"({t[0]}{t[1]})"),
        st.tuples(st.sampled_from(_CALLS), st.lists(inner, max_size=2)).map(
            lambda t: f"{t[0]}({', '.join(t[1])})"),
        st.lists(inner, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.tuples(inner, inner).map(lambda t: "{" + f"{t[0]}: {t[1]}" + "}"),
        st.tuples(inner, inner).map(lambda t: f"{t[0]}[{t[1]}]"),
        st.tuples(inner, inner, inner).map(lambda t: f"{t[0]}[{t[1]}:{t[2]}]"),
        st.tuples(inner, st.sampled_from(_METHODS)).map(lambda t: f"{t[0]}.{t[1]}"),
        st.tuples(inner, inner).map(lambda t: f"[v * 2 for v in {t[0]} if {t[1]}]"),
        st.tuples(inner, inner).map(lambda t: f"sum(v for v in {t[0]} for w in {t[1]})"),
        st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})"),
        st.tuples(inner, st.sampled_from(["", "!r", "!s", ":>8", ":.3", ":x"])).map(
            lambda t: "f'{" + t[0] + t[1] + "}'"),
        st.tuples(_TEXT, inner).map(lambda t: f"({t[0]} % ({t[1]},))"),
        st.tuples(inner, inner).map(lambda t: f"(lambda a, b: a + b)({t[0]}, {t[1]})"),
    )


EXPRESSIONS: st.SearchStrategy[str] = st.recursive(_ATOMS, _extend, max_leaves=10)
