"""Checked operations that compiled rules call in place of Python's own.

The compiler rewrites `+ - * % ** << >> // | & ^`, unary `-`/`~`, attribute access, subscripts
with a computed index, `in` against a computed container, f-string fields, loops and lambda calls
into calls of the functions here. Each checks sizes *before* building anything large and charges
what it builds to the running evaluation's budget (`limits.active()`).

The operator guards take an optional trailing `budget`; the compiler passes one when it folds
constant operations at compile time. Rules cannot name these functions (names starting with `_`
are refused), so they cannot pass it themselves.
"""

from __future__ import annotations

import math
import operator
import re
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from RestrictedPython.transformer import INSPECT_ATTRIBUTES

from rpops.rules.limits import RULE_FILENAME, Budget, RuleError, active, metered, number_text

SEQUENCES: Any = (str, bytes, bytearray, list, tuple)
_SET_LIKE: Any = (set, frozenset, dict, type({}.keys()), type({}.items()))
_BIG = 1 << 64
_SMALL = 1 << 31  # products of two ints below this fit in 64 bits
_NUMBERS = (int, float)

# Attribute names refused at compile time and again at run time.
DENIED_ATTRIBUTES = frozenset(INSPECT_ATTRIBUTES | {
    "format", "format_map",  # '{0.__class__}'.format(x) walks attributes
    "mro", "throw", "send",  # class walks; generator.throw(SystemExit)
})


def seq_len(value: Any) -> int:
    """The true length of a str/bytes/list/tuple (a subclass cannot lie through __len__)."""
    for base in SEQUENCES:
        if isinstance(value, base):
            length: int = base.__len__(value)
            return length
    return 0


def _budget(budget: Budget | None) -> Budget:
    return active() if budget is None else budget


def _charge_result(result: Any, what: str, budget: Budget | None) -> Any:
    """Charge an int result over 64 bits (its bytes count as size); pass anything else through."""
    if type(result) is int:
        if not -_BIG < result < _BIG:
            _budget(budget).big_int(result, what)
    elif isinstance(result, int) and not isinstance(result, bool):
        _budget(budget).big_int(result, what)
    return result


def _count(value: Any) -> int | None:
    """The repeat count a sequence would be multiplied by, or None if `value` is not int-like."""
    try:
        return operator.index(value)
    except TypeError:
        return None


# --- arithmetic -----------------------------------------------------------------------------

def _add_(a: Any, b: Any, budget: Budget | None = None) -> Any:
    if type(a) in _NUMBERS and type(b) in _NUMBERS:  # the common case, kept short
        result = a + b
        if type(result) is int and not -_BIG < result < _BIG:
            _budget(budget).big_int(result, "the + operator")
        return result
    if isinstance(a, SEQUENCES) and isinstance(b, SEQUENCES):
        _budget(budget).produce(seq_len(a) + seq_len(b), "concatenation (+)")
        return a + b
    return _charge_result(a + b, "the + operator", budget)


def _sub_(a: Any, b: Any, budget: Budget | None = None) -> Any:
    if isinstance(a, _SET_LIKE):
        _budget(budget).produce(len(a), "set difference (-)")
    return _charge_result(a - b, "the - operator", budget)


def _setop(symbol: str, op: Callable[[Any, Any], Any]) -> Callable[..., Any]:
    def guard(a: Any, b: Any, budget: Budget | None = None) -> Any:
        if isinstance(a, _SET_LIKE) or isinstance(b, _SET_LIKE):
            size = (len(a) if isinstance(a, _SET_LIKE) else 0) + (len(b) if isinstance(b, _SET_LIKE) else 0)
            _budget(budget).produce(size, f"set operation ({symbol})")
        return _charge_result(op(a, b), f"the {symbol} operator", budget)
    return guard


_or_ = _setop("|", operator.or_)
_and_ = _setop("&", operator.and_)
_xor_ = _setop("^", operator.xor)


def _mul_(a: Any, b: Any, budget: Budget | None = None) -> Any:
    kind_a, kind_b = type(a), type(b)
    if kind_a is float or kind_b is float:
        return a * b
    if isinstance(a, int) and isinstance(b, int):
        if -_SMALL < a < _SMALL and -_SMALL < b < _SMALL:
            return a * b
        bits = int.bit_length(a) + int.bit_length(b)
        if bits > 64:
            checked = _budget(budget)
            if bits > checked.limits.max_int_bits:
                raise RuleError(f"a product of up to {bits:,} bits is over max_int_bits "
                                f"{checked.limits.max_int_bits:,}")
            checked.produce(bits >> 3, "the * operator")
        return a * b
    for seq, times in ((a, b), (b, a)):
        if isinstance(seq, SEQUENCES):
            count = _count(times)
            if count is not None:
                _budget(budget).produce(seq_len(seq) * max(count, 0), "repeating a sequence (*)")
            break
    return a * b


def _pow_(a: Any, b: Any, budget: Budget | None = None) -> Any:
    if isinstance(a, int) and isinstance(b, int) and b > 1 and not -2 < a < 2:
        checked = _budget(budget)
        limits = checked.limits
        if b > limits.max_exponent:
            raise RuleError(f"exponent {number_text(b)} is over max_exponent {limits.max_exponent:,}")
        bits = math.ceil(b * math.log2(abs(a))) + 1
        if bits > limits.max_int_bits:
            raise RuleError(f"a power of about {bits:,} bits is over max_int_bits {limits.max_int_bits:,}")
        if bits > 64:
            checked.produce(bits >> 3, "the ** operator")
    return a ** b


def _lshift_(a: Any, b: Any, budget: Budget | None = None) -> Any:
    if isinstance(a, int) and isinstance(b, int) and a and b > 0:
        checked = _budget(budget)
        bits = int.bit_length(a) + b
        if bits > checked.limits.max_int_bits:
            raise RuleError(f"a shift to {number_text(bits)} bits is over max_int_bits "
                            f"{checked.limits.max_int_bits:,}")
    return _charge_result(a << b, "the << operator", budget)


def _rshift_(a: Any, b: Any, budget: Budget | None = None) -> Any:
    return _charge_result(a >> b, "the >> operator", budget)


def _floordiv_(a: Any, b: Any, budget: Budget | None = None) -> Any:
    return _charge_result(a // b, "the // operator", budget)


def _neg_(a: Any, budget: Budget | None = None) -> Any:
    return _charge_result(-a, "negation (-)", budget)


def _invert_(a: Any, budget: Budget | None = None) -> Any:
    return _charge_result(~a, "the ~ operator", budget)


def _mod_(a: Any, b: Any, budget: Budget | None = None) -> Any:
    if isinstance(a, str):
        return percent_format(_budget(budget), a, b)
    if isinstance(a, (bytes, bytearray)):
        raise RuleError("%-formatting of bytes is not supported in rules")
    return _charge_result(a % b, "the % operator", budget)


# --- text ------------------------------------------------------------------------------------

_CONTAINERS: Any = (
    list, tuple, set, frozenset, dict, type({}.keys()), type({}.values()), type({}.items()))
# Values with text of their own: everything else (functions, builtins, methods, iterators,
# classes) would show a memory address or an internal name, so it has no text in rules.
_TEXT_DATA: Any = (str, bytes, bytearray, int, float, complex, range, type(None), type(...))


def _textless(value: Any) -> str | None:
    """What kind of non-data `value` is ("a function", "an iterator"...), or None for data."""
    if isinstance(value, _TEXT_DATA):
        return None
    if isinstance(value, type):
        return "a class"
    if callable(value):
        return "a function"
    if isinstance(value, Iterator):
        return "an iterator"
    if isinstance(value, types.ModuleType | types.CodeType | types.FrameType | types.TracebackType):
        return "an internal object"
    return None


def no_text(kind: str) -> RuleError:
    return RuleError(f"{kind} has no text in rules (it would show internals); convert data values only")


def estimate_text(budget: Budget, value: Any) -> int:
    """An upper bound of len(repr(value)), found without building it (charges one step per item)."""
    room = budget.room()
    total = 0
    stack = [value]
    reprs: dict[int, int] = {}
    while stack:
        item = stack.pop()
        budget.tick()
        if isinstance(item, str):
            n = str.__len__(item)
            total += 2 * n + 2 if str.isprintable(item) else 10 * n + 2
        elif isinstance(item, (bytes, bytearray)):
            total += 4 * len(item) + 14
        elif isinstance(item, int):
            total += int.bit_length(item) * 3 // 10 + 3
        elif isinstance(item, (float, complex)) or item is None:
            total += 50
        elif isinstance(item, dict):
            total += 40 + 4 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, _CONTAINERS):
            total += 40 + 2 * len(item)
            stack.extend(item)
        elif isinstance(item, range):
            total += 40
        else:  # a value of the caller's: measure its repr once
            kind = _textless(item)
            if kind is not None:
                raise no_text(kind)
            key = id(item)
            if key not in reprs:
                reprs[key] = len(repr(item))
            total += reprs[key]
        if total > room:
            raise RuleError(f"converting a {type(value).__name__} to text would build about "
                            f"{number_text(total)} characters, over what max_size "
                            f"{budget.limits.max_size:,} leaves")
    return total


def to_text(budget: Budget, value: Any, convert: Callable[[Any], str]) -> str:
    """convert(value) (str, repr, ascii), refusing containers whose text would be too large and
    values whose text would show internals."""
    if isinstance(value, _CONTAINERS):
        estimate_text(budget, value)
    else:
        kind = _textless(value)
        if kind is not None:
            raise no_text(kind)
    return convert(value)


_PERCENT = re.compile(
    r"%(?:\((?P<key>[^)]*)\))?[-#0 +]*(?P<width>\*|\d+)?(?:\.(?P<prec>\*|\d*))?[hlL]?(?P<conv>.?)", re.S)


def percent_format(budget: Budget, fmt: str, args: Any) -> str:
    """fmt % args with the result's size bounded first (widths, precisions and every argument)."""
    total = str.__len__(fmt)
    positional = args if isinstance(args, tuple) else (args,)
    index = 0
    for match in _PERCENT.finditer(fmt):
        budget.tick()
        if match["conv"] == "%":
            continue
        for field in (match["width"], match["prec"]):
            if field == "*":
                raise RuleError("'*' widths and precisions in %-formatting are not supported in rules")
            if field:
                if len(field) > 15:
                    raise RuleError(f"%-format width {field[:20]}... is over max_size")
                total += int(field)
        key = match["key"]
        value: Any = None
        try:
            value = args[key] if key is not None else positional[index]
        except Exception:  # noqa: S110 - the formatting itself reports the missing argument
            pass
        if key is None:
            index += 1
        total += 330 if isinstance(value, float) else estimate_text(budget, value)
        if total > budget.room():
            raise RuleError(f"%-formatting would build about {number_text(total)} characters, over "
                            f"what max_size {budget.limits.max_size:,} leaves")
    budget.produce(total, "%-formatting")
    result = fmt % args
    if len(result) > total:  # a caller's object whose str() is longer than its repr()
        budget.produce(len(result) - total, "%-formatting")
    return result


_DIGITS = re.compile(r"\d+")


def _format_(value: Any, conversion: int, spec: str, budget: Budget | None = None) -> str:
    """One f-string field: {value!conversion:spec}."""
    checked = _budget(budget)
    if conversion == 115:
        value = to_text(checked, value, str)
    elif conversion == 114:
        value = to_text(checked, value, repr)
    elif conversion == 97:
        value = to_text(checked, value, ascii)
    if spec:
        room = checked.room()
        for digits in _DIGITS.findall(spec):
            if len(digits) > 15 or int(digits) > room:
                raise RuleError(f"format width/precision {digits[:20]} is over what max_size "
                                f"{checked.limits.max_size:,} leaves")
        kind = _textless(value)
        if kind is not None:
            raise no_text(kind)
        result = format(value, spec)
    else:
        result = to_text(checked, value, format)
    checked.produce(len(result), "an f-string")
    return result


# --- access ----------------------------------------------------------------------------------

def _getitem_(obj: Any, index: Any) -> Any:
    if isinstance(index, slice):
        result = obj[index]
        if isinstance(result, SEQUENCES):
            active().produce(seq_len(result), "slicing")
        return result
    return obj[index]


def _in_(item: Any, container: Any) -> bool:
    active().check_time()
    return item in container


def _getiter_(obj: Any, weight: int = 1) -> Iterator[Any]:
    """Loops of comprehensions: each item costs `weight` steps (1 + what the loop body builds)."""
    return metered(iter(obj), active(), weight)


def _tick_(weight: int) -> None:
    """Run at the start of every call of a rule's lambda."""
    active().tick(weight)


def consume(budget: Budget, iterable: Iterable[Any]) -> Iterator[Any]:
    """An iterator for a builtin to drain: metered, unless its items already are (rule generators)."""
    iterator = iter(iterable)
    if type(iterator) is types.GeneratorType:
        code = iterator.gi_code
        if code.co_filename == RULE_FILENAME or code is metered.__code__:
            return iterator
    return metered(iterator, budget, 1)


# --- attributes ------------------------------------------------------------------------------

Getter = Callable[[Any], Any]


def _plain(base: type, name: str) -> Getter:
    descriptor = getattr(base, name)
    return lambda obj: descriptor.__get__(obj, base)


def _charged(base: type, name: str, size: Callable[[Any, Any], int]) -> Getter:
    method = getattr(base, name)
    label = f"{base.__name__}.{name}()"

    def bind(obj: Any) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            budget = active()
            result = method(obj, *args, **kwargs)
            budget.produce(size(obj, result), label)
            return result
        return call
    return bind


def _result_len(_obj: Any, result: Any) -> int:
    return len(result)


def _parts_len(obj: Any, result: Any) -> int:
    return len(obj) + len(result)


def _str_pad(name: str) -> Getter:
    method = getattr(str, name)

    def bind(obj: str) -> Callable[..., str]:
        def call(width: Any, *rest: Any) -> str:
            active().produce(max(operator.index(width), str.__len__(obj)), f"str.{name}()")
            return method(obj, width, *rest)
        return call
    return bind


def _str_replace(obj: str) -> Callable[..., str]:
    def replace(old: Any, new: Any, count: Any = -1, /) -> str:
        budget = active()
        if isinstance(old, str) and isinstance(new, str):
            hits = str.count(obj, old) if old else str.__len__(obj) + 1
            limit = operator.index(count)
            if limit >= 0:
                hits = min(hits, limit)
            budget.produce(max(str.__len__(obj) + hits * (len(new) - len(old)), 0), "str.replace()")
        return str.replace(obj, old, new, count)
    return replace


def _str_join(obj: str) -> Callable[[Iterable[Any]], str]:
    def join(iterable: Iterable[Any], /) -> str:
        budget = active()
        items = list(consume(budget, iterable))
        total = str.__len__(obj) * max(len(items) - 1, 0)
        for item in items:
            if isinstance(item, str):
                total += str.__len__(item)
        budget.produce(total, "str.join()")
        return str.join(obj, items)
    return join


def _str_expandtabs(obj: str) -> Callable[..., str]:
    def expandtabs(tabsize: Any = 8) -> str:
        size = str.__len__(obj) + str.count(obj, "\t") * max(operator.index(tabsize), 0)
        active().produce(size, "str.expandtabs()")
        return str.expandtabs(obj, tabsize)
    return expandtabs


def _table(base: type, plain: str = "", charged: str = "", parts: str = "",
           **special: Getter) -> dict[str, Getter]:
    table: dict[str, Getter] = {name: _plain(base, name) for name in plain.split()}
    table.update({name: _charged(base, name, _result_len) for name in charged.split()})
    table.update({name: _charged(base, name, _parts_len) for name in parts.split()})
    table.update(special)
    return table


_STR = _table(
    str,
    plain="count endswith find index isalnum isalpha isascii isdecimal isdigit isidentifier islower "
          "isnumeric isprintable isspace istitle isupper rfind rindex startswith",
    charged="capitalize casefold lower upper swapcase title strip lstrip rstrip removeprefix "
            "removesuffix encode",
    parts="split rsplit splitlines partition rpartition",
    center=_str_pad("center"), ljust=_str_pad("ljust"), rjust=_str_pad("rjust"), zfill=_str_pad("zfill"),
    replace=_str_replace, join=_str_join, expandtabs=_str_expandtabs,
)
_INT = _table(int, plain="bit_length bit_count real imag numerator denominator conjugate")
_SET = "isdisjoint issubset issuperset"

# Methods rules may use, per builtin type: read-only ones, and copies that are charged.
ATTRIBUTES: dict[type, dict[str, Getter]] = {
    str: _STR,
    bytes: _table(bytes, plain="count endswith find startswith", charged="decode"),
    int: _INT,
    bool: _INT,
    float: _table(float, plain="is_integer real imag conjugate as_integer_ratio hex"),
    complex: _table(complex, plain="real imag conjugate"),
    list: _table(list, plain="count index", charged="copy"),
    tuple: _table(tuple, plain="count index"),
    dict: _table(dict, plain="get keys values items", charged="copy"),
    set: _table(set, plain=_SET, charged="copy"),
    frozenset: _table(frozenset, plain=_SET),
    range: _table(range, plain="start stop step"),
    types.MappingProxyType: _table(types.MappingProxyType, plain="get keys values items"),
    type(None): {},
}
_BASES = tuple((base, ATTRIBUTES[base]) for base in
               (bool, int, float, complex, str, bytes, list, tuple, dict, set, frozenset, range))

# Objects whose attributes lead to code, frames, classes or modules: no attribute at all.
_OPAQUE = (
    type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType,
    types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType, types.FrameType,
    types.TracebackType, types.CodeType, types.CellType,
    types.GetSetDescriptorType, types.MemberDescriptorType, types.MethodDescriptorType,
    types.WrapperDescriptorType, types.MethodWrapperType, types.ClassMethodDescriptorType,
    types.GenericAlias, BaseException, property, classmethod, staticmethod, super,
)


_MAPPING_READS = frozenset({"get", "keys", "values", "items"})


def _getattr_(obj: Any, name: str) -> Any:
    if type(name) is not str or name[:1] == "_" or name in DENIED_ATTRIBUTES:
        raise RuleError(f"attribute {name!r} is not available in rules")
    kind = type(obj)
    table = ATTRIBUTES.get(kind)
    if table is not None:
        getter = table.get(name)
        if getter is None:
            raise RuleError(f"{kind.__name__}.{name} is not available in rules")
        return getter(obj)
    for base, table in _BASES:
        if isinstance(obj, base):
            getter = table.get(name)
            if getter is not None:
                return getter(obj)
            break  # e.g. a namedtuple field or an Enum's .name: read it as data below
    if isinstance(obj, _OPAQUE):
        raise RuleError(f"attributes of {kind.__name__} objects are not available in rules")
    if name in _MAPPING_READS and isinstance(obj, Mapping):
        return getattr(obj, name)  # a caller's read-only mapping: its lookups are data access
    value = getattr(obj, name)
    if callable(value):
        raise RuleError(f"{kind.__name__}.{name} is a method or class; rules may only read data "
                        "attributes of the values they are given")
    return value


GUARDS: dict[str, Any] = {
    "_add_": _add_, "_sub_": _sub_, "_mul_": _mul_, "_mod_": _mod_, "_pow_": _pow_,
    "_lshift_": _lshift_, "_rshift_": _rshift_, "_floordiv_": _floordiv_,
    "_or_": _or_, "_and_": _and_, "_xor_": _xor_, "_neg_": _neg_, "_invert_": _invert_,
    "_format_": _format_, "_getitem_": _getitem_, "_getattr_": _getattr_, "_in_": _in_,
    "_getiter_": _getiter_, "_tick_": _tick_,
}
