"""The SARIF that `rpops security-scan` writes passes Microsoft's SARIF Multitool (`validate`, with
the SARIF rules and GitHub's, `--rule-kind "Sarif;Gh"`), run in the file's folder as GitHub's
docs suggest; and it carries what GitHub ranks and shows: security-severity on the rules, help,
an OSV helpUri for advisories, a physical location with a relative URI on every result.
Also: --format and --output (stdout by default) while the $RPOPS_OUTPUTS files stay."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from rpops.steps.security.model import Finding, Location
from rpops.steps.security.osv import AdvisoryDB
from rpops.steps.security.report import ScanOutcome, decide_gate
from rpops.steps.security.sarif import INFORMATION_URI, build_sarif
from security_helpers import ADVISORIES, DATA, SAMPLE, SARIF_SCHEMA, run_rpops

from tests.field_tools import sarif_multitool


def multitool_problems(sarif: Path) -> list[str]:
    """Errors and warnings the Multitool reports for `sarif` (an empty list: it passes)."""
    report = sarif.with_name("validation.sarif")
    report.unlink(missing_ok=True)
    proc = subprocess.run(
        [
            sarif_multitool(),
            "validate",
            "--rule-kind",
            "Sarif;Gh",
            "--level",
            "Error;Warning",
            "--output",
            report.name,
            sarif.name,
        ],
        cwd=sarif.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.exists(), f"the Multitool wrote no report:\n{proc.stdout}\n{proc.stderr}"
    results = json.loads(report.read_text())["runs"][0]["results"]
    return [
        f"{r['ruleId']} {r.get('level', 'warning')}: {r['message'].get('arguments')}"
        for r in results
        if r.get("level", "warning") in ("error", "warning")
    ]


def _site_packages(root: Path) -> Path:
    """A site-packages folder holding one vulnerable distribution (urllib3 1.24.1)."""
    info = root / "site-packages" / "urllib3-1.24.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: urllib3\nVersion: 1.24.1\n")
    (info / "RECORD").write_text("urllib3-1.24.1.dist-info/METADATA,,\nurllib3-1.24.1.dist-info/RECORD,,\n")
    return info.parent


@pytest.fixture(scope="module")
def wide_scan(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path, advisory_db: AdvisoryDB) -> Path:
    """Every kind of location at once: files in --target, --manifests outside it (absolute),
    an --installed environment elsewhere."""
    del advisory_db
    tmp = tmp_path_factory.mktemp("wide")
    site = _site_packages(tmp)
    out = tmp / "outputs"
    result = run_rpops(
        "security-scan",
        "--cache-dir",
        str(cache_dir),
        "--target",
        str(SAMPLE),
        "--manifests",
        str((DATA / "manifests").resolve()),
        "--installed",
        str(site),
        "--db",
        str(ADVISORIES),
        "--max-db-age",
        "0",
        outputs=out,
    )
    assert result.returncode == 1, result.stderr  # the sample fails its gate
    return out


def test_sarif_passes_the_multitool_with_githubs_rules(wide_scan: Path) -> None:
    assert multitool_problems(wide_scan / "results.sarif") == []
    schema = json.loads(SARIF_SCHEMA.read_text())  # and the OASIS schema, as before
    validator = jsonschema.Draft4Validator(schema)
    errors = [e.message for e in validator.iter_errors(json.loads((wide_scan / "results.sarif").read_text()))]
    assert errors == []


def test_what_github_reads_is_where_github_reads_it(wide_scan: Path) -> None:
    run = json.loads((wide_scan / "results.sarif").read_text())["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["informationUri"] == INFORMATION_URI
    rules = {r["id"]: r for r in driver["rules"]}
    for rule in rules.values():
        assert rule["fullDescription"]["text"] and rule["help"]["text"] and rule["help"]["markdown"]
        assert rule["helpUri"].startswith("https://")
        assert 0.0 <= float(rule["properties"]["security-severity"]) <= 10.0
    # an advisory's rule links its OSV page and ranks by its CVSS score (langchain: 9.8)
    assert rules["PYSEC-2023-138"]["helpUri"] == "https://osv.dev/vulnerability/PYSEC-2023-138"
    assert float(rules["PYSEC-2023-138"]["properties"]["security-severity"]) >= 9.0
    assert rules["k8s-privileged"]["properties"]["security-severity"] == "9.5"
    assert rules["py-eval"]["helpUri"] == "https://cwe.mitre.org/data/definitions/95.html"

    bases = run["originalUriBaseIds"]
    assert bases["TARGET"]["uri"] == SAMPLE.resolve().as_uri() + "/"
    external = Path(bases["EXTERNAL"]["uri"].removeprefix("file://"))
    uris: dict[str, set[str]] = {}
    for result in run["results"]:
        physical = result["locations"][0]["physicalLocation"]  # every result has one
        artifact = physical["artifactLocation"]
        assert not artifact["uri"].startswith("/") and "://" not in artifact["uri"]
        uris.setdefault(artifact["uriBaseId"], set()).add(artifact["uri"])
        assert physical["region"]["startLine"] >= 1
    assert uris["TARGET"] == {"app/server.py", "requirements.txt"}
    found = {(external / uri).resolve() for uri in uris["EXTERNAL"]}
    assert (DATA / "manifests" / "bad.yaml").resolve() in found
    metadata = next(p for p in found if p.name == "METADATA")
    assert metadata.parent.name == "urllib3-1.24.1.dist-info"
    installed = next(
        r
        for r in run["results"]
        if r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].endswith("METADATA")
    )
    assert installed["locations"][0]["physicalLocation"]["region"]["snippet"]["text"] == "Version: 1.24.1"


def test_live_objects_are_located_by_their_api_path(tmp_path: Path) -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    finding = Finding(
        kind="config",
        rule_id="k8s-privileged",
        title="Privileged container",
        severity="critical",
        confidence="high",
        message="Deployment/prod/web container main: privileged",
        location=Location("live", logical="Deployment/prod/web"),
        fingerprint="f" * 32,
        properties={"object": "Deployment/prod/web"},
    )
    outcome = ScanOutcome("x", now, now, [finding], [], decide_gate([finding], "critical", 1))
    doc = build_sarif(outcome, tmp_path)
    run = doc["runs"][0]
    artifact = run["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert artifact == {"uri": "apis/apps/v1/namespaces/prod/deployments/web", "uriBaseId": "KUBERNETES"}
    assert run["originalUriBaseIds"]["KUBERNETES"]["uri"] == "https://kubernetes.default.svc/"
    path = tmp_path / "live.sarif"
    path.write_text(json.dumps(doc))
    problems = multitool_problems(path)
    # a live object has no lines to point at: only the region advice may remain
    assert [p for p in problems if not p.startswith("SARIF2017")] == []


def test_the_multitool_rejects_what_github_would(tmp_path: Path, wide_scan: Path) -> None:
    """The check can fail: the faults GitHub refuses (no help, an absolute path given as a
    relative URI, no informationUri) are reported."""
    doc: dict[str, Any] = json.loads((wide_scan / "results.sarif").read_text())
    run = doc["runs"][0]
    del run["tool"]["driver"]["rules"][0]["help"]
    del run["tool"]["driver"]["informationUri"]
    artifact = run["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    artifact["uri"] = "/abs" + "/path.yaml"
    path = tmp_path / "broken.sarif"
    path.write_text(json.dumps(doc))
    codes = {p.split()[0] for p in multitool_problems(path)}
    assert {"GH2012", "SARIF1004", "SARIF2005"} <= codes


@pytest.mark.parametrize("fmt", ["sarif", "json", "markdown", "text"])
def test_format_and_output_file(fmt: str, tmp_path: Path, cache_dir: Path, advisory_db: AdvisoryDB) -> None:
    del advisory_db
    out = tmp_path / "outputs"
    report = tmp_path / f"report.{fmt}"
    base = ["security-scan", "--cache-dir", str(cache_dir), "--target", str(SAMPLE), "--db", str(ADVISORIES)]
    base += ["--max-db-age", "0", "--fail-on", "critical"]
    to_file = run_rpops(*base, "--format", fmt, "-o", str(report), outputs=out)
    assert to_file.returncode == 1 and to_file.stdout == ""
    text = report.read_text()
    # the files the templates read are written whatever the format
    for name in ("report.json", "results.sarif", "summary.md", "critical", "status"):
        assert (out / name).exists(), name
    if fmt == "sarif":
        assert text == (out / "results.sarif").read_text() + "\n"
    elif fmt == "json":
        assert json.loads(text) == json.loads((out / "report.json").read_text())
    elif fmt == "markdown":
        assert text == (out / "summary.md").read_text()
    else:
        first, *rest = text.splitlines()
        assert first.startswith("security-scan FAIL: ") and rest and rest[0].startswith("CRITICAL ")
    to_stdout = run_rpops(*base, "-f", fmt, outputs=tmp_path / "again")
    assert to_stdout.returncode == 1
    if fmt == "json":
        assert json.loads(to_stdout.stdout)["summary"] == json.loads(text)["summary"]
    elif fmt == "sarif":
        assert len(json.loads(to_stdout.stdout)["runs"][0]["results"]) == len(
            json.loads(text)["runs"][0]["results"]
        )
    else:
        assert to_stdout.stdout.splitlines()[0] == text.splitlines()[0]


def test_output_to_a_missing_folder_is_a_usage_error(tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    result = run_rpops(
        "security-scan", "--target", str(SAMPLE), "-o", str(tmp_path / "no" / "such.sarif"), outputs=out
    )
    assert result.returncode == 2 and "--output" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()
