"""Each node's private view of `/tmp`, as a container's own filesystem gives it on a cluster.

With a mount namespace (util-linux `unshare`, as root or through a user namespace), a node's
process sees its own directory `<run>/nodes/<id>/tmp` as `/tmp`: whatever it writes there (an
output at `/tmp/hello_world.txt`, `/tmp/outputs/x`) lands in the run folder, never in the
host's `/tmp`, and is read back once the node ends. The node runs in its own process group, which
a deadline or a stop ends whole (`sleep 60 &` included). A process that leaves the group on
purpose (a daemon, like the replicas the local platform driver starts from an `rpops` step,
which on a cluster would be a Deployment, not part of the pod) is not ended.

Host paths under `/tmp` that the node's working directory or environment name (a project or a
state folder under `/tmp`, `RPOPS_PLATFORM_DIR=/tmp/...`) are mounted into its view at the same
place, read-write, as a volume would be: the node still sees nothing else of the host's `/tmp`.

Without a namespace (`RPOPS_LOCAL_ISOLATION=none`, or a kernel that refuses one) the fallback
maps only Argo's `/tmp/outputs/` convention, through `RPOPS_OUTPUTS`; outputs declared at other
paths are refused before the run, naming the field, and nothing else changes.
"""

from __future__ import annotations

import functools
import os
import posixpath
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PRIVATE_ROOT = "/tmp"  # noqa: S108 - the path a node sees privately; the host's is never written
FALLBACK_ROOT = "/tmp/outputs"  # noqa: S108 - Argo's convention for step outputs
ENV_SWITCH = "RPOPS_LOCAL_ISOLATION"
# Bind the host paths the node needs into its directory, that directory (with them) over /tmp,
# then become the step's command (pid 1 of the namespace). Arguments: DIR [HOST REL]... -- ARGV.
_ENTER = (
    'p="$1"; shift; while [ "$1" != -- ]; do mount --bind "$1" "$p/$2" || exit 125; shift 2; done; '
    'shift; mount --rbind "$p" /tmp || exit 125; exec "$@"'
)


class PathRefused(ValueError):
    """A declared output path outside what the node's view can hold."""


@dataclass(frozen=True)
class Mode:
    namespace: bool
    reason: str  # why the fallback is used, for `rpops local` messages and docs

    @property
    def root(self) -> str:
        return PRIVATE_ROOT if self.namespace else FALLBACK_ROOT


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
            [*_unshare(), "/bin/sh", "-c", _ENTER, "sh", PRIVATE_ROOT, "--", "true"],
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


def _unshare() -> list[str]:
    argv = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        argv += ["--user", "--map-root-user"]
    return [*argv, "--"]


def wrap(argv: list[str], private_tmp: Path, expose: Sequence[str] = ()) -> list[str]:
    """The command line that runs `argv` with `private_tmp` as its /tmp, in its own namespaces,
    and the host directories `expose` (under /tmp) at their own paths inside it."""
    binds: list[str] = []
    for host in expose:
        rel = host[len(PRIVATE_ROOT) + 1 :]
        (private_tmp / rel).mkdir(parents=True, exist_ok=True)  # the mount point, in the node's folder
        binds += [host, rel]
    return [*_unshare(), "/bin/sh", "-c", _ENTER, "sh", str(private_tmp), *binds, "--", *argv]


def host_paths(cwd: str | None, env: dict[str, str]) -> list[str]:
    """Directories under the host's /tmp that the node's working directory or environment name:
    they stay visible inside its private /tmp. /tmp itself and /tmp/outputs never do."""
    found: set[str] = set()
    for value in [cwd or os.getcwd(), *env.values()]:
        for part in value.split(os.pathsep):
            if not part.startswith(PRIVATE_ROOT + "/") or ".." in part.split("/"):
                continue
            path = posixpath.normpath(part)
            if path == PRIVATE_ROOT or path == FALLBACK_ROOT or path.startswith(FALLBACK_ROOT + "/"):
                continue
            if not os.path.isdir(path):
                path = posixpath.dirname(path)
                if path == PRIVATE_ROOT or not os.path.isdir(path):
                    continue
            found.add(path)
    # the outermost of nested paths is enough: its mount holds the others
    return sorted(p for p in found if not any(p.startswith(q + "/") for q in found))


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


def inside(base: Path, relative: str) -> Path | None:
    """`base/relative` with every symlink resolved, or None when it leaves `base`."""
    real_base = base.resolve()
    target = (base / relative).resolve() if relative else real_base
    if target != real_base and real_base not in target.parents:
        return None
    return target
