"""Suppression file: validation, expiry (an expired entry suppresses nothing and is reported),
unused entries, and matching by rule, advisory alias, path, package and object."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from rpops.core.errors import UsageError
from rpops.steps.security.model import Finding, Location
from rpops.steps.security.suppress import apply, load_file


def finding(rule: str, path: str = "app.py", **props: object) -> Finding:
    return Finding("code", rule, rule, "high", "high", "m", Location(path, 3), properties=dict(props))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / ".rpops-security.yaml"
    path.write_text(text)
    return path


def test_expired_entries_suppress_nothing_and_are_reported(tmp_path: Path) -> None:
    entries = load_file(
        write(
            tmp_path,
            (
                "suppressions:\n"
                "  - {id: py-eval, path: 'tools/*.py', reason: sandboxed, expires: 2026-12-31}\n"
                "  - {id: py-os-system, reason: legacy, expires: 2026-11-27}\n"
                "  - {id: CVE-2019-10906, package: Jinja2, reason: not reachable, expires: '2027-01-01'}\n"
                "  - {id: k8s-privileged, object: 'DaemonSet/kube-system/*', reason: CNI agent,"
                " expires: 2030-01-01}\n"
            ),
        )
    )
    findings = [
        finding("py-eval", "tools/run.py"),
        finding("py-eval", "app.py"),
        finding("py-os-system"),
        Finding(
            "dependency",
            "PYSEC-2019-217",
            "t",
            "high",
            "high",
            "m",
            Location("requirements.txt", 2),
            properties={"aliases": ["CVE-2019-10906"], "package": "jinja2"},
        ),
    ]
    expired, notices = apply(findings, entries, date(2026, 11, 28), ".rpops-security.yaml")
    assert [f.suppression is not None for f in findings] == [True, False, False, True]
    assert findings[0].suppression == {
        "kind": "file",
        "reason": "sandboxed",
        "expires": "2026-12-31",
        "file": ".rpops-security.yaml",
        "index": 0,
    }
    assert expired == [
        {"id": "py-os-system", "reason": "legacy", "expires": "2026-11-27", "index": 1, "would_suppress": 1}
    ]
    assert sorted(n.code for n in notices) == ["suppression-expired", "suppression-unused"]
    # the day it expires it still applies; the day after it does not
    _, notices = apply([finding("py-os-system")], entries[1:2], date(2026, 11, 27), "f")
    assert notices == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("suppressions:\n  - {id: py-eval, expires: 2026-12-31}\n", "'reason' is required"),
        ("suppressions:\n  - {id: py-eval, reason: x}\n", "'expires' is required"),
        ("suppressions:\n  - {id: py-eval, reason: x, expires: soon}\n", "not a date"),
        ("suppressions:\n  - {id: py-eval, reason: x, expires: 2026-01-01, file: a}\n", "unknown keys"),
        ("- id: py-eval\n", "top-level 'suppressions:' list"),
        ("suppressions: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_suppression_files_are_usage_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        load_file(write(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not found"):
        load_file(tmp_path / "nope.yaml")
