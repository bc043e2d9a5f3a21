"""`rpops local`: run rendered Argo Workflows YAML on this machine, unchanged.

Python API (see `rpops.local.api`): `load_documents`, `submit`, `start`, `RunResult`,
`RunHandle`, `Options`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Catalog", "Options", "RunHandle", "RunResult", "load_documents", "start", "submit"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `rpops local platform ...` does not import the executor.
    if name in __all__:
        from rpops.local import api

        return getattr(api, name)
    raise AttributeError(name)
