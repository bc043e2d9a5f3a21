"""`{{...}}` substitution, as Argo's template.Replace does it, over strings and typed values.

One left-to-right scan (as valyala/fasttemplate, which Argo uses): each `{{` is paired with the
next `}}`; an unpaired `{{` and everything after it stay text. Linear in the input, and a
substituted value is never scanned again: a value is data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class Unresolved(ValueError):
    """A `{{tag}}` with no value; the message is Argo's ("failed to resolve {{tag}}")."""

    def __init__(self, tag: str, why: str = "") -> None:
        super().__init__(f"failed to resolve {{{{{tag}}}}}" + (f": {why}" if why else ""))
        self.tag = tag


def tags(text: str) -> list[str]:
    """The trimmed contents of every `{{...}}` in `text`."""
    return [inner.strip() for _, _, inner in _scan(text)] if "{{" in text else []


def _scan(text: str) -> list[tuple[int, int, str]]:
    """(start, end, inner text) of each `{{...}}`, in order; linear time."""
    out: list[tuple[int, int, str]] = []
    pos = 0
    while True:
        start = text.find("{{", pos)
        if start < 0:
            return out
        end = text.find("}}", start + 2)
        if end < 0:
            return out  # no closing tag anywhere after: the rest is text
        out.append((start, end + 2, text[start + 2 : end]))
        pos = end + 2


def blank_tags(text: str, placeholder: str) -> str:
    """`text` with every `{{...}}` replaced by `placeholder` (to check a field's syntax early)."""
    parts, pos = [], 0
    for start, end, _ in _scan(text):
        parts += [text[pos:start], placeholder]
        pos = end
    parts.append(text[pos:])
    return "".join(parts)


def render(text: str, values: Mapping[str, str], *, strict: bool = True) -> str:
    """Replace each known tag; an unknown one raises Unresolved (strict) or stays as written."""
    if "{{" not in text:
        return text

    parts: list[str] = []
    pos = 0
    env: dict[str, Any] | None = None
    for start, end, inner in _scan(text):
        tag = inner.strip()
        if tag.startswith("="):
            if env is None:
                from rpops.local.expr import exprlang  # only documents with expression tags need it

                env = exprlang.expand(values)
            value = _expression(tag[1:].strip(), env, strict)
        else:
            value = values.get(tag)
        if value is None:
            if strict:
                raise Unresolved(tag)
            value = text[start:end]
        parts.append(text[pos:start])
        parts.append(value)
        pos = end
    parts.append(text[pos:])
    return "".join(parts)


def first_unresolved(obj: Any, values: Mapping[str, str]) -> str | None:
    """The first `{{tag}}` written in `obj` (strings, dataclasses, ...) that `values` cannot resolve.

    Checked on the text as written, not after substitution: a value that itself holds `{{` is
    data, not an unresolved reference.
    """
    env: dict[str, Any] | None = None
    for _, text in strings(obj):
        for _start, _end, inner in _scan(text) if "{{" in text else ():
            tag = inner.strip()
            if tag.startswith("="):
                if env is None:
                    from rpops.local.expr import exprlang

                    env = exprlang.expand(values)
                if _expression(tag[1:].strip(), env, strict=False) is None:
                    return tag
            elif tag not in values:
                return tag
    return None


def _expression(source: str, env: dict[str, Any], strict: bool) -> str | None:
    """A `{{= expr}}` tag's value, as Argo renders it; None while names it reads are missing."""
    from rpops.local.expr import exprlang

    try:
        result = exprlang.compile_expression(source, exprlang.FULL).evaluate(env)
    except exprlang.ExprError as exc:
        if strict:
            raise Unresolved(f"={source}", str(exc)) from None
        return None
    return exprlang.go_string(result)


def deep_map(obj: T, fn: Callable[[str], str], skip: frozenset[str] = frozenset({"metrics"})) -> T:
    """Apply `fn` to every string inside dataclasses, tuples, lists and dict values."""
    return _map(obj, fn, skip)


def _map(obj: Any, fn: Callable[[str], str], skip: frozenset[str]) -> Any:
    if isinstance(obj, str):
        return fn(obj) if "{{" in obj else obj
    if isinstance(obj, tuple):
        return tuple(_map(v, fn, skip) for v in obj)
    if isinstance(obj, list):
        return [_map(v, fn, skip) for v in obj]
    if isinstance(obj, dict):
        return {k: _map(v, fn, skip) for k, v in obj.items()}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        changes = {}
        for f in dataclasses.fields(obj):
            if f.name in skip:
                continue
            old = getattr(obj, f.name)
            new = _map(old, fn, skip)
            if new is not old:
                changes[f.name] = new
        return dataclasses.replace(obj, **changes) if changes else obj
    return obj


def strings(obj: Any, path: str = "", skip: frozenset[str] = frozenset({"metrics"})) -> list[tuple[str, str]]:
    """Every (field path, string) inside `obj` (dataclass field names as written in Python)."""
    out: list[tuple[str, str]] = []

    def walk(value: Any, where: str) -> None:
        if isinstance(value, str):
            out.append((where, value))
        elif isinstance(value, (tuple, list)):
            for i, v in enumerate(value):
                walk(v, f"{where}[{i}]")
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{where}.{k}" if where else str(k))
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            for f in dataclasses.fields(value):
                if f.name not in skip:
                    walk(getattr(value, f.name), f"{where}.{f.name}" if where else f.name)

    walk(obj, path)
    return out
