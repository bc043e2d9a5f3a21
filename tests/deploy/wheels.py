"""Wheels of installed distributions, so the image's install can be replayed offline.

The step image's builder downloads wheels of the runtime dependencies at the versions in
requirements.lock. Tests cannot download: they rebuild the same wheels from the distributions
already installed in this venv (files from RECORD, metadata from .dist-info, tag from WHEEL),
and let pip do the rest exactly as the Dockerfile does.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# Files pip writes at install time; a wheel must not carry them.
_INSTALL_ONLY = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def repack(dist: metadata.Distribution, out_dir: Path) -> Path:
    """Write a wheel of an installed distribution; return its path."""
    files = [f for f in dist.files or [] if not str(f).startswith("..") and "__pycache__" not in f.parts]
    info_dir = next(f.parts[0] for f in files if f.parts[0].endswith(".dist-info"))
    wheel_meta = dist.read_text("WHEEL") or ""
    tags = [line.split(":", 1)[1].strip().split("-")
            for line in wheel_meta.splitlines() if line.startswith("Tag:")]
    # A compressed tag set, as in the original filename: py2.py3-none-any.
    tag = "-".join(".".join(dict.fromkeys(t[i] for t in tags)) for i in range(3))
    name = canonicalize_name(dist.metadata["Name"]).replace("-", "_")
    path = out_dir / f"{name}-{dist.version}-{tag}.whl"
    record: list[str] = []
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for file in files:
            if file.parts[0] == info_dir and file.name in _INSTALL_ONLY:
                continue
            data = Path(str(file.locate())).read_bytes()
            archive.writestr(str(file), data)
            record.append(f"{file},{_digest(data)},{len(data)}")
        record.append(f"{info_dir}/RECORD,,")
        archive.writestr(f"{info_dir}/RECORD", "\n".join(record) + "\n")
    return path


def runtime_closure(requirements: list[str]) -> list[metadata.Distribution]:
    """The installed distributions that `requirements` need, following extras and markers."""
    seen: dict[str, metadata.Distribution] = {}
    expanded: set[tuple[str, str]] = set()
    pending = [(Requirement(r), "") for r in requirements]
    while pending:
        requirement, extra = pending.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
            continue
        key = canonicalize_name(requirement.name)
        if key not in seen:
            seen[key] = metadata.distribution(requirement.name)
        for wanted in ("", *sorted(requirement.extras)):
            if (key, wanted) not in expanded:
                expanded.add((key, wanted))
                pending += [(Requirement(r), wanted) for r in seen[key].requires or []]
    return sorted(seen.values(), key=lambda d: canonicalize_name(d.metadata["Name"]))
