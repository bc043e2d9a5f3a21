"""expr-lang (github.com/expr-lang/expr), the one implementation rpops local uses for it.

Argo evaluates three things with expr-lang, and so does rpops local, through this module:
`{{= ...}}` expression tags, `retryStrategy.expression` (and `valueFrom.expression` of a steps or
DAG output), and a WorkflowEventBinding's selector and `valueFrom.event`. Each caller compiles
with a profile: bindings accept the small subset `rpops local serve` documents (names limited
to the event's roots, no calls, no arithmetic); the other uses accept the language below.

    literals     12 1.5 "text" 'text' true false nil [a, b]
    members      a.b  a?.b  a["b"]  a[0]  (a missing key is nil; a member of nil is an error
                 unless written `?.`)
    operators    ?:  ??  ||/or  &&/and  !/not  == != < <= > >=  in, not in, matches, contains,
                 startsWith, endsWith   + - * / %   unary -   ( )
    functions    asInt asFloat int float string len upper lower trim trimPrefix trimSuffix
                 split join replace indexOf lastIndexOf hasPrefix hasSuffix abs max min
                 toJson toJSON fromJSON jsonpath, and sprig.trim/upper/lower/replace

The source is parsed once into a tree of dataclasses (cached) and evaluated by walking it; no
Python eval. Names come from the caller as a flat map (`inputs.parameters.x`), expanded into
nested maps as Argo's `expand.Expand` does. Strings and lists an expression builds are capped,
so a short expression cannot allocate without bound.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rpops.core.errors import UsageError
from rpops.local.expr.expressions import ExpressionError, _regex

MAX_SOURCE = 2000
MAX_DEPTH = 40
MAX_STRING = 1 << 20  # characters an expression may build
MAX_ITEMS = 100_000
BINDING_ROOTS = ("discriminator", "namespace", "payload", "metadata")


class ExprError(UsageError, ExpressionError):
    """An expression outside the language or profile (at compile time) or one that fails on its
    values (at evaluation); the message names the expression and why."""


@dataclass(frozen=True)
class Profile:
    name: str
    roots: tuple[str, ...] | None  # names allowed at the top level; None: any
    full: bool  # calls, arithmetic, ternary and string operators


BINDING = Profile("binding", BINDING_ROOTS, full=False)
FULL = Profile("full", None, full=True)

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
    op: str  # "!" "-"
    operand: Node


@dataclass(frozen=True)
class Binary:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Ternary:
    cond: Node
    then: Node
    other: Node


@dataclass(frozen=True)
class Call:
    func: str  # "asInt", "sprig.trim"
    args: tuple[Node, ...]


Node = Literal | ListLit | Name | Member | Unary | Binary | Ternary | Call

# --------------------------------------------------------------------------------------------- tokens

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<num>\d+\.\d+(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+|\d+)
    | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<name>[A-Za-z_$][A-Za-z0-9_$]*)
    | (?P<op>\?\?|\?\.|\|\||&&|==|!=|<=|>=|[<>!()\[\].,+\-*/%?:])
    | (?P<other>\S+?)
    )""",
    re.VERBOSE,
)
_FULL_ONLY_OPS = {"+", "-", "*", "/", "%", "?", ":"}
_WORDS = {"and": "&&", "or": "||", "not": "!", "in": "in"}
_STRING_OPS = {"matches", "contains", "startsWith", "endsWith"}
_KEYWORD_LITERALS = {"true": True, "false": False, "nil": None}
_REFUSED_WORDS = {"let", "if", "else"}  # expr-lang's, outside both profiles
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


def _tokens(source: str, profile: Profile) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while pos < len(source) and source[pos:].strip():
        m = _TOKEN.match(source, pos)
        assert m is not None  # `other` matches any non-space character
        kind = m.lastgroup or ""
        raw, at = m.group(kind), m.start(kind)
        if kind == "other" or (kind == "op" and raw in _FULL_ONLY_OPS and not profile.full):
            raise ExprError(
                f"expression {source!r}: '{raw}' at position {at} is outside the supported subset "
                + (
                    "(literals, names, members, ! && || == != < <= > >= in ?? and parentheses)"
                    if not profile.full
                    else "(see rpops local's expression reference)"
                )
            )
        if kind == "num":
            toks.append(_Tok("lit", float(raw) if ("." in raw or "e" in raw.lower()) else int(raw), at))
        elif kind == "str":
            toks.append(_Tok("lit", _unquote(raw, source, at), at))
        elif kind == "name" and raw in _KEYWORD_LITERALS:
            toks.append(_Tok("lit", _KEYWORD_LITERALS[raw], at))
        elif kind == "name" and raw in _WORDS:
            toks.append(_Tok("op", _WORDS[raw], at))
        elif kind == "name" and (raw in _REFUSED_WORDS or (raw in _STRING_OPS and not profile.full)):
            raise ExprError(f"expression {source!r}: '{raw}' is not supported by rpops local (position {at})")
        elif kind == "name" and raw in _STRING_OPS:
            toks.append(_Tok("op", raw, at))
        else:
            toks.append(_Tok(kind, raw, at))
        pos = m.end()
    toks.append(_Tok("end", None, len(source)))
    return toks


# --------------------------------------------------------------------------------------------- parser

_COMPARISONS = ("==", "!=", "<", "<=", ">", ">=", "in", *sorted(_STRING_OPS))


class _Parser:
    def __init__(self, source: str, profile: Profile) -> None:
        self.source, self.profile = source, profile
        self.toks = _tokens(source, profile)
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
        node = self.ternary()
        if self.tok.kind != "end":
            raise self.fail("expected an operator or the end")
        return node

    def ternary(self) -> Node:
        cond = self.or_()
        if self.at_op("?"):
            self.i += 1
            self.nested()
            then = self.ternary()
            self.expect(":")
            other = self.ternary()
            self.depth -= 1
            return Ternary(cond, then, other)
        return cond

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
        left = self.additive()
        while True:
            if self.at_op("!") and self.toks[self.i + 1].kind == "op" and self.toks[self.i + 1].value == "in":
                self.i += 2
                left = Binary("not in", left, self.additive())
            elif self.at_op(*_COMPARISONS):
                op = self.tok.value
                self.i += 1
                left = Binary(op, left, self.additive())
            else:
                return left

    def additive(self) -> Node:
        left = self.multiplicative()
        while self.at_op("+", "-"):
            op = self.tok.value
            self.i += 1
            left = Binary(op, left, self.multiplicative())
        return left

    def multiplicative(self) -> Node:
        left = self.unary()
        while self.at_op("*", "/", "%"):
            op = self.tok.value
            self.i += 1
            left = Binary(op, left, self.unary())
        return left

    def unary(self) -> Node:
        if self.at_op("!", "-"):
            op = self.tok.value
            self.i += 1
            self.nested()
            node = Unary(op, self.unary())
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
                if self.at_op("(") and isinstance(node, Name) and node.name == "sprig" and self.profile.full:
                    node = self.call(f"sprig.{name}")
                    continue
                node = Member(node, Literal(name), optional, f".{name}")
            elif self.at_op("["):
                self.i += 1
                self.nested()
                key = self.ternary()
                self.depth -= 1
                self.expect("]")
                node = Member(node, key, False, "[...]")
            elif self.at_op("("):
                raise self.fail(
                    "function calls are not supported" if not self.profile.full else "not callable"
                )
            else:
                return node

    def call(self, func: str) -> Node:
        if func not in FUNCTIONS:
            raise self.fail(f"function '{func}' is not supported by rpops local")
        self.expect("(")
        self.nested()
        args: list[Node] = []
        while not self.at_op(")"):
            args.append(self.ternary())
            if not self.at_op(")"):
                self.expect(",")
        self.i += 1
        self.depth -= 1
        node = Call(func, tuple(args))
        _check_call(node, self.source)
        return node

    def primary(self) -> Node:
        tok = self.tok
        if tok.kind == "lit":
            self.i += 1
            return Literal(tok.value)
        if tok.kind == "name":
            roots = self.profile.roots
            if roots is not None and tok.value not in roots:
                raise ExprError(
                    f"expression {self.source!r}: unknown name '{tok.value}' at position {tok.pos} "
                    f"(known: {', '.join(roots)})"
                )
            self.i += 1
            if self.at_op("("):
                if not self.profile.full:
                    raise self.fail("function calls are not supported")
                return self.call(tok.value)
            return Name(tok.value)
        if self.at_op("("):
            self.i += 1
            self.nested()
            node = self.ternary()
            self.depth -= 1
            self.expect(")")
            return node
        if self.at_op("["):
            self.i += 1
            self.nested()
            items: list[Node] = []
            while not self.at_op("]"):
                items.append(self.ternary())
                if not self.at_op("]"):
                    self.expect(",")
            self.depth -= 1
            self.i += 1
            return ListLit(tuple(items))
        raise self.fail("expected a value")


@dataclass(frozen=True)
class Expression:
    """A parsed expression; `evaluate(env)` runs it against nested values (see `expand`)."""

    source: str
    tree: Node

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        return _eval(self.tree, env, self.source)

    def evaluate_bool(self, env: Mapping[str, Any]) -> bool:
        value = self.evaluate(env)
        if not isinstance(value, bool):
            raise ExprError(f"expression {self.source!r} gave {_show(value)}, not a bool")
        return value


def compile_expression(source: str, profile: Profile = BINDING) -> Expression:
    """Parse `source` under `profile`; ExprError names what is outside it."""
    if not isinstance(source, str) or not source.strip():
        raise ExprError('empty expression: write one, e.g. discriminator == "alertmanager"')
    if len(source) > MAX_SOURCE:
        raise ExprError(f"expression longer than {MAX_SOURCE} characters")
    return _compile(source, profile)


@functools.lru_cache(maxsize=512)
def _compile(source: str, profile: Profile) -> Expression:
    return Expression(source, _Parser(source, profile).parse())


def evaluate(source: str, values: Mapping[str, Any]) -> Any:
    """Compile (FULL profile, cached) and evaluate against flat `values` (`a.b.c` keys)."""
    return compile_expression(source, FULL).evaluate(expand(values))


def evaluate_bool(source: str, values: Mapping[str, Any]) -> bool:
    return compile_expression(source, FULL).evaluate_bool(expand(values))


def check_syntax(source: str) -> None:
    """Refuse a malformed expression before the run (names are checked when it runs)."""
    compile_expression(source, FULL)


def name_paths(expr: Expression) -> list[str]:
    """The dotted paths an expression reads (`inputs.parameters["a-b"]` -> inputs.parameters.a-b),
    as far as their keys are constants; for checking references before the run."""
    out: list[str] = []

    def path_of(node: Node) -> str | None:
        if isinstance(node, Name):
            return node.name
        if isinstance(node, Member) and isinstance(node.key, Literal) and isinstance(node.key.value, str):
            base = path_of(node.target)
            return None if base is None else f"{base}.{node.key.value}"
        return None

    def walk(node: Node, top: bool) -> None:
        if isinstance(node, (Name, Member)):
            path = path_of(node)
            if path is not None:
                if top:
                    out.append(path)
                return
            assert isinstance(node, Member)
            walk(node.target, True)
            walk(node.key, True)
            return
        for child in _children(node):
            walk(child, True)

    walk(expr.tree, True)
    return out


def _children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, ListLit):
        return node.items
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, Ternary):
        return (node.cond, node.then, node.other)
    if isinstance(node, Call):
        return node.args
    return ()


def expand(flat: Mapping[str, Any]) -> dict[str, Any]:
    """`{"a.b": 1, "a.c": 2}` -> `{"a": {"b": 1, "c": 2}}`; a map wins over a leaf of the same name
    (`workflow.parameters` is both Argo's JSON list and the map of parameters)."""
    root: dict[str, Any] = {}
    for key in sorted(flat, key=lambda k: k.count(".")):  # leaves first, maps replace them
        parts = key.split(".")
        node = root
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        if not isinstance(node.get(parts[-1]), dict):
            node[parts[-1]] = flat[key]
    return root


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


def _capped(value: Any, source: str) -> Any:
    if isinstance(value, str) and len(value) > MAX_STRING:
        raise ExprError(f"expression {source!r} builds a string over {MAX_STRING} characters")
    if isinstance(value, list) and len(value) > MAX_ITEMS:
        raise ExprError(f"expression {source!r} builds a list over {MAX_ITEMS} items")
    return value


def _arith(op: str, a: Any, b: Any, source: str) -> Any:
    if op == "+" and isinstance(a, str) and isinstance(b, str):
        return _capped(a + b, source)
    if op == "+" and isinstance(a, list) and isinstance(b, list):
        return _capped(a + b, source)
    if not (_number(a) and _number(b)):
        raise ExprError(f"expression {source!r}: cannot compute {_show(a)} {op} {_show(b)}")
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        result = a * b
        if isinstance(result, int) and result.bit_length() > 64:
            raise ExprError(f"expression {source!r}: integer overflow in '*'")
        return result
    if b == 0:
        raise ExprError(f"expression {source!r}: division by zero")
    if op == "/":
        return a / b  # expr-lang's / is always a float division
    if not (isinstance(a, int) and isinstance(b, int)):
        raise ExprError(f"expression {source!r}: '%' needs integers")
    return int(math.fmod(a, b))  # Go's %: the sign of the dividend


def _string_op(op: str, a: Any, b: Any, source: str) -> bool:
    if not (isinstance(a, str) and isinstance(b, str)):
        raise ExprError(f"expression {source!r}: '{op}' needs two strings, got {_show(a)} and {_show(b)}")
    if op == "matches":
        try:
            return _regex(b).search(a) is not None
        except ExpressionError as exc:
            raise ExprError(f"expression {source!r}: {exc}") from None
    if op == "contains":
        return b in a
    if op == "startsWith":
        return a.startswith(b)
    return a.endswith(b)


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
        value = _eval(node.operand, env, source)
        if node.op == "-":
            if not _number(value):
                raise ExprError(f"expression {source!r}: cannot negate {_show(value)}")
            return -value
        return not _truth(value, "!", source)
    if isinstance(node, Ternary):
        cond = _truth(_eval(node.cond, env, source), "?:", source)
        return _eval(node.then if cond else node.other, env, source)
    if isinstance(node, Call):
        args = [_eval(a, env, source) for a in node.args]
        try:
            return _capped(FUNCTIONS[node.func][0](*args), source)
        except ExprError:
            raise
        except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
            raise ExprError(f"expression {source!r}: {node.func}(): {exc}") from None
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
    if op in _STRING_OPS:
        return _string_op(op, left, right, source)
    if op in ("+", "-", "*", "/", "%"):
        return _arith(op, left, right, source)
    return _order(op, left, right, source)


# --------------------------------------------------------------------------------------------- functions


def _as_int(value: Any) -> int:
    """expr-lang's int() (Argo's asInt): a number truncated, or a string of a whole number."""
    if isinstance(value, bool):
        raise ValueError(f"cannot convert {_show(value)} to int")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value) and len(value) < 40:
        return int(value)
    raise ValueError(f"cannot convert {_show(value)} to int")


def _as_float(value: Any) -> float:
    if _number(value):
        return float(value)
    if isinstance(value, str) and len(value) < 400:
        return float(value)
    raise ValueError(f"cannot convert {_show(value)} to float")


def go_string(value: Any) -> str:
    """A value as Argo substitutes it: strings as they are, numbers as Go prints them, the rest JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    if _number(value):
        return repr(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {_show(value)}")
    return value


def _len(value: Any) -> int:
    if isinstance(value, (str, list, dict)):
        return len(value)
    raise ValueError(f"cannot take the length of {_show(value)}")


def _join(items: Any, sep: Any = "") -> str:
    if not isinstance(items, list):
        raise ValueError(f"join needs an array, got {_show(items)}")
    sep = _str(sep, "separator")
    parts = [go_string(i) for i in items]
    if sum(map(len, parts)) + len(sep) * max(0, len(parts) - 1) > MAX_STRING:
        raise ValueError(f"result over {MAX_STRING} characters")
    return sep.join(parts)


def _replace(text: Any, old: Any, new: Any) -> str:
    text, old, new = _str(text, "text"), _str(old, "old"), _str(new, "new")
    if old and text.count(old) * max(1, len(new)) > MAX_STRING:
        raise ValueError("result too long")
    return text.replace(old, new)


def _from_json(text: Any) -> Any:
    text = _str(text, "JSON")
    if len(text) > MAX_STRING:
        raise ValueError("JSON text too long")
    return json.loads(text)


def _minmax(pick: Callable[..., Any]) -> Callable[..., Any]:
    def fn(*args: Any) -> Any:
        if not args or not all(_number(a) for a in args):
            raise ValueError(f"needs numbers, got {', '.join(_show(a) for a in args)}")
        return pick(args)

    return fn


_JSONPATH_STEP = re.compile(
    r"\.([A-Za-z_$][A-Za-z0-9_$-]*)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]|(\[\*\]|\.\*)"
)


def _jsonpath_steps(path: str) -> list[tuple[str, Any]]:
    """The steps of a JSONPath of names, indexes and wildcards; filters and slices are refused."""
    if not isinstance(path, str) or not path.startswith("$"):
        raise ValueError(f"a JSONPath starts with '$', got {_show(path)}")
    steps: list[tuple[str, Any]] = []
    pos = 1
    while pos < len(path):
        m = _JSONPATH_STEP.match(path, pos)
        if m is None:
            raise ValueError(
                f"JSONPath {path!r}: only .name, ['name'], [index] and [*] are supported by rpops local "
                f"(position {pos})"
            )
        name, index, q1, q2, star = m.groups()
        if star:
            steps.append(("*", None))
        elif index is not None:
            steps.append(("index", int(index)))
        else:
            steps.append(("key", name if name is not None else (q1 if q1 is not None else q2)))
        pos = m.end()
    return steps


def _jsonpath(text: Any, path: Any) -> Any:
    """Argo's jsonpath(json, path): one value for a definite path, a list once a wildcard is used."""
    doc = _from_json(text)
    steps = _jsonpath_steps(path)
    values, many = [doc], False
    for kind, arg in steps:
        nxt: list[Any] = []
        for v in values:
            if kind == "*":
                many = True
                nxt.extend(v.values() if isinstance(v, dict) else v if isinstance(v, list) else [])
            elif kind == "index":
                if isinstance(v, list) and arg < len(v):
                    nxt.append(v[arg])
            elif isinstance(v, dict) and arg in v:
                nxt.append(v[arg])
        values = nxt
    if many:
        return values
    if not values:
        raise ValueError(f"JSONPath {path!r} matches nothing")
    return values[0]


def _go_trim(text: Any) -> str:
    return _str(text, "text").strip()


# name -> (function, argument counts accepted)
FUNCTIONS: dict[str, tuple[Callable[..., Any], tuple[int, ...]]] = {
    "asInt": (_as_int, (1,)),
    "int": (_as_int, (1,)),
    "asFloat": (_as_float, (1,)),
    "float": (_as_float, (1,)),
    "string": (go_string, (1,)),
    "len": (_len, (1,)),
    "upper": (lambda s: _str(s, "text").upper(), (1,)),
    "lower": (lambda s: _str(s, "text").lower(), (1,)),
    "trim": (lambda s, chars=None: _str(s, "text").strip(chars), (1, 2)),
    "trimPrefix": (lambda s, p: _str(s, "text").removeprefix(_str(p, "prefix")), (2,)),
    "trimSuffix": (lambda s, p: _str(s, "text").removesuffix(_str(p, "suffix")), (2,)),
    "split": (lambda s, sep: _str(s, "text").split(_str(sep, "separator")) if sep else list(s), (2,)),
    "join": (_join, (1, 2)),
    "replace": (_replace, (3,)),
    "indexOf": (lambda s, sub: _str(s, "text").find(_str(sub, "substring")), (2,)),
    "lastIndexOf": (lambda s, sub: _str(s, "text").rfind(_str(sub, "substring")), (2,)),
    "hasPrefix": (lambda s, p: _str(s, "text").startswith(_str(p, "prefix")), (2,)),
    "hasSuffix": (lambda s, p: _str(s, "text").endswith(_str(p, "suffix")), (2,)),
    "abs": (lambda n: abs(n) if _number(n) else _as_float(n), (1,)),
    "max": (_minmax(max), (1, 2, 3, 4, 5, 6, 7, 8)),
    "min": (_minmax(min), (1, 2, 3, 4, 5, 6, 7, 8)),
    "toJson": (lambda v: json.dumps(v, separators=(",", ":")), (1,)),
    "toJSON": (lambda v: json.dumps(v, indent=2), (1,)),
    "fromJSON": (_from_json, (1,)),
    "jsonpath": (_jsonpath, (2,)),
    "sprig.trim": (_go_trim, (1,)),
    "sprig.upper": (lambda s: _str(s, "text").upper(), (1,)),
    "sprig.lower": (lambda s: _str(s, "text").lower(), (1,)),
    "sprig.replace": (lambda old, new, s: _replace(s, old, new), (3,)),
}


def _check_call(node: Call, source: str) -> None:
    counts = FUNCTIONS[node.func][1]
    if len(node.args) not in counts:
        want = " or ".join(str(c) for c in counts[:3])
        raise ExprError(f"expression {source!r}: {node.func}() takes {want} arguments, got {len(node.args)}")
    if node.func == "jsonpath" and isinstance(node.args[1], Literal):
        try:
            _jsonpath_steps(node.args[1].value)
        except ValueError as exc:
            raise ExprError(f"expression {source!r}: {exc}") from None


def argo_string(value: Any) -> str:
    """The parameter value Argo makes of an event expression's result: JSON, with a string's quotes
    removed (so a string stays as it is, a map becomes its JSON, nil becomes `null`)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        value = int(value)  # Go prints the float64 2.0 as 2
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return text[1:-1] if isinstance(value, str) else text
