"""AST code scan: the labelled corpus (every rule, true and false positives, aliasing), inline
suppressions, and bad input (syntax errors, binary, huge, unreadable files, symlink loops)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from rpops.steps.security.code import CodeScanSettings, scan_code
from rpops.steps.security.code_rules import RULES, scan_source
from security_helpers import CORPUS


def expected_labels() -> set[tuple[str, int, str]]:
    labels: set[tuple[str, int, str]] = set()
    for path in sorted(CORPUS.glob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            at = line.find("# expect[")
            if at >= 0:
                for rule in line[at + 9 : line.index("]", at)].split(","):
                    labels.add((path.name, number, rule.strip()))
    return labels


def test_corpus_matches_labels_exactly(tmp_path: Path) -> None:
    result = scan_code(CodeScanSettings(roots=[CORPUS], base=CORPUS, jobs=1, cache_dir=tmp_path))
    found = {(f.location.path, f.location.line, f.rule_id) for f in result.findings}
    labels = expected_labels()
    assert found - labels == set(), "false positives"
    assert labels - found == set(), "missed findings"
    assert {rule for _, _, rule in labels} == set(RULES)  # every rule has labelled cases
    assert result.notices == [] and result.files_scanned == len(list(CORPUS.glob("*.py")))


def test_process_pool_gives_the_same_results(tmp_path: Path) -> None:
    for copy in ("a", "b", "c"):  # enough files for the pool path (16 or more)
        shutil.copytree(CORPUS, tmp_path / copy)
    serial = scan_code(CodeScanSettings(roots=[tmp_path], base=tmp_path, jobs=1))
    parallel = scan_code(CodeScanSettings(roots=[tmp_path], base=tmp_path, jobs=2))
    assert serial.files_found == 3 * len(list(CORPUS.glob("*.py"))) >= 16
    assert [f.to_dict() for f in serial.findings] == [f.to_dict() for f in parallel.findings]


def test_findings_carry_location_snippet_and_metadata() -> None:
    path = CORPUS / "eval_aliases.py"
    result = scan_code(CodeScanSettings(roots=[path], base=CORPUS, jobs=1))
    finding = next(f for f in result.findings if f.location.line == 16)
    assert finding.rule_id == "py-eval" and finding.severity == "high" and finding.confidence == "high"
    assert (finding.location.path, finding.location.column) == ("eval_aliases.py", 5)
    assert finding.snippet == "e(expr)  # expect[py-eval]"
    assert finding.properties["bandit_equivalent"] == ["B307", "B102"] and len(finding.fingerprint) == 32


def test_cache_by_content_hash(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = scan_code(CodeScanSettings(roots=[CORPUS], base=CORPUS, jobs=1, cache_dir=cache))
    second = scan_code(CodeScanSettings(roots=[CORPUS], base=CORPUS, jobs=1, cache_dir=cache))
    assert second.cache_hits == second.files_found > 0
    assert [f.to_dict() for f in first.findings] == [f.to_dict() for f in second.findings]
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "a.py").write_text("eval(x)\n")
    scan_code(CodeScanSettings(roots=[copy], base=copy, jobs=1, cache_dir=cache))
    (copy / "a.py").write_text("print(x)\n")  # changed content: not served from the cache
    assert scan_code(CodeScanSettings(roots=[copy], base=copy, jobs=1, cache_dir=cache)).findings == []


def test_inline_suppressions(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        "import os\n"
        "os.system(cmd)  # rpops: ignore[py-os-system] fixed command list, reviewed\n"
        "eval(x)  # rpops: ignore[py-os-system] wrong rule: not suppressed\n"
        "exec(y)  # rpops: ignore[py-eval]\n"
        "eval(z)  #rpops:ignore[py-eval,py-os-system]   legacy plugin loader\n"
    )
    result = scan_code(CodeScanSettings(roots=[tmp_path], base=tmp_path, jobs=1))
    by_line = {f.location.line: f for f in result.findings}
    assert by_line[2].suppression == {
        "kind": "inline",
        "reason": "fixed command list, reviewed",
        "line": 2,
        "comment": "# rpops: ignore[py-os-system]",
    }
    assert by_line[3].suppression is None
    assert by_line[4].suppression is None  # no reason given: kept, and reported
    assert by_line[5].suppression is not None and by_line[5].suppression["reason"] == "legacy plugin loader"
    assert [(n.code, n.line) for n in result.notices] == [("suppression-without-reason", 4)]


def test_bandit_nosec_and_ruff_noqa_with_a_reason(tmp_path: Path) -> None:
    """Bandit's `# nosec` (its B### ids or ours) and ruff's flake8-bandit `# noqa: S###` suppress
    when they give a reason; without one the finding stays and a notice says why."""
    (tmp_path / "engine.py").write_text(
        "import os, subprocess\n"
        "eval(code)  # noqa: S307 - restricted code, see compiler\n"
        "eval(code)  # nosec B307 -- compiled by the rules engine only\n"
        "eval(code)  # nosec: py-eval reviewed in ADR-3\n"
        "os.system(cmd)  # nosec -- fixed command from the image\n"
        "eval(code)  # nosec B602 -- names another check: kept\n"
        "eval(code)  # noqa: S307\n"
        "eval(code)  # nosec\n"
        "eval(code)  # noqa: E501 - not a security code: kept\n"
        "TOKEN = 'tK9#mQ2$vL8@xZ4!'  # noqa: S105 - a test token\n"
    )
    result = scan_code(CodeScanSettings(roots=[tmp_path], base=tmp_path, jobs=1))
    by_line = {f.location.line: f for f in result.findings}
    reasons = {n: (f.suppression or {}).get("reason") for n, f in by_line.items()}
    assert reasons == {
        2: "restricted code, see compiler",
        3: "compiled by the rules engine only",
        4: "reviewed in ADR-3",
        5: "fixed command from the image",
        6: None,
        7: None,
        8: None,
        9: None,
        10: "a test token",
    }
    assert by_line[3].suppression["comment"] == "# nosec B307"
    assert [(n.code, n.line) for n in result.notices] == [
        ("suppression-without-reason", 7),
        ("suppression-without-reason", 8),
    ]
    assert "'# noqa: S307' has no reason" in result.notices[0].message


def test_bad_input_is_reported_and_the_scan_goes_on(tmp_path: Path) -> None:
    (tmp_path / "good.py").write_text("import os\nos.system(cmd)\n")
    (tmp_path / "broken.py").write_text("def f(:\n    pass\n")
    (tmp_path / "py2.py").write_text("print 'hello'\n")
    (tmp_path / "blob.py").write_bytes(b"\x00\x01\x02binary\x00")
    (tmp_path / "huge.py").write_text("x = 1\n" * 2000)
    (tmp_path / "dangling.py").symlink_to(tmp_path / "missing.py")
    (tmp_path / "loop_a.py").symlink_to(tmp_path / "loop_b.py")
    (tmp_path / "loop_b.py").symlink_to(tmp_path / "loop_a.py")
    sub = tmp_path / "pkg"
    sub.mkdir()
    (sub / "mod.py").write_text("eval(x)\n")
    (sub / "again").symlink_to(tmp_path)  # a directory symlink loop
    (tmp_path / "notes.txt").write_text("eval(x)")  # not Python: not scanned
    result = scan_code(CodeScanSettings(roots=[tmp_path], base=tmp_path, jobs=1, max_file_bytes=4096))
    notices = {(n.path, n.code) for n in result.notices}
    assert {
        ("broken.py", "syntax-error"),
        ("py2.py", "syntax-error"),
        ("blob.py", "binary"),
        ("huge.py", "too-large"),
        ("dangling.py", "unreadable"),
        ("loop_a.py", "unreadable"),
        ("loop_b.py", "unreadable"),
    } <= notices
    assert any(code == "symlink-loop" for _, code in notices)
    assert {(f.location.path, f.rule_id) for f in result.findings} == {
        ("good.py", "py-os-system"),
        ("pkg/mod.py", "py-eval"),
    }
    assert result.files_scanned == 2
    syntax = next(n for n in result.notices if n.path == "broken.py")
    assert syntax.line == 1 and "syntax error" in syntax.message


def test_deep_nesting_is_reported_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "deep.py").write_text("x = " + "(" * 5000 + "1" + ")" * 5000 + "\n")
    result = scan_code(CodeScanSettings(roots=[tmp_path], base=tmp_path, jobs=1))
    assert [n.code for n in result.notices] in (["syntax-error"], ["parse-error"])


def test_exclude_and_tooling_directories(tmp_path: Path) -> None:
    for rel in ("src/a.py", "build/gen.py", ".venv/lib/x.py", "node_modules/y.py", "vendored/z.py"):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("eval(x)\n")
    result = scan_code(CodeScanSettings(roots=[tmp_path], base=tmp_path, jobs=1, exclude=("vendored",)))
    assert sorted(f.location.path for f in result.findings) == ["build/gen.py", "src/a.py"]


def test_assert_rule_skips_test_files(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_auth.py").write_text("assert user.is_admin\n")
    (tmp_path / "auth.py").write_text("assert user.is_admin\n")
    result = scan_code(CodeScanSettings(roots=[tmp_path], base=tmp_path, jobs=1))
    assert [f.location.path for f in result.findings] == ["auth.py"]


@pytest.mark.parametrize(
    ("source", "rules"),
    [
        (
            "import subprocess\nsubprocess.run(c, shell=flag)\n",
            ["py-subprocess-shell"],
        ),  # computed: low confidence
        ("import requests\ns = requests.Session()\ns.get(u)\n", ["py-http-no-timeout"]),
        ("import requests\nwith requests.Session() as s:\n    s.post(u)\n", ["py-http-no-timeout"]),
        ("import requests\nrequests.get(u, **kw)\n", []),  # a timeout may be in **kw
        ("import subprocess\nopts = dict(shell=True)\nsubprocess.run(c, **opts)\n", ["py-subprocess-shell"]),
        ("import importlib\nimportlib.import_module('os').system(c)\n", ["py-os-system"]),
        ("session.get(u, verify=False)\n", ["py-tls-verify-disabled"]),  # unknown client: medium confidence
        ("import jinja2\njinja2.Template(src)\n", ["py-jinja2-autoescape"]),
        ("a = b = eval\na(x)\n", ["py-eval"]),
    ],
)
def test_more_rule_cases(source: str, rules: list[str]) -> None:
    assert [f[0] for f in scan_source(source)] == rules
