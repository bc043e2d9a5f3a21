"""The builtins a rule can call: a small allow-list, each bounded by the evaluation's budget.

Builtins that drain an iterable in C (sum, any, all, min, max, sorted, list, ...) would bypass
the loop guard, so these versions drain it through a metered iterator instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from rpops.rules.guards import _add_, consume, to_text
from rpops.rules.limits import RuleError, active, metered, number_text

_MISSING: Any = object()
_SMALL = 1 << 63
_INT_TEXT = 5000  # longest text int() converts (Python's own default limit is 4300 digits)


def _named(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def rename(function: Callable[..., Any]) -> Callable[..., Any]:
        function.__name__ = function.__qualname__ = name
        return function
    return rename


def _extreme(pick: Callable[..., Any], name: str) -> Callable[..., Any]:
    @_named(name)
    def extreme(*args: Any, key: Any = None, default: Any = _MISSING) -> Any:
        if not args:
            raise TypeError(f"{name} expected at least 1 argument, got 0")
        values = consume(active(), args[0]) if len(args) == 1 else args
        options: dict[str, Any] = {"key": key}
        if default is not _MISSING:
            options["default"] = default
        return pick(values, **options)
    return extreme


@_named("sum")
def rule_sum(iterable: Iterable[Any], /, start: Any = 0) -> Any:
    budget = active()
    items = consume(budget, iterable)
    if isinstance(start, (int, float, complex)):
        total = sum(items, start)
        if isinstance(total, int) and int.bit_length(total) > 64:
            budget.big_int(total, "sum()")
        return total
    total = start
    for item in items:  # sums of lists/tuples: every partial concatenation is charged
        total = _add_(total, item, budget)
    return total


@_named("any")
def rule_any(iterable: Iterable[Any], /) -> bool:
    return any(consume(active(), iterable))


@_named("all")
def rule_all(iterable: Iterable[Any], /) -> bool:
    return all(consume(active(), iterable))


@_named("sorted")
def rule_sorted(iterable: Iterable[Any], /, *, key: Any = None, reverse: Any = False) -> list[Any]:
    items = list(consume(active(), iterable))
    items.sort(key=key, reverse=bool(reverse))
    return items


def _collection(kind: type, name: str) -> Callable[..., Any]:
    @_named(name)
    def build(*args: Any) -> Any:
        if not args:
            return kind()
        if len(args) > 1:
            raise TypeError(f"{name} expected at most 1 argument, got {len(args)}")
        return kind(consume(active(), args[0]))
    return build


@_named("dict")
def rule_dict(*args: Any, **kwargs: Any) -> dict[Any, Any]:
    if len(args) > 1:
        raise TypeError(f"dict expected at most 1 argument, got {len(args)}")
    if not args:
        return dict(**kwargs)
    budget = active()
    source = args[0]
    if hasattr(source, "keys"):  # a mapping: dict() reads keys() and items itself
        budget.tick(len(source))
        return dict(source, **kwargs)
    return dict(consume(budget, source), **kwargs)


def _small_int(value: Any, what: str) -> None:
    """Bounds of ranges and enumerate() starts: every item built from them stays a small int."""
    if isinstance(value, int) and not -_SMALL <= value < _SMALL:
        raise RuleError(f"{what} must lie between -2**63 and 2**63")


@_named("range")
def rule_range(*args: Any) -> range:
    budget = active()
    for value in args:
        _small_int(value, "range() bounds")
    result = range(*args)
    try:
        length = len(result)
    except OverflowError:  # more items than fit in an index
        length = abs((result.stop - result.start) // result.step)
    if length > budget.limits.max_iterations:
        raise RuleError(f"range() of {number_text(length)} items is over max_iterations "
                        f"{budget.limits.max_iterations:,}")
    return result


@_named("zip")
def rule_zip(*iterables: Any, strict: bool = False) -> Any:
    return metered(zip(*iterables, strict=strict), active(), 1)


@_named("enumerate")
def rule_enumerate(iterable: Iterable[Any], start: Any = 0) -> Any:
    _small_int(start, "the start of enumerate()")
    return metered(enumerate(iterable, start), active(), 1)


@_named("str")
def rule_str(*args: Any, **kwargs: Any) -> str:
    budget = active()
    if len(args) == 1 and not kwargs:
        value = args[0]
        result = to_text(budget, value, str)
        if result is not value:
            budget.produce(len(result), "str()")
        return result
    result = str(*args, **kwargs)  # str() or decoding bytes
    budget.produce(len(result), "str()")
    return result


@_named("int")
def rule_int(*args: Any, **kwargs: Any) -> int:
    budget = active()
    if args and isinstance(args[0], (str, bytes, bytearray)) and len(args[0]) > _INT_TEXT:
        # Text-to-int conversion is quadratic when the host lifts Python's digit limit.
        raise RuleError(f"int() of a text of {len(args[0]):,} characters is over {_INT_TEXT:,}")
    result = int(*args, **kwargs)
    if int.bit_length(result) > 64:
        budget.big_int(result, "int()")
    return result


@_named("round")
def rule_round(number: Any, ndigits: Any = None) -> Any:
    if ndigits is None:
        return round(number)
    if isinstance(number, int) and isinstance(ndigits, int) and ndigits < 0:
        # int.__round__ builds 10 ** -ndigits: past the number's own digits the answer is 0.
        if -ndigits > int.bit_length(number) * 3 // 10 + 2:
            return 0 * number
    return round(number, ndigits)


@_named("abs")
def rule_abs(value: Any, /) -> Any:
    result = abs(value)
    if isinstance(result, int) and int.bit_length(result) > 64:
        active().big_int(result, "abs()")
    return result


BUILTINS: dict[str, Any] = {
    "abs": rule_abs,
    "all": rule_all,
    "any": rule_any,
    "bool": bool,
    "dict": rule_dict,
    "enumerate": rule_enumerate,
    "float": float,
    "int": rule_int,
    "len": len,
    "list": _collection(list, "list"),
    "max": _extreme(max, "max"),
    "min": _extreme(min, "min"),
    "range": rule_range,
    "round": rule_round,
    "set": _collection(set, "set"),
    "sorted": rule_sorted,
    "str": rule_str,
    "sum": rule_sum,
    "tuple": _collection(tuple, "tuple"),
    "zip": rule_zip,
}
