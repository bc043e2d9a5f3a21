"""`when` (the govaluate subset Argo documents) and DAG `depends` logic.

Both are parsed by a small tokenizer and a recursive-descent parser into a tree that is then
evaluated; nothing is ever handed to Python's eval.

`when`, after `{{...}}` substitution, as Argo evaluates it: bare words are strings (Argo turns
govaluate variables into strings), numbers are float64, quoted strings use ' or ", `true` and
`false` are booleans. Operators: `||`, `&&`, `==`, `!=`, `<`, `<=`, `>`, `>=`, `=~`, `!~`
(regular expression, unanchored search), prefix `!` and numeric `-`, parentheses. Types
follow govaluate: `==` is false across types, ordering needs two numbers or two strings,
logic needs booleans. Anything else is an error, which makes the node Error as in Argo.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_PATTERN = 256
MAX_SUBJECT = 4096


class ExpressionError(ValueError):
    """An expression that cannot be parsed or evaluated; the message says why."""


# ---------------------------------------------------------------------------------------------
# Tokens


@dataclass(frozen=True)
class Token:
    kind: str  # num, str, bool, word, op, lparen, rparen
    value: Any
    pos: int


_SYMBOLS = set("=!<>~&|+-*/%^?:,")


def _tokenize_when(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c.isdigit() or (c == "." and i + 1 < n and text[i + 1].isdigit()):
            j = i
            while j < n and (text[j].isdigit() or text[j] == "."):
                j += 1
            try:
                tokens.append(Token("num", float(text[i:j]), i))
            except ValueError:
                raise ExpressionError(f"invalid number {text[i:j]!r} at position {i}") from None
            i = j
        elif c in "'\"":
            # govaluate ends a string at the next quote of either kind; a backslash escapes.
            j, buf = i + 1, []
            while j < n and text[j] not in "'\"":
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                buf.append(text[j])
                j += 1
            if j >= n:
                raise ExpressionError(f"unclosed quote at position {i}")
            tokens.append(Token("str", "".join(buf), i))
            i = j + 1
        elif c.isalpha():
            j = i
            while j < n and (text[j].isalnum() or text[j] in "_."):
                j += 1
            word = text[i:j]
            if word in ("true", "false"):
                tokens.append(Token("bool", word == "true", i))
            elif word in ("in", "IN"):
                raise ExpressionError("the 'in' operator is not supported in when expressions")
            else:
                tokens.append(Token("word", word, i))
            i = j
        elif c == "(":
            tokens.append(Token("lparen", c, i))
            i += 1
        elif c == ")":
            tokens.append(Token("rparen", c, i))
            i += 1
        elif c in _SYMBOLS:
            j = i
            while j < n and text[j] in _SYMBOLS:
                j += 1
            tokens.append(Token("op", text[i:j], i))
            i = j
        else:
            raise ExpressionError(f"invalid character {c!r} at position {i}")
    return tokens


# ---------------------------------------------------------------------------------------------
# Trees


@dataclass(frozen=True)
class Node:
    op: str  # lit, not, neg, or, and, or a comparator
    args: tuple[Any, ...]


_COMPARATORS = ("==", "!=", "<", "<=", ">", ">=", "=~", "!~")


class _Parser:
    def __init__(self, tokens: list[Token], text: str) -> None:
        self.tokens, self.text, self.i = tokens, text, 0

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def parse(self) -> Node:
        if not self.tokens:
            raise ExpressionError("empty expression")
        node = self.or_()
        tok = self.peek()
        if tok is not None:
            raise ExpressionError(f"unexpected {tok.value!r} at position {tok.pos}")
        return node

    def or_(self) -> Node:
        node = self.and_()
        while (tok := self.peek()) and tok.kind == "op" and tok.value == "||":
            self.take()
            node = Node("or", (node, self.and_()))
        return node

    def and_(self) -> Node:
        node = self.cmp()
        while (tok := self.peek()) and tok.kind == "op" and tok.value == "&&":
            self.take()
            node = Node("and", (node, self.cmp()))
        return node

    def cmp(self) -> Node:
        node = self.unary()
        while (tok := self.peek()) and tok.kind == "op" and tok.value in _COMPARATORS:
            self.take()
            node = Node(tok.value, (node, self.unary()))
        tok = self.peek()
        if tok is not None and tok.kind == "op" and tok.value not in ("||", "&&"):
            hint = " (quote values that contain '-')" if tok.value == "-" else ""
            raise ExpressionError(f"operator {tok.value!r} at position {tok.pos} is not supported{hint}")
        return node

    def unary(self) -> Node:
        tok = self.peek()
        if tok is None:
            raise ExpressionError("expression ends where a value was expected")
        if tok.kind == "op" and tok.value in ("!", "-"):
            self.take()
            return Node("not" if tok.value == "!" else "neg", (self.unary(),))
        return self.primary()

    def primary(self) -> Node:
        tok = self.take()
        if tok.kind in ("num", "str", "bool"):
            return Node("lit", (tok.value,))
        if tok.kind == "word":
            return Node("lit", (tok.value,))  # Argo: bare words compare as strings
        if tok.kind == "lparen":
            node = self.or_()
            close = self.peek()
            if close is None or close.kind != "rparen":
                raise ExpressionError(f"missing ')' for '(' at position {tok.pos}")
            self.take()
            return node
        raise ExpressionError(f"unexpected {tok.value!r} at position {tok.pos}")


def parse_when(text: str) -> Node:
    return _Parser(_tokenize_when(text), text).parse()


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _regex(pattern: str) -> re.Pattern[str]:
    if len(pattern) > MAX_PATTERN:
        raise ExpressionError(f"regular expression longer than {MAX_PATTERN} characters")
    if re.search(r"\(\?<?[=!]|\\[1-9]", pattern):
        raise ExpressionError("lookarounds and backreferences are not RE2 syntax")
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ExpressionError(f"invalid regular expression {pattern!r}: {exc}") from None
    _refuse_backtracking(pattern)
    return compiled


def _refuse_backtracking(pattern: str) -> None:
    """Python's re backtracks where RE2 does not: refuse repeats of repeats or alternations."""
    from re import _parser  # type: ignore[attr-defined]  # stdlib's own parser; read-only use

    def walk(items: Any, inside_repeat: bool) -> None:
        for op, arg in items:
            name = str(op)
            if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
                if inside_repeat:
                    raise ExpressionError("nested repetition in a regular expression is not supported")
                walk(arg[2], True)
            elif name == "BRANCH":
                if inside_repeat:
                    raise ExpressionError("alternation inside a repetition is not supported")
                for branch in arg[1]:
                    walk(branch, inside_repeat)
            elif name == "SUBPATTERN":
                walk(arg[3], inside_repeat)

    walk(_parser.parse(pattern), False)


def _evaluate(node: Node) -> Any:
    op = node.op
    if op == "lit":
        return node.args[0]
    if op in ("and", "or"):
        left = _evaluate(node.args[0])
        if not isinstance(left, bool):
            raise ExpressionError(
                f"value '{_show(left)}' cannot be used with '{'&&' if op == 'and' else '||'}', "
                "it is not a bool"
            )
        if (op == "and" and not left) or (op == "or" and left):
            return left
        right = _evaluate(node.args[1])
        if not isinstance(right, bool):
            raise ExpressionError(
                f"value '{_show(right)}' cannot be used with '{'&&' if op == 'and' else '||'}', "
                "it is not a bool"
            )
        return right
    if op == "not":
        value = _evaluate(node.args[0])
        if not isinstance(value, bool):
            raise ExpressionError(f"value '{_show(value)}' cannot be used with '!', it is not a bool")
        return not value
    if op == "neg":
        value = _evaluate(node.args[0])
        if isinstance(value, bool) or not isinstance(value, float):
            raise ExpressionError(f"value '{_show(value)}' cannot be negated, it is not a number")
        return -value
    left, right = _evaluate(node.args[0]), _evaluate(node.args[1])
    if op == "==":
        return type(left) is type(right) and left == right
    if op == "!=":
        return not (type(left) is type(right) and left == right)
    if op in ("=~", "!~"):
        if not isinstance(left, str) or not isinstance(right, str):
            raise ExpressionError(f"'{op}' needs two strings, got '{_show(left)}' and '{_show(right)}'")
        if len(left) > MAX_SUBJECT:
            raise ExpressionError(f"value longer than {MAX_SUBJECT} characters for '{op}'")
        found = _regex(right).search(left) is not None
        return found if op == "=~" else not found
    both_num = isinstance(left, float) and isinstance(right, float)
    both_str = isinstance(left, str) and isinstance(right, str)
    if isinstance(left, bool) or isinstance(right, bool) or not (both_num or both_str):
        raise ExpressionError(
            f"values '{_show(left)}' and '{_show(right)}' cannot be compared with '{op}' "
            "(both must be numbers or both strings)"
        )
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    return left >= right


def evaluate_when(text: str) -> bool:
    """Evaluate a substituted `when`; raise ExpressionError with Argo's wording on any problem."""
    try:
        result = _evaluate(parse_when(text))
    except ExpressionError as exc:
        raise ExpressionError(f"Invalid 'when' expression '{text}': {exc}") from None
    if not isinstance(result, bool):
        raise ExpressionError(f"Expected boolean evaluation for '{text}'. Got {_show(result)}")
    return result


# ---------------------------------------------------------------------------------------------
# depends


TASK_RESULTS = (
    "Succeeded",
    "Failed",
    "Errored",
    "Skipped",
    "Omitted",
    "Daemoned",
    "AnySucceeded",
    "AllFailed",
)
_DEP_TOKEN = re.compile(r"\s*(?:(\|\||&&|!|\(|\))|([a-zA-Z0-9][-a-zA-Z0-9]*)(?:\.([A-Za-z]+))?)")


@dataclass(frozen=True)
class DependsExpr:
    """A parsed `depends` (or `dependencies`) with bare task names already expanded."""

    tree: Node  # lit args: (task, result)
    tasks: tuple[str, ...]
    text: str

    def evaluate(self, results: Callable[[str, str], bool]) -> bool:
        return bool(_eval_depends(self.tree, results))


def _eval_depends(node: Node, results: Callable[[str, str], bool]) -> bool:
    if node.op == "lit":
        task, result = node.args
        return results(task, result)
    if node.op == "not":
        return not _eval_depends(node.args[0], results)
    left = _eval_depends(node.args[0], results)
    if node.op == "and":
        return left and _eval_depends(node.args[1], results)
    return left or _eval_depends(node.args[1], results)


def parse_depends(text: str, continue_on: Callable[[str], tuple[bool, bool]]) -> DependsExpr:
    """Parse `depends`; `continue_on(task)` gives (failed, error) to expand bare names as Argo does."""
    tokens: list[tuple[str, Any, int]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _DEP_TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ExpressionError(f"invalid depends '{text}' at position {pos}: {text[pos : pos + 10]!r}")
        if m.group(1):
            tokens.append(("op", m.group(1), m.start(1)))
        else:
            result = m.group(3)
            if result is not None and result not in TASK_RESULTS:
                hint = (
                    " (Argo has no .Completed; use (x.Succeeded || x.Failed))"
                    if result == "Completed"
                    else ""
                )
                raise ExpressionError(
                    f"task result '{result}' for task '{m.group(2)}' is invalid; "
                    f"use one of {', '.join(TASK_RESULTS)}{hint}"
                )
            tokens.append(("task", (m.group(2), result), m.start(2)))
        pos = m.end()
    tasks: list[str] = []

    def leaf(task: str, result: str | None) -> Node:
        if task not in tasks:
            tasks.append(task)
        if result is not None:
            return Node("lit", (task, result))
        failed, error = continue_on(task)
        names = (
            ["Succeeded", "Skipped", "Daemoned"]
            + (["Errored"] if error else [])
            + (["Failed"] if failed else [])
        )
        node = Node("lit", (task, names[0]))
        for name in names[1:]:
            node = Node("or", (node, Node("lit", (task, name))))
        return node

    i = 0

    def peek() -> tuple[str, Any, int] | None:
        return tokens[i] if i < len(tokens) else None

    def or_() -> Node:
        nonlocal i
        node = and_()
        while (t := peek()) and t[1] == "||":
            i += 1
            node = Node("or", (node, and_()))
        return node

    def and_() -> Node:
        nonlocal i
        node = unary()
        while (t := peek()) and t[1] == "&&":
            i += 1
            node = Node("and", (node, unary()))
        return node

    def unary() -> Node:
        nonlocal i
        t = peek()
        if t is None:
            raise ExpressionError(f"invalid depends '{text}': ends where a task was expected")
        i += 1
        if t[0] == "task":
            return leaf(*t[1])
        if t[1] == "!":
            return Node("not", (unary(),))
        if t[1] == "(":
            node = or_()
            close = peek()
            if close is None or close[1] != ")":
                raise ExpressionError(f"invalid depends '{text}': missing ')'")
            i += 1
            return node
        raise ExpressionError(f"invalid depends '{text}': unexpected '{t[1]}' at position {t[2]}")

    if not tokens:
        raise ExpressionError("depends is empty")
    tree = or_()
    if i != len(tokens):
        raise ExpressionError(
            f"invalid depends '{text}': unexpected '{_dep_text(tokens[i])}' at position {tokens[i][2]}"
        )
    return DependsExpr(tree=tree, tasks=tuple(tasks), text=text)


def _dep_text(token: tuple[str, Any, int]) -> str:
    if token[0] == "task":
        task, result = token[1]
        return f"{task}.{result}" if result else task
    return str(token[1])


def dependencies_expr(
    deps: tuple[str, ...], continue_on: Callable[[str], tuple[bool, bool]]
) -> DependsExpr | None:
    """`dependencies: [a, b]` is `depends: a && b` (each expanded as a bare name)."""
    if not deps:
        return None
    return parse_depends(" && ".join(deps), continue_on)
