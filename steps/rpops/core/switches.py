"""On/off flags that also take a value, so a template can pass `--dry-run false`.

`rpops.core.settings` renders booleans as `--x/--no-x`; an Argo template cannot drop an argument
depending on an input, so the steps' switches accept `--x`, `--x true|false` and `--no-x`.
"""

from __future__ import annotations

import argparse

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not true or false")


def add_switch(parser: argparse.ArgumentParser, name: str, help: str) -> None:  # noqa: A002
    flag = "--" + name.replace("_", "-")
    parser.add_argument(
        flag,
        dest=name,
        nargs="?",
        const=True,
        default=False,
        type=parse_bool,
        metavar="true|false",
        help=f"{help} (alone: true)",
    )
    parser.add_argument("--no-" + flag[2:], dest=name, action="store_false", help=argparse.SUPPRESS)
