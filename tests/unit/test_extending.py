"""docs/extending.md's worked example: a step is one package and one workflow module, nothing else.

The page's code blocks are written to a scratch directory that is added to the search path of
`rpops.steps` and `workflows` (as if they had been dropped into the project), and a fresh Python
then finds the command, answers its help, runs it against a real HTTP server, and renders its
template: valid against Argo's schema and listed in the kustomization.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PAGE = REPO_ROOT / "docs" / "extending.md"
FILES = ("settings.py", "observe.py", "decide.py", "act.py", "__init__.py")

PROBE = r"""
import contextlib, http.server, io, json, sys, threading
import rpops.steps, workflows
steps_dir, workflows_dir, outputs = sys.argv[1:4]
rpops.steps.__path__.append(steps_dir)
workflows.__path__.append(workflows_dir)

from rpops.core import cli
from workflows.render import render_files
from workflows.validation import all_problems


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
base = f"http://127.0.0.1:{server.server_address[1]}"

def run(*argv):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            code = cli.main(list(argv))
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue()

result = {"top": run("--help"), "help": run("http-status", "--help"),
          "pass": run("http-status", "--url", base + "/health"),
          "fail": run("http-status", "--url", base + "/missing"),
          "bad": run("http-status", "--url", base + "/health", "--expect", "42")}
rendered = {r.filename: r.document for r in render_files()}
doc = rendered.get("research-platform-http-status.yaml")
result["kustomization"] = rendered["kustomization.yaml"]["resources"]
result["template"] = doc
result["problems"] = [str(p) for p in all_problems([doc])] if doc else ["not rendered"]
print(json.dumps(result))
"""


def _blocks() -> list[str]:
    text = PAGE.read_text().split("## Adding a step", 1)[1]
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_the_worked_example_adds_a_step_with_one_package_and_one_module(tmp_path: Path) -> None:
    blocks = _blocks()
    assert len(blocks) == len(FILES) + 1, "the page shows the step's five files and its workflow module"
    package = tmp_path / "steps" / "http_status"
    package.mkdir(parents=True)
    for name, code in zip(FILES, blocks, strict=False):
        (package / name).write_text(code)
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "http_status.py").write_text(blocks[-1])

    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "steps"), str(tmp_path / "workflows"),
         str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT), "RPOPS_OUTPUTS": str(tmp_path / "out")},
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])

    assert "http-status" in result["top"][1]
    code, help_text = result["help"]
    assert code == 0 and "--url" in help_text and "--expect" in help_text and "Outputs: passed" in help_text
    assert result["pass"][0] == 0 and "pass: answered 200" in result["pass"][1]
    assert result["fail"][0] == 1 and "answered 404, expected 200" in result["fail"][1]
    assert result["bad"][0] == 2 and "--expect 42" in result["bad"][1]
    assert (tmp_path / "out" / "passed").read_text() == "false"  # the last run's, through the step contract

    assert "research-platform-http-status.yaml" in result["kustomization"]
    assert result["problems"] == []
    container = next(t for t in result["template"]["spec"]["templates"] if t["name"] == "http-status")
    assert container["container"]["args"] == [
        "http-status", "--url", "{{inputs.parameters.url}}", "--expect", "{{inputs.parameters.expect}}"
    ]
    inputs = {p["name"]: p for p in result["template"]["spec"]["arguments"]["parameters"]}
    assert inputs["expect"]["value"] == "200" and "value" not in inputs["url"]
    assert inputs["url"]["description"].startswith("URL to request")
    outputs = [p["name"] for p in container["outputs"]["parameters"]]
    assert outputs == ["passed", "reason"]
