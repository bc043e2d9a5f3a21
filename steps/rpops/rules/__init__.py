"""Safe expression rules: `cpu > 0.9 and p95_ms > 2000` over named values.

Rules are single Python expressions compiled with RestrictedPython plus checks of our own:
a small language subset, an allow-list of builtins and attributes, and limits on source size,
syntax size and depth, exponents, integer size, data built, loop iterations and time. Every
refusal or failure raises `RuleError` (a `UsageError`, exit 2) whose message says what was
refused. Compiled rules are cached by source.

    from rpops.rules import evaluate
    evaluate("cpu > 0.9 and p95_ms > 2000", {"cpu": 0.95, "p95_ms": 2500})  # True
"""

from rpops.rules.engine import CompiledRule, compile_rule, evaluate
from rpops.rules.limits import DEFAULT_LIMITS, Limits, RuleError
from rpops.rules.safe_builtins import BUILTINS

BUILTIN_NAMES = frozenset(BUILTINS)

__all__ = ["BUILTIN_NAMES", "DEFAULT_LIMITS", "CompiledRule", "Limits", "RuleError", "compile_rule",
           "evaluate"]
