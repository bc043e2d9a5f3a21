"""Typed step settings whose field descriptions double as `--help` text.

A settings class is a frozen dataclass; each field carries `help` (and optionally
`flag`, `choices`, `repeat`) in its metadata. `add_arguments` turns it into argparse
flags and `from_args` turns parsed flags back into the typed value, as krr does with
its strategy settings (pydantic is kept out of step start-up for speed).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, TypeVar

from rpops.parsers import argparse_float

T = TypeVar("T")


def setting(default: Any = dataclasses.MISSING, *, help: str, flag: str | None = None,  # noqa: A002
            choices: tuple[str, ...] | None = None, repeat: bool = False,
            default_factory: Any = dataclasses.MISSING) -> Any:
    """Declare one settings field with its help text."""
    metadata = {"help": help, "flag": flag, "choices": choices, "repeat": repeat}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _base_type(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _base_type(args[0])
    if origin in (list, tuple):
        return _base_type(typing.get_args(tp)[0])
    return tp


def add_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        meta = field.metadata
        flag = meta.get("flag") or "--" + field.name.replace("_", "-")
        tp = _base_type(hints[field.name])
        default = field.default if field.default is not dataclasses.MISSING else None
        help_text = meta.get("help", "")
        if default not in (None, "", ()) and tp is not bool:
            help_text += f" (default: {default})"
        kwargs: dict[str, Any] = {"dest": field.name, "help": help_text}
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
            kwargs["default"] = default
        else:
            # floats are finite: NaN and infinity compare false with every bound a step checks
            kwargs["type"] = {int: int, float: argparse_float}.get(tp, str)
            kwargs["metavar"] = field.name.upper()
            if meta.get("choices"):
                kwargs["choices"] = meta["choices"]
                kwargs.pop("metavar")
            if meta.get("repeat"):
                kwargs["action"] = "append"
                kwargs["default"] = None
            else:
                kwargs["default"] = default
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                kwargs["required"] = True
        parser.add_argument(flag, **kwargs)


def from_args(cls: type[T], args: argparse.Namespace) -> T:
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        value = getattr(args, field.name, None)
        if value is None:
            continue
        values[field.name] = tuple(value) if field.metadata.get("repeat") else value
    return cls(**values)
