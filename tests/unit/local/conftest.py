"""Fixtures for the rpops local tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RPOPS_PLATFORM", None)
    return env
