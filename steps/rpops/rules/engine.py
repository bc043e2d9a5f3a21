"""Compiled rules: the cache, evaluation with a budget, and the conversion of every failure."""

from __future__ import annotations

import functools
import re
import types
from collections.abc import Mapping
from typing import Any

from rpops.rules.compiler import CompiledCode, compile_source, describe
from rpops.rules.guards import GUARDS
from rpops.rules.limits import DEFAULT_LIMITS, Budget, Limits, RuleError, state
from rpops.rules.safe_builtins import BUILTINS

# The globals every rule runs with. Guards live here rather than in the builtins so that, where
# the caller's names are merged in, the guards win over any name a caller passes.
_GLOBALS: dict[str, Any] = {"__builtins__": BUILTINS, **GUARDS}
_EMPTY: Mapping[str, Any] = types.MappingProxyType({})
_ESCAPES = (types.FunctionType, types.GeneratorType)
CACHE_SIZE = 1024

# Python's own texts of non-data objects, as they appear in error messages: replaced so that no
# message shows a memory address or an internal name (a guard's closure, a builtin's type).
_INTERNALS = (
    (re.compile(r"<(?:[^<>]|<[^<>]*>)*\bat 0x[0-9a-fA-F]+>"), "<object>"),
    (re.compile(r"<(?:built-in|bound|function|method|method-wrapper|class|module|code|frame|generator|"
                r"coroutine|cell|slot wrapper|wrapper_descriptor)\b(?:[^<>]|<[^<>]*>)*>"), "<object>"),
    (re.compile(r"\b[\w.]*<locals>\."), ""),
    (re.compile(r"\b0x[0-9a-fA-F]{6,}\b"), "0x..."),
    (re.compile(r"\b(?:builtin_function_or_method|method-wrapper|method_descriptor|"
                r"wrapper_descriptor|getset_descriptor|member_descriptor|cell|code|frame|"
                r"function|generator|coroutine|module)\b(?=\s+(?:object|found|instance))"), "function"),
)


def public_text(text: str) -> str:
    """`text` without memory addresses or internal names (see _INTERNALS)."""
    for pattern, replacement in _INTERNALS:
        text = pattern.sub(replacement, text)
    return text


class CompiledRule:
    """One compiled rule. `evaluate(names)` runs it against the caller's named values."""

    __slots__ = ("source", "limits", "names", "_code", "_guarded", "_nested", "_guards", "_label")

    def __init__(self, source: str, limits: Limits, compiled: CompiledCode) -> None:
        self.source = source
        self.limits = limits
        self.names = compiled.names  # the names the caller is expected to provide
        self._code = compiled.code
        self._guarded = compiled.guarded
        self._nested = compiled.nested
        self._guards = compiled.guards  # checked against the names: a caller name must not shadow one
        self._label = describe(source)

    def __repr__(self) -> str:
        return f"CompiledRule({self._label})"

    def evaluate(self, names: Mapping[str, Any]) -> Any:
        """The rule's value over `names`; raises RuleError when refused or failing."""
        if self._guarded:
            return self._evaluate_guarded(names)
        # Simple expressions (comparisons, `and`/`or`, names, constants) build nothing large and
        # cannot loop: run them as they are, with the caller's names as eval() locals.
        try:
            return eval(self._code, _GLOBALS, names)  # noqa: S307 - restricted code, see compiler
        except BaseException as exc:  # every failure, even SystemExit, becomes RuleError
            error = self._failure(exc, names)
        raise error

    def _evaluate_guarded(self, names: Mapping[str, Any]) -> Any:
        budget = Budget(self.limits)
        previous = state.budget
        state.budget = budget
        try:
            if self._nested or type(names) is not dict:
                # Comprehensions and lambdas are functions whose free names are globals, which
                # cannot see eval() locals: merge the names into a copy of the globals instead.
                # Other mappings than dicts are merged too, so that one answering for any key
                # cannot stand in for a guard.
                scope = dict(names)
                scope.update(_GLOBALS)
                result = eval(self._code, scope)  # noqa: S307 - restricted code, see compiler
            else:
                for name in self._guards:
                    if name in names:
                        raise RuleError(f"the name {name!r} is reserved; names given to rules may "
                                        "not start with '_'")
                result = eval(self._code, _GLOBALS, names)  # noqa: S307 - restricted code
            if type(result) in _ESCAPES:
                raise RuleError("the rule gives a function or generator; a rule must give a value "
                                "(wrap a generator in list(), sum(), any(), ...)")
            return result
        except BaseException as exc:  # every failure, even SystemExit, becomes RuleError
            error = self._failure(exc, names)
        finally:
            state.budget = previous
            budget.close()
        raise error

    def _failure(self, exc: BaseException, names: Any) -> RuleError:
        """The RuleError to raise for `exc` (raised outside the except block: no chained frames)."""
        if isinstance(exc, RuleError):
            return RuleError(f"rule {self._label} refused: {exc}")
        if not isinstance(names, Mapping):
            return RuleError(f"rule {self._label}: names must be a mapping of names to values, "
                             f"got {type(names).__name__}")
        if isinstance(exc, RecursionError):
            return RuleError(f"rule {self._label} refused: recursion too deep")
        if isinstance(exc, MemoryError):
            return RuleError(f"rule {self._label} refused: out of memory")
        try:
            detail = public_text(str(exc)[:1000])
        except BaseException:  # noqa: BLE001 - a broken __str__ must not escape either
            detail = ""
        if len(detail) > 200:
            detail = detail[:197] + "..."
        return RuleError(f"rule {self._label} failed: {type(exc).__name__}: {detail}".rstrip(": "))


@functools.lru_cache(maxsize=CACHE_SIZE)
def _compile_default(source: str) -> CompiledRule:
    return CompiledRule(source, DEFAULT_LIMITS, compile_source(source, DEFAULT_LIMITS))


@functools.lru_cache(maxsize=CACHE_SIZE // 4)
def _compile_with(source: str, limits: Limits) -> CompiledRule:
    return CompiledRule(source, limits, compile_source(source, limits))


def compile_rule(source: str, limits: Limits | None = None) -> CompiledRule:
    """Compile `source` (cached by source and limits); raises RuleError when it is refused."""
    if not isinstance(source, str):
        raise RuleError(f"a rule must be a string, got {type(source).__name__}")
    if type(source) is not str:
        source = str.__getitem__(source, slice(None))  # a plain copy of a str subclass
    if limits is None or limits is DEFAULT_LIMITS:
        return _compile_default(source)
    if not isinstance(limits, Limits):
        raise RuleError(f"limits must be a rpops.rules.Limits, got {type(limits).__name__}")
    return _compile_with(source, limits)


# Simple rules compiled with the default limits, by source: evaluate()'s fast path skips the
# cache's bookkeeping and a method call. Bounded by clearing it when full.
_SIMPLE: dict[str, CompiledRule] = {}


def evaluate(source: str, names: Mapping[str, Any] | None = None, limits: Limits | None = None) -> Any:
    """Compile (cached) and evaluate `source` over `names`; raises RuleError."""
    if names is None:
        names = _EMPTY
    if limits is None and type(source) is str:
        simple = _SIMPLE.get(source)
        if simple is not None:
            try:
                return eval(simple._code, _GLOBALS, names)  # noqa: S307 - restricted code, see compiler
            except BaseException as exc:  # every failure, even SystemExit, becomes RuleError
                error = simple._failure(exc, names)
            raise error
        rule = _compile_default(source)
        if not rule._guarded:
            if len(_SIMPLE) >= CACHE_SIZE:
                _SIMPLE.clear()
            _SIMPLE[source] = rule
    else:
        rule = compile_rule(source, limits)
    return rule.evaluate(names)
