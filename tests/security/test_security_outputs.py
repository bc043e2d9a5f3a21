"""`rpops security-scan` end to end (the real CLI in a subprocess): report.json, SARIF validated
against the vendored SARIF 2.1.0 schema, summary.md, output parameters, the patch, the gate and
the exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
from rpops.steps.security.osv import AdvisoryDB
from security_helpers import ADVISORIES, SAMPLE, SARIF_SCHEMA, run_rpops


def validate_sarif(document: dict) -> None:
    schema = json.loads(SARIF_SCHEMA.read_text())
    validator = jsonschema.Draft4Validator(schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    assert errors == [], [f"{list(e.path)}: {e.message}" for e in errors[:5]]


def scan(tmp_path: Path, cache_dir: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path / "outputs"
    result = run_rpops("security-scan", "--cache-dir", str(cache_dir), *args, outputs=out)
    return result, out


@pytest.fixture(scope="module")
def sample_scan(
    tmp_path_factory: pytest.TempPathFactory, cache_dir: Path, advisory_db: AdvisoryDB
) -> tuple[subprocess.CompletedProcess[str], Path]:
    del advisory_db  # indexed once into cache_dir, reused by the subprocess
    tmp = tmp_path_factory.mktemp("sample")
    return scan(
        tmp,
        cache_dir,
        "--target",
        str(SAMPLE),
        "--manifests",
        str(SAMPLE / "manifests"),
        "--db",
        str(ADVISORIES),
        "--max-db-age",
        "0",
    )


def test_sample_project_fails_the_gate_with_every_output(sample_scan: tuple) -> None:
    result, out = sample_scan
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("security-scan FAIL: ")
    assert (
        "5 packages from 1 file(s); 2/2 Python files; 2 Kubernetes objects; advisory db 2661 records"
        in result.stdout
    )
    report = json.loads((out / "report.json").read_text())
    summary = report["summary"]
    assert (out / "critical").read_text() == str(summary["critical"]) and summary["critical"] >= 2
    assert (out / "high").read_text() == str(summary["high"])
    assert (out / "total").read_text() == str(summary["total"]) == str(len(report["findings"]))
    assert report["gate"] == {
        "fail_on": "critical",
        "threshold": 1,
        "count": summary["critical"],
        "failed": True,
    }
    kinds = {f["kind"] for f in report["findings"]}
    assert kinds == {"dependency", "code", "config"}
    critical = {f["rule_id"] for f in report["findings"] if f["severity"] == "critical"}
    assert "k8s-privileged" in critical and "PYSEC-2023-138" in critical  # langchain, CVSS 9.8
    assert report["scanned"]["dependencies"]["not_pinned"] == ["flask (requirements.txt:7)"]
    # the inline suppression in app/server.py and the live file entry both apply
    suppressed = {(f["rule_id"], f["suppression"]["kind"]) for f in report["suppressed"]}
    assert suppressed == {("py-assert-security", "inline"), ("k8s-image-digest", "file")}
    assert [e["id"] for e in report["expired_suppressions"]] == ["py-bind-all-interfaces"]
    assert any(
        f["rule_id"] == "py-bind-all-interfaces" for f in report["findings"]
    )  # expired: reported again
    md = (out / "summary.md").read_text()
    assert "# Security scan: FAIL" in md and "## Expired suppressions" in md and "langchain" in md


def test_sample_sarif_validates(sample_scan: tuple) -> None:
    _, out = sample_scan
    sarif = json.loads((out / "results.sarif").read_text())
    validate_sarif(sarif)
    run = sarif["runs"][0]
    report = json.loads((out / "report.json").read_text())
    assert len(run["results"]) == len(report["findings"]) + len(report["suppressed"])
    levels = {r["ruleId"]: r["level"] for r in run["results"]}
    assert levels["k8s-privileged"] == "error" and levels["py-yaml-load"] == "warning"
    eval_result = next(r for r in run["results"] if r["ruleId"] == "py-eval")
    region = eval_result["locations"][0]["physicalLocation"]["region"]
    assert eval_result["locations"][0]["physicalLocation"]["artifactLocation"] == {
        "uri": "app/server.py",
        "uriBaseId": "TARGET",
    }
    assert region["startLine"] == 18 and region["snippet"]["text"] == "return evaluate(expression)"
    assert any(r.get("suppressions") for r in run["results"])


def test_patch_from_the_sample_applies(sample_scan: tuple, tmp_path: Path) -> None:
    _, out = sample_scan
    copy = tmp_path / "project"
    shutil.copytree(SAMPLE, copy)
    subprocess.run(["git", "apply", str(out / "fix.patch")], cwd=copy, check=True, capture_output=True)
    text = (copy / "requirements.txt").read_text()
    assert "jinja2==2.11.3" in text and "PyYAML==5.4" in text and "langchain==0.1.11" in text
    assert (SAMPLE / "requirements.txt").read_text() != text  # the original is untouched
    report = json.loads((out / "report.json").read_text())
    assert report["patch"]["upgrades"] == 5 and (out / "fixes").read_text() == "5"


def test_clean_project_says_what_was_scanned(
    tmp_path: Path, cache_dir: Path, advisory_db: AdvisoryDB
) -> None:
    del advisory_db
    project = tmp_path / "clean"
    project.mkdir()
    (project / "requirements.txt").write_text("six==1.16.0\n")
    (project / "main.py").write_text("print('hello')\n")
    result, out = scan(
        tmp_path, cache_dir, "--target", str(project), "--db", str(ADVISORIES), "--max-db-age", "0"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        "security-scan PASS: 0 critical, 0 high, 0 total findings | scanned "
        "1 packages from 1 file(s); 1/1 Python files; 0 Kubernetes objects; "
        "advisory db 2661 records, "
    )
    assert "no vulnerabilities" not in result.stdout.lower()
    validate_sarif(json.loads((out / "results.sarif").read_text()))
    assert (out / "fix.patch").read_text() == "" and (out / "total").read_text() == "0"


def test_threshold_and_fail_on(sample_scan: tuple, tmp_path: Path, cache_dir: Path) -> None:
    del sample_scan
    base = ["--target", str(SAMPLE), "--db", str(ADVISORIES), "--max-db-age", "0", "--no-config"]
    result, _ = scan(tmp_path, cache_dir, *base, "--threshold", "100")
    assert result.returncode == 0, result.stdout
    result, out = scan(tmp_path, cache_dir, *base, "--fail-on", "medium", "--threshold", "100")
    assert result.returncode == 0
    count = json.loads((out / "report.json").read_text())["gate"]["count"]
    result, _ = scan(tmp_path, cache_dir, *base, "--fail-on", "medium", "--threshold", str(count))
    assert result.returncode == 1


def test_missing_database_exits_3_and_still_reports(tmp_path: Path, cache_dir: Path) -> None:
    result, out = scan(tmp_path, cache_dir, "--target", str(SAMPLE), "--db", str(tmp_path / "no-db"))
    assert result.returncode == 3
    assert "advisory database" in result.stdout and "missing" in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "error" and report["scanned"]["code"]["files_scanned"] == 2
    assert (out / "status").read_text() == "error"


def test_stale_database_exits_3(tmp_path: Path, cache_dir: Path, advisory_db: AdvisoryDB) -> None:
    del advisory_db
    result, out = scan(tmp_path, cache_dir, "--target", str(SAMPLE), "--db", str(ADVISORIES), "--no-code")
    assert result.returncode == 3
    assert "over --max-db-age 7d" in result.stdout and "rpops advisories sync" in result.stdout
    assert json.loads((out / "report.json").read_text())["summary"]["critical"] >= 1  # old data, still used


def test_database_from_the_environment(tmp_path: Path, cache_dir: Path, advisory_db: AdvisoryDB) -> None:
    del advisory_db
    out = tmp_path / "outputs"
    result = run_rpops(
        "security-scan",
        "--target",
        str(SAMPLE),
        "--cache-dir",
        str(cache_dir),
        "--no-code",
        "--max-db-age",
        "0",
        outputs=out,
        env={"RPOPS_ADVISORY_DB": str(ADVISORIES)},
    )
    assert result.returncode == 1 and "advisory db 2661 records" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--threshold", "0"], "--threshold 0"),
        (["--max-db-age", "soon"], "--max-db-age 'soon'"),
        (["--target", "/nonexistent/project"], "--target /nonexistent/project"),
        (["--requirements", "/nonexistent/requirements.txt"], "file not found"),
        (["--manifests", "/nonexistent/k8s"], "--manifests /nonexistent/k8s"),
        (["--suppressions", "/nonexistent/s.yaml"], "not found"),
        (["--fail-on", "severe"], "invalid choice"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    tmp_path: Path, cache_dir: Path, args: list[str], message: str
) -> None:
    base = ["--target", str(SAMPLE)] if "--target" not in args else []
    result, out = scan(tmp_path, cache_dir, *base, "--db", str(ADVISORIES), *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert not out.exists() or list(out.iterdir()) == []
