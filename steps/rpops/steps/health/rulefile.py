"""health-check, the rules file: load, check, compile and dry-run the rules `classify` evaluates.

The built-in rules are health-rules.yaml beside this module; `--rules FILE` either tunes them
(only `thresholds:`/`queries:`/`window:`) or replaces them (`rules:` and a `default:`). A file is
checked in full when loaded: structure, statuses, every expression compiled and dry-run against
the known names, so a typo fails the step (exit 2) before anything is probed.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rpops.core.errors import UsageError
from rpops.core.parsers import load_yaml_file
from rpops.rules import CompiledRule, RuleError, compile_rule
from rpops.steps.health.decide import (
    INT_NAMES,
    NAME_DOCS,
    PLACEHOLDER,
    QUERY_NAMES,
    STATUSES,
    TUPLE_NAMES,
    Rule,
    RuleSet,
)

DEFAULT_RULES_PATH = Path(__file__).parent / "health-rules.yaml"

_RULE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_WINDOW = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
_TOP_KEYS = {"version", "thresholds", "queries", "window", "rules", "default"}
_RULE_KEYS = {"name", "when", "status", "reason"}


def load_rules(path: str | None) -> RuleSet:
    """The built-in rules, or a rules file merged with them (see the file's header). Raises UsageError."""
    default_doc = _read_yaml(DEFAULT_RULES_PATH, "the built-in rules")
    if path is None:
        return parse_rules(default_doc, "built-in")
    doc = _read_yaml(Path(path), f"--rules {path}")
    return parse_rules(doc, f"--rules {path}", base=default_doc)


def _read_yaml(path: Path, label: str) -> Any:
    return load_yaml_file(path, label, "the rules file")  # capped size, regular files only, bounded nesting


def parse_rules(doc: Any, source: str, base: Mapping[str, Any] | None = None) -> RuleSet:
    """Validate a rules document (merged over `base`), compile and dry-run every rule."""
    def fail(what: str) -> UsageError:
        return UsageError(f"{source}: {what}")

    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise fail("the rules file must be a YAML mapping with 'rules:' and 'default:' (or 'thresholds:')")
    unknown = set(doc) - _TOP_KEYS
    if unknown:
        raise fail(f"unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                   f"allowed: {', '.join(sorted(_TOP_KEYS))}")
    if doc.get("version", 1) != 1:
        raise fail(f"version {doc.get('version')!r} is not supported; use 'version: 1'")
    base = base or {}

    thresholds = dict(_thresholds(base.get("thresholds") or {}, fail))
    thresholds.update(_thresholds(doc.get("thresholds") or {}, fail))
    queries = dict(_queries(base.get("queries") or {}, fail))
    queries.update(_queries(doc.get("queries") or {}, fail))
    window = doc.get("window", base.get("window", "5m"))
    check_window(window, f"{source}: window")

    if "rules" in doc:
        if "default" not in doc:
            raise fail("a file with 'rules:' needs a final 'default:' with 'status' and 'reason', "
                       "e.g. default: {status: healthy, reason: all good}")
        raw_rules, raw_default = doc["rules"], doc["default"]
    elif "default" in doc:
        raise fail("'default:' without 'rules:'; add the rules, or drop 'default:' to keep the built-in ones")
    else:
        raw_rules, raw_default = base.get("rules"), base.get("default")

    known = set(NAME_DOCS) | set(thresholds)
    if not isinstance(raw_rules, list) or not raw_rules:
        raise fail("'rules' must be a non-empty list of {name, when, status, reason}")
    rules = tuple(_rule(i, raw, known, fail) for i, raw in enumerate(raw_rules))
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            raise fail(f"rule name {rule.name!r} is used twice; names must be unique")
        seen.add(rule.name)
    default_status, default_reason = _default(raw_default, known, fail)
    ruleset = RuleSet(source=source, rules=rules, default_status=default_status,
                      default_reason=default_reason, thresholds=thresholds, queries=queries, window=window)
    dry_run(ruleset)
    return ruleset


def check_window(window: Any, label: str) -> None:
    if not isinstance(window, str) or not _WINDOW.match(window):
        raise UsageError(f"{label}: {window!r} is not a Prometheus duration; use e.g. 30s, 5m or 1h")


def _thresholds(raw: Any, fail: Any) -> dict[str, float]:
    if not isinstance(raw, dict):
        raise fail("'thresholds' must be a mapping of name: number")
    out: dict[str, float] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not _IDENT.match(name):
            raise fail(f"threshold name {name!r} must be an identifier (letters, digits, _)")
        if name in NAME_DOCS:
            raise fail(f"threshold {name!r} would hide the signal of that name; rename it")
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise fail(f"threshold {name!r} must be a number, got {value!r}")
        out[name] = value
    return out


def _queries(raw: Any, fail: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise fail("'queries' must be a mapping of signal: PromQL")
    out: dict[str, str] = {}
    for name, value in raw.items():
        if name not in QUERY_NAMES:
            raise fail(f"unknown query {name!r}; queries exist for: {', '.join(QUERY_NAMES)}")
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise fail(f"query {name!r} must be a PromQL string ('' to skip it), got {value!r}")
        out[name] = value.strip()
    return out


def _rule(index: int, raw: Any, known: set[str], fail: Any) -> Rule:
    label = f"rule #{index + 1}"
    if not isinstance(raw, dict):
        raise fail(f"{label} must be a mapping with name, when, status and reason")
    if isinstance(raw.get("name"), str):
        label = f"rule #{index + 1} ({raw['name']!r})"
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        raise fail(f"{label}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                   f"allowed: {', '.join(sorted(_RULE_KEYS))}")
    missing = [k for k in ("name", "when", "status") if k not in raw]
    if missing:
        raise fail(f"{label}: missing {', '.join(missing)}")
    name, when, status, reason = raw["name"], raw["when"], raw["status"], raw.get("reason", "")
    if not isinstance(name, str) or not _RULE_NAME.match(name):
        raise fail(f"{label}: name must be 1-64 letters, digits, '.', '_' or '-', got {name!r}")
    if not isinstance(when, str) or not when.strip():
        raise fail(f"{label}: 'when' must be a non-empty expression string, got {when!r}")
    if status not in STATUSES:
        raise fail(f"{label}: status {status!r} is not one of {', '.join(STATUSES)}")
    reason = _reason(reason, known, lambda msg: fail(f"{label}: {msg}"))
    compiled = _compile(when, lambda msg: fail(f"{label}: {msg}"))
    return Rule(name=name, when=when, status=status, reason=reason or f"rule {name}: {when}",
                uses=_names_in(when, known), compiled=compiled)


def _default(raw: Any, known: set[str], fail: Any) -> tuple[str, str]:
    if not isinstance(raw, dict) or set(raw) - {"status", "reason"} or "status" not in raw:
        raise fail("'default' must be a mapping with 'status' (and optionally 'reason')")
    if raw["status"] not in STATUSES:
        raise fail(f"default: status {raw['status']!r} is not one of {', '.join(STATUSES)}")
    reason = _reason(raw.get("reason", ""), known, lambda msg: fail(f"default: {msg}"))
    return raw["status"], reason or "no rule matched"


def _reason(reason: Any, known: set[str], fail: Any) -> str:
    if not isinstance(reason, str):
        raise fail(f"'reason' must be a string, got {reason!r}")
    unknown = sorted({m for m in PLACEHOLDER.findall(reason) if m not in known})
    if unknown:
        raise fail(f"reason uses unknown name(s) {', '.join(unknown)}; see the names in docs/health-check.md")
    return reason


def _compile(when: str, fail: Any) -> CompiledRule:
    try:
        return compile_rule(when)
    except RuleError as exc:
        raise fail(f"'when' was refused: {exc}") from None


def _names_in(expression: str, known: set[str]) -> tuple[str, ...]:
    # Parsing only (no evaluation): which known names does the expression read?
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError:
        return ()
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in known and node.id not in found:
            found.append(node.id)
    return tuple(found)


def _placeholder_values(thresholds: Mapping[str, float], numbers: float) -> dict[str, Any]:
    names: dict[str, Any] = {}
    for name in NAME_DOCS:
        if name in TUPLE_NAMES:
            names[name] = ("a",)
        elif name in INT_NAMES:
            names[name] = 1
        elif name == "prometheus":
            names[name] = True
        elif name == "region":
            names[name] = "r"
        else:
            names[name] = numbers
    names.update(thresholds)
    return names


def dry_run(ruleset: RuleSet) -> None:
    """Evaluate every rule once with signals present and once with them unknown (NaN).

    Catches names that do not exist and expressions that cannot run, before any probe.
    """
    for numbers in (1.0, math.nan):
        names = _placeholder_values(ruleset.thresholds, numbers)
        for rule in ruleset.rules:
            try:
                rule.compiled.evaluate(names)
            except RuleError as exc:
                raise UsageError(f"{ruleset.source}: rule {rule.name!r}: 'when: {rule.when}' cannot be "
                                 f"evaluated: {exc}. Known names: the signals in docs/health-check.md and "
                                 f"the thresholds ({', '.join(sorted(ruleset.thresholds)) or 'none'})"
                                 ) from None

