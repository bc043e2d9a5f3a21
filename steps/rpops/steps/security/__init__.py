"""`rpops security-scan`: dependencies (OSV advisories), source code (AST rules) and workload
configuration (Kubernetes objects) in one step, one gate; reported as text, JSON, Markdown and
SARIF 2.1.0, with the upgrades it can make as a patch.

settings  what to scan, the advisory data, the gate, the report format (settings.py)
observe   requirement files and installed environments, the advisory index (and the OSV API with
          --online), Python sources, manifests, and with --live the platform's objects (observe.py)
decide    the findings, suppressions, the gate (decide.py, pure)
act       --sync-db's refresh; fix.patch, report.json, results.sarif, summary.md, the output
          parameters, the report on stdout or --output (act.py)

Beside them: the readers and scanners the four call (deps.py, osv.py, online.py, sync.py, code.py
with code_rules.py, config.py, depscan.py, fix.py, suppress.py) and the report builders (report.py,
sarif.py, model.py). `rpops advisories` (advisories_cli.py) manages the database the scan reads.

The live objects are read first, so a refusal or an unreachable API stops the scan before anything
is written. Exit 0 when the gate passed; 1 when --threshold findings are at or above --fail-on; 2 on
bad input; 3 when the advisory database is missing or older than --max-db-age (or --sync-db,
--online or --live could not reach their server).
"""

from __future__ import annotations

from datetime import UTC, datetime

from rpops.core.step import Output, Step
from rpops.steps.security.settings import ScanSettings


def run(settings: ScanSettings) -> int:
    from rpops.steps.security import act, decide, observe  # loaded when the step runs, not for --help
    from rpops.steps.security.settings import check

    s = check(settings)
    # Before any work or output: a refusal (2) or an unreachable API (3) leaves nothing half-written.
    live = observe.read_live(s) if s.live else None
    suppressions = observe.read_suppressions(s)
    started = datetime.now(UTC)
    sync_error = act.sync_advisories(s) if s.deps and s.sync_db else ""
    obs = observe.observe(s, live, suppressions)
    decision = decide.decide(s, obs, started, sync_error)
    return act.act(s, decision, started)


STEP = Step(
    name="security-scan",
    summary="Scan dependencies, source code and workload configuration.",
    settings=ScanSettings,
    outputs=(
        Output("critical", "0", "Unsuppressed critical findings; 0 when the scan did not run."),
        Output("high", "0", "Unsuppressed high findings; 0 when the scan did not run."),
        Output("total", "0", "Unsuppressed findings of every severity; 0 when the scan did not run."),
        Output("fixes", "0", "Package upgrades carried by the proposed patch (fix.patch); 0 when none."),
        Output(
            "status",
            "error",
            "pass or fail (the gate's verdict); error when the advisory data was missing or stale, an API "
            "was unreachable, or the scan did not run.",
        ),
    ),
    run=run,
    epilog="Outputs (under $RPOPS_OUTPUTS): critical, high, total, fixes, status (pass|fail|error), "
    "report.json, results.sarif, summary.md, fix.patch. Exit 1 when --threshold findings are at or above "
    "--fail-on, 3 when the advisory database is missing or older than --max-db-age (or --sync-db, --online "
    "or --live could not reach their server), 2 on bad input.",
)
