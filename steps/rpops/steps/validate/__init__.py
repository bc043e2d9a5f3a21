"""`rpops validate`: post-deployment validation of one service, a gate.

settings  the URL and the limits (settings.py)
observe   three requests, concurrently (observe.py)
decide    four pass/fail checks (decide.py, pure)
act       outputs, report.json, a table or JSON on stdout (act.py)
Exit 1 (GateFailed) when a check fails; 3 when the service stays unreachable; 2 on bad input.
"""

from __future__ import annotations

import time

from rpops.core.errors import GateFailed, Unreachable
from rpops.core.step import Output, Step
from rpops.steps.validate.settings import ValidateSettings


def run(settings: ValidateSettings) -> int:
    from rpops.clients.probe import run_async  # the step's work is loaded when it runs, not for --help
    from rpops.steps.validate import act, decide, observe
    from rpops.steps.validate.settings import check

    s = check(settings)
    started_at = time.time()
    obs = run_async(observe.observe(s.url, s.timeout, s.retries))
    results = decide.decide(obs, s.max_response_ms)
    failed = act.act(s, obs, results, started_at)
    unreachable = [p for p in obs.probes() if p.error == "unreachable"]
    if unreachable:
        raise Unreachable(f"--url {s.url}: unreachable after {unreachable[0].attempts} attempts "
                          f"({unreachable[0].detail}); check the URL and that the service runs")
    if failed:
        raise GateFailed(f"validation of {s.url} failed: {', '.join(failed)}")
    return 0


STEP = Step(
    name="validate",
    summary="Post-deployment validation of one service; exit 1 on any failure.",
    settings=ValidateSettings,
    outputs=(
        Output("passed", "false",
               "true when every check passed; false otherwise or when validation did not run."),
        Output("failed", "not-run", "Comma-separated names of the failed checks; empty when all passed."),
    ),
    run=run,
    epilog="Outputs: passed (true|false), failed (comma-separated check names), report.json. Exit 1 when a "
    "check fails, 3 when the service stays unreachable, 2 on bad input.",
)
