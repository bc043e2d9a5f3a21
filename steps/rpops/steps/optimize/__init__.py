"""`rpops optimize`: right-size a version's CPU and memory from its usage history.

settings  the flags, and the plan checked from them before anything is read (settings.py)
observe   the workload's requests/limits (platform driver); per-pod CPU and memory series over
          the history window, with the driver's queries by default (observe.py)
decide    krr's simple strategy (CPU percentile per pod, then the maximum over pods; memory peak
          per pod, maximum over pods, plus the buffer), the change threshold and leak detection
          (decide.py, pure)
act       with --apply, the new requests/limits; with --restart-leaking, a rolling restart when
          memory looks leaked; outputs, report.json (act.py)
"Not enough data" (under 3 h of history or 100 points) exits 0 with the reason and changes
nothing. Bad input exits 2 before any change; an unreachable Prometheus exits 3.
"""

from __future__ import annotations

import time

from rpops.core.step import Output, Step
from rpops.steps.optimize.settings import OptimizeSettings


def run(settings: OptimizeSettings) -> int:
    # the step's work is loaded when it runs, not for --help
    from rpops.platform import get_driver
    from rpops.steps.optimize import act, decide, observe
    from rpops.steps.optimize.settings import plan

    started = time.perf_counter()
    p = plan(settings)
    driver = get_driver(p.platform, namespace=settings.namespace)
    obs = observe.observe(p, driver)
    rec = decide.recommend(obs.cpu, obs.memory, obs.workload.resources, p.rightsizing)
    done = act.apply(p, driver, obs, rec)
    report = act.build_report(p, obs, rec, done, driver.name, (time.perf_counter() - started) * 1000)
    act.record(p, obs, rec, report)
    return 0


STEP = Step(
    name="optimize",
    summary="Right-size CPU and memory requests/limits from usage history.",
    settings=OptimizeSettings,
    outputs=(
        Output(
            "recommendation",
            "{}",
            "JSON: cpu_request, cpu_limit, memory_request, memory_limit recommended (null where there is "
            "not enough data); {} when the step did not run.",
        ),
        Output("applied", "false", "true when this run changed the Deployment's resources."),
        Output("leak", "false", "true when a pod's memory only grew over the window (a suspected leak)."),
        Output("reason", "the optimize step did not run", "What was recommended or applied, and why."),
    ),
    run=run,
    epilog="Outputs: recommendation (JSON), applied (true|false), leak (true|false), reason, report.json. "
    "Exit 0 (also on 'not enough data'); 2 on bad input; 3 when Prometheus or the platform "
    "stays unreachable.",
)
