"""Typed step settings whose field descriptions double as `--help` text and template inputs.

A settings class is a frozen dataclass; each field carries `help` (and optionally `flag`,
`choices`, `repeat`, `positional`, and `parameter`: the template input that feeds it, see
rpops.core.step) in its metadata. `add_arguments` turns it into argparse flags and `from_args`
turns parsed flags back into the typed value, as krr does with its strategy settings (pydantic is
kept out of step start-up for speed).

An Argo template cannot drop an argument depending on an input, so every value a template passes
has a form it can write: a boolean takes `--x`, `--x true|false` and `--no-x`; an optional number
or string (default None) takes `''` for "not given".
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, TypeVar

from rpops.core.parsers import argparse_float, argparse_int

T = TypeVar("T")


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


def setting(default: Any = dataclasses.MISSING, *, help: str, flag: str | None = None,  # noqa: A002
            short: str | None = None, choices: tuple[str, ...] | None = None, repeat: bool = False,
            positional: bool = False, parameter: bool | str = False, template_default: str | None = None,
            template_required: bool = False, default_factory: Any = dataclasses.MISSING) -> Any:
    """Declare one settings field with its help text.

    short: a one-letter alias of the flag, e.g. "-f".
    parameter: True (or the input's name when it differs from the flag's) makes the field an input
    of the step's template, passed to the flag as `{{inputs.parameters.<name>}}`.
    template_default / template_required: where the template's default differs from the command
    line's: a path inside the step image, a wait a workflow can afford, a value a submission must
    name.
    """
    metadata = {"help": help, "flag": flag, "short": short, "choices": choices, "repeat": repeat,
                "positional": positional, "parameter": parameter, "template_default": template_default,
                "template_required": template_required}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not true or false")


def _optional(parse: Any) -> Any:
    def parse_or_none(text: str) -> Any:
        return None if text.strip() == "" else parse(text)

    parse_or_none.__name__ = getattr(parse, "__name__", "value")  # argparse names it in errors
    return parse_or_none


def _is_optional(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp)


def base_type(tp: Any) -> Any:
    """int for `int | None`, str for `tuple[str, ...]`: the type one flag value parses to."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return base_type(args[0])
    if origin in (list, tuple):
        return base_type(typing.get_args(tp)[0])
    return tp


def add_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        meta = field.metadata
        flag = meta.get("flag") or "--" + field.name.replace("_", "-")
        tp = base_type(hints[field.name])
        default = field.default if field.default is not dataclasses.MISSING else None
        help_text = meta.get("help", "")
        if default not in (None, "", ()) and tp is not bool:
            help_text += f" (default: {default})"
        if meta.get("positional"):
            parser.add_argument(field.name, choices=meta.get("choices"), help=help_text)
            continue
        if tp is bool:
            parser.add_argument(flag, dest=field.name, nargs="?", const=True, default=bool(default),
                                type=parse_bool, metavar="true|false", help=f"{help_text} (alone: true)")
            parser.add_argument("--no-" + flag[2:], dest=field.name, action="store_false",
                                help=argparse.SUPPRESS)
            continue
        # floats are finite: NaN and infinity compare false with every bound a step checks
        parse = {int: argparse_int, float: argparse_float}.get(tp, str)
        if _is_optional(hints[field.name]) and tp is not str:
            parse = _optional(parse)
        kwargs: dict[str, Any] = {"dest": field.name, "help": help_text, "type": parse,
                                  "metavar": field.name.upper()}
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
        parser.add_argument(*([meta["short"]] if meta.get("short") else []), flag, **kwargs)


def from_args(cls: type[T], args: argparse.Namespace) -> T:
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        value = getattr(args, field.name, None)
        if value is None:
            continue
        values[field.name] = tuple(value) if field.metadata.get("repeat") else value
    return cls(**values)

# The regions of manifests/overlays/.
REGIONS = ("us-east", "eu-west", "asia-pacific")
