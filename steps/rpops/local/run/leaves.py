"""The leaves of a workflow: container and script steps as local processes, and suspends."""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rpops.core.durations import parse_duration, parse_int
from rpops.local.load import paths
from rpops.local.load.model import Template
from rpops.local.records.nodes import ERROR, FAILED, RUNNING, SUCCEEDED, Node
from rpops.local.run import isolation
from rpops.local.run.process import LocalProcess, resolve_command
from rpops.local.run.secretstore import SecretMissing

if TYPE_CHECKING:
    from rpops.local.run.executor import Call, Run

_PROGRESS = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def run_pod(run: Run, node: Node, call: Call, t: Template) -> None:
    """A container or script template: one local process; phase, outputs and artifacts from it."""
    c = t.container
    assert c is not None
    if run.pod_slots is not None:
        while not run.pod_slots.acquire(timeout=0.05):
            if run.cancelled(call):
                run.store.set_phase(node, FAILED, run.cancel_reason)
                return
    try:
        _run_process(run, node, call, t)
    finally:
        if run.pod_slots is not None:
            run.pod_slots.release()


def node_dir(run: Run, node: Node) -> Path:
    return run.dir / "nodes" / node.id


def log_path(run: Run, node: Node) -> Path:
    return run.dir / "logs" / f"{node.id}.log"


def _keep_earlier(run: Run, node: Node, t: Template) -> bool:
    """Under `rpops local retry`, a pod that Succeeded in the earlier attempt keeps its outputs,
    log and artifacts and does not run again (argo retry resets only what failed)."""
    earlier = run.options.kept.get(node.name)
    if earlier is None or earlier.get("templateName") != t.name or run.options.kept_from is None:
        return False
    old_id = str(earlier.get("id") or "")
    for src, dst in (
        (run.options.kept_from / "nodes" / old_id, node_dir(run, node)),
        (run.options.kept_from / "logs" / f"{old_id}.log", log_path(run, node)),
    ):
        if src.is_dir():
            shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)  # a link a node left is not followed
        elif src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
    node.outputs = earlier.get("outputs")
    run.store.set_phase(node, SUCCEEDED, "kept from the earlier attempt")
    return True


def _run_process(run: Run, node: Node, call: Call, t: Template) -> None:
    c = t.container
    assert c is not None
    if run.cancelled(call):
        run.store.set_phase(node, FAILED, run.cancel_reason)
        return
    if not call.exit_handler and _keep_earlier(run, node, t):
        return
    work = node_dir(run, node)
    view = paths.mode()
    private = work / "tmp"  # the node's /tmp (namespace) or its /tmp/outputs (fallback)
    # $RPOPS_OUTPUTS exists when a step starts (the step contract): /tmp/outputs in the node's view.
    (private / "outputs" if view.namespace else private).mkdir(parents=True, exist_ok=True)
    try:
        declared = output_paths(t, view.root)
        env = _env(run, c.env, work, view)
        deadline = deadline_of(t)
    except (SecretMissing, ValueError) as exc:
        run.store.set_phase(node, ERROR, str(exc))
        return
    argv = list(c.command) + list(c.args)
    fds: list[int] = []
    progress = work / "progress"
    if view.namespace:
        # The run folder may itself be under the host's /tmp, hidden once the node's /tmp is
        # mounted: the node reaches its script and progress file through inherited descriptors.
        progress.touch()
        fds.append(os.open(progress, os.O_WRONLY))
        env["ARGO_PROGRESS_FILE"] = f"/dev/fd/{fds[-1]}"
    if t.kind == "script":
        script = work / "script"
        script.write_text(c.source or "")
        script.chmod(0o755)  # as Argo stages it: `command: [sh, -c]` executes the file itself
        if view.namespace:
            fds.append(os.open(script, os.O_RDONLY))
            argv.append(f"/dev/fd/{fds[-1]}")
        else:
            argv.append(str(script))
    argv[0] = resolve_command(argv[0], env["PATH"])
    cwd = c.working_dir or (str(run.options.workdir) if run.options.workdir else None)
    if view.namespace:
        argv = isolation.wrap(argv, private, isolation.host_paths(cwd, env, isolation.image_paths(argv[0])))
    if cwd and not Path(cwd).is_dir():
        _close(fds)
        run.store.set_phase(node, ERROR, f"workingDir {cwd} does not exist on this machine")
        return
    proc = LocalProcess(argv, env, cwd, log_path(run, node), run.options.kill_grace_s, tuple(fds))
    with run._lock:
        run._procs[proc] = call.exit_handler
    try:
        if run.cancelled(call):
            proc.kill(run.cancel_reason)
        error = proc.start()
        _close(fds)
        if error is not None:
            run.store.set_phase(node, ERROR, error)
            return
        run.store.set_phase(node, RUNNING)
        outcome = proc.wait(None if deadline is None else time.monotonic() + deadline)
    finally:
        _close(fds)
        with run._lock:
            run._procs.pop(proc, None)
    read_progress(run, node, final=True)
    outputs: dict[str, Any] = {} if outcome.exit_code is None else {"exitCode": str(outcome.exit_code)}
    if outcome.stdout:
        outputs["result"] = outcome.stdout
    if outcome.killed:
        phase, message = FAILED, outcome.killed
    elif outcome.exit_code == 0:
        phase, message = SUCCEEDED, ""
    elif outcome.exit_code == 125 and view.namespace and outcome.stdout == "":
        phase, message = ERROR, "could not give the node a private /tmp (mount failed)"
    else:
        phase, message = FAILED, f"Error (exit code {outcome.exit_code})"
    problem = _collect(t, declared, private, work / "artifacts", outputs)
    if problem and phase == SUCCEEDED:
        phase, message = ERROR, problem
    node.outputs = outputs
    run.store.set_phase(node, phase, message)


def _close(fds: list[int]) -> None:
    while fds:
        try:
            os.close(fds.pop())
        except OSError:
            pass


def output_paths(t: Template, root: str) -> tuple[list[str], list[str]]:
    """Each output parameter's and artifact's path relative to the node's private root."""
    params = [
        paths.normalize(o.path or "", f"outputs.parameters[{i}].valueFrom.path", root)
        for i, o in enumerate(t.outputs)
    ]
    arts = [paths.normalize(a.path, f"outputs.artifacts[{i}].path", root) for i, a in enumerate(t.artifacts)]
    return params, arts


def _env(run: Run, env_vars: Any, work: Path, view: paths.Mode) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for var in env_vars:
        if var.secret is not None:
            try:
                env[var.name] = run.secrets.get(var.secret.name, var.secret.key)
            except SecretMissing:
                if not var.secret.optional:
                    raise
        else:
            env[var.name] = var.value or ""
    # Argo's path inside the node's own /tmp; in the fallback, the node's folder stands for it.
    env["RPOPS_OUTPUTS"] = "/tmp/outputs" if view.namespace else str(work / "tmp")  # noqa: S108
    env["ARGO_PROGRESS_FILE"] = str(work / "progress")
    env["RPOPS_PLATFORM"] = "local"  # steps drive the local platform, whatever the template says
    return env


def read_progress(run: Run, node: Node, final: bool = False) -> None:
    """`N/M` from the node's ARGO_PROGRESS_FILE (0/1 when absent); M/M once the node is over."""
    text = ""
    try:
        text = (node_dir(run, node) / "progress").read_text()
    except OSError:
        pass
    m = _PROGRESS.match(text)
    done, total = (int(m.group(1)), int(m.group(2))) if m else (0, 1)
    if final:
        done = total
    run.store.set_progress(node, f"{done}/{total}")


def run_suspend(run: Run, node: Node, call: Call, t: Template) -> None:
    """Wait for `rpops local resume` (or the duration); a stop or deadline fails the node."""
    try:
        duration = parse_duration(t.suspend_duration) if t.suspend_duration else None
    except ValueError as exc:
        run.store.set_phase(node, ERROR, str(exc))
        return
    seen = run.resumes
    started = time.monotonic()
    run.store.set_phase(node, RUNNING, f"Suspended: resume with `rpops local resume {run.name}`")
    while True:
        if run.resumes > seen:
            run.store.set_phase(node, SUCCEEDED, "")
            return
        if duration is not None and time.monotonic() - started >= duration:
            run.store.set_phase(node, SUCCEEDED, "")
            return
        if run.cancel_event(call).wait(0.05):
            run.store.set_phase(node, FAILED, run.cancel_reason)
            return


def deadline_of(t: Template) -> float | None:
    limits = []
    if t.active_deadline:
        limits.append(float(parse_int(t.active_deadline, "activeDeadlineSeconds")))
    if t.timeout:
        limits.append(parse_duration(t.timeout))
    return min(limits) if limits else None


def _collect(
    t: Template, paths: tuple[list[str], list[str]], private: Path, art_dir: Path, outputs: dict[str, Any]
) -> str | None:
    """Output parameters and artifacts from the node's own view; the first problem, if any."""
    problem = None
    params = []
    for o, rel in zip(t.outputs, paths[0], strict=True):
        path = isolation.inside(private, rel)
        try:
            if path is None:
                raise OSError("outside the node's view")
            value = path.read_text(encoding="utf-8", errors="replace")
            value = value[:-1] if value.endswith("\n") else value
        except OSError:
            if o.default is None:
                problem = problem or f"open {o.path}: no such file or directory"
                continue
            value = o.default
        params.append({"name": o.name, "value": value})
    if params:
        outputs["parameters"] = params
    arts = []
    for a, rel in zip(t.artifacts, paths[1], strict=True):
        src = isolation.inside(private, rel)
        if src is None or not src.exists():
            if not a.optional:
                problem = problem or f"path {a.path} does not exist"
            continue
        dest = art_dir / a.name  # a plain name: checked when the document was loaded
        art_dir.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copyfile(src, dest)
        arts.append({"name": a.name, "path": str(dest)})
    if arts:
        outputs["artifacts"] = arts
    return problem
