"""`rpops local platform up|down|status`: the local platform (reference workload behind a proxy).

    rpops local platform up [--service research-platform] [--version v1] [--replicas 2] [--port 8080]
    rpops local platform status [--service NAME] [--output table|json]
    rpops local platform down [--service NAME]
    rpops local platform fault [--service NAME] [--version V] latency_ms=1500 | --clear

`up` starts (or converges) a service: a proxy on --port and --replicas processes of the reference
workload, routed; it prints the URLs and returns while they keep running. `down` stops every
process by PID. State lives under --root (default $RPOPS_PLATFORM_DIR or ./.rpops/platform).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from rpops.core.errors import UsageError

if TYPE_CHECKING:
    from rpops.platform.local.driver import LocalDriver, ServiceStatus


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="platform_action", metavar="ACTION", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--root",
            default=None,
            help="State directory (default: $RPOPS_PLATFORM_DIR or ./.rpops/platform).",
        )

    up = actions.add_parser(
        "up",
        help="Start a service: proxy plus workload processes, routed.",
        description="Start (or converge) a service of the local platform and print its URLs.",
    )
    up.add_argument(
        "--service", default="research-platform", help="Service name (default: research-platform)."
    )
    up.add_argument("--version", default="v1", help="Version to run and route (default: v1).")
    up.add_argument(
        "--replicas", type=int, default=2, help="Workload processes for the version (default: 2)."
    )
    up.add_argument(
        "--port",
        type=int,
        default=8080,
        help="Port of the service's proxy on 127.0.0.1; 0 picks a free one (default: 8080).",
    )
    up.add_argument(
        "--preview-port",
        type=int,
        default=0,
        help="Port of the preview route (blue-green); 0 picks a free one (default: 0).",
    )
    common(up)

    down = actions.add_parser(
        "down",
        help="Stop every process of the local platform by PID.",
        description="Stop the service's (or every service's) proxy and workload processes.",
    )
    down.add_argument("--service", default=None, help="Only this service (default: all).")
    common(down)

    status = actions.add_parser(
        "status",
        help="Show services, versions, instances, PIDs, readiness, routes.",
        description="Show the local platform: versions, instances, PIDs, ready, routes.",
    )
    status.add_argument("--service", default=None, help="Only this service (default: all).")
    status.add_argument("-o", "--output", choices=("table", "json"), default="table", help="Output format.")
    common(status)

    fault = actions.add_parser(
        "fault",
        help="Inject faults into (or clear them from) every instance of a version.",
        description="Set faults on every running instance of a version through its admin endpoint. "
        "Faults: latency_ms, error_rate (0..1), unhealthy, not_ready, cpu_burn (0..1), "
        "memory_growth_mb_per_s. Instances started later begin without faults.",
    )
    fault.add_argument("faults", nargs="*", metavar="NAME=VALUE", help="Faults to set, e.g. latency_ms=1500.")
    fault.add_argument("--clear", action="store_true", help="Clear every fault instead.")
    fault.add_argument(
        "--service", default="research-platform", help="Service name (default: research-platform)."
    )
    fault.add_argument("--version", default=None, help="Version (default: the active route's).")
    common(fault)


def _parse_faults(items: list[str]) -> dict[str, object]:
    faults: dict[str, object] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise UsageError(f"fault {item!r} is malformed: write NAME=VALUE, e.g. latency_ms=1500")
        value: object = raw
        if raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        else:
            try:
                value = float(raw) if "." in raw else int(raw)
            except ValueError:
                raise UsageError(
                    f"fault {item!r} has a non-numeric value: use a number or true/false"
                ) from None
        faults[name] = value
    return faults


def _inject(driver: LocalDriver, args: argparse.Namespace) -> int:
    import httpx

    if bool(args.faults) == bool(args.clear):
        raise UsageError(
            "fault: give NAME=VALUE pairs (e.g. latency_ms=1500) or --clear, not both or neither"
        )
    faults = _parse_faults(args.faults)
    from rpops.platform.base import NotFound

    try:
        version = args.version or driver.routes(args.service).active
    except NotFound as exc:
        raise UsageError(f"{exc}: pass the --service of a running service") from exc
    if version is None:
        raise UsageError(f"service {args.service!r} routes no version: pass --version")
    headers = {"Authorization": f"Bearer {driver.admin_token(args.service)}"}
    try:
        instances = driver.instances(args.service, version)
    except NotFound as exc:
        raise UsageError(f"{exc}: pass --service/--version of a running version") from exc
    with httpx.Client(timeout=5.0, headers=headers) as client:
        for inst in instances:
            if args.clear:
                response = client.delete(f"{inst.url}/admin/faults")
            else:
                response = client.post(f"{inst.url}/admin/faults", json=faults)
            if response.status_code >= 400:
                raise UsageError(
                    f"{inst.name} refused the faults ({response.status_code}): {response.text.strip()}"
                )
    what = "cleared faults" if args.clear else "set " + " ".join(args.faults)
    print(f"{args.service} {version}: {what} on {len(instances)} instance(s)")
    return 0


def _driver(args: argparse.Namespace) -> LocalDriver:
    from rpops.platform.local.driver import LocalDriver

    root = getattr(args, "root", None)
    if root is not None and Path(root).exists() and not Path(root).is_dir():
        raise UsageError(f"--root {root!r} is not a directory: pass a directory for the platform state")
    return LocalDriver(root=root)


def _print_status(statuses: list[ServiceStatus]) -> None:
    if not statuses:
        print("no services running (start one with `rpops local platform up`)")
        return
    for st in statuses:
        proxy = f"pid {st.proxy_pid}" + ("" if st.proxy_alive else " (dead)")
        print(f"service {st.service}: {st.url}  (proxy {proxy})")
        print(
            f"  routes: active={st.active or '-'} preview={st.preview or '-'}  preview url: {st.preview_url}"
        )
        if st.autoscaling:
            print(f"  autoscaling: {st.autoscaling['min_replicas']}..{st.autoscaling['max_replicas']}")
        for ver in st.versions:
            marks = ",".join(m for m, on in (("active", ver.active), ("preview", ver.preview)) if on)
            ready = sum(1 for i in ver.instances if i.ready)
            print(
                f"  version {ver.version}{f' [{marks}]' if marks else ''}: {ready}/{ver.replicas} ready, "
                f"image {ver.image}"
            )
            for inst in ver.instances:
                state = "ready" if inst.ready else ("not ready" if inst.alive else "dead")
                print(f"    {inst.name:<32} pid {inst.pid:<8} {inst.url:<24} {state}")


def run(args: argparse.Namespace) -> int:
    action = args.platform_action
    driver = _driver(args)
    if action == "up":
        if not 0 <= args.replicas <= 1000:
            raise UsageError(f"--replicas {args.replicas} is invalid: use a whole number from 0 to 1000")
        status = driver.up(
            args.service, args.version, replicas=args.replicas, port=args.port, preview_port=args.preview_port
        )
        print(f"{status.service}: {status.url}")
        print(f"{status.service} preview: {status.preview_url}")
        for ver in status.versions:
            for inst in ver.instances:
                print(f"{inst.name}: {inst.url} (pid {inst.pid})")
        return 0
    if action == "down":
        stopped = driver.down(args.service)
        print(f"stopped: {', '.join(stopped)}" if stopped else "nothing to stop")
        return 0
    if action == "status":
        statuses = driver.status(args.service)
        if args.output == "json":
            print(json.dumps([s.to_json() for s in statuses], indent=2))
        else:
            _print_status(statuses)
        return 0
    if action == "fault":
        return _inject(driver, args)
    raise UsageError(f"unknown action {action!r}: use up, down, status or fault")
