"""One evaluation process of `/api/secure-eval` (started by rpops.workload.sandbox).

Reads requests from stdin and writes answers to stdout, one at a time:

    request:  4-byte big-endian length, then JSON {"expression": str, "context": {...}}
    answer:   1 byte kind, 4-byte length, then UTF-8 text: b"R" the whole response body
              {"result": ...}; b"E" the message of a refused rule; b"J" the message of a
              result that cannot be sent (not JSON data, or over the size limit)

The process runs under hard limits set before the first request (resource.setrlimit): address
space, CPU seconds per evaluation (SIGXCPU ends the process), no files written, no processes
started, few descriptors. What the limits cannot stop, the parent does: it kills the process
at its deadline and starts another.
"""

from __future__ import annotations

import json
import os
import resource
import struct
import sys
from typing import BinaryIO

HEADER = struct.Struct(">I")
MAX_REQUEST = 1024 * 1024
MEMORY_HEADROOM = 512 * 1024 * 1024  # address space allowed over what the started process uses
CPU_S_PER_EVALUATION = 4  # CPU seconds before SIGXCPU ends the process: a backstop behind the
# parent's wall-clock deadline (2.5 s), for when the parent cannot kill it


def _vm_size() -> int:
    with open("/proc/self/statm", "rb") as fh:
        return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def limit_process() -> None:
    """The hard limits: set once, before any rule runs (they can only be lowered from here)."""
    for which, value in ((resource.RLIMIT_FSIZE, 0), (resource.RLIMIT_CORE, 0),
                         (resource.RLIMIT_NPROC, 0), (resource.RLIMIT_NOFILE, 16)):
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):  # e.g. NPROC where the platform refuses it: the rest holds
            pass
    try:
        address_space = _vm_size() + MEMORY_HEADROOM
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    except (OSError, ValueError):
        pass
    allow_cpu(CPU_S_PER_EVALUATION)


def allow_cpu(seconds: int) -> None:
    """Let the next evaluation use `seconds` more CPU (the soft limit moves; the hard one stays)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = int(usage.ru_utime + usage.ru_stime) + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = used + seconds
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def answer(request: bytes) -> tuple[bytes, str]:
    """(kind, text) for one request."""
    from rpops import rules
    from rpops.workload.result_json import ResultError, encode

    try:
        doc = json.loads(request)
        expression, context = doc["expression"], doc["context"]
    except (ValueError, KeyError, TypeError, RecursionError):
        return b"E", "the request to the evaluator was malformed"
    try:
        result = rules.evaluate(expression, context)
    except rules.RuleError as exc:
        return b"E", f"expression refused: {exc}"
    except MemoryError:
        return b"E", "expression refused: out of memory (the evaluator's memory limit)"
    try:
        return b"R", '{"result":' + encode(result) + "}"
    except ResultError as exc:
        return b"J", str(exc)
    except MemoryError:
        return b"E", "expression refused: out of memory (the evaluator's memory limit)"


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    from rpops import rules

    rules.evaluate("1 + 1")  # compile and import everything before the first request and the limits
    limit_process()
    stdout.write(b"READY\n")
    stdout.flush()
    while True:
        head = _read_exactly(stdin, HEADER.size)
        if head is None:
            return
        (size,) = HEADER.unpack(head)
        if size > MAX_REQUEST:
            return
        request = _read_exactly(stdin, size)
        if request is None:
            return
        allow_cpu(CPU_S_PER_EVALUATION)
        try:
            kind, text = answer(request)
        except BaseException:  # noqa: BLE001 - whatever failed, the caller gets a refusal, not a crash
            kind, text = b"E", "expression refused: the evaluation failed"
        body = text.encode("utf-8", "backslashreplace")
        stdout.write(kind + HEADER.pack(len(body)) + body)
        stdout.flush()


def main() -> None:
    # stdout carries answers only: anything printed elsewhere would corrupt the stream
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    serve(sys.stdin.buffer, out)


if __name__ == "__main__":
    main()
