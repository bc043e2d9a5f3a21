"""The error type, the limits and the per-evaluation budget of rule evaluation.

Budgets are cumulative per evaluation: every guarded operation of one `evaluate` call draws on
the same step, size and time allowance, so many moderate operations are stopped as surely as
one huge operation.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

from rpops.core.errors import UsageError

RULE_FILENAME = "<rule>"  # code objects of rules carry it; builtins use it to spot rule generators


class RuleError(UsageError):
    """A rule was refused (language, limits) or failed while evaluating; the message says which."""


@dataclass(frozen=True)
class Limits:
    """What one rule may cost. Every field must be positive."""

    max_source_chars: int = 2000  # length of the rule text
    max_ast_nodes: int = 500  # syntax nodes after parsing
    max_ast_depth: int = 50  # nesting depth of syntax nodes
    max_exponent: int = 1000  # largest integer exponent of `**`
    max_size: int = 1_000_000  # characters / items / big-int bytes produced, summed per evaluation
    max_iterations: int = 1_000_000  # loop iterations and rule-function calls, summed per evaluation
    timeout_s: float = 0.5  # wall-clock time of one evaluation
    max_int_bits: int = 4096  # size of integers built by `**`, `*`, `<<` and friends

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            number = (int, float) if spec.name == "timeout_s" else (int,)
            if isinstance(value, bool) or not isinstance(value, number) or not 0 < value < math.inf:
                raise RuleError(f"Limits.{spec.name} must be a positive number, got {value!r}")


DEFAULT_LIMITS = Limits()


def number_text(value: int) -> str:
    """An int for a message, without tripping the int-to-str digit limit on huge values."""
    bits = int.bit_length(value)
    return f"{value:,}" if bits <= 256 else f"about 2**{bits - 1}"


class Budget:
    """The allowance of one evaluation: steps (iterations, calls), size produced, a deadline."""

    __slots__ = ("limits", "deadline", "steps", "size")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.timeout_s
        self.steps = 0
        self.size = 0

    def tick(self, weight: int = 1) -> None:
        """Charge `weight` steps and check the clock."""
        self.steps += weight
        if self.steps > self.limits.max_iterations:
            raise RuleError(f"more than max_iterations {self.limits.max_iterations:,} loop iterations "
                            "and calls; narrow the loops or raise Limits.max_iterations")
        if time.monotonic() > self.deadline:
            raise self.timed_out()

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise self.timed_out()

    def timed_out(self) -> RuleError:
        if self.deadline < 0:
            return RuleError("a generator made by a rule cannot run after its evaluation ended")
        return RuleError(f"evaluation took longer than timeout_s {self.limits.timeout_s:g} s")

    def close(self) -> None:
        """End the evaluation: generators it made that escaped stop at their next clock check."""
        self.deadline = -1.0

    def room(self) -> int:
        """How much may still be produced."""
        return self.limits.max_size - self.size

    def produce(self, amount: int, what: str) -> None:
        """Charge `amount` characters/items before (or right after) they are built."""
        self.size += amount
        if self.size > self.limits.max_size:
            raise RuleError(f"{what} would bring the data built by this rule to {number_text(self.size)} "
                            f"characters/items, over max_size {self.limits.max_size:,}")
        if time.monotonic() > self.deadline:
            raise self.timed_out()

    def big_int(self, value: Any, what: str) -> None:
        """Check and charge an int result over 64 bits (its bytes count as size)."""
        bits = int.bit_length(value)
        if bits > self.limits.max_int_bits:
            raise RuleError(f"{what} gives an integer of {bits:,} bits, over max_int_bits "
                            f"{self.limits.max_int_bits:,}")
        if bits > 64:
            self.produce(bits >> 3, what)


class _State(threading.local):
    budget: Budget | None = None


state = _State()  # the budget of the evaluation running on this thread, if any


def active() -> Budget:
    """The running evaluation's budget; rule functions and generators cannot run outside one."""
    budget = state.budget
    if budget is None:
        raise RuleError("a function or generator made by a rule can only run while its rule is evaluated")
    return budget


def metered(iterator: Iterator[Any], budget: Budget, weight: int) -> Iterator[Any]:
    """Yield from `iterator`, charging `weight` steps per item.

    Steps are charged (and the clock read) once every 16 items, which halves the cost of a
    guarded loop; the remainder is charged when the iterator is exhausted.
    """
    chunk = 16 * weight
    count = 0
    for item in iterator:
        count += 1
        if not count & 15:
            budget.tick(chunk)
        yield item
    budget.tick((count & 15) * weight)


METERED_CODE = metered.__code__
