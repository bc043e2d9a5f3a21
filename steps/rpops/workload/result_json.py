"""A rule's result as JSON text, with the text's size bounded while it is written.

`json.dumps` builds the whole text before anyone can look at its size: a list holding 100,000
references to one 100,000-character string is a small value and a 10 GB text. `encode` writes
piece by piece and stops as soon as the text would pass `max_bytes`, so that a result costs at
most that much time and memory however it is shaped. Only JSON's own types are written.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from json.encoder import encode_basestring_ascii
from typing import Any

MAX_RESULT_BYTES = 1024 * 1024
MAX_RESULT_DEPTH = 100


class ResultError(ValueError):
    """The result cannot be sent: too large, too deep, or not JSON data. The message says which."""


def _kind(value: Any) -> str:
    """A public name of a value's type (never an internal one)."""
    if callable(value):
        return "function"
    if isinstance(value, Iterator):
        return "iterator"
    for base, name in ((set, "set"), (frozenset, "frozenset"), (complex, "complex"), (bytes, "bytes"),
                       (bytearray, "bytearray"), (range, "range")):
        if isinstance(value, base):
            return name
    return "object"


def _key(key: Any) -> str:
    if isinstance(key, str):
        return encode_basestring_ascii(str.__str__(key))
    if key is True or key is False or key is None:
        return {True: '"true"', False: '"false"', None: '"null"'}[key]
    if isinstance(key, int):
        return f'"{int.__repr__(key)}"'
    if isinstance(key, float) and math.isfinite(key):
        return f'"{float.__repr__(key)}"'
    raise ResultError(f"a dict key of type {_kind(key)} cannot be returned as JSON; use text keys")


def _scalar(value: Any) -> str | None:
    """The JSON text of a scalar, or None when `value` is a container."""
    if isinstance(value, str):
        return encode_basestring_ascii(str.__str__(value))
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ResultError("a result of type float that is not finite (NaN or infinity) "
                              "cannot be returned as JSON")
        return float.__repr__(value)
    if isinstance(value, list | tuple | dict):
        return None
    raise ResultError(f"result of type {_kind(value)} cannot be returned as JSON; return numbers, "
                      "text, booleans, lists or dicts")


def _items(value: Any) -> Iterator[str | Any]:
    """The pieces and values of one container, in order: values are yielded to be encoded."""
    if isinstance(value, dict):
        sep = "{"
        for key, item in dict.items(value):
            piece = _scalar(item)
            if piece is None:
                yield sep + _key(key) + ":"
                yield _Value(item)
            else:  # scalars are written at once: most results are lists of numbers or text
                yield sep + _key(key) + ":" + piece
            sep = ","
        yield "{}" if sep == "{" else "}"
    else:
        sep = "["
        for item in (list.__iter__(value) if isinstance(value, list) else tuple.__iter__(value)):
            piece = _scalar(item)
            if piece is None:
                yield sep
                yield _Value(item)
            else:
                yield sep + piece
            sep = ","
        yield "[]" if sep == "[" else "]"


class _Value:
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def encode(value: Any, max_bytes: int = MAX_RESULT_BYTES, max_depth: int = MAX_RESULT_DEPTH) -> str:
    """Compact JSON text of `value` (as json.dumps with separators (",", ":")); ResultError when
    the text would be longer than `max_bytes`, nest deeper than `max_depth` or hold non-JSON data."""
    out: list[str] = []
    size = 0
    stack: list[Iterator[str | Any]] = []
    pending: Any = _Value(value)
    while True:
        if isinstance(pending, _Value):
            piece = _scalar(pending.value)
            if piece is None:
                if len(stack) >= max_depth:
                    raise ResultError(f"the result nests deeper than {max_depth} levels; return "
                                      "flatter data")
                stack.append(_items(pending.value))
            else:
                out.append(piece)
                size += len(piece)
        else:
            out.append(pending)
            size += len(pending)
        if size > max_bytes:
            raise ResultError(f"the result is larger than {max_bytes:,} bytes as JSON (the answer size "
                              "limit); return less data")
        while stack:
            try:
                pending = next(stack[-1])
                break
            except StopIteration:
                stack.pop()
        else:
            return "".join(out)
