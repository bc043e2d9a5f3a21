"""`rpops bluegreen`: blue-green promotion in idempotent phases (see rpops.steps.bluegreen.cli).

Modules: model (state and its annotations), decide (pure decisions), analysis (metrics and their
judgement), probes and measure (observing green), lock (the promotion lock), phases (observe,
decide, act), settings and cli. This package's import stays cheap: `configure` and `run` load
the command line module when called.
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    from rpops.steps.bluegreen.cli import configure as _configure

    _configure(parser)


def run(args: argparse.Namespace) -> int | None:
    from rpops.steps.bluegreen.cli import run as _run

    return _run(args)
