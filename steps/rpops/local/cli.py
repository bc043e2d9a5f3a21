"""`rpops local`: run rendered Argo YAML here, and read the records of past runs.

rpops local run <template-name | file.yaml> [-p key=value ...] [--output json]
rpops local list | get NAME | logs NAME [--node X] | resume NAME | stop NAME | lint
rpops local platform up|down|status   (the local platform; rpops.local.platform_cmd)
rpops local serve [--port P]           (Argo's events API and CronWorkflow schedules; rpops.local.serve)
"""

from __future__ import annotations

import argparse
import importlib
import json
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rpops.errors import UsageError

DEFAULT_MANIFESTS = "manifests/argo"
DEFAULT_RUNS = ".rpops/runs"
DEFAULT_SECRETS = ".rpops/secrets.yaml"

SUBCOMMANDS: dict[str, str] = {
    "run": "Run a WorkflowTemplate, Workflow or CronWorkflow and wait for it.",
    "list": "List recorded runs, newest first.",
    "get": "Show one run's status tree (or its status document with --output json).",
    "logs": "Print the logs of a run's steps.",
    "resume": "Resume a run's suspended steps.",
    "stop": "Stop a run (its exit handler still runs; --terminate skips it).",
    "lint": "Check that documents stay inside what rpops local runs.",
    "platform": "The local platform: up, down, status.",
    "serve": "Serve Argo's events API (WorkflowEventBindings) and CronWorkflow schedules.",
}


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="local_command", metavar="<command>", required=True)
    runs_help = f"directory of run records (default: {DEFAULT_RUNS})"

    p = sub.add_parser("run", help=SUBCOMMANDS["run"], description=SUBCOMMANDS["run"])
    p.add_argument("target", help="a template name from --manifests, or a YAML file")
    p.add_argument(
        "-p",
        "--parameter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a workflow parameter (repeat for several)",
    )
    p.add_argument(
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
    p.add_argument("--runs-dir", default=DEFAULT_RUNS, metavar="DIR", help=runs_help)
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
        type=float,
        default=3.0,
        metavar="SECONDS",
        help="seconds between SIGTERM and SIGKILL when a step is stopped (default: 3)",
    )

    p = sub.add_parser("list", help=SUBCOMMANDS["list"], description=SUBCOMMANDS["list"])
    p.add_argument("--runs-dir", default=DEFAULT_RUNS, metavar="DIR", help=runs_help)
    p.add_argument("--output", choices=("text", "json"), default="text")

    p = sub.add_parser("get", help=SUBCOMMANDS["get"], description=SUBCOMMANDS["get"])
    p.add_argument("name")
    p.add_argument("--runs-dir", default=DEFAULT_RUNS, metavar="DIR", help=runs_help)
    p.add_argument("--output", choices=("text", "json"), default="text")

    p = sub.add_parser("logs", help=SUBCOMMANDS["logs"], description=SUBCOMMANDS["logs"])
    p.add_argument("name")
    p.add_argument("--node", default=None, help="one node: its display name, full name or ID")
    p.add_argument("--runs-dir", default=DEFAULT_RUNS, metavar="DIR", help=runs_help)

    for name in ("resume", "stop"):
        p = sub.add_parser(name, help=SUBCOMMANDS[name], description=SUBCOMMANDS[name])
        p.add_argument("name")
        p.add_argument("--runs-dir", default=DEFAULT_RUNS, metavar="DIR", help=runs_help)
        if name == "stop":
            p.add_argument("--terminate", action="store_true", help="do not run the exit handler")

    p = sub.add_parser("lint", help=SUBCOMMANDS["lint"], description=SUBCOMMANDS["lint"])
    p.add_argument("target", nargs="?", help="one template name or file (default: everything in --manifests)")
    p.add_argument("--manifests", default=None, metavar="DIR", help=f"default: {DEFAULT_MANIFESTS}")

    # Flags are parsed by rpops.local.platform_cmd itself, imported only when used.
    p = sub.add_parser("platform", help=SUBCOMMANDS["platform"], add_help=False, prefix_chars="\x00")
    p.add_argument("platform_args", nargs=argparse.REMAINDER)

    serve = importlib.import_module("rpops.local.serve")
    serve.configure(sub.add_parser("serve", help=SUBCOMMANDS["serve"], description=SUBCOMMANDS["serve"]))


def run(args: argparse.Namespace) -> int | None:
    handlers: dict[str, Callable[[argparse.Namespace], int | None]] = {
        "run": _run,
        "list": _list,
        "get": _get,
        "logs": _logs,
        "resume": _resume,
        "stop": _stop,
        "lint": _lint,
        "platform": _platform,
        "serve": lambda a: importlib.import_module("rpops.local.serve").run(a),
    }
    return handlers[args.local_command](args)


# ---------------------------------------------------------------------------------------------


def _platform(args: argparse.Namespace) -> int | None:
    from rpops.cli import _Parser

    module = importlib.import_module("rpops.local.platform_cmd")
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


def _catalog_and_target(target: str, manifests: str | None) -> tuple[Any, Any]:
    from rpops.local.catalog import Catalog, load_documents

    path = Path(target)
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
    from rpops.local import display
    from rpops.local.api import start
    from rpops.local.executor import Options

    params = parse_parameters(args.parameter)
    catalog, target = _catalog_and_target(args.target, args.manifests)
    options = Options(
        runs_dir=Path(args.runs_dir),
        secrets_file=Path(args.secrets),
        name=args.name,
        kill_grace_s=args.kill_grace,
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
    from rpops.local.runs import list_runs

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
    from rpops.local.display import is_terminal, render
    from rpops.local.runs import read_status

    doc = read_status(Path(args.runs_dir), args.name)
    if args.output == "json":
        print(json.dumps(doc, indent=2))
    else:
        print("\n".join(render(doc, color=is_terminal(sys.stdout))))


def _logs(args: argparse.Namespace) -> None:
    from rpops.local.runs import log_files, read_status

    runs_dir = Path(args.runs_dir)
    doc = read_status(runs_dir, args.name)
    files = log_files(runs_dir, doc, args.node)
    prefix = args.node is None and len(files) > 1
    for node, path in files:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            print(f"{node['displayName']}: {line}" if prefix else line)


def _resume(args: argparse.Namespace) -> None:
    from rpops.local.runs import request

    request(Path(args.runs_dir), args.name, "resume")
    print(f"{args.name}: resume requested")


def _stop(args: argparse.Namespace) -> None:
    from rpops.local.runs import request

    strategy = "Terminate" if args.terminate else "Stop"
    request(Path(args.runs_dir), args.name, "stop", strategy)
    print(f"{args.name}: {strategy.lower()} requested")


def _lint(args: argparse.Namespace) -> int:
    from rpops.local.plan import prepare

    if args.target:
        catalog, target = _catalog_and_target(args.target, args.manifests)
        docs = [catalog.resolve_target(target) if isinstance(target, str) else target]
    else:
        from rpops.local.catalog import load_documents

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
    given = {p.name for p in spec.arguments if p.value is not None}
    params = {
        p.name: (p.enum[0] if p.enum else "x")
        for p in declared
        if p.value is None and p.default is None and p.name not in given
    }
    prepare(catalog, doc, params)
