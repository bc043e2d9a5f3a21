"""The small part of expr-lang that `retryStrategy.expression` uses.

Names (e.g. `lastRetry.status`, `lastRetry.exitCode`) come from the caller; literals are
numbers, strings, `true`, `false`, `nil` and lists `[...]`. Operators: `||`/`or`,
`&&`/`and`, `!`/`not`, `==`, `!=`, `<`, `<=`, `>`, `>=`, `in`, `not in`, `matches`,
parentheses. Parsed into a tree and evaluated; no Python eval.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rpops.local.expressions import ExpressionError, _regex

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d+)?)|(?P<str>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)"
    r"|(?P<op>\|\||&&|==|!=|<=|>=|<|>|!|\(|\)|\[|\]|,|-))"
)
_WORD_OPS = {"and": "&&", "or": "||", "not": "!", "in": "in", "matches": "matches"}


@dataclass(frozen=True)
class _Tok:
    kind: str
    value: Any
    pos: int


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(text):
        if not text[pos:].strip():
            break
        m = _TOKEN.match(text, pos)
        if not m:
            raise ExpressionError(f"invalid expression '{text}' at position {pos}")
        kind = m.lastgroup or ""
        raw = m.group(kind)
        if kind == "num":
            out.append(_Tok("lit", float(raw) if "." in raw else int(raw), m.start(kind)))
        elif kind == "str":
            out.append(_Tok("lit", re.sub(r"\\(.)", r"\1", raw[1:-1]), m.start(kind)))
        elif kind == "name" and raw in ("true", "false", "nil"):
            out.append(_Tok("lit", {"true": True, "false": False, "nil": None}[raw], m.start(kind)))
        elif kind == "name" and raw in _WORD_OPS:
            out.append(_Tok("op", _WORD_OPS[raw], m.start(kind)))
        else:
            out.append(_Tok(kind, raw, m.start(kind)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str, names: Mapping[str, Any]) -> None:
        self.text, self.names = text, names
        self.toks = _tokens(text)
        self.i = 0

    def peek(self, value: str | None = None) -> _Tok | None:
        tok = self.toks[self.i] if self.i < len(self.toks) else None
        if value is not None and (tok is None or tok.kind != "op" or tok.value != value):
            return None
        return tok

    def expect(self, value: str) -> None:
        if not self.peek(value):
            raise ExpressionError(f"invalid expression '{self.text}': expected '{value}'")
        self.i += 1

    # Each level evaluates as it parses: the expressions are tiny and never reused.
    def or_(self) -> Any:
        left = self.and_()
        while self.peek("||"):
            self.i += 1
            right = self.and_()
            left = _truth(left) or _truth(right)
        return left

    def and_(self) -> Any:
        left = self.cmp()
        while self.peek("&&"):
            self.i += 1
            right = self.cmp()
            left = _truth(left) and _truth(right)
        return left

    def cmp(self) -> Any:
        left = self.unary()
        while True:
            tok = self.peek()
            if tok is None or tok.kind != "op":
                return left
            op = tok.value
            if op == "!" and self.i + 1 < len(self.toks) and self.toks[self.i + 1].value == "in":
                self.i += 2
                left = not _member(left, self.unary())
                continue
            if op not in ("==", "!=", "<", "<=", ">", ">=", "in", "matches"):
                return left
            self.i += 1
            right = self.unary()
            left = _compare(op, left, right)

    def unary(self) -> Any:
        if self.peek("!"):
            self.i += 1
            return not _truth(self.unary())
        if self.peek("-"):
            self.i += 1
            value = self.unary()
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ExpressionError(f"cannot negate {value!r}")
            return -value
        return self.primary()

    def primary(self) -> Any:
        if self.i >= len(self.toks):
            raise ExpressionError(f"invalid expression '{self.text}': ends early")
        tok = self.toks[self.i]
        self.i += 1
        if tok.kind == "lit":
            return tok.value
        if tok.kind == "name":
            if tok.value not in self.names:
                raise ExpressionError(f"unknown name '{tok.value}' (known: {', '.join(sorted(self.names))})")
            return self.names[tok.value]
        if tok.kind == "op" and tok.value == "(":
            value = self.or_()
            self.expect(")")
            return value
        if tok.kind == "op" and tok.value == "[":
            items: list[Any] = []
            while not self.peek("]"):
                items.append(self.or_())
                if not self.peek("]"):
                    self.expect(",")
            self.i += 1
            return items
        raise ExpressionError(
            f"invalid expression '{self.text}': unexpected '{tok.value}' at position {tok.pos}"
        )


def _truth(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ExpressionError(f"expected a bool, got {value!r}")
    return value


def _equal(a: Any, b: Any) -> bool:
    num = (int, float)
    if isinstance(a, num) and isinstance(b, num) and not isinstance(a, bool) and not isinstance(b, bool):
        return bool(a == b)
    return type(a) is type(b) and bool(a == b)


def _member(item: Any, container: Any) -> bool:
    if not isinstance(container, list):
        raise ExpressionError(f"'in' needs a list on its right, got {container!r}")
    return any(_equal(item, c) for c in container)


def _compare(op: str, a: Any, b: Any) -> Any:
    if op == "==":
        return _equal(a, b)
    if op == "!=":
        return not _equal(a, b)
    if op == "in":
        return _member(a, b)
    if op == "matches":
        if not isinstance(a, str) or not isinstance(b, str):
            raise ExpressionError("'matches' needs two strings")
        return _regex(b).search(a) is not None
    nums = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    strs = all(isinstance(v, str) for v in (a, b))
    if not (nums or strs):
        raise ExpressionError(f"cannot compare {a!r} and {b!r} with '{op}'")
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def evaluate(text: str, names: Mapping[str, Any]) -> Any:
    parser = _Parser(text, names)
    if not parser.toks:
        raise ExpressionError("empty expression")
    value = parser.or_()
    if parser.i != len(parser.toks):
        tok = parser.toks[parser.i]
        raise ExpressionError(f"invalid expression '{text}': unexpected '{tok.value}' at position {tok.pos}")
    return value


def evaluate_bool(text: str, names: Mapping[str, Any]) -> bool:
    value = evaluate(text, names)
    if not isinstance(value, bool):
        raise ExpressionError(f"expression '{text}' gave {value!r}, not a bool")
    return value


def check_syntax(text: str, names: Mapping[str, Any]) -> None:
    """Parse and evaluate once against sample names, to refuse a bad expression before the run."""
    evaluate_bool(text, names)
