"""`make run`: the pipelines on the embedded default, end to end, on this machine.

It starts the local platform (the reference workload behind a proxy), then runs the rendered
WorkflowTemplates from manifests/argo/ unchanged through `rpops local run`: a health check, the
post-deployment validation, a latency fault that turns the service degraded, a CPU fault that
Prometheus alerts on and Alertmanager sends to `rpops local serve`, whose WorkflowEventBinding
starts the recovery that scales the service out (the alert loop; without Prometheus and
Alertmanager installed, the same remediation is run by hand), a security scan of a sample
project, a right-sizing report from that Prometheus, and a blue-green promotion that succeeds
and one that is rolled back. Every process it started is stopped at the end, also on Ctrl-C or a failure.

The monitoring stack is the one tests/e2e/test_alert_loop.py runs (tests/e2e/fixtures.py): the
production rules, scrape jobs and Alertmanager routes with test-sized intervals. Sections whose
template is not in manifests/argo/ are skipped with a note. Everything lives under .rpops/demo/
(platform state, run records, step outputs, the monitoring's data and temporary files), wiped
at the start.

Every outcome the demo announces is checked: a status, a replica count before and after, a
rollback. When one does not hold, the demo stops, names the stage and exits 1.

    python scripts/demo.py                      the scenario
    python scripts/demo.py --break-scale-out    the same with the recovery's scale step capped at
                                                one replica: the alert loop must fail, naming it
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
# The processes of the alert loop, shared with its end-to-end test.
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "e2e"), str(ROOT / "tests" / "integration")]
import fixtures  # noqa: E402
import prometheus_fixture  # noqa: E402
from rpops.platform.local.driver import LocalDriver  # noqa: E402

WORK = ROOT / ".rpops" / "demo"
MANIFESTS = ROOT / "manifests" / "argo"
BIN = Path(sys.executable).parent
RPOPS = str(BIN / "rpops")
SERVICE = "research-platform"
SAMPLE_PROJECT = ROOT / "tests" / "security" / "data" / "sample-project"
ADVISORIES = ROOT / "tests" / "data" / "advisories"

BOLD, DIM, RESET = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")
# Everything the demo and the steps it runs write stays under WORK: outputs of steps run by hand,
# temporary files (Prometheus's and Alertmanager's data too). The steps act on the local platform
# (a replica the scale step starts must outlive the step), so nodes share the host's process tree.
LOCAL = {
    "RPOPS_PLATFORM_DIR": str(WORK / "platform"),
    "RPOPS_PLATFORM": "local",
    "RPOPS_OUTPUTS": str(WORK / "outputs"),
    "TMPDIR": str(WORK / "tmp"),
}
ENV = {**os.environ, **LOCAL}


class StageFailed(Exception):
    """An announced outcome did not hold: the demo stops and names the stage."""

    def __init__(self, stage: str, what: str) -> None:
        super().__init__(f"stage '{stage}' failed: {what}")


def expect(stage: str, holds: bool, what: str) -> None:
    if not holds:
        raise StageFailed(stage, what)


def heading(text: str) -> None:
    print(f"\n{BOLD}== {text} =={RESET}", flush=True)


def note(text: str) -> None:
    print(f"{DIM}   {text}{RESET}", flush=True)


def rpops(*args: str, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess[str]:
    """Run `rpops ARGS`, echoing the command and (unless quiet) its output, indented."""
    if not quiet:
        print(f"$ rpops {' '.join(args)}", flush=True)
    done = subprocess.run([RPOPS, *args], cwd=WORK, env=ENV, capture_output=True, text=True, check=False)
    if not quiet:
        for line in (done.stdout + done.stderr).splitlines():
            print(f"   {line}")
    if check and done.returncode != 0:
        if quiet:
            print(done.stdout + done.stderr)
        raise SystemExit(f"demo: `rpops {' '.join(args)}` exited {done.returncode}")
    return done


def has_template(name: str) -> bool:
    if (MANIFESTS / f"{name}.yaml").exists():
        return True
    note(f"skipped: {name} is not in manifests/argo/ yet")
    return False


def run_template(template: str, run_name: str, **params: str) -> dict[str, Any]:
    """`rpops local run` a rendered template; returns the run's status document."""
    args = [
        "local",
        "run",
        template,
        "--manifests",
        str(MANIFESTS),
        "--runs-dir",
        str(WORK / "runs"),
        "--name",
        run_name,
    ]
    for key, value in params.items():
        args += ["-p", f"{key.replace('_', '-')}={value}"]
    rpops(*args, check=False)
    return json.loads((WORK / "runs" / run_name / "status.json").read_text())


def outputs(status: dict[str, Any], template: str) -> dict[str, str]:
    """Output parameters of the (last) node that ran `template`."""
    found: dict[str, str] = {}
    nodes = sorted(status["status"]["nodes"].values(), key=lambda n: n.get("startedAt") or "")
    for node in nodes:
        if node.get("templateName") == template and node.get("type") in ("Pod", "Retry"):
            params = (node.get("outputs") or {}).get("parameters") or []
            found = {p["name"]: p.get("value", "") for p in params}
    return found


def task_outputs(status: dict[str, Any], task: str) -> dict[str, str]:
    """Output parameters of the DAG task named `task` (two tasks may share a template)."""
    for node in status["status"]["nodes"].values():
        if node.get("displayName") == task and node.get("type") in ("Pod", "Retry"):
            params = (node.get("outputs") or {}).get("parameters") or []
            return {p["name"]: p.get("value", "") for p in params}
    return {}


def platform_url() -> str:
    status = json.loads(rpops("local", "platform", "status", "--output", "json", quiet=True).stdout)
    return str(status[0]["url"])


def replicas() -> int:
    status = json.loads(rpops("local", "platform", "status", "--output", "json", quiet=True).stdout)
    active = status[0]["active"]
    return next(int(v["replicas"]) for v in status[0]["versions"] if v["version"] == active)


# --- Helpers ----------------------------------------------------------------------------------------


BINARIES = {"prometheus": prometheus_fixture.PROMETHEUS, "prometheus-alertmanager": fixtures.ALERTMANAGER}


def monitoring_installed(what: str) -> bool:
    """Whether Debian's prometheus and prometheus-alertmanager are here; if not, says what is skipped."""
    missing = [
        name
        for name in BINARIES
        if not (os.access(BINARIES[name], os.X_OK) or shutil.which(Path(BINARIES[name]).name))
    ]
    if missing:
        where = "Debian's packages; `make run` and `make test` install them as root"
        note(f"{' and '.join(missing)} not installed ({where}): {what}")
    return not missing


def wait_cpu(percent: float, timeout: float = 15.0) -> None:
    """Wait until the active version's instances report at least `percent` CPU."""
    doc = json.loads(rpops("local", "platform", "status", "--output", "json", quiet=True).stdout)[0]
    urls = [i["url"] for v in doc["versions"] if v["version"] == doc["active"] for i in v["instances"]]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        figures = [httpx.get(f"{u}/api/performance/status", timeout=5).json()["cpu_percent"] for u in urls]
        if min(figures) >= percent:
            return
        time.sleep(0.3)
    note(f"CPU stayed below {percent}% (a busy machine): the health check may not read overloaded")


# --- The scenario ---------------------------------------------------------------------------------


def health_and_validation(url: str) -> None:
    heading("Health check: research-platform-health-check, run by `rpops local run`")
    status = run_template(
        "research-platform-health-check", "demo-health-1", targets=f"us-east={url}", region="us-east"
    )
    out = outputs(status, "check-health")
    print(f"{BOLD}   -> status: {out.get('status')} ({out.get('reason')}){RESET}")
    expect("health check", out.get("status") == "healthy", f"status {out.get('status')!r}, not healthy")

    heading("Post-deployment validation: research-platform-validate")
    status = run_template("research-platform-validate", "demo-validate-1", url=url)
    expect("validation", status["status"]["phase"] == "Succeeded", f"workflow {status['status']['phase']}")
    note("the same checks as a table:")
    rpops("validate", "--url", url)

    heading("A latency fault: 1.5 s on every instance")
    rpops("local", "platform", "fault", "latency_ms=1500")
    status = run_template(
        "research-platform-health-check",
        "demo-health-2",
        targets=f"us-east={url}",
        region="us-east",
        timeout="5",
        samples="3",
    )
    out = outputs(status, "check-health")
    print(f"{BOLD}   -> status: {out.get('status')} ({out.get('reason')}){RESET}")
    expect("latency fault", out.get("status") == "degraded", f"status {out.get('status')!r}, not degraded")
    note("validation now fails on response time (exit 1):")
    done = rpops("validate", "--url", url, "--timeout", "5", check=False)
    expect("latency fault", done.returncode == 1, f"validation exited {done.returncode}, not 1")
    rpops("local", "platform", "fault", "--clear")


def start_monitoring(url: str, scale: dict[str, str]) -> fixtures.Stack | None:
    heading("Monitoring: Prometheus, Alertmanager and `rpops local serve` (Argo's events API)")
    if not monitoring_installed("the remediation is run by hand and right-sizing is skipped"):
        return None
    (WORK / "alert-loop").mkdir()
    stack = fixtures.start_stack(WORK / "platform", WORK / "alert-loop", url, scale=scale)
    stack.stops.append(fixtures.Load(url).stop)  # steady traffic, as users and probes make it
    note(f"Prometheus {stack.prometheus.url}: the production scrape jobs and rules, `for` shortened to 1 s")
    note(f"Alertmanager {stack.alertmanager.url}: the production routes, its webhook to rpops local serve")
    note("rpops local serve: the research-platform-alerts WorkflowEventBinding starts the recovery")
    return stack


def alert_loop(stack: fixtures.Stack) -> None:
    """CPU burn -> HighCPU -> Alertmanager -> rpops local serve -> recovery -> scale."""
    stage = "alert loop"
    heading("Alerts that fix things: CPU burn -> HighCPU -> Alertmanager -> research-platform-recovery")
    before = replicas()
    started = time.monotonic()
    rpops("local", "platform", "fault", "cpu_burn=1.0")
    recovery = wait_for(lambda: finished_recovery(stack.serve, "HighCPU"), 90)
    rpops("local", "platform", "fault", "--clear")
    expect(stage, recovery is not None, "no recovery finished within 90 s: see .rpops/demo/alert-loop/serve/")
    name, phase = recovery["metadata"]["name"], recovery["status"]["phase"]
    after = replicas()
    print(
        f"{BOLD}   -> HighCPU fired; {name} {phase} {time.monotonic() - started:.1f} s after the fault: "
        f"replicas {before} -> {after}{RESET}"
    )
    check, scale = task_outputs(recovery, "check-health"), task_outputs(recovery, "scale")
    print(f"   check-health: {check.get('status')} ({check.get('reason')})")
    if scale:
        print(f"   scale: {scale.get('decision')} ({scale.get('reason')})")
    rpops("local", "get", name, "--runs-dir", str(stack.serve.runs_dir))
    expect(stage, check.get("status") == "overloaded", f"the recovery's check read {check.get('status')!r}")
    failed = [
        n["displayName"].split("(")[0]
        for n in recovery["status"]["nodes"].values()
        if n.get("type") == "Pod" and n.get("phase") in ("Failed", "Error")
    ]
    why = f"{failed[0]} failed: {task_outputs(recovery, failed[0]).get('reason', '')}" if failed else ""
    expect(stage, phase == "Succeeded", f"{name} {phase}: {why or recovery['status'].get('message', '')}")
    expect(stage, after > before, f"replicas {before} -> {after}: the service was not scaled out")
    resolved = wait_for(lambda: True if not firing(stack, "HighCPU") else None, 30)
    expect(stage, resolved is not None, "HighCPU still fires 30 s after the scale-out")
    print(f"{BOLD}   -> HighCPU resolved{RESET}")


def firing(stack: fixtures.Stack, alertname: str) -> bool:
    query = f'ALERTS{{alertname="{alertname}", alertstate="firing"}}'
    return bool(stack.prometheus.query(query)["result"])


def recoveries(stack: fixtures.Stack | None) -> set[str]:
    if stack is None:
        return set()
    selector = "workflows.argoproj.io/workflow-event-binding=research-platform-alerts"
    return {wf["metadata"]["name"] for wf in stack.serve.workflows(selector)}


def wait_for(check: Any, timeout: float) -> Any:
    """`check()` until it returns something other than None; None after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (value := check()) is not None:
            return value
        time.sleep(0.5)
    return None


def finished_recovery(serve: Any, alertname: str) -> dict[str, Any] | None:
    """The first finished run started by `alertname`'s webhook, from serve's Argo-shaped list."""
    for wf in serve.workflows("workflows.argoproj.io/workflow-event-binding=research-platform-alerts"):
        params = {p["name"]: p["value"] for p in wf["spec"]["arguments"]["parameters"]}
        if params.get("alertname") == alertname and wf["status"]["phase"] not in ("Pending", "Running"):
            return dict(wf)
    return None


def scaling(url: str, scale: dict[str, str]) -> None:
    stage = "overload by hand"
    heading("Overload by hand: CPU burn on every instance, then research-platform-scale")
    if not has_template("research-platform-scale"):
        return
    before = replicas()
    rpops("local", "platform", "fault", "cpu_burn=1.0")
    wait_cpu(90.0)  # the workload's CPU figure covers the last 3 s
    status = run_template(
        "research-platform-health-check", "demo-health-3", targets=f"us-east={url}", region="us-east"
    )
    out = outputs(status, "check-health")
    print(f"{BOLD}   -> status: {out.get('status')} ({out.get('reason')}){RESET}")
    expect(stage, out.get("status") == "overloaded", f"the check read {out.get('status')!r}, not overloaded")
    status = run_template("research-platform-scale", "demo-scale-1", service=SERVICE, **scale)
    out = outputs(status, "scale")
    after = replicas()
    print(f"{BOLD}   -> {out.get('decision')}: replicas {before} -> {after} ({out.get('reason')}){RESET}")
    rpops("local", "platform", "fault", "--clear")
    expect(stage, out.get("decision") == "scale-up" and after > before, f"replicas {before} -> {after}")


def rightsizing(stack: fixtures.Stack | None) -> None:
    heading("Right-sizing: research-platform-optimize against the real Prometheus")
    if not has_template("research-platform-optimize") or stack is None:
        return
    # The stack's Prometheus has scraped the instances under steady load since it started.
    note("demo thresholds: seconds of history stand in for the production minimum of 3 h and 100 points;")
    note("the history holds the CPU burn of the alert loop, so CPU comes out near one core")
    status = run_template(
        "research-platform-optimize",
        "demo-optimize-1",
        service=SERVICE,
        prometheus=stack.prometheus.url,
        history_hours="0.01",
        min_history_hours="0.001",
        min_points="5",
        step_seconds="1",
        rate_window="3s",
    )
    out = outputs(status, "optimize")
    print(f"{BOLD}   -> {out.get('reason')}{RESET}")
    if out.get("recommendation"):
        print(f"   recommendation: {out['recommendation']}")
    expect("right-sizing", status["status"]["phase"] == "Succeeded", f"workflow {status['status']['phase']}")


def security() -> None:
    heading("Security scan of a sample vulnerable project: research-platform-security-scan")
    if not has_template("research-platform-security-scan") or not SAMPLE_PROJECT.exists():
        return
    # The vendored advisory snapshot is old on purpose: max-db-age 0 turns the age check off.
    # installed is empty: the template's default is the step image's own environment.
    status = run_template(
        "research-platform-security-scan",
        "demo-security-1",
        target=str(SAMPLE_PROJECT),
        manifests=str(SAMPLE_PROJECT / "manifests"),
        installed="",
        db=str(ADVISORIES),
        max_db_age="0",
    )
    out = outputs(status, "security-scan")
    print(
        f"{BOLD}   -> workflow {status['status']['phase']} (gate {out.get('status')}): critical "
        f"{out.get('critical')}, high {out.get('high')}, total {out.get('total')}; "
        f"{out.get('fixes')} upgrade(s) proposed in fix.patch{RESET}"
    )
    # The sample project is vulnerable on purpose: the scan finds critical issues and its gate fails.
    expect(
        "security scan",
        out.get("status") == "fail" and int(out.get("critical") or 0) > 0,
        f"gate {out.get('status')!r} with {out.get('critical')} critical finding(s) in a vulnerable project",
    )
    # The top findings, from the scan's summary.md (its findings table is sorted by severity).
    node = next(
        (
            n
            for n in status["status"]["nodes"].values()
            if n.get("templateName") == "security-scan" and n["type"] == "Pod"
        ),
        None,
    )
    summary = (
        WORK / "runs" / "demo-security-1" / "nodes" / (node or {}).get("id", "-") / "outputs" / "summary.md"
    )
    rows = (
        [line for line in summary.read_text().splitlines() if line.startswith("| ")]
        if summary.exists()
        else []
    )
    findings = [[c.strip() for c in r.strip(" |").split("|", 4)] for r in rows]
    findings = [f for f in findings if len(f) == 5 and f[1] in ("dependency", "code", "config")]
    for severity, _, rule, where, message in [f for f in findings if f[0] in ("critical", "high")][:5]:
        print(f"   {severity:<8} {rule.strip('`'):<16} {where:<32} {message[:80]}")


def bluegreen(stack: fixtures.Stack | None) -> None:
    stage = "blue-green"
    heading("Blue-green: promote v2 (good), then v3 (breaks under live traffic and is rolled back)")
    if not has_template("research-platform-blue-green"):
        return
    waits = {"verify_seconds": "4", "scale_down_delay_seconds": "0"}
    seen = recoveries(stack)
    status = run_template(
        "research-platform-blue-green", "demo-bluegreen-v2", service=SERVICE, version="v2", **waits
    )
    out = outputs(status, "promotion")
    print(
        f"{BOLD}   -> v2: {status['status']['phase']}, active {out.get('active_version')} "
        f"({out.get('reason')}){RESET}"
    )
    rpops("bluegreen", "status", "--service", SERVICE)  # v2's phase timeline
    expect(
        stage,
        status["status"]["phase"] == "Succeeded" and out.get("active_version") == "v2",
        f"v2: workflow {status['status']['phase']}, active {out.get('active_version')!r}",
    )
    if stack is not None:
        # A planned change: v1's replicas stopped on purpose. Nothing pages into a recovery.
        paged = wait_for(lambda: recoveries(stack) - seen or None, 10)
        expect(stage, paged is None, f"the promotion of v2 started a recovery: {paged}")
        note("the promotion stopped v1's replicas on purpose: no alert, no recovery")

    # v3 passes its pre-promotion analysis; once it takes traffic, it starts failing half of its
    # requests, as a bad release would. The verify window catches it and routes back to v2. The
    # window is long enough for the fault to land on a busy machine (the switch is watched in
    # this process, the fault set through the admin endpoint).
    waits = {**waits, "verify_seconds": "15"}
    run = subprocess.Popen(
        [
            RPOPS,
            "local",
            "run",
            "research-platform-blue-green",
            "--manifests",
            str(MANIFESTS),
            "--runs-dir",
            str(WORK / "runs"),
            "--name",
            "demo-bluegreen-v3",
            "-p",
            f"service={SERVICE}",
            "-p",
            "version=v3",
            *(f"-p{k.replace('_', '-')}={v}" for k, v in waits.items()),
        ],
        cwd=WORK,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    print("$ rpops local run research-platform-blue-green ... -p version=v3   (in the background)")
    deadline = time.monotonic() + 120
    driver = LocalDriver(root=WORK / "platform")
    while time.monotonic() < deadline and run.poll() is None:
        if driver.routes(SERVICE).active == "v3":
            token = driver.admin_token(SERVICE)
            for inst in driver.instances(SERVICE, "v3"):
                httpx.post(
                    f"{inst.url}/admin/faults",
                    json={"error_rate": 0.5},
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=10,
                    trust_env=False,
                ).raise_for_status()
            print("   v3 took the traffic: error_rate=0.5 on its instances")
            break
        time.sleep(0.1)
    for line in (run.communicate(timeout=180)[0] or "").splitlines():
        print(f"   {line}")
    status = json.loads((WORK / "runs" / "demo-bluegreen-v3" / "status.json").read_text())
    out = outputs(status, "promotion")
    print(
        f"{BOLD}   -> v3: {status['status']['phase']}, active {out.get('active_version')}, "
        f"rolled back: {out.get('rolled_back')} ({out.get('reason')}){RESET}"
    )
    rpops("bluegreen", "status", "--service", SERVICE)
    expect(
        stage,
        out.get("rolled_back") == "true" and out.get("active_version") == "v2",
        f"v3: rolled back {out.get('rolled_back')!r}, active {out.get('active_version')!r}",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--break-scale-out",
        action="store_true",
        help="cap the scale step at one replica: the alert loop (or the overload by hand) must fail",
    )
    args = parser.parse_args(argv)
    scale = {"max-replicas": "1"} if args.break_scale_out else {}
    started = time.monotonic()
    shutil.rmtree(WORK, ignore_errors=True)
    (WORK / "tmp").mkdir(parents=True)
    os.environ.update(LOCAL)  # the stack's processes too
    tempfile.tempdir = LOCAL["TMPDIR"]
    # One instance to start with: a CPU fault then reads as overloaded even on a 2-core machine,
    # and the scale step has somewhere to go.
    heading("Start the local platform: research-platform v1, one instance behind a proxy")
    stack: fixtures.Stack | None = None
    failed: StageFailed | None = None
    try:
        rpops(
            "local",
            "platform",
            "up",
            "--service",
            SERVICE,
            "--version",
            "v1",
            "--replicas",
            "1",
            "--port",
            "0",
        )
        url = platform_url()
        health_and_validation(url)
        stack = start_monitoring(url, scale)
        if stack is not None:
            alert_loop(stack)
        else:
            scaling(url, {k.replace("-", "_"): v for k, v in scale.items()})
        security()  # meanwhile Prometheus gathers the seconds of history right-sizing needs
        rightsizing(stack)
        bluegreen(stack)
        heading("Recorded runs")
        rpops("local", "list", "--runs-dir", str(WORK / "runs"))
    except StageFailed as exc:
        failed = exc
    finally:
        heading("Stop everything")
        if stack is not None:
            stack.stop()
        rpops("local", "platform", "down", check=False)
    if failed is not None:
        print(f"\n{BOLD}demo: {failed}{RESET}", file=sys.stderr)
        return 1
    print(f"\ndemo finished in {time.monotonic() - started:.0f} s; records under {WORK.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
