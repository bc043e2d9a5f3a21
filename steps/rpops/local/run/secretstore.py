"""Kubernetes secrets for `env[].valueFrom.secretKeyRef`, from the environment or a local file.

`RPOPS_SECRET_<NAME>_<KEY>` (upper case, other characters as `_`) wins; else the file
(default `.rpops/secrets.yaml`) holding `{secretName: {key: value}}`.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Any

import yaml


class SecretMissing(LookupError):
    pass


def env_name(secret: str, key: str) -> str:
    return "RPOPS_SECRET_" + re.sub(r"[^A-Z0-9]", "_", f"{secret}_{key}".upper())


class SecretStore:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._data: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def _load(self) -> dict[str, Any]:
        with self._lock:
            if self._data is None:
                data: Any = {}
                if self.path is not None and self.path.is_file():
                    data = yaml.safe_load(self.path.read_text()) or {}
                if not isinstance(data, dict):
                    raise SecretMissing(f"{self.path} must map secret names to {{key: value}} maps")
                self._data = data
            return self._data

    def get(self, secret: str, key: str) -> str:
        var = env_name(secret, key)
        if var in os.environ:
            return os.environ[var]
        entry = self._load().get(secret)
        if isinstance(entry, dict) and key in entry:
            return str(entry[key])
        where = f"{self.path}" if self.path is not None else "a secrets file"
        raise SecretMissing(
            f"secret '{secret}' key '{key}' is not set locally: add it to {where} as "
            f"`{secret}: {{{key}: VALUE}}` or set {var}"
        )
