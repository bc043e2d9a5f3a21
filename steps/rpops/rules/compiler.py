"""Rule text -> checked code object: parse, validate the language subset, rewrite, compile.

Only a single expression is accepted. The AST is validated iteratively (size, depth, node kinds)
before RestrictedPython's recursive transformer sees it; a RestrictingNodeTransformer subclass
then rewrites operations that can build large values or loop into calls of `rules.guards`.
"""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from types import CodeType
from typing import Any, TypeVar, cast

from RestrictedPython.transformer import FORBIDDEN_FUNC_NAMES, RestrictingNodeTransformer

from rpops.rules.guards import DENIED_ATTRIBUTES, GUARDS
from rpops.rules.limits import RULE_FILENAME, Budget, Limits, RuleError
from rpops.rules.safe_builtins import BUILTINS

_N = TypeVar("_N", bound=ast.AST)


@dataclass(frozen=True)
class CompiledCode:
    code: CodeType
    names: frozenset[str]  # names the rule reads that the caller provides (not builtins)
    guarded: bool  # needs a budget: calls, loops, lambdas or checked operations
    nested: bool  # has comprehensions or lambdas (their scopes cannot see eval() locals)
    guards: tuple[str, ...]  # the guard functions the code calls


def describe(source: str) -> str:
    """The rule, shortened for messages."""
    text = " ".join(source.split())
    return repr(text if len(text) <= 60 else text[:57] + "...")


# --- validation (iterative: no recursion on hostile nesting) --------------------------------

_EXPRESSIONS = (
    ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Compare, ast.IfExp, ast.Call, ast.Name, ast.Constant,
    ast.Attribute, ast.Subscript, ast.Slice, ast.List, ast.Tuple, ast.Set, ast.Dict, ast.ListComp,
    ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.JoinedStr, ast.FormattedValue, ast.Lambda,
    ast.comprehension, ast.keyword, ast.arguments, ast.arg,
)
_REFUSED = {
    ast.NamedExpr: "assignment expressions (:=) are not allowed in rules",
    ast.Starred: "starred expressions (*x, **x) are not allowed in rules",
    ast.Yield: "yield is not allowed in rules",
    ast.YieldFrom: "yield is not allowed in rules",
    ast.Await: "await is not allowed in rules",
    ast.MatMult: "the @ operator is not allowed in rules",
    ast.Del: "del is not allowed in rules",
}


def _literal(node: ast.AST) -> bool:
    """A constant, or a list/tuple/set display of constants (bounded by the source)."""
    if isinstance(node, ast.Constant):
        return True
    return isinstance(node, (ast.List, ast.Tuple, ast.Set)) and all(
        isinstance(element, ast.Constant) for element in node.elts)


def _check_name(name: str | None, what: str) -> None:
    if name is None:
        return
    if name.startswith("_") and name != "_":
        raise RuleError(f"{what} {name!r} starts with '_', which rules may not use")
    if name in FORBIDDEN_FUNC_NAMES:
        raise RuleError(f"{what} {name!r} is not available in rules")


def _check_target(target: ast.AST) -> None:
    """Loop targets bind names only (no attribute or item assignment into given values)."""
    stack = [target]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Tuple, ast.List)):
            stack.extend(node.elts)
        elif not isinstance(node, ast.Name):
            raise RuleError("comprehension targets must be plain names, e.g. 'for k, v in d.items()'")


def _check_node(node: ast.AST) -> None:
    if isinstance(node, ast.Name):
        _check_name(node.id, "name")
    elif isinstance(node, ast.Attribute):
        _check_name(node.attr, "attribute")
        if node.attr in DENIED_ATTRIBUTES:
            raise RuleError(f"attribute {node.attr!r} is not available in rules")
    elif isinstance(node, ast.arg):
        _check_name(node.arg, "parameter")
    elif isinstance(node, ast.keyword):
        if node.arg is None:
            raise RuleError("**keyword unpacking is not allowed in rules")
        _check_name(node.arg, "keyword argument")
    elif isinstance(node, ast.Dict):
        if any(key is None for key in node.keys):
            raise RuleError("**mapping unpacking is not allowed in rules")
    elif isinstance(node, ast.comprehension):
        if node.is_async:
            raise RuleError("async comprehensions are not allowed in rules")
        _check_target(node.target)
    elif isinstance(node, ast.Compare) and len(node.ops) > 1:
        for op, right in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, (ast.In, ast.NotIn)) and not _literal(right):
                raise RuleError("chained comparisons with 'in' are not supported; split them with 'and'")


_TOKEN_FIELDS = frozenset({"ctx", "op", "ops"})  # operator and context singletons, checked in place
_EXPRESSION_SET = frozenset(_EXPRESSIONS)


def _children(node: ast.AST) -> Iterator[ast.AST]:
    """The child nodes of `node`, without the operator/context tokens (a lean ast.iter_child_nodes)."""
    for field in node._fields:
        if field in _TOKEN_FIELDS:
            continue
        value = getattr(node, field, None)
        if isinstance(value, ast.AST):
            yield value
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, ast.AST):
                    yield item


def _check_tokens(node: ast.AST) -> None:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
        raise RuleError(_REFUSED[ast.MatMult])
    ctx = getattr(node, "ctx", None)
    if ctx is not None and not isinstance(ctx, (ast.Load, ast.Store)):
        raise RuleError(_REFUSED[ast.Del])


def validate(tree: ast.Expression, limits: Limits) -> frozenset[str]:
    """Refuse anything outside the expression subset, too many nodes or too deep nesting.

    Returns the free names the rule reads (neither bound inside it nor builtins).
    """
    count = 0
    loaded: set[str] = set()
    bound: set[str] = set()
    stack: list[tuple[ast.AST, int]] = [(tree.body, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > limits.max_ast_nodes:
            raise RuleError(f"more than max_ast_nodes {limits.max_ast_nodes} syntax nodes; simplify the rule")
        if depth > limits.max_ast_depth:
            raise RuleError(f"nested deeper than max_ast_depth {limits.max_ast_depth}; simplify the rule")
        kind = type(node)
        if kind not in _EXPRESSION_SET:
            raise RuleError(_REFUSED.get(kind) or f"{kind.__name__} is not allowed in rules")
        if kind is ast.Name:
            name = node.id  # type: ignore[attr-defined]
            _check_name(name, "name")
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(name)  # type: ignore[attr-defined]
        elif kind is not ast.Constant:
            _check_node(node)
            _check_tokens(node)
            if kind is ast.arg:
                bound.add(node.arg)  # type: ignore[attr-defined]
        for child in _children(node):
            stack.append((child, depth + 1))
    return frozenset(loaded - bound - BUILTINS.keys())


# --- rewriting -------------------------------------------------------------------------------

_BINARY = {
    ast.Add: "_add_", ast.Sub: "_sub_", ast.Mult: "_mul_", ast.Mod: "_mod_", ast.Pow: "_pow_",
    ast.LShift: "_lshift_", ast.RShift: "_rshift_", ast.FloorDiv: "_floordiv_",
    ast.BitOr: "_or_", ast.BitAnd: "_and_", ast.BitXor: "_xor_",
}
_UNARY = {ast.USub: "_neg_", ast.Invert: "_invert_"}
_NO_FOLD = object()
_LOCATION = ("lineno", "col_offset", "end_lineno", "end_col_offset")


def _located(node: _N, like: ast.AST) -> _N:
    """Give a new node, and the new nodes under it, the location of `like` (ast.fix_missing_locations
    limited to the nodes just made: existing subtrees keep theirs and are not walked)."""
    stack: list[ast.AST] = [node]
    while stack:
        current = stack.pop()
        if "lineno" in current._attributes and not hasattr(current, "lineno"):
            for attribute in _LOCATION:
                value = getattr(like, attribute, None)
                if value is None:
                    value = 1 if attribute.endswith("lineno") else 0
                setattr(current, attribute, value)
            stack.extend(_children(current))
    return node


_FOLD_MAX = 4096  # longest string/bytes a constant operation is folded into


def build_cost(node: ast.AST) -> int:
    """What one run of `node` builds regardless of its inputs: display items and f-string text."""
    total = 0
    for child in ast.walk(node):
        if isinstance(child, (ast.List, ast.Tuple, ast.Set)):
            total += len(child.elts)
        elif isinstance(child, ast.Dict):
            total += len(child.keys)
        elif isinstance(child, ast.JoinedStr):
            total += sum(len(part.value) for part in child.values
                         if isinstance(part, ast.Constant) and isinstance(part.value, str))
    return total


def _loop_weights(generators: list[ast.comprehension], body: list[ast.expr]) -> list[int]:
    """Steps per iteration of each `for`: 1 + what the rest of that iteration builds."""
    weights = []
    for position, generator in enumerate(generators):
        cost = 1 + sum(build_cost(condition) for condition in generator.ifs)
        if position + 1 < len(generators):
            cost += build_cost(generators[position + 1].iter)
        else:
            cost += sum(build_cost(expression) for expression in body)
        weights.append(cost)
    return weights


class RuleTransformer(RestrictingNodeTransformer):
    """RestrictedPython's checks, plus rewrites of every operation that needs a budget."""

    def __init__(self, limits: Limits) -> None:
        super().__init__()
        self.fold_budget = Budget(limits)
        self.guards: set[str] = set()
        self.calls = False
        self.nested = False

    def _guard(self, name: str, args: list[ast.expr], like: ast.AST) -> ast.Call:
        self.guards.add(name)
        call = ast.Call(func=ast.Name(id=name, ctx=ast.Load()), args=args, keywords=[])
        return _located(call, like)

    def node_contents_visit(self, node: Any) -> Any:
        """NodeTransformer.generic_visit without descending into operator/context tokens.

        The tokens are leaves that RestrictedPython only accepts; `validate` already checked them.
        """
        for field in node._fields:
            if field in _TOKEN_FIELDS:
                continue
            old = getattr(node, field, None)
            if isinstance(old, list):
                new_values = []
                for value in old:
                    if isinstance(value, ast.AST):
                        value = self.visit(value)
                        if value is None:
                            continue
                        if not isinstance(value, ast.AST):
                            new_values.extend(value)
                            continue
                    new_values.append(value)
                old[:] = new_values
            elif isinstance(old, ast.AST):
                new_node = self.visit(old)
                if new_node is None:
                    delattr(node, field)
                else:
                    setattr(node, field, new_node)
        return node

    def _fold(self, guard: str, *values: Any) -> Any:
        """Constant operations are done now, with the same checks (so `9**9**9` fails here)."""
        try:
            value = GUARDS[guard](*values, self.fold_budget)
        except RuleError:
            raise
        except Exception:
            return _NO_FOLD  # e.g. 1 + 'a': leave the error to evaluation
        if isinstance(value, (str, bytes)) and len(value) > _FOLD_MAX:
            return _NO_FOLD
        if not isinstance(value, (int, float, complex, str, bytes)):
            return _NO_FOLD
        return value

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        node = self.node_contents_visit(node)
        guard = _BINARY.get(type(node.op))
        if guard is None:
            return node
        if isinstance(node.left, ast.Constant) and isinstance(node.right, ast.Constant):
            value = self._fold(guard, node.left.value, node.right.value)
            if value is not _NO_FOLD:
                return ast.copy_location(ast.Constant(value=value), node)
        return self._guard(guard, [node.left, node.right], node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        node = self.node_contents_visit(node)
        guard = _UNARY.get(type(node.op))
        if guard is None or isinstance(node.operand, ast.Constant):
            return node
        return self._guard(guard, [node.operand], node)

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        node = self.node_contents_visit(node)
        if len(node.ops) != 1 or not isinstance(node.ops[0], (ast.In, ast.NotIn)):
            return node
        if _literal(node.comparators[0]):
            return node
        call = self._guard("_in_", [node.left, node.comparators[0]], node)
        if isinstance(node.ops[0], ast.NotIn):
            return ast.copy_location(ast.UnaryOp(op=ast.Not(), operand=call), node)
        return call

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        node = self.node_contents_visit(node)
        if isinstance(node.slice, ast.Constant):
            return node  # a constant key or index cannot copy anything: keep it native
        return self._guard("_getitem_", [node.value, node.slice], node)

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        self.guards.add("_getattr_")
        return cast(ast.AST, super().visit_Attribute(node))

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.calls = True
        return cast(ast.AST, super().visit_Call(node))

    def visit_FormattedValue(self, node: ast.FormattedValue) -> ast.AST:
        node = self.node_contents_visit(node)
        spec: ast.expr = node.format_spec if node.format_spec is not None else ast.Constant(value="")
        node.value = self._guard("_format_", [node.value, ast.Constant(value=node.conversion), spec],
                                 node.value)
        node.conversion = -1
        node.format_spec = None
        return node

    def visit_Lambda(self, node: ast.Lambda) -> ast.AST:
        self.nested = True
        weight = 1 + build_cost(node.body)
        node = cast(ast.Lambda, super().visit_Lambda(node))
        tick = self._guard("_tick_", [ast.Constant(value=weight)], node.body)
        # `None or body`: the tick runs first on every call, then the body gives the value.
        node.body = ast.copy_location(ast.BoolOp(op=ast.Or(), values=[tick, node.body]), node.body)
        return node

    def _comprehension(self, node: Any, body: list[ast.expr]) -> ast.AST:
        self.nested = True
        weights = _loop_weights(node.generators, body)
        node = self.node_contents_visit(node)
        for generator, weight in zip(node.generators, weights, strict=True):
            generator.iter = self._guard("_getiter_", [generator.iter, ast.Constant(value=weight)],
                                         generator.iter)
        return cast(ast.AST, node)

    def visit_ListComp(self, node: ast.ListComp) -> ast.AST:
        return self._comprehension(node, [node.elt])

    def visit_SetComp(self, node: ast.SetComp) -> ast.AST:
        return self._comprehension(node, [node.elt])

    def visit_GeneratorExp(self, node: ast.GeneratorExp) -> ast.AST:
        return self._comprehension(node, [node.elt])

    def visit_DictComp(self, node: ast.DictComp) -> ast.AST:
        return self._comprehension(node, [node.key, node.value])

    def visit_comprehension(self, node: ast.comprehension) -> ast.AST:
        return self.node_contents_visit(node)  # the enclosing comprehension guards `iter`


# --- compile ---------------------------------------------------------------------------------

# Python warns about some rules as it compiles them ("'int' object is not subscriptable"): the
# rule fails with its own message when evaluated; the warning would only print caller text to
# the host's stderr. Matched by the rules' file name, so no other code's warnings are touched.
warnings.filterwarnings("ignore", category=SyntaxWarning, module=re.escape(RULE_FILENAME))

def _statement_hint(text: str) -> str | None:
    """If the text is Python statements, say which (a clearer refusal than a syntax error)."""
    try:
        module = ast.parse(text, RULE_FILENAME, mode="exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    kinds = sorted({type(statement).__name__ for statement in module.body
                    if not isinstance(statement, ast.Expr)})
    if kinds:
        return f"a rule is a single expression; statements ({', '.join(kinds)}) are not allowed"
    if len(module.body) > 1:
        return "a rule is a single expression, not several lines of expressions"
    return None


def compile_source(source: str, limits: Limits) -> CompiledCode:
    """Compile one rule, or raise RuleError saying what was refused."""
    try:
        return _compile(source, limits)
    except RuleError as exc:
        error = RuleError(f"rule {describe(source)} refused: {exc}")
    raise error


def _compile(source: str, limits: Limits) -> CompiledCode:
    if len(source) > limits.max_source_chars:
        raise RuleError(f"rule of {len(source):,} characters is longer than max_source_chars "
                        f"{limits.max_source_chars:,}")
    text = source.strip()
    if not text:
        raise RuleError("the rule is empty; write an expression such as 'cpu > 0.9'")
    try:
        tree = ast.parse(text, RULE_FILENAME, mode="eval")
    except SyntaxError as exc:
        hint = _statement_hint(text)
        raise RuleError(hint or f"not a valid expression: {exc.msg} (column {exc.offset})") from None
    except (ValueError, RecursionError, MemoryError, OverflowError) as exc:
        raise RuleError(f"rule cannot be parsed: {type(exc).__name__}: {str(exc)[:200]}") from None
    names = validate(tree, limits)
    transformer = RuleTransformer(limits)
    try:
        tree = transformer.visit(tree)  # new nodes get locations as they are made (_located)
    except RecursionError:
        raise RuleError("rule is nested too deeply") from None
    if transformer.errors:
        reasons = "; ".join(error.removeprefix("Line 1: ") for error in transformer.errors)
        raise RuleError(reasons)
    try:
        code = compile(tree, RULE_FILENAME, "eval", dont_inherit=True)
    except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError, OverflowError) as exc:
        raise RuleError(f"rule cannot be compiled: {type(exc).__name__}: {str(exc)[:200]}") from None
    guarded = bool(transformer.guards) or transformer.calls or transformer.nested
    return CompiledCode(code=code, names=names, guarded=guarded, nested=transformer.nested,
                        guards=tuple(sorted(transformer.guards)))

