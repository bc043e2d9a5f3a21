"""`rpops local`: run rendered Argo YAML here, and read the records of past runs.

rpops local run <template-name | file.yaml | KIND/NAME> [-p key=value ...] [--output json]
rpops local list | get NAME | watch NAME | logs NAME [--node X] [-f] | resume NAME | stop NAME
rpops local retry NAME | delete NAME... | lint
rpops local platform up|down|status   (rpops.platform.local.cli)
rpops local serve [--port P]           (rpops.local.server.serve)
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rpops.core.errors import UsageError
from rpops.core.parsers import argparse_float

DEFAULT_MANIFESTS = "manifests/argo"
DEFAULT_RUNS = ".rpops/runs"
DEFAULT_SECRETS = ".rpops/secrets.yaml"  # nosec B105 -- a file path, not a secret
FOLLOW_S = 0.3  # how often `watch` and `logs -f` read the run's record again

# The kinds `argo submit --from KIND/NAME` accepts (argo-workflows server/workflow SubmitWorkflow).
FROM_KINDS: dict[str, str] = {
    **dict.fromkeys(
        ("WorkflowTemplate", "workflowtemplate", "workflowtemplates", "wftmpl"), "WorkflowTemplate"
    ),
    **dict.fromkeys(("CronWorkflow", "cronworkflow", "cronworkflows", "cronwf"), "CronWorkflow"),
}

SUBCOMMANDS: dict[str, str] = {
    "run": "Run a WorkflowTemplate, Workflow or CronWorkflow and wait for it.",
    "list": "List recorded runs, newest first.",
    "get": "Show one run's status tree (or its status document with --output json).",
    "watch": "Show a run's status tree, redrawn until the run ends (as argo watch).",
    "logs": "Print the logs of a run's steps (-f: follow until the run ends).",
    "retry": "Run a failed run again under its name, with its parameters (as argo retry).",
    "delete": "Delete the records of finished runs (as argo delete).",
    "resume": "Resume a run's suspended steps.",
    "stop": "Stop a run (its exit handler still runs; --terminate skips it).",
    "lint": "Check that documents stay inside what rpops local runs.",
    "platform": "The local platform: up, down, status.",
    "serve": "Serve Argo's events API (WorkflowEventBindings) and CronWorkflow schedules.",
}


RUNS_HELP = f"directory of run records (default: {DEFAULT_RUNS})"


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="local_command", metavar="<command>", required=True)
    _add_run(sub)
    _add_records(sub)
    _add_retry(sub)
    p = sub.add_parser("lint", help=SUBCOMMANDS["lint"], description=SUBCOMMANDS["lint"])
    p.add_argument("target", nargs="?", help="one template name or file (default: everything in --manifests)")
    p.add_argument("--manifests", default=None, metavar="DIR", help=f"default: {DEFAULT_MANIFESTS}")
    # Flags are parsed by rpops.platform.local.cli itself, imported only when used.
    p = sub.add_parser("platform", help=SUBCOMMANDS["platform"], add_help=False, prefix_chars="\x00")
    p.add_argument("platform_args", nargs=argparse.REMAINDER)
    serve = importlib.import_module("rpops.local.server.settings")  # the server loads when it runs
    serve.configure(sub.add_parser("serve", help=SUBCOMMANDS["serve"], description=SUBCOMMANDS["serve"]))


def _add_run(sub: Any) -> None:
    p = sub.add_parser("run", help=SUBCOMMANDS["run"], description=SUBCOMMANDS["run"])
    p.add_argument(
        "target",
        nargs="?",
        help="a template name from --manifests, a YAML file, or KIND/NAME as argo submit --from takes "
        "(workflowtemplate/NAME, cronwf/NAME)",
    )
    p.add_argument("--from", dest="from_ref", default=None, metavar="KIND/NAME", help="as argo submit --from")
    p.add_argument(
        "-p",
        "--parameter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a workflow parameter (repeat for several)",
    )
    p.add_argument(
        "-o",
        "--output",
        choices=("text", "json"),
        default="text",
        help="text: a live tree (plain lines when not a terminal); json: the final status document",
    )
    p.add_argument(
        "--manifests",
        default=None,
        metavar="DIR",
        help=f"directory (or file) of templates for names and templateRef (default: {DEFAULT_MANIFESTS})",
    )
    p.add_argument("--runs-dir", default=DEFAULT_RUNS, metavar="DIR", help=RUNS_HELP)
    p.add_argument(
        "--secrets",
        default=DEFAULT_SECRETS,
        metavar="FILE",
        help=f"secrets for secretKeyRef, as {{name: {{key: value}}}} (default: {DEFAULT_SECRETS}); "
        "RPOPS_SECRET_<NAME>_<KEY> variables win",
    )
    p.add_argument("--name", default=None, help="the run's name (default: <template>-<5 random characters>)")
    p.add_argument(
        "--kill-grace",
        type=argparse_float,
        default=3.0,
        metavar="SECONDS",
        help="seconds between SIGTERM and SIGKILL when a step is stopped (default: 3)",
    )


def _add_records(sub: Any) -> None:
    """The commands that read or change the records of runs: list, get, watch, logs, delete,
    resume, stop."""
    p = sub.add_parser("list", help=SUBCOMMANDS["list"], description=SUBCOMMANDS["list"])
    p.add_argument("--runs-dir", default=DEFAULT_RUNS, metavar="DIR", help=RUNS_HELP)
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")

    p = sub.add_parser("get", help=SUBCOMMANDS["get"], description=SUBCOMMANDS["get"])
    p.add_argument("name")
    p.add_argument("--runs-dir", default=DEFAULT_RUNS, metavar="DIR", help=RUNS_HELP)
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")

    p = sub.add_parser("watch", help=SUBCOMMANDS["watch"], description=SUBCOMMANDS["watch"])
    p.add_argument("name")
    p.add_argument("--runs-dir", default=DEFAULT_RUNS, metavar="DIR", help=RUNS_HELP)

    p = sub.add_parser("logs", help=SUBCOMMANDS["logs"], description=SUBCOMMANDS["logs"])
    p.add_argument("name")
    p.add_argument("--node", default=None, help="one node: its display name, full name or ID")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines until the run ends")
    p.add_argument("--runs-dir", default=DEFAULT_RUNS, metavar="DIR", help=RUNS_HELP)

    p = sub.add_parser("delete", help=SUBCOMMANDS["delete"], description=SUBCOMMANDS["delete"])
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--completed", action="store_true", help="every finished run")
    p.add_argument("--runs-dir", default=DEFAULT_RUNS, metavar="DIR", help=RUNS_HELP)

    for name in ("resume", "stop"):
        p = sub.add_parser(name, help=SUBCOMMANDS[name], description=SUBCOMMANDS[name])
        p.add_argument("name")
        p.add_argument("--runs-dir", default=DEFAULT_RUNS, metavar="DIR", help=RUNS_HELP)
        if name == "stop":
            p.add_argument("--terminate", action="store_true", help="do not run the exit handler")


def _add_retry(sub: Any) -> None:
    p = sub.add_parser(
        "retry",
        help=SUBCOMMANDS["retry"],
        description=SUBCOMMANDS["retry"]
        + (" Steps that succeeded keep their outputs and do not run again; what failed runs again."),
    )
    p.add_argument("name")
    p.add_argument("--manifests", default=None, metavar="DIR", help=f"default: {DEFAULT_MANIFESTS}")
    p.add_argument("--runs-dir", default=DEFAULT_RUNS, metavar="DIR", help=RUNS_HELP)
    p.add_argument("--secrets", default=DEFAULT_SECRETS, metavar="FILE", help=f"default: {DEFAULT_SECRETS}")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")
    p.add_argument(
        "--kill-grace", type=argparse_float, default=3.0, metavar="SECONDS", help="as for run (default: 3)"
    )


def run(args: argparse.Namespace) -> int | None:
    handlers: dict[str, Callable[[argparse.Namespace], int | None]] = {
        "run": _run,
        "list": _list,
        "get": _get,
        "watch": _watch,
        "logs": _logs,
        "retry": _retry,
        "delete": _delete,
        "resume": _resume,
        "stop": _stop,
        "lint": _lint,
        "platform": _platform,
        "serve": lambda a: importlib.import_module("rpops.local.server.serve").run(a),
    }
    return handlers[args.local_command](args)


# ---------------------------------------------------------------------------------------------


def _platform(args: argparse.Namespace) -> int | None:
    from rpops.core.cli import _Parser

    module = importlib.import_module("rpops.platform.local.cli")
    parser = _Parser(prog="rpops local platform", description=SUBCOMMANDS["platform"])
    module.configure(parser)
    result: int | None = module.run(parser.parse_args(args.platform_args))
    return result


def parse_parameters(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"-p {item!r}: write parameters as KEY=VALUE")
        out[key] = value
    return out


def parse_from(ref: str) -> tuple[str, str] | None:
    """(kind, name) for `KIND/NAME` as argo submit --from takes it; None when `ref` is no such form."""
    kind, sep, name = ref.partition("/")
    if not sep or kind not in FROM_KINDS:
        return None
    if not name or "/" in name:
        raise UsageError(f"{ref!r}: write KIND/NAME, e.g. workflowtemplate/research-platform-health-check")
    return FROM_KINDS[kind], name


def _from_target(ref: str, manifests: str | None) -> tuple[Any, Any]:
    from rpops.local.load.catalog import load_documents

    parsed = parse_from(ref)
    if parsed is None:
        kinds = ", ".join(sorted({k.lower() for k in FROM_KINDS}))
        raise UsageError(f"--from {ref}: write KIND/NAME with KIND one of {kinds}")
    kind, name = parsed
    manifests_dir = Path(manifests or DEFAULT_MANIFESTS)
    if not manifests_dir.exists():
        raise UsageError(f"--from {ref}: there is no {manifests_dir} to find it in; pass --manifests DIR")
    catalog = load_documents([manifests_dir])
    doc = catalog.find(kind, name)
    if doc is None:
        known = ", ".join(sorted(d.name for d in catalog.documents if d.kind == kind)) or "none"
        raise UsageError(f"{ref}: no {kind} named '{name}' in {manifests_dir} (known: {known})")
    return catalog, doc


def _catalog_and_target(target: str, manifests: str | None) -> tuple[Any, Any]:
    from rpops.local.load.catalog import Catalog, load_documents

    path = Path(target)
    if not path.exists() and parse_from(target) is not None:
        return _from_target(target, manifests)
    is_file = path.is_file() or path.suffix in (".yaml", ".yml")
    manifests_dir = Path(manifests or DEFAULT_MANIFESTS)
    if manifests is not None and not manifests_dir.exists():
        raise UsageError(f"--manifests {manifests}: no such file or directory")
    catalog = load_documents([manifests_dir]) if manifests_dir.exists() else Catalog()
    if not is_file:
        if not manifests_dir.exists():
            raise UsageError(
                f"'{target}' is not a file, and there is no {manifests_dir} to find a template of that "
                "name in; pass a YAML file or --manifests DIR"
            )
        return catalog, target
    own = load_documents([path])
    for doc in own.documents:
        catalog.add(doc)
    runnable = own.runnable()
    if not runnable:
        raise UsageError(f"{path} holds no WorkflowTemplate, Workflow or CronWorkflow")
    if len(runnable) > 1:
        names = ", ".join(d.name for d in runnable)
        raise UsageError(
            f"{path} holds several runnable documents ({names}); run one by name: "
            f"rpops local run NAME --manifests {path}"
        )
    return catalog, runnable[0]


def _run(args: argparse.Namespace) -> int:
    params = parse_parameters(args.parameter)
    if (args.target is None) == (args.from_ref is None):
        raise UsageError("name what to run: a template name, a YAML file, or --from KIND/NAME (one of them)")
    if args.from_ref is not None:
        catalog, target = _from_target(args.from_ref, args.manifests)
    else:
        catalog, target = _catalog_and_target(args.target, args.manifests)
    return _execute(catalog, target, params, args)


def _execute(
    catalog: Any,
    target: Any,
    params: dict[str, str],
    args: argparse.Namespace,
    kept_from: Path | None = None,
    kept: dict[str, dict[str, Any]] | None = None,
) -> int:
    from rpops.local import display
    from rpops.local.api import start
    from rpops.local.run.executor import Options

    options = Options(
        runs_dir=Path(args.runs_dir),
        secrets_file=Path(args.secrets),
        name=args.name,
        kill_grace_s=args.kill_grace,
        kept_from=kept_from,
        kept=kept or {},
    )
    live = None
    node_listeners: list[Any] = []
    workflow_listeners: list[Any] = []
    if args.output == "text" and not display.is_terminal(sys.stdout):
        plain = display.PlainLines(sys.stdout)
        node_listeners.append(plain.node)
        workflow_listeners.append(plain.workflow)
    handle = start(
        catalog,
        target,
        params,
        options=options,
        node_listeners=node_listeners,
        workflow_listeners=workflow_listeners,
    )
    if args.output == "text" and display.is_terminal(sys.stdout):
        live = display.LiveTree(handle.run, sys.stdout)
        live.start()
    _stop_on_signals(handle)
    result = None
    while result is None:
        try:
            result = handle.wait(0.5)
        except KeyboardInterrupt:
            strategy = "Terminate" if handle.run.cancel.is_set() else "Stop"
            print(f"\nstopping {handle.name} ({strategy}); press Ctrl-C again to terminate", file=sys.stderr)
            handle.stop(strategy)
    if args.output == "json":
        print(json.dumps(result.status, indent=2))
    elif live is not None:
        live.finish()
    else:
        print()
        print("\n".join(display.render(result.status)))
    return 0 if result.phase == "Succeeded" else 1


def _stop_on_signals(handle: Any) -> None:
    if threading.current_thread() is not threading.main_thread():
        return

    def on_term(signum: int, frame: Any) -> None:
        handle.stop("Stop")

    signal.signal(signal.SIGTERM, on_term)


def _list(args: argparse.Namespace) -> None:
    from rpops.local.display import duration
    from rpops.local.records.runs import list_runs

    docs = list_runs(Path(args.runs_dir))
    if args.output == "json":
        print(
            json.dumps(
                [
                    {
                        "name": d["metadata"]["name"],
                        "phase": d["status"].get("phase"),
                        "startedAt": d["status"].get("startedAt"),
                        "finishedAt": d["status"].get("finishedAt"),
                        "message": d["status"].get("message", ""),
                    }
                    for d in docs
                ],
                indent=2,
            )
        )
        return
    if not docs:
        print(f"no runs in {args.runs_dir}")
        return
    width = max(len(d["metadata"]["name"]) for d in docs) + 2
    print(f"{'NAME':<{width}}{'STATUS':<11}{'STARTED':<22}{'DURATION':<10}MESSAGE")
    import time

    now = time.time()
    for d in docs:
        s = d["status"]
        print(
            f"{d['metadata']['name']:<{width}}{s.get('phase', ''):<11}{(s.get('startedAt') or '')[:19]:<22}"
            f"{duration(s.get('startedAt'), s.get('finishedAt'), now):<10}{s.get('message', '')}".rstrip()
        )


def _get(args: argparse.Namespace) -> None:
    from rpops.local.display import render, use_color
    from rpops.local.records.runs import read_status

    doc = read_status(Path(args.runs_dir), args.name)
    if args.output == "json":
        print(json.dumps(doc, indent=2))
    else:
        print("\n".join(render(doc, color=use_color(sys.stdout))))


def _watch(args: argparse.Namespace) -> int:
    """Redraw in place on a terminal; elsewhere print the tree once the run has ended."""
    from rpops.local.display import InPlace, is_terminal, render
    from rpops.local.records.runs import ACTIVE, read_status

    runs_dir = Path(args.runs_dir)
    doc = read_status(runs_dir, args.name)
    live = InPlace(sys.stdout) if is_terminal(sys.stdout) else None
    while True:
        if live is not None:
            live.show(doc)
        if doc["status"].get("phase") not in ACTIVE:
            break
        time.sleep(FOLLOW_S)
        doc = read_status(runs_dir, args.name)
    if live is None:
        print("\n".join(render(doc)))
    return 0 if doc["status"].get("phase") == "Succeeded" else 1


def _logs(args: argparse.Namespace) -> None:
    from rpops.local.records.runs import ACTIVE, log_files, read_status

    runs_dir = Path(args.runs_dir)
    doc = read_status(runs_dir, args.name)
    offsets: dict[Path, int] = {}
    while True:
        running = doc["status"].get("phase") in ACTIVE
        files = log_files(runs_dir, doc, args.node)
        prefix = args.node is None and (len(files) > 1 or args.follow)
        for node, path in files:
            for line in _new_lines(path, offsets, final=not running):
                print(f"{node['displayName']}: {line}" if prefix else line, flush=args.follow)
        if not (args.follow and running):
            return
        time.sleep(FOLLOW_S)
        doc = read_status(runs_dir, args.name)


def _new_lines(path: Path, offsets: dict[Path, int], final: bool) -> list[str]:
    """The complete lines added to `path` since the last call (a partial last line waits,
    unless the run is over)."""
    try:
        with path.open("rb") as fh:
            fh.seek(offsets.get(path, 0))
            data = fh.read()
    except OSError:
        return []
    if not final:
        data = data[: data.rfind(b"\n") + 1]
    offsets[path] = offsets.get(path, 0) + len(data)
    return data.decode(errors="replace").splitlines()


def _retry(args: argparse.Namespace) -> int:
    """As argo retry: the same name and parameters; pods that Succeeded keep their outputs, logs
    and artifacts and do not run again, what failed runs again, and so does the exit handler.
    The earlier record is kept aside under .retried/."""
    from rpops.local.records.runs import read_status

    runs_dir = Path(args.runs_dir)
    doc = read_status(runs_dir, args.name)
    phase = doc["status"].get("phase")
    if phase not in ("Failed", "Error"):
        raise UsageError(f"run {args.name} is {phase}; only a Failed or Error run can be retried")
    catalog, target = _recorded_target(doc, args.manifests)
    params = {
        p["name"]: p.get("value", "") for p in (doc["spec"].get("arguments") or {}).get("parameters") or []
    }
    from rpops.local.load.plan import prepare

    prepare(catalog, target, params)  # refuse before the old record moves
    aside = runs_dir / ".retried"
    aside.mkdir(parents=True, exist_ok=True)
    attempt = 1
    while (aside / f"{args.name}.{attempt}").exists():
        attempt += 1
    earlier = aside / f"{args.name}.{attempt}"
    (runs_dir / args.name).rename(earlier)
    kept = {
        n["name"]: n
        for n in (doc["status"].get("nodes") or {}).values()
        if n.get("type") == "Pod" and n.get("phase") == "Succeeded" and ".onExit" not in n.get("name", "")
    }
    return _execute(catalog, target, params, args, kept_from=earlier, kept=kept)


def _recorded_target(doc: dict[str, Any], manifests: str | None) -> tuple[Any, Any]:
    """The document a recorded run came from: its WorkflowTemplate, or the runnable document of
    its source file whose name the run's name was generated from."""
    from rpops.local.load.catalog import Catalog, load_documents

    name = doc["metadata"]["name"]
    manifests_dir = Path(manifests or DEFAULT_MANIFESTS)
    catalog = load_documents([manifests_dir]) if manifests_dir.exists() else Catalog()
    source = Path((doc["metadata"].get("annotations") or {}).get("rpops.local/source") or "")
    own = load_documents([source]) if source.is_file() else Catalog()
    for d in own.documents:
        catalog.add(d)
    template = (doc["spec"].get("workflowTemplateRef") or {}).get("name")
    candidates = [
        d
        for d in (own.runnable() or catalog.runnable())
        if (d.kind == "WorkflowTemplate" and d.name == template)
        or (d.kind != "WorkflowTemplate" and name.startswith(_name_base(d) + "-"))
        or d.name == name
    ]
    if len(candidates) != 1:
        where = source if source.is_file() else manifests_dir
        raise UsageError(f"run {name}: cannot tell which document in {where} it ran; run it again by name")
    return catalog, candidates[0]


def _name_base(d: Any) -> str:
    return str(d.metadata.get("generateName") or "").rstrip("-") or str(d.name)


def _delete(args: argparse.Namespace) -> None:
    from rpops.local.records.runs import ACTIVE, list_runs, read_status

    runs_dir = Path(args.runs_dir)
    if bool(args.names) == args.completed:
        raise UsageError("name the runs to delete, or pass --completed (one of them)")
    docs = (
        [d for d in list_runs(runs_dir) if d["status"].get("phase") not in ACTIVE]
        if args.completed
        else [read_status(runs_dir, n) for n in args.names]
    )
    running = [d["metadata"]["name"] for d in docs if d["status"].get("phase") in ACTIVE]
    if running:
        raise UsageError(
            f"{', '.join(running)}: still running; stop first: rpops local stop NAME --terminate"
        )
    for d in docs:
        shutil.rmtree(runs_dir / d["metadata"]["name"])
        print(f"Workflow '{d['metadata']['name']}' deleted")


def _resume(args: argparse.Namespace) -> None:
    from rpops.local.records.runs import request

    request(Path(args.runs_dir), args.name, "resume")
    print(f"{args.name}: resume requested")


def _stop(args: argparse.Namespace) -> None:
    from rpops.local.records.runs import request

    strategy = "Terminate" if args.terminate else "Stop"
    request(Path(args.runs_dir), args.name, "stop", strategy)
    print(f"{args.name}: {strategy.lower()} requested")


def _lint(args: argparse.Namespace) -> int:
    from rpops.local.load.plan import prepare

    if args.target:
        catalog, target = _catalog_and_target(args.target, args.manifests)
        docs = [catalog.resolve_target(target) if isinstance(target, str) else target]
    else:
        from rpops.local.load.catalog import load_documents

        manifests = Path(args.manifests or DEFAULT_MANIFESTS)
        if not manifests.exists():
            raise UsageError(f"{manifests}: no such file or directory; pass --manifests DIR")
        catalog = load_documents([manifests])
        docs = catalog.runnable()
    problems = []
    for doc in docs:
        try:
            _lint_one(catalog, doc, prepare)
        except UsageError as exc:
            problems.append(str(exc))
            continue
        print(f"ok   {doc.label}")
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    if problems:
        raise UsageError(f"{len(problems)} of {len(docs)} documents cannot run locally (listed above)")
    return 0


def _lint_one(catalog: Any, doc: Any, prepare: Any) -> None:
    """Check a document as a run would, with placeholder values for parameters that have none."""
    spec = catalog.spec(doc)
    if doc.kind == "WorkflowTemplate" and not spec.entrypoint:
        return  # a library of templates: checked where it is referenced
    declared = list(spec.arguments)
    if spec.template_ref and (base := catalog.find("WorkflowTemplate", spec.template_ref)) is not None:
        declared += catalog.spec(base).arguments
    entry = spec.template(spec.entrypoint) if spec.entrypoint else None
    declared += entry.inputs if entry else ()  # an entrypoint input is a parameter too (-p NAME=VALUE)
    given = {p.name for p in spec.arguments if p.value is not None}
    params = {
        p.name: (p.enum[0] if p.enum else "x")
        for p in declared
        if p.value is None and p.default is None and p.name not in given
    }
    prepare(catalog, doc, params)
