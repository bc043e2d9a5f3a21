"""`rpops <command>`: one subcommand per step (found under rpops/steps/), plus the tools around them.

A step's command is built from its declaration (rpops.core.step.Step): flags from its settings,
`--help`'s closing text from its epilog, and `run` called with the parsed settings. The other
commands are modules providing
    configure(parser: argparse.ArgumentParser) -> None   # add flags
    run(args: argparse.Namespace) -> int | None           # do the work
and are imported only when named, so `rpops health-check --help` loads only what health-check needs.

Conventions every command gets (`with_conventions`): `-V`, and `--version` where the command does
not use it for a workload version, print rpops' version; `-o` is short for `--output`. Shell
completion: `rpops completion bash|zsh|tcsh` (shtab).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from typing import NoReturn

from rpops import __version__
from rpops.core.io import EXIT_USAGE, run_step, setup_logging
from rpops.core.settings import add_arguments, from_args
from rpops.core.step import Step, discover, find, load

# Commands that are not steps: name -> (module, one-line summary)
TOOLS: dict[str, tuple[str, str]] = {
    "advisories": ("rpops.steps.security.advisories_cli", "Manage the offline advisory database."),
    "workload": ("rpops.workload.cli", "Serve the reference Research Platform workload."),
    "local": ("rpops.local.cli", "Run rendered Argo YAML on this machine (the embedded default)."),
    "completion": ("rpops.core.completion", "Print a shell completion script: bash, zsh or tcsh."),
}
def commands() -> dict[str, str]:
    """Every command: name -> one-line summary (steps first)."""
    steps = {name: load(package).summary for name, package in discover().items()}
    return {**steps, **{name: summary for name, (_, summary) in TOOLS.items()}}


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors follow the contract: exit 2, name the input."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\nRun '{self.prog} --help' for the flags.\n")


def _top_help() -> str:
    listed = commands()
    width = max(len(n) for n in listed)
    lines = [f"usage: rpops <command> [flags]  (rpops {__version__})", "", "commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, summary in listed.items()]
    lines += ["", "Run 'rpops <command> --help' for a command's flags."]
    return "\n".join(lines)


def configure_step(parser: argparse.ArgumentParser, step: Step) -> None:
    add_arguments(parser, step.settings)
    parser.epilog = step.epilog or None
    parser.set_defaults(_run=lambda args: step.run(from_args(step.settings, args)))


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    """Add command `name`'s flags (and what runs it) to `parser`; KeyError when there is none."""
    step = find(name)
    if step is not None:
        configure_step(parser, step)
        return
    module = importlib.import_module(TOOLS[name][0])
    module.configure(parser)
    parser.set_defaults(_run=module.run)


def summary(name: str) -> str | None:
    """Command `name`'s one-line summary; None when there is no such command."""
    step = find(name)
    if step is not None:
        return step.summary
    return TOOLS[name][1] if name in TOOLS else None


def build_parser(name: str) -> argparse.ArgumentParser:
    parser = _Parser(prog=f"rpops {name}", description=summary(name))
    configure(parser, name)
    return with_conventions(parser)


def with_conventions(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """-V/--version and -o for --output on a parser and its subcommands, where the flag is free."""
    _each_parser(parser, _add_conventions)
    return parser


def _each_parser(parser: argparse.ArgumentParser, fn: Callable[[argparse.ArgumentParser], None]) -> None:
    fn(parser)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                _each_parser(sub, fn)


def _add_conventions(parser: argparse.ArgumentParser) -> None:
    flags = parser._option_string_actions
    if not parser.prefix_chars.startswith("-"):
        return  # a parser that hands its arguments on (rpops local platform)
    free = [flag for flag in ("-V", "--version") if flag not in flags]
    if free:
        parser.add_argument(
            *free, action="version", version=f"rpops {__version__}", help="print rpops' version and exit"
        )
    output = flags.get("--output")
    if output is not None and "-o" not in flags:
        output.option_strings = ["-o", *output.option_strings]  # argparse has no alias API
        flags["-o"] = output


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_top_help())
        return 0 if argv else EXIT_USAGE
    if argv[0] in ("--version", "-V"):
        print(__version__)
        return 0
    name, rest = argv[0], argv[1:]
    if summary(name) is None:
        print(f"rpops: unknown command {name!r}; choose one of: {', '.join(commands())}", file=sys.stderr)
        return EXIT_USAGE
    parser = build_parser(name)
    args = parser.parse_args(rest)
    setup_logging(getattr(args, "verbose", False))
    return run_step(lambda: args._run(args))


if __name__ == "__main__":
    sys.exit(main())
