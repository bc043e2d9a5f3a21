"""The part of expr-lang that WorkflowEventBindings use here: parsed once, evaluated per event.

Argo evaluates a binding's `spec.event.selector` and each `valueFrom.event` with expr-lang over
`{discriminator, namespace, payload, metadata}`. `rpops local serve` accepts this subset and
refuses anything else when it loads the binding (never at request time):

    literals     "text" 'text' 12 1.5 true false nil [a, b]
    names        discriminator namespace payload metadata
    members      a.b  a?.b  a["b"]  a[0]  (a missing key is nil; a member of nil is an error
                 unless written `?.`)
    operators    ||  or   &&  and   !  not   ==  !=  <  <=  >  >=  in  not in   ??   ( )

Precedence as in expr-lang: `??` binds tightest, then `!`, comparisons, `&&`, `||`. `&&` and `||`
stop at the first operand that decides, so `discriminator == "x" && payload.a.b` never reads
`payload.a.b` for another discriminator. Function calls, arithmetic, `? :`, `matches`, pipes
and closures are refused. No Python eval: a small recursive-descent parser builds a tree of
dataclasses and `evaluate` walks it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rpops.errors import UsageError

ROOTS = ("discriminator", "namespace", "payload", "metadata")
MAX_SOURCE = 2000
MAX_DEPTH = 40


class ExprError(UsageError):
    """An expression outside the subset (at load) or one that fails on an event (at evaluation)."""


# --------------------------------------------------------------------------------------------- tree


@dataclass(frozen=True)
class Literal:
    value: Any


@dataclass(frozen=True)
class ListLit:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Name:
    name: str


@dataclass(frozen=True)
class Member:
    target: Node
    key: Node  # a Literal for `.b`
    optional: bool  # `?.`
    text: str  # for messages: how the member was written


@dataclass(frozen=True)
class Unary:
    op: str  # "!"
    operand: Node


@dataclass(frozen=True)
class Binary:
    op: str  # "||" "&&" "==" "!=" "<" "<=" ">" ">=" "in" "not in" "??"
    left: Node
    right: Node


Node = Literal | ListLit | Name | Member | Unary | Binary


# --------------------------------------------------------------------------------------------- tokens

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<num>\d+\.\d+|\d+)
    | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<name>[A-Za-z_$][A-Za-z0-9_$]*)
    | (?P<op>\?\?|\?\.|\|\||&&|==|!=|<=|>=|[<>!()\[\].,])
    | (?P<other>\S+?)
    )""",
    re.VERBOSE,
)
_WORDS = {"and": "&&", "or": "||", "not": "!", "in": "in"}
_KEYWORD_LITERALS = {"true": True, "false": False, "nil": None}
# Parts of expr-lang outside the subset, named in the refusal.
_REFUSED_WORDS = {"matches", "contains", "startsWith", "endsWith", "let", "if", "else"}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "/": "/", "b": "\b", "f": "\f"}


@dataclass(frozen=True)
class _Tok:
    kind: str  # lit, name, op, end
    value: Any
    pos: int


def _unquote(raw: str, source: str, pos: int) -> str:
    out = []
    i = 1
    while i < len(raw) - 1:
        c = raw[i]
        if c == "\\":
            nxt = raw[i + 1]
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", raw[i + 2 : i + 6]):
                out.append(chr(int(raw[i + 2 : i + 6], 16)))
                i += 6
                continue
            if nxt not in _ESCAPES:
                raise ExprError(f"expression {source!r}: unknown escape '\\{nxt}' at position {pos + i}")
            out.append(_ESCAPES[nxt])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _tokens(source: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while pos < len(source) and source[pos:].strip():
        m = _TOKEN.match(source, pos)
        assert m is not None  # `other` matches any non-space character
        kind = m.lastgroup or ""
        raw, at = m.group(kind), m.start(kind)
        if kind == "other":
            raise ExprError(
                f"expression {source!r}: '{raw}' at position {at} is outside the supported subset "
                "(literals, names, members, ! && || == != < <= > >= in ?? and parentheses)"
            )
        if kind == "num":
            toks.append(_Tok("lit", float(raw) if "." in raw else int(raw), at))
        elif kind == "str":
            toks.append(_Tok("lit", _unquote(raw, source, at), at))
        elif kind == "name" and raw in _KEYWORD_LITERALS:
            toks.append(_Tok("lit", _KEYWORD_LITERALS[raw], at))
        elif kind == "name" and raw in _WORDS:
            toks.append(_Tok("op", _WORDS[raw], at))
        elif kind == "name" and raw in _REFUSED_WORDS:
            raise ExprError(f"expression {source!r}: '{raw}' is not supported by rpops local (position {at})")
        else:
            toks.append(_Tok(kind, raw, at))
        pos = m.end()
    toks.append(_Tok("end", None, len(source)))
    return toks


# --------------------------------------------------------------------------------------------- parser

_COMPARISONS = ("==", "!=", "<", "<=", ">", ">=", "in")


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.toks = _tokens(source)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def at_op(self, *values: str) -> bool:
        return self.tok.kind == "op" and self.tok.value in values

    def fail(self, what: str, tok: _Tok | None = None) -> ExprError:
        tok = tok or self.tok
        found = "the end" if tok.kind == "end" else f"'{tok.value}'"
        return ExprError(f"expression {self.source!r}: {what}, found {found} at position {tok.pos}")

    def expect(self, value: str) -> None:
        if not self.at_op(value):
            raise self.fail(f"expected '{value}'")
        self.i += 1

    def nested(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExprError(f"expression {self.source!r} nests deeper than {MAX_DEPTH} levels")

    def parse(self) -> Node:
        node = self.or_()
        if self.tok.kind != "end":
            if self.at_op("?"):
                raise self.fail("the ternary '? :' is not supported")
            raise self.fail("expected an operator or the end")
        return node

    def or_(self) -> Node:
        left = self.and_()
        while self.at_op("||"):
            self.i += 1
            left = Binary("||", left, self.and_())
        return left

    def and_(self) -> Node:
        left = self.comparison()
        while self.at_op("&&"):
            self.i += 1
            left = Binary("&&", left, self.comparison())
        return left

    def comparison(self) -> Node:
        left = self.unary()
        while True:
            if self.at_op("!") and self.toks[self.i + 1].kind == "op" and self.toks[self.i + 1].value == "in":
                self.i += 2
                left = Binary("not in", left, self.unary())
            elif self.at_op(*_COMPARISONS):
                op = self.tok.value
                self.i += 1
                left = Binary(op, left, self.unary())
            else:
                return left

    def unary(self) -> Node:
        if self.at_op("!"):
            self.i += 1
            self.nested()
            node = Unary("!", self.unary())
            self.depth -= 1
            return node
        return self.nullish()

    def nullish(self) -> Node:
        left = self.postfix()
        while self.at_op("??"):
            self.i += 1
            left = Binary("??", left, self.postfix())
        return left

    def postfix(self) -> Node:
        node = self.primary()
        while True:
            if self.at_op(".", "?."):
                optional = self.tok.value == "?."
                self.i += 1
                if self.tok.kind != "name":
                    raise self.fail("expected a field name after '.'")
                name = self.tok.value
                self.i += 1
                node = Member(node, Literal(name), optional, f".{name}")
            elif self.at_op("["):
                self.i += 1
                self.nested()
                key = self.or_()
                self.depth -= 1
                self.expect("]")
                node = Member(node, key, False, "[...]")
            elif self.at_op("("):
                raise self.fail("function calls are not supported")
            else:
                return node

    def primary(self) -> Node:
        tok = self.tok
        if tok.kind == "lit":
            self.i += 1
            return Literal(tok.value)
        if tok.kind == "name":
            if tok.value not in ROOTS:
                raise ExprError(
                    f"expression {self.source!r}: unknown name '{tok.value}' at position {tok.pos} "
                    f"(known: {', '.join(ROOTS)})"
                )
            self.i += 1
            if self.at_op("("):
                raise self.fail("function calls are not supported")
            return Name(tok.value)
        if self.at_op("("):
            self.i += 1
            self.nested()
            node = self.or_()
            self.depth -= 1
            self.expect(")")
            return node
        if self.at_op("["):
            self.i += 1
            self.nested()
            items: list[Node] = []
            while not self.at_op("]"):
                items.append(self.or_())
                if not self.at_op("]"):
                    self.expect(",")
            self.depth -= 1
            self.i += 1
            return ListLit(tuple(items))
        raise self.fail("expected a value")


@dataclass(frozen=True)
class Expression:
    """A parsed expression; `evaluate(env)` runs it against one event."""

    source: str
    tree: Node

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        return _eval(self.tree, env, self.source)

    def evaluate_bool(self, env: Mapping[str, Any]) -> bool:
        value = self.evaluate(env)
        if not isinstance(value, bool):
            raise ExprError(f"expression {self.source!r} gave {_show(value)}, not a bool")
        return value


def compile_expression(source: str) -> Expression:
    """Parse `source`; ExprError names what is outside the subset."""
    if not isinstance(source, str) or not source.strip():
        raise ExprError('empty expression: write one, e.g. discriminator == "alertmanager"')
    if len(source) > MAX_SOURCE:
        raise ExprError(f"expression longer than {MAX_SOURCE} characters")
    return Expression(source, _Parser(source).parse())


# --------------------------------------------------------------------------------------------- evaluation


def _show(value: Any) -> str:
    if value is None:
        return "nil"
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "map"
    return type(value).__name__


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def equal(a: Any, b: Any) -> bool:
    """expr-lang's ==: numbers by value, arrays and maps deeply, other kinds must match."""
    if _number(a) and _number(b):
        return bool(a == b) and not (isinstance(a, float) and math.isnan(a))
    if _kind(a) != _kind(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    return bool(a == b)


def _member(target: Any, key: Any, node: Member, source: str) -> Any:
    if target is None:
        if node.optional:
            return None
        raise ExprError(f"expression {source!r}: cannot fetch {node.text} from nil")
    if isinstance(target, dict):
        if not isinstance(key, str):
            raise ExprError(f"expression {source!r}: a map key must be a string, got {_show(key)}")
        return target.get(key)
    if isinstance(target, list):
        if not _number(key) or int(key) != key:
            raise ExprError(f"expression {source!r}: an array index must be a whole number, got {_show(key)}")
        index = int(key)
        if index < 0:
            index += len(target)
        if not 0 <= index < len(target):
            raise ExprError(f"expression {source!r}: index {int(key)} out of range (length {len(target)})")
        return target[index]
    raise ExprError(f"expression {source!r}: cannot fetch {node.text} from a {_kind(target)}")


def _truth(value: Any, op: str, source: str) -> bool:
    if not isinstance(value, bool):
        raise ExprError(f"expression {source!r}: '{op}' needs bools, got {_show(value)}")
    return value


def _contains(container: Any, item: Any, source: str) -> bool:
    if isinstance(container, list):
        return any(equal(item, c) for c in container)
    if isinstance(container, dict):
        if not isinstance(item, str):
            raise ExprError(f"expression {source!r}: 'in' a map needs a string key, got {_show(item)}")
        return item in container
    raise ExprError(
        f"expression {source!r}: 'in' needs an array or a map on its right, got {_show(container)}"
    )


def _order(op: str, a: Any, b: Any, source: str) -> bool:
    if not ((_number(a) and _number(b)) or (isinstance(a, str) and isinstance(b, str))):
        raise ExprError(f"expression {source!r}: cannot compare {_show(a)} {op} {_show(b)}")
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def _eval(node: Node, env: Mapping[str, Any], source: str) -> Any:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Name):
        return env.get(node.name)
    if isinstance(node, ListLit):
        return [_eval(item, env, source) for item in node.items]
    if isinstance(node, Member):
        target = _eval(node.target, env, source)
        if target is None and node.optional:
            return None
        return _member(target, _eval(node.key, env, source), node, source)
    if isinstance(node, Unary):
        return not _truth(_eval(node.operand, env, source), "!", source)
    op = node.op
    if op == "&&":
        return _truth(_eval(node.left, env, source), op, source) and _truth(
            _eval(node.right, env, source), op, source
        )
    if op == "||":
        return _truth(_eval(node.left, env, source), op, source) or _truth(
            _eval(node.right, env, source), op, source
        )
    if op == "??":
        left = _eval(node.left, env, source)
        return left if left is not None else _eval(node.right, env, source)
    left, right = _eval(node.left, env, source), _eval(node.right, env, source)
    if op == "==":
        return equal(left, right)
    if op == "!=":
        return not equal(left, right)
    if op == "in":
        return _contains(right, left, source)
    if op == "not in":
        return not _contains(right, left, source)
    return _order(op, left, right, source)


def argo_string(value: Any) -> str:
    """The parameter value Argo makes of an expression's result: JSON, with a string's quotes removed
    (so a string stays as it is, a map becomes its JSON, nil becomes `null`)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        value = int(value)  # Go prints the float64 2.0 as 2
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return text[1:-1] if isinstance(value, str) else text
