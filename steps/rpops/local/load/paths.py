"""Which output paths a node's own view can hold on this machine, and the probe that decides it.

With a mount namespace (util-linux `unshare`, as root or through a user namespace), each node
gets a private `/tmp` (see `rpops.local.run.isolation`), so outputs may be declared anywhere under
`/tmp`. Without one (`RPOPS_LOCAL_ISOLATION=none`, or a kernel that refuses it) only Argo's
`/tmp/outputs/` convention is mapped, through `RPOPS_OUTPUTS`; outputs declared at other paths
are refused before the run, naming the field. Paths are absolute and free of `..` either way.
"""

from __future__ import annotations

import functools
import os
import posixpath
import shutil
import subprocess
from dataclasses import dataclass

PRIVATE_ROOT = "/tmp"  # noqa: S108 - the path a node sees privately; the host's is never written
FALLBACK_ROOT = "/tmp/outputs"  # noqa: S108 - Argo's convention for step outputs
ENV_SWITCH = "RPOPS_LOCAL_ISOLATION"


class PathRefused(ValueError):
    """A declared output path outside what the node's view can hold."""


@dataclass(frozen=True)
class Mode:
    namespace: bool
    reason: str  # why the fallback is used, for `rpops local` messages and docs

    @property
    def root(self) -> str:
        return PRIVATE_ROOT if self.namespace else FALLBACK_ROOT


def unshare_argv() -> list[str]:
    """`unshare` for a new mount namespace (through a user namespace when not root)."""
    argv = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        argv += ["--user", "--map-root-user"]
    return [*argv, "--"]


@functools.lru_cache(maxsize=1)
def mode() -> Mode:
    """Probe once per process whether a node can get a private /tmp here."""
    wanted = os.environ.get(ENV_SWITCH, "auto").strip().lower()
    if wanted == "none":
        return Mode(False, f"{ENV_SWITCH}=none")
    if wanted not in ("auto", "namespace", ""):
        return Mode(False, f"{ENV_SWITCH}={wanted!r} is not one of auto, namespace, none")
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return Mode(False, "util-linux unshare/mount not found")
    try:
        probe = subprocess.run(  # noqa: S603 - fixed argv
            [*unshare_argv(), "mount", "--bind", PRIVATE_ROOT, PRIVATE_ROOT],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Mode(False, f"unshare failed: {exc}")
    if probe.returncode != 0:
        return Mode(False, f"unshare refused a mount namespace (exit {probe.returncode})")
    return Mode(True, "")


def normalize(path: str, where: str, root: str) -> str:
    """The path relative to `root` for a declared output path; PathRefused names the field."""
    if not path.startswith("/"):
        raise PathRefused(f"{where}: must be an absolute path (got {path!r})")
    if ".." in path.split("/"):
        raise PathRefused(f"{where}: must not contain '..' (got {path!r})")
    clean = posixpath.normpath(path)
    if clean != root and not clean.startswith(root + "/"):
        raise PathRefused(
            f"{where}: must be under {root}/ (got {path}); rpops local gives each node a private "
            f"{root} and reads outputs from there"
        )
    return clean[len(root) :].lstrip("/")
