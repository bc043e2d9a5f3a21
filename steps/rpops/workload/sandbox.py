"""Evaluation of `/api/secure-eval` requests in worker processes the service can kill.

The rules engine checks its budget between operations, but one C-level operation (comparing,
sorting or counting lists of many references to one large list) can run for seconds without a
check. Run in the server's process, that stalls every request. Here each evaluation runs in a
separate process (rpops.workload.sandbox_worker) under hard CPU and memory limits, its answer
already encoded and capped in size there; the server only waits on a pipe. A worker that has
not answered by the deadline is killed and replaced, and the caller gets a 4xx that says so.

    pool = EvalPool(workers=2)
    await pool.start()
    outcome = await pool.evaluate("x * 2", {"x": 21})   # Outcome(status=200, body=b'{"result":42}')
    await pool.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rpops.rules import DEFAULT_LIMITS
from rpops.workload.sandbox_worker import CPU_S_PER_EVALUATION, HEADER, MEMORY_HEADROOM

log = logging.getLogger(__name__)

# The rule's own budget (timeout_s) stops ordinary slow rules with its own message; this deadline
# stops what the budget cannot interrupt, plus writing the answer (at most 1 MiB) on a busy host.
HARD_DEADLINE_S = DEFAULT_LIMITS.timeout_s + 2.0
QUEUE_WAIT_S = 2.0  # how long a request waits for a free worker before a 429
START_TIMEOUT_S = 30.0
_STEPS_DIR = str(Path(__file__).resolve().parents[2])  # the directory holding the rpops package


@dataclass(frozen=True)
class Outcome:
    """An HTTP answer: status and JSON body (at most ~1 MiB), and whether it was a refusal."""

    status: int
    body: bytes
    refused: bool = False
    retry_after: int | None = None


def _refusal(status: int, message: str, retry_after: int | None = None, refused: bool = True) -> Outcome:
    body = json.dumps({"error": message}, separators=(",", ":")).encode()
    return Outcome(status, body, refused=refused, retry_after=retry_after)


class _Worker:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        assert process.stdin is not None and process.stdout is not None
        self.stdin = process.stdin
        self.stdout = process.stdout

    async def ask(self, request: bytes) -> tuple[bytes, bytes]:
        self.stdin.write(HEADER.pack(len(request)) + request)
        await self.stdin.drain()
        head = await self.stdout.readexactly(1 + HEADER.size)
        (size,) = HEADER.unpack(head[1:])
        return head[:1], await self.stdout.readexactly(size)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()


class EvalPool:
    """`workers` evaluation processes, each serving one request at a time."""

    def __init__(self, workers: int = 2) -> None:
        self.size = workers
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._all: set[_Worker] = set()
        self._closed = False
        self._started = asyncio.Event()  # set once the first worker is ready

    async def start(self) -> None:
        """Start the workers in the background (the server does not wait for them; the first
        requests do, up to START_TIMEOUT_S)."""

        async def one() -> None:
            worker = await self._spawn()
            if worker is not None:
                self._idle.put_nowait(worker)
                self._started.set()

        for _ in range(self.size):
            self._background(one())

    async def close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        for worker in list(self._all):
            worker.kill()
        for worker in list(self._all):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(worker.process.wait(), 5)
        self._all.clear()

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _spawn(self) -> _Worker | None:
        """A new ready worker; None when closed. Retries (with a pause) while starting fails."""
        code = ("import sys; sys.path.insert(0, sys.argv[1]); "
                "from rpops.workload.sandbox_worker import main; main()")
        pause = 0.2
        while not self._closed:
            process = None
            try:
                process = await asyncio.create_subprocess_exec(
                    sys.executable, "-I", "-c", code, _STEPS_DIR,
                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.DEVNULL,
                    env={"LC_ALL": "C.UTF-8"})  # none of the server's variables (its admin token)
                worker = _Worker(process)
                self._all.add(worker)  # from here on, close() kills it
                line = await asyncio.wait_for(worker.stdout.readline(), START_TIMEOUT_S)
                if line == b"READY\n":
                    return worker
                self._all.discard(worker)
                log.error("secure-eval worker did not start (exit %s); retrying", process.returncode)
            except (TimeoutError, OSError) as exc:
                log.error("secure-eval worker did not start (%s); retrying", exc)
            except BaseException:  # cancelled (the server stops): leave no process behind
                if process is not None:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                raise
            if process is not None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
            await asyncio.sleep(pause)
            pause = min(pause * 2, 5.0)
        return None

    def _replace(self, worker: _Worker) -> None:
        """Kill `worker` (if still running) and start another in its place."""
        worker.kill()
        self._all.discard(worker)

        async def renew() -> None:
            with contextlib.suppress(Exception):
                await worker.process.wait()
            fresh = await self._spawn()
            if fresh is not None:
                self._idle.put_nowait(fresh)

        if not self._closed:
            self._background(renew())

    async def _acquire(self) -> _Worker | None:
        """An idle worker within QUEUE_WAIT_S, else None. Never loses one: a worker handed over
        as the wait times out is still taken (wait_for could drop it)."""
        if not self._started.is_set():  # just started: wait for the first worker, not QUEUE_WAIT_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._started.wait(), START_TIMEOUT_S)
        getter = asyncio.ensure_future(self._idle.get())
        done, _ = await asyncio.wait({getter}, timeout=QUEUE_WAIT_S)
        if done:
            return getter.result()
        getter.cancel()
        try:
            return await getter
        except asyncio.CancelledError:
            return None

    async def evaluate(self, expression: str, context: dict[str, object]) -> Outcome:
        """Evaluate in a worker: the answer, or a 4xx refusal naming the limit that was hit."""
        request = json.dumps({"expression": expression, "context": context},
                             separators=(",", ":")).encode()
        worker = await self._acquire()
        if worker is None:
            return _refusal(429, f"every evaluator is busy (all {self.size}); retry in a second",
                            retry_after=1, refused=False)
        try:
            kind, body = await asyncio.wait_for(worker.ask(request), HARD_DEADLINE_S)
        except TimeoutError:
            self._replace(worker)
            return _refusal(400, f"expression refused: evaluation took longer than timeout_s "
                                 f"{DEFAULT_LIMITS.timeout_s:g} s and was stopped after "
                                 f"{HARD_DEADLINE_S:g} s")
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(worker.process.wait(), 1.0)
            log.warning("a secure-eval worker ended while evaluating (exit status %s)",
                        worker.process.returncode)
            self._replace(worker)
            return _refusal(400, f"expression refused: the evaluation went over the evaluator's limits "
                                 f"({CPU_S_PER_EVALUATION} CPU seconds, {MEMORY_HEADROOM >> 20} MiB of "
                                 "memory) and was stopped")
        except BaseException:
            self._replace(worker)  # cancelled (the client left): the worker may still be busy
            raise
        self._idle.put_nowait(worker)
        if kind == b"R":
            return Outcome(200, body)
        return _refusal(400, body.decode("utf-8", "replace"), refused=kind == b"E")
