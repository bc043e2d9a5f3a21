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

import os
import posixpath
import sys
from collections.abc import Sequence
from pathlib import Path

from rpops.local.load.paths import FALLBACK_ROOT, PRIVATE_ROOT, unshare_argv

# Bind the host paths the node needs into its directory, that directory (with them) over /tmp,
# then become the step's command. Arguments: DIR [HOST REL]... -- ARGV.
_ENTER = (
    'p="$1"; shift; while [ "$1" != -- ]; do mount --bind "$1" "$p/$2" || exit 125; shift 2; done; '
    'shift; mount --rbind "$p" /tmp || exit 125; exec "$@"'
)


def wrap(argv: list[str], private_tmp: Path, expose: Sequence[str] = ()) -> list[str]:
    """The command line that runs `argv` with `private_tmp` as its /tmp, in its own namespaces,
    and the host directories `expose` (under /tmp) at their own paths inside it."""
    binds: list[str] = []
    for host in expose:
        rel = host[len(PRIVATE_ROOT) + 1 :]
        (private_tmp / rel).mkdir(parents=True, exist_ok=True)  # the mount point, in the node's folder
        binds += [host, rel]
    return [*unshare_argv(), "/bin/sh", "-c", _ENTER, "sh", str(private_tmp), *binds, "--", *argv]


def image_paths(command: str) -> list[str]:
    """What stands in for the node's image: the command it runs, this Python installation and the
    rpops package (an editable install's source). A node sees them even when they live under /tmp
    (a checkout or a virtualenv there), as a container sees its image's files."""
    import rpops

    return [command, sys.prefix, str(Path(rpops.__file__).resolve().parents[1])]


def host_paths(cwd: str | None, env: dict[str, str], image: Sequence[str] = ()) -> list[str]:
    """Directories under the host's /tmp that the node's working directory, environment or image
    name: they stay visible inside its private /tmp. /tmp itself and /tmp/outputs never do."""
    found: set[str] = set()
    for value in [cwd or os.getcwd(), *env.values(), *image]:
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


def inside(base: Path, relative: str) -> Path | None:
    """`base/relative` with every symlink resolved, or None when it leaves `base`."""
    real_base = base.resolve()
    target = (base / relative).resolve() if relative else real_base
    if target != real_base and real_base not in target.parents:
        return None
    return target
