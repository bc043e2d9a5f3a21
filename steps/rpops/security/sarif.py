"""SARIF 2.1.0 output (validated in the tests against the vendored OASIS schema,
schemas/sarif/sarif-schema-2.1.0.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from rpops import __version__
from rpops.security.code_rules import RULES
from rpops.security.config import CHECKS
from rpops.security.model import Finding
from rpops.security.report import ScanOutcome

SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
# GitHub code scanning reads `security-severity` (a CVSS-like number) to rank results.
_SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0", "info": "0.0"}


def _rule_descriptor(finding: Finding) -> dict[str, Any]:
    rid = finding.rule_id
    descriptor: dict[str, Any] = {
        "id": rid,
        "name": rid.replace("-", "_"),
        "shortDescription": {"text": finding.title[:200] or rid},
        "defaultConfiguration": {"level": _LEVEL[finding.severity]},
        "properties": {"kind": finding.kind, "tags": ["security", finding.kind]},
    }
    if finding.kind == "code" and rid in RULES:
        rule = RULES[rid]
        descriptor["fullDescription"] = {"text": rule.description}
        descriptor["defaultConfiguration"] = {"level": _LEVEL[rule.severity]}
        descriptor["properties"].update({"bandit": list(rule.bandit), "cwe": f"CWE-{rule.cwe}"})
    elif finding.kind == "config" and rid in CHECKS:
        check = CHECKS[rid]
        descriptor["fullDescription"] = {"text": f"{check.title}. Fix: {check.remediation}."}
        descriptor["defaultConfiguration"] = {"level": _LEVEL[check.severity]}
        descriptor["properties"].update({"kubescape": check.kubescape, "checkov": check.checkov})
    elif finding.kind == "dependency":
        refs = finding.properties.get("references") or []
        if refs:
            descriptor["helpUri"] = refs[0]
        descriptor["properties"]["aliases"] = finding.properties.get("aliases", [])
    return descriptor


def _location(finding: Finding) -> dict[str, Any]:
    loc = finding.location
    out: dict[str, Any] = {}
    if loc.path and not loc.path.startswith("installed:") and loc.path != "live":
        physical: dict[str, Any] = {"artifactLocation": {"uri": quote(loc.path), "uriBaseId": "TARGET"}}
        if loc.line > 0:
            region: dict[str, Any] = {"startLine": loc.line}
            if loc.column > 0:
                region["startColumn"] = loc.column
            if loc.end_line >= loc.line and loc.end_line > 0:
                region["endLine"] = loc.end_line
                if loc.end_column > 0 and (loc.end_line > loc.line or loc.end_column > loc.column):
                    region["endColumn"] = loc.end_column
            if finding.snippet:
                region["snippet"] = {"text": finding.snippet}
            physical["region"] = region
        out["physicalLocation"] = physical
    if loc.logical:
        out["logicalLocations"] = [
            {"fullyQualifiedName": loc.logical, "kind": "resource" if finding.kind == "config" else "module"}
        ]
    return out


def build_sarif(outcome: ScanOutcome, target: Path) -> dict[str, Any]:
    rules: list[dict[str, Any]] = []
    rule_index: dict[str, int] = {}
    results: list[dict[str, Any]] = []
    for finding in outcome.sorted_findings():
        if finding.rule_id not in rule_index:
            rule_index[finding.rule_id] = len(rules)
            rules.append(_rule_descriptor(finding))
        result: dict[str, Any] = {
            "ruleId": finding.rule_id,
            "ruleIndex": rule_index[finding.rule_id],
            "level": _LEVEL[finding.severity],
            "kind": "fail",
            "message": {"text": finding.message},
            "partialFingerprints": {"rpopsFingerprint/v1": finding.fingerprint},
            "properties": {
                "severity": finding.severity,
                "confidence": finding.confidence,
                "kind": finding.kind,
                "security-severity": _SECURITY_SEVERITY[finding.severity],
            },
        }
        location = _location(finding)
        if location:
            result["locations"] = [location]
        if finding.suppression:
            result["suppressions"] = [
                {
                    "kind": "inSource" if finding.suppression["kind"] == "inline" else "external",
                    "status": "accepted",
                    "justification": finding.suppression["reason"],
                }
            ]
        results.append(result)
    notifications = [
        {
            "level": "warning" if n.code not in ("suppression-unused",) else "note",
            "message": {"text": f"{n.path}{f':{n.line}' if n.line else ''}: {n.message}"},
            "descriptor": {"id": n.code},
        }
        for n in outcome.notices
    ]
    invocation: dict[str, Any] = {
        "executionSuccessful": not outcome.db_error,
        "startTimeUtc": outcome.started_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "endTimeUtc": outcome.finished_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if notifications:
        invocation["toolExecutionNotifications"] = notifications
    base_uri = target.resolve().as_uri().rstrip("/") + "/"
    return {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "rpops-security-scan",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "rules": rules,
                    }
                },
                "originalUriBaseIds": {"TARGET": {"uri": base_uri}},
                "invocations": [invocation],
                "results": results,
                "properties": {"scanned": outcome.scanned, "gate": outcome.gate.to_dict()},
            }
        ],
    }
