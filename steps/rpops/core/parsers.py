"""Parsing of untrusted text in one place: URLs, numbers, input files and JSON bodies.

Every command line flag and request body goes through these, so that each kind of bad input
is refused the same way: a `UsageError` (exit 2) naming the input and the fix, never a
traceback, and never after reading without bound (a FIFO, /dev/zero, a nesting bomb).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import stat
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rpops.core.errors import UsageError

MAX_FILE_BYTES = 4 * 1024 * 1024  # rules, policies and manifests are a few KiB; 4 MiB is generous
MAX_NESTING = 100  # JSON/YAML nesting depth accepted from outside; real documents stay under 20


# --- numbers ---------------------------------------------------------------------------------

def finite_float(text: str | float, flag: str = "the value") -> float:
    """A finite float from a flag's text; NaN and infinity are refused."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise UsageError(f"{flag} {text!r}: not a number; write e.g. 5 or 0.5") from None
    if not math.isfinite(value):
        raise UsageError(f"{flag} {text!r}: must be a finite number (not NaN or infinity); write e.g. 5")
    return value


def argparse_float(text: str) -> float:
    """argparse `type=` for floats: a finite number, or argparse's usage error (exit 2)."""
    try:
        return finite_float(text, "")
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc).strip()) from None


def argparse_int(text: str) -> int:
    """argparse `type=` for whole numbers, with an error that says what to write (exit 2)."""
    try:
        return int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; write e.g. 3") from None


# --- URLs ------------------------------------------------------------------------------------

def http_url(url: str, label: str) -> str:
    """An absolute http(s) URL with a host and no query or fragment; returned without a trailing '/'."""
    example = "write e.g. http://127.0.0.1:8000"
    if not isinstance(url, str) or any(c.isspace() or ord(c) < 32 for c in url):
        raise UsageError(f"{label}: {url!r} is not an http(s) URL (it holds spaces or control "
                         f"characters); {example}")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError as exc:  # an unclosed '[', a bad IPv6 literal, a port out of range
        raise UsageError(f"{label}: {url!r} is not a valid URL ({exc}); {example}") from None
    if parts.scheme not in ("http", "https") or not host or port == 0:
        raise UsageError(f"{label}: {url!r} is not an http(s) URL with a host; {example}")
    if parts.query or parts.fragment:
        raise UsageError(f"{label}: {url!r} has a query or fragment; give the service's base URL only")
    return url.rstrip("/")


# --- files -----------------------------------------------------------------------------------

def read_text_file(path: str | Path, label: str, max_bytes: int = MAX_FILE_BYTES,
                   what: str = "the file") -> str:
    """The UTF-8 text of a regular file of at most `max_bytes`.

    Opened without blocking and checked before reading: a FIFO, a device (/dev/zero) or a
    directory is refused rather than waited on or read for ever.
    """
    def refuse(problem: str) -> UsageError:
        return UsageError(f"{label}: cannot read {what}: {problem}")

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise refuse(f"{exc.strerror or exc}; pass a readable file") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise refuse("not a regular file; pass a file (not a pipe, device or directory)")
        if info.st_size > max_bytes:
            raise refuse(f"{info.st_size:,} bytes, over the limit of {max_bytes:,}; pass a smaller file")
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:  # the file grew while being read
                raise refuse(f"over the limit of {max_bytes:,} bytes; pass a smaller file")
            chunks.append(chunk)
    except OSError as exc:
        raise refuse(f"{exc.strerror or exc}; pass a readable file") from None
    finally:
        os.close(fd)
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{label}: not UTF-8 text; pass a text file") from None


def load_yaml_text(text: str, label: str, max_depth: int = MAX_NESTING) -> Any:
    """YAML (safe loader) from text, nesting at most `max_depth` deep; UsageError otherwise."""
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise UsageError(f"{label}: invalid YAML{where}: {problem}; fix the syntax") from None
    except RecursionError:
        raise UsageError(f"{label}: nested too deeply (over {max_depth} levels); flatten it") from None
    check_depth(doc, label, max_depth)
    return doc


def load_yaml_file(path: str | Path, label: str, what: str = "the file",
                   max_bytes: int = MAX_FILE_BYTES) -> Any:
    """YAML from a regular file: size-capped, never blocking, nesting bounded; UsageError otherwise."""
    return load_yaml_text(read_text_file(path, label, max_bytes, what), label)


# --- JSON ------------------------------------------------------------------------------------

class NestingError(ValueError):
    """A document nests deeper than allowed."""


def depth_exceeds(value: Any, max_depth: int) -> bool:
    """Whether lists/dicts in `value` nest deeper than `max_depth` (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list | tuple))
    return False


def check_depth(value: Any, label: str, max_depth: int = MAX_NESTING) -> None:
    if depth_exceeds(value, max_depth):
        raise UsageError(f"{label}: nested too deeply (over {max_depth} levels); flatten it")


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259 has no NaN or infinity); send a finite number")


def loads_json(raw: bytes | str, max_depth: int = MAX_NESTING) -> Any:
    """JSON from a request body. Raises ValueError (with a message fit for a client) when it is
    not JSON or nests deeper than `max_depth`; never RecursionError."""
    try:
        value = json.loads(raw, parse_constant=_not_json)
    except RecursionError:
        raise NestingError(f"nested too deeply (over {max_depth} levels)") from None
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except ValueError as exc:  # e.g. an integer over the interpreter's digit limit
        raise ValueError(str(exc)[:200]) from None
    if depth_exceeds(value, max_depth):
        raise NestingError(f"nested too deeply (over {max_depth} levels)")
    return value


def is_json_media_type(content_type: str | None) -> bool:
    """`application/json` (parameters allowed) or a `+json` type such as application/merge-patch+json."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))
