"""Fixtures for the security scanner tests: the vendored advisory database, indexed once per
session into a temporary cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from rpops.steps.security.osv import AdvisoryDB
from security_helpers import ADVISORIES


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rpops-cache")


@pytest.fixture(scope="session")
def advisory_db(cache_dir: Path) -> AdvisoryDB:
    return AdvisoryDB.open(ADVISORIES, cache_dir)
