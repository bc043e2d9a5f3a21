"""SARIF 2.1.0 output that GitHub code scanning accepts and ranks.

Checked in the tests with the vendored OASIS schema (schemas/sarif/sarif-schema-2.1.0.json) and
with Microsoft's SARIF Multitool, GitHub's rule set included (`validate --rule-kind Gh`). What
those rules ask, and how it is met here:
- every rule has fullDescription, help (text and markdown) and helpUri, and carries
  `security-severity` in its properties (GitHub reads it from the rule, not the result);
- the driver names an informationUri;
- every result has a physical location whose URI is relative to a base in
  originalUriBaseIds: TARGET (the scanned project), EXTERNAL (files outside it, e.g. --manifests
  elsewhere or an --installed environment's METADATA files), KUBERNETES (a live object's API
  path, for --live).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from rpops import __version__
from rpops.steps.security.code_rules import RULES
from rpops.steps.security.config import CHECKS
from rpops.steps.security.model import Finding
from rpops.steps.security.report import ScanOutcome

SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
# The project's home, as pyproject.toml's [project.urls] Homepage says (a test keeps them equal).
INFORMATION_URI = "https://github.com/research-platform/rpops"
DOCS_URI = f"{INFORMATION_URI}/blob/main/docs/security-scan.md"
OSV_URI = "https://osv.dev/vulnerability/"
CWE_URI = "https://cwe.mitre.org/data/definitions/{}.html"
KUBESCAPE_URI = "https://hub.armosec.io/docs/{}"
KUBERNETES_API = "https://kubernetes.default.svc/"  # the in-cluster API server a --live scan read

_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
# GitHub ranks by `security-severity`: over 9.0 critical, 7.0-8.9 high, 4.0-6.9 medium, else low.
_SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0", "info": "0.0"}
_PRECISION = {"high": "high", "medium": "medium", "low": "low"}
# Where the API serves the kinds a configuration check reads (group/version, plural).
_API_PATHS = {
    "Deployment": ("apis/apps/v1", "deployments"),
    "StatefulSet": ("apis/apps/v1", "statefulsets"),
    "DaemonSet": ("apis/apps/v1", "daemonsets"),
    "ReplicaSet": ("apis/apps/v1", "replicasets"),
    "Pod": ("api/v1", "pods"),
    "Service": ("api/v1", "services"),
    "Job": ("apis/batch/v1", "jobs"),
    "CronJob": ("apis/batch/v1", "cronjobs"),
    "NetworkPolicy": ("apis/networking.k8s.io/v1", "networkpolicies"),
    "PodDisruptionBudget": ("apis/policy/v1", "poddisruptionbudgets"),
}


def _security_severity(finding: Finding) -> str:
    cvss = finding.properties.get("cvss") or {}
    score = cvss.get("score") if isinstance(cvss, dict) else None
    return f"{float(score):.1f}" if score is not None else _SECURITY_SEVERITY[finding.severity]


def _suppress_hint(rid: str, bandit: tuple[str, ...] = ()) -> str:
    inline = f"`# nosec {bandit[0]} -- why`" if bandit else f"`# rpops: ignore[{rid}] why`"
    return (
        f"A deliberate use can be suppressed on its line with {inline}, or in `.rpops-security.yaml` "
        "with a reason and an expiry date."
    )


def _code_rule(rid: str) -> dict[str, Any]:
    rule = RULES[rid]
    cwe = f"CWE-{rule.cwe}"
    text = f"{rule.title}: {rule.description} ({cwe}; Bandit {', '.join(rule.bandit) or '-'})."
    markdown = (
        f"**{rule.title}** ([{cwe}]({CWE_URI.format(rule.cwe)}))\n\n{rule.description}\n\n"
        f"Bandit: {', '.join(f'`{b}`' for b in rule.bandit) or 'none'}.\n\n{_suppress_hint(rid, rule.bandit)}"
    )
    return {
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.description},
        "help": {"text": f"{text} {_suppress_hint(rid, rule.bandit)}", "markdown": markdown},
        "helpUri": CWE_URI.format(rule.cwe),
        "level": rule.severity,
        "properties": {"bandit": list(rule.bandit), "cwe": cwe, "tags": ["security", "code", cwe]},
    }


def _config_rule(rid: str) -> dict[str, Any]:
    check = CHECKS[rid]
    refs = f"kubescape {check.kubescape}" + (f", checkov {check.checkov}" if check.checkov else "")
    return {
        "shortDescription": {"text": check.title},
        "fullDescription": {"text": f"{check.title} ({refs})."},
        "help": {
            "text": f"{check.title}. Fix: {check.remediation}. {_suppress_hint(rid)}",
            "markdown": f"**{check.title}** ({refs})\n\n**Fix:** {check.remediation}.\n\n"
            + _suppress_hint(rid),
        },
        "helpUri": _kubescape_uri(check.kubescape),
        "level": check.severity,
        "properties": {
            "kubescape": check.kubescape,
            "checkov": check.checkov,
            "tags": ["security", "config", "kubernetes"],
        },
    }


def _kubescape_uri(controls: str) -> str:
    """The page of the first control named (the table may say `C-0038 (pid/ipc), C-0041 ...`)."""
    first = controls.replace(",", " ").split()[0] if controls.strip() else ""
    ok = first.startswith("C-") and first[2:].isdigit()
    return KUBESCAPE_URI.format(first.lower()) if ok else DOCS_URI


def _dependency_rule(finding: Finding) -> dict[str, Any]:
    rid = finding.rule_id
    p = finding.properties
    aliases = list(p.get("aliases") or [])
    fixed = ", ".join(p.get("fixed_versions") or []) or "no fixed version is known"
    also = f" (also {', '.join(aliases)})" if aliases else ""
    text = (
        f"{rid}{also}: {finding.title}. Affects {p.get('package')} {p.get('version')}; fixed in: {fixed}. "
        f"Upgrade the pin (the scan's fix.patch proposes it), or suppress the advisory id in "
        f".rpops-security.yaml with a reason and an expiry date."
    )
    markdown = (
        f"**[{rid}]({OSV_URI}{quote(rid)})**{also}: {finding.title}\n\n"
        f"Affects `{p.get('package')}` {p.get('version')}. Fixed in: {fixed}.\n\n"
        "Upgrade the pin (the scan's `fix.patch` proposes it), or suppress the advisory id in "
        "`.rpops-security.yaml` with a reason and an expiry date."
    )
    return {
        "shortDescription": {"text": finding.title[:200] or rid},
        "fullDescription": {"text": f"{finding.title} ({rid}{also})"},
        "help": {"text": text, "markdown": markdown},
        "helpUri": f"{OSV_URI}{quote(rid)}",
        "level": finding.severity,
        "properties": {
            "aliases": aliases,
            "references": list(p.get("references") or []),
            "tags": ["security", "dependency", "vulnerability"],
        },
    }


def _rule_descriptor(finding: Finding) -> dict[str, Any]:
    rid = finding.rule_id
    if finding.kind == "code" and rid in RULES:
        parts = _code_rule(rid)
    elif finding.kind == "config" and rid in CHECKS:
        parts = _config_rule(rid)
    elif finding.kind == "dependency":
        parts = _dependency_rule(finding)
    else:  # a rule this module has no table for still gets every field GitHub asks for
        parts = {
            "shortDescription": {"text": finding.title[:200] or rid},
            "fullDescription": {"text": finding.title or rid},
            "help": {"text": finding.message, "markdown": finding.message},
            "helpUri": DOCS_URI,
            "level": finding.severity,
            "properties": {"tags": ["security", finding.kind]},
        }
    severity = parts.pop("level")
    properties = parts.pop("properties")
    properties.update(
        {
            "kind": finding.kind,
            "security-severity": _security_severity(finding)
            if finding.kind == "dependency"
            else _SECURITY_SEVERITY[severity],
            "precision": _PRECISION.get(finding.confidence, "medium"),
        }
    )
    return {
        "id": rid,
        "name": "".join(w[:1].upper() + w[1:] for w in rid.replace("_", "-").split("-")),
        **parts,
        "defaultConfiguration": {"level": _LEVEL[severity]},
        "properties": properties,
    }


class _Uris:
    """Artifact locations as relative references against originalUriBaseIds."""

    def __init__(self, target: Path, findings: list[Finding]) -> None:
        self.target = target.resolve()
        self.cwd = Path.cwd()
        outside = [p.resolve() for f in findings if (p := self._file(f)) is not None and not self._inside(p)]
        self.external: Path | None = None
        self.live = False  # a live object was located: the KUBERNETES base is needed
        if outside:
            common = Path(os.path.commonpath([str(p) for p in outside]))
            self.external = common.parent if common in outside else common

    def _file(self, finding: Finding) -> Path | None:
        """The file a finding is about, absolute; None for a live object."""
        path = finding.location.path
        if finding.kind == "dependency" and path.startswith("installed:"):
            installed = finding.properties.get("file") or ""
            return Path(installed) if installed else None
        if not path or path == "live":
            return None
        candidate = Path(path)
        if candidate.is_absolute():
            return candidate
        inside = self.target / candidate
        return inside if inside.exists() or not (self.cwd / candidate).exists() else (self.cwd / candidate)

    def _inside(self, path: Path) -> bool:
        return path.resolve().is_relative_to(self.target)

    def bases(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "TARGET": {
                "uri": _folder_uri(self.target),
                "description": {"text": "The scanned project (--target)."},
            }
        }
        if self.external is not None:
            out["EXTERNAL"] = {
                "uri": _folder_uri(self.external.resolve()),
                "description": {"text": "Scanned files outside --target (--manifests, --installed)."},
            }
        if self.live:
            out["KUBERNETES"] = {
                "uri": KUBERNETES_API,
                "description": {"text": "The Kubernetes API server (objects read with --live)."},
            }
        return out

    def artifact(self, finding: Finding) -> dict[str, str]:
        file = self._file(finding)
        if file is None:
            self.live = True
            return {"uri": self._api_path(finding), "uriBaseId": "KUBERNETES"}
        resolved = file.resolve()
        if self._inside(file):
            return {"uri": _relative(resolved, self.target), "uriBaseId": "TARGET"}
        assert self.external is not None
        return {"uri": _relative(resolved, self.external.resolve()), "uriBaseId": "EXTERNAL"}

    @staticmethod
    def _api_path(finding: Finding) -> str:
        ref = str(finding.properties.get("object") or finding.location.logical or "")
        kind, _, rest = ref.partition("/")
        namespace, _, name = rest.partition("/")
        group, plural = _API_PATHS.get(kind, ("api/v1", f"{kind.lower()}s"))
        where = f"namespaces/{quote(namespace)}/" if namespace and namespace != "-" else ""
        return f"{group}/{where}{plural}/{quote(name or 'unknown')}"

    def whole_file(self, finding: Finding) -> dict[str, Any] | None:
        """A region for a finding about a whole file: an installed package's `Version:` line in its
        METADATA, else every line of the file. None when there is no file to read."""
        file = self._file(finding)
        if file is None:
            return None
        try:
            with file.open("rb") as fh:
                lines = fh.read(_MAX_REGION_READ).decode("utf-8", "replace").splitlines()
        except OSError:
            return None
        for number, line in enumerate(lines, 1):
            if finding.kind == "dependency" and line.startswith("Version:"):
                return {
                    "startLine": number,
                    "startColumn": 1,
                    "endLine": number,
                    "endColumn": len(line) + 1,
                    "snippet": {"text": line},
                }
        return {"startLine": 1, "endLine": max(1, len(lines))}


_MAX_REGION_READ = 1 << 20


def _folder_uri(path: Path) -> str:
    uri = path.as_uri()
    return uri if uri.endswith("/") else uri + "/"


def _relative(path: Path, base: Path) -> str:
    rel = path.relative_to(base).as_posix() if path != base else ""
    return quote(str(PurePosixPath(rel))) if rel else "."


def _location(finding: Finding, uris: _Uris) -> dict[str, Any]:
    loc = finding.location
    physical: dict[str, Any] = {"artifactLocation": uris.artifact(finding)}
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
    elif (whole := uris.whole_file(finding)) is not None:
        physical["region"] = whole
    out: dict[str, Any] = {"physicalLocation": physical}
    if loc.logical:
        out["logicalLocations"] = [
            {"fullyQualifiedName": loc.logical, "kind": "resource" if finding.kind == "config" else "module"}
        ]
    return out


def build_sarif(outcome: ScanOutcome, target: Path) -> dict[str, Any]:
    findings = outcome.sorted_findings()
    uris = _Uris(target, findings)
    rules: list[dict[str, Any]] = []
    rule_index: dict[str, int] = {}
    results: list[dict[str, Any]] = []
    for finding in findings:
        if finding.rule_id not in rule_index:
            rule_index[finding.rule_id] = len(rules)
            rules.append(_rule_descriptor(finding))
        result: dict[str, Any] = {
            "ruleId": finding.rule_id,
            "ruleIndex": rule_index[finding.rule_id],
            "level": _LEVEL[finding.severity],
            "kind": "fail",
            "message": {"text": finding.message},
            "locations": [_location(finding, uris)],
            "partialFingerprints": {"rpopsFingerprint/v1": finding.fingerprint},
            "properties": {
                "severity": finding.severity,
                "confidence": finding.confidence,
                "kind": finding.kind,
                "security-severity": _security_severity(finding),
            },
        }
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
    return {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "rpops-security-scan",
                        "fullName": "rpops security-scan (dependencies, Python source, Kubernetes objects)",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "informationUri": INFORMATION_URI,
                        "rules": rules,
                    }
                },
                "originalUriBaseIds": uris.bases(),
                "invocations": [invocation],
                "results": results,
                "properties": {"scanned": outcome.scanned, "gate": outcome.gate.to_dict()},
            }
        ],
    }
