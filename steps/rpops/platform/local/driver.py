"""The local driver: the platform as processes on 127.0.0.1, with no cluster.

A version is N processes of the reference workload (`rpops workload serve`), each on its own
port. A service is one proxy process (`python -m rpops.platform.local.proxy`) with an active listener,
a preview listener and a token-protected control port; the driver pushes the backend sets to it,
and it switches them atomically. State lives under `.rpops/platform/` (see rpops.platform.local.state)
and survives the CLI: processes are detached and remembered by PID and start time.

Every operation takes the state lock, reads the state and repairs it first: processes that died
are dropped and replaced (as a ReplicaSet would), a dead proxy is restarted on its port, and the
proxy is told the live backend sets. Scaling up starts processes and adds them once /ready
answers 200; scaling down removes processes from the proxy first, waits for their in-flight
requests to finish, then stops them with SIGTERM (a graceful drain).

Resources and autoscaling bounds are recorded (and read back) but not enforced: the local
platform has no scheduler and no autoscaler. It has no Kubernetes objects either, so
`list_objects` (the security scan's --live) is refused as bad input.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rpops.core.errors import UsageError
from rpops.platform.base import (
    AutoscalingBounds,
    Conflict,
    DeadlineExceeded,
    Instance,
    NotFound,
    PlatformError,
    Resources,
    Routes,
    SeriesQueries,
    Workload,
    check_annotations,
    check_kinds,
    check_replicas,
    check_service,
    check_timeout,
    check_version,
    strip_annotations,
)
from rpops.platform.local import processes as proc
from rpops.platform.local.state import (
    InstanceState,
    PlatformState,
    ProxyState,
    ServiceState,
    StateStore,
    VersionState,
    default_root,
)

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
WORKLOAD_TOKEN_ENV = "RPOPS_WORKLOAD_ADMIN_TOKEN"  # noqa: S105 - a variable name (rpops.workload.cli)
PROXY_TOKEN_ENV = "RPOPS_PROXY_TOKEN"  # noqa: S105 - a variable name (rpops.platform.local.proxy)


@dataclass(frozen=True)
class InstanceStatus:
    name: str
    pid: int
    port: int
    url: str
    alive: bool
    ready: bool


@dataclass(frozen=True)
class VersionStatus:
    version: str
    image: str
    replicas: int
    active: bool
    preview: bool
    instances: list[InstanceStatus]


@dataclass(frozen=True)
class ServiceStatus:
    """What `rpops local platform status` shows for one service."""

    service: str
    url: str | None
    preview_url: str | None
    proxy_pid: int | None
    proxy_alive: bool
    active: str | None
    preview: str | None
    autoscaling: dict[str, int] | None
    versions: list[VersionStatus]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class LocalDriver:
    """PlatformDriver over local processes; see the module docstring."""

    name = "local"
    # A process's own host:port is the `instance` label of whatever Prometheus scrapes from it.
    series = SeriesQueries(
        selector='instance=~"$instances"',
        cpu_usage="sum by (instance) (rate(process_cpu_seconds_total{$selector}[$window]))",
        memory_usage="max by (instance) (max_over_time(process_resident_memory_bytes{$selector}[$step]))",
    )

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        start_timeout: float = 30.0,
        drain_timeout: float = 10.0,
        ready_interval: float = 1.0,
        lock_timeout: float = 120.0,
    ) -> None:
        self.root = Path(root) if root is not None else default_root()
        self.start_timeout = check_timeout(start_timeout)
        self.drain_timeout = check_timeout(drain_timeout)
        self.ready_interval = check_timeout(ready_interval)
        self.store = StateStore(self.root, lock_timeout=lock_timeout)

    # -- the session: lock, load, repair, act, save ------------------------------------------

    @contextlib.contextmanager
    def _session(self, repair: bool = True) -> Iterator[PlatformState]:
        with self.store.locked():
            state = self.store.load()
            loaded = state.to_json()
            if repair:
                for svc in list(state.services.values()):
                    self._repair(state, svc)
            try:
                yield state
            finally:
                if state.to_json() != loaded:  # reads that repaired nothing write nothing
                    self.store.save(state)

    def _service(self, state: PlatformState, service: str) -> ServiceState:
        svc = state.services.get(check_service(service))
        if svc is None:
            raise NotFound("service", service, "start it with `rpops local platform up` or deploy a version")
        return svc

    def _version(self, svc: ServiceState, version: str) -> VersionState:
        ver = svc.versions.get(check_version(svc.name, version))
        if ver is None:
            raise NotFound(
                "version", f"{svc.name}/{version}", f"versions: {', '.join(sorted(svc.versions)) or 'none'}"
            )
        return ver

    def _repair(self, state: PlatformState, svc: ServiceState) -> None:
        """Converge the service to its recorded shape: live proxy, desired live instances, sets pushed."""
        changed = False
        if svc.proxy is None or not proc.alive(svc.proxy.pid, svc.proxy.create_time):
            if svc.proxy is not None:
                log.warning(
                    "proxy of %s (pid %d) is gone; restarting it on port %d",
                    svc.name,
                    svc.proxy.pid,
                    svc.proxy.port,
                )
            self._start_proxy(
                svc, svc.proxy.port if svc.proxy else 0, svc.proxy.preview_port if svc.proxy else 0
            )
            changed = True
        for vname, ver in svc.versions.items():
            live = [i for i in ver.instances if proc.alive(i.pid, i.create_time)]
            if len(live) != len(ver.instances):
                gone = [i.name for i in ver.instances if i not in live]
                log.warning("instances of %s/%s gone: %s; replacing them", svc.name, vname, ", ".join(gone))
                ver.instances = live
                changed = True
        if changed:
            self._push(svc)  # stop routing to the dead first
            self.store.save(state)
        for vname, ver in svc.versions.items():
            if len(ver.instances) < ver.replicas:
                self._start_instances(state, svc, vname, ver, ver.replicas - len(ver.instances))
                changed = True
        if changed or self._proxy_sets(svc) != self._wanted_sets(svc):
            self._push(svc)  # also heals a proxy left behind by an interrupted command

    # -- processes ---------------------------------------------------------------------------

    def _start_proxy(self, svc: ServiceState, port: int, preview_port: int) -> None:
        token = svc.proxy.token if svc.proxy else secrets.token_urlsafe(24)
        info = self.root / "run" / f"{svc.name}.proxy.json"
        info.unlink(missing_ok=True)
        argv = [
            sys.executable,
            "-m",
            "rpops.platform.local.proxy",
            "--host",
            HOST,
            "--port",
            str(port),
            "--preview-port",
            str(preview_port),
            "--control-port",
            "0",
            "--info-file",
            str(info),
            "--ready-interval",
            str(self.ready_interval),
        ]
        env = {**os.environ, PROXY_TOKEN_ENV: token}
        log_path = self.root / "logs" / f"{svc.name}.proxy.log"
        pid, created = proc.spawn(argv, env, log_path)
        data = json.loads(proc.wait_file(info, pid, created, time.monotonic() + self.start_timeout, log_path))
        svc.proxy = ProxyState(
            pid=pid,
            create_time=created,
            port=int(data["port"]),
            preview_port=int(data["preview_port"]),
            control_port=int(data["control_port"]),
            token=token,
        )
        log.info(
            "proxy of %s: pid %d, http://%s:%d (preview :%d)",
            svc.name,
            pid,
            HOST,
            svc.proxy.port,
            svc.proxy.preview_port,
        )

    def _start_instances(
        self, state: PlatformState, svc: ServiceState, version: str, ver: VersionState, count: int
    ) -> list[InstanceState]:
        """Start `count` workload processes and wait until each answers /ready; record them."""
        started: list[tuple[str, int, float, Path, Path]] = []
        env = {**os.environ, WORKLOAD_TOKEN_ENV: svc.admin_token}
        for _ in range(count):
            name = f"{svc.name}-{version}-{ver.next_index}"
            ver.next_index += 1
            port_file = self.root / "run" / f"{name}.port"
            port_file.unlink(missing_ok=True)
            log_path = self.root / "logs" / f"{name}.log"
            argv = [
                sys.executable,
                "-m",
                "rpops",
                "workload",
                "serve",
                "--host",
                HOST,
                "--port",
                "0",
                "--port-file",
                str(port_file),
                "--version",
                version,
            ]
            pid, created = proc.spawn(argv, env, log_path)
            started.append((name, pid, created, port_file, log_path))
        deadline = time.monotonic() + self.start_timeout
        out: list[InstanceState] = []
        try:
            for name, pid, created, port_file, log_path in started:
                port = int(proc.wait_file(port_file, pid, created, deadline, log_path).strip())
                while not proc.probe_ready(port):
                    if not proc.alive(pid, created):
                        raise PlatformError(
                            f"instance {name} (pid {pid}) exited before it was ready; last log "
                            f"lines of {log_path}:\n{proc.log_tail(log_path)}"
                        )
                    if time.monotonic() >= deadline:
                        raise DeadlineExceeded(
                            f"instance {name} (pid {pid}) not ready after "
                            f"{self.start_timeout:g}s; see {log_path}"
                        )
                    time.sleep(0.02)
                out.append(
                    InstanceState(name=name, pid=pid, create_time=created, port=port, started_at=time.time())
                )
        except BaseException:
            for _, pid, created, _, _ in started:
                proc.terminate(pid, created, timeout=2.0)
            raise
        ver.instances.extend(out)
        self.store.save(state)
        return out

    def _wanted_sets(self, svc: ServiceState) -> dict[str, list[str]]:
        return {"active": self._addrs(svc, svc.active), "preview": self._addrs(svc, svc.preview)}

    def _proxy_sets(self, svc: ServiceState) -> dict[str, list[str]] | None:
        try:
            sets: dict[str, list[str]] = self._control(svc).status()["sets"]
        except (OSError, PlatformError, KeyError):
            return None
        return sets

    def _push(self, svc: ServiceState) -> None:
        """Tell the proxy the current backend sets (idempotent)."""
        if svc.proxy is None:
            return
        wanted = self._wanted_sets(svc)
        self._control(svc).set_backends(wanted["active"], wanted["preview"])

    @staticmethod
    def _addrs(svc: ServiceState, version: str | None) -> list[str]:
        ver = svc.versions.get(version) if version else None
        return [f"{HOST}:{i.port}" for i in ver.instances] if ver else []

    def _control(self, svc: ServiceState) -> proc.ProxyControl:
        assert svc.proxy is not None
        return proc.ProxyControl(svc.proxy.control_port, svc.proxy.token)

    def _drain_and_stop(self, svc: ServiceState, victims: list[InstanceState]) -> None:
        """Victims are already out of the proxy's sets: wait for their in-flight requests, then stop them."""
        if not victims:
            return
        addrs = {f"{HOST}:{i.port}" for i in victims}
        deadline = time.monotonic() + self.drain_timeout
        if svc.proxy is not None:
            while time.monotonic() < deadline:
                try:
                    inflight = self._control(svc).status().get("inflight", {})
                except (OSError, PlatformError):
                    break  # no proxy, nothing in flight through it
                if not any(inflight.get(a, 0) for a in addrs):
                    break
                time.sleep(0.01)
        for inst in victims:
            proc.send_term(inst.pid, inst.create_time)  # the workload finishes open requests, then exits
        for inst in victims:
            proc.terminate(
                inst.pid, inst.create_time, timeout=max(1.0, deadline - time.monotonic()), signalled=True
            )

    def _set_instances(
        self, state: PlatformState, svc: ServiceState, version: str, ver: VersionState, replicas: int
    ) -> None:
        """Converge one version to `replicas` live instances (start, or drain and stop the newest)."""
        if replicas > len(ver.instances):
            self._start_instances(state, svc, version, ver, replicas - len(ver.instances))
            self._push(svc)
        elif replicas < len(ver.instances):
            victims = ver.instances[replicas:]
            ver.instances = ver.instances[:replicas]
            self._push(svc)  # out of rotation first
            self.store.save(state)
            self._drain_and_stop(svc, victims)

    def _new_service(self, state: PlatformState, service: str, port: int, preview_port: int) -> ServiceState:
        svc = ServiceState(name=service, admin_token=secrets.token_urlsafe(24))
        self._start_proxy(svc, port, preview_port)
        state.services[service] = svc
        self.store.save(state)
        return svc

    # -- reads -------------------------------------------------------------------------------

    def _workload(self, svc: ServiceState, version: str, ver: VersionState, probe: bool = True) -> Workload:
        ready = sum(1 for i in ver.instances if proc.probe_ready(i.port)) if probe else len(ver.instances)
        bounds = None
        if svc.autoscaling and svc.active == version:
            bounds = AutoscalingBounds(svc.autoscaling["min_replicas"], svc.autoscaling["max_replicas"])
        return Workload(
            service=svc.name,
            version=version,
            image=ver.image,
            replicas=ver.replicas,
            ready_replicas=ready,
            available_replicas=len(ver.instances),
            resources=Resources(**ver.resources),
            autoscaling=bounds,
            annotations=strip_annotations(ver.annotations),
            active=svc.active == version,
            preview=svc.preview == version,
        )

    def workload(self, service: str, version: str) -> Workload:
        with self._session() as state:
            svc = self._service(state, service)
            return self._workload(svc, version, self._version(svc, version))

    def versions(self, service: str) -> list[Workload]:
        with self._session() as state:
            svc = self._service(state, service)
            return [self._workload(svc, v, svc.versions[v]) for v in sorted(svc.versions)]

    def routes(self, service: str) -> Routes:
        with self._session() as state:
            svc = self._service(state, service)
            return Routes(service=svc.name, active=svc.active, preview=svc.preview)

    def instances(self, service: str, version: str) -> list[Instance]:
        with self._session() as state:
            svc = self._service(state, service)
            ver = self._version(svc, version)
            return [
                Instance(
                    service=svc.name,
                    version=version,
                    name=i.name,
                    url=f"http://{HOST}:{i.port}",
                    ready=proc.probe_ready(i.port),
                    pid=i.pid,
                )
                for i in ver.instances
            ]

    def annotations(self, service: str, version: str | None = None) -> dict[str, str]:
        with self._session() as state:
            svc = self._service(state, service)
            raw = svc.annotations if version is None else self._version(svc, version).annotations
            return strip_annotations(raw)

    # -- writes ------------------------------------------------------------------------------

    def scale(self, service: str, version: str, replicas: int) -> None:
        check_replicas(replicas)
        with self._session() as state:
            svc = self._service(state, service)
            ver = self._version(svc, version)
            ver.replicas = replicas
            self.store.save(state)
            self._set_instances(state, svc, version, ver, replicas)

    def set_autoscaling(self, service: str, bounds: AutoscalingBounds | None) -> None:
        if bounds is not None and not isinstance(bounds, AutoscalingBounds):
            raise UsageError("bounds must be an AutoscalingBounds(min_replicas, max_replicas) or None")
        with self._session() as state:
            svc = self._service(state, service)
            if bounds is not None and svc.active is None:
                raise Conflict(
                    f"service {service} has no active route, so an autoscaler has nothing to target: "
                    "route a version first"
                )
            svc.autoscaling = asdict(bounds) if bounds else None

    def set_resources(self, service: str, version: str, resources: Resources) -> None:
        if not isinstance(resources, Resources):
            raise UsageError("resources must be a Resources(cpu_request=..., memory_limit=...) value")
        with self._session() as state:
            ver = self._version(self._service(state, service), version)
            merged = {**ver.resources, **{k: v for k, v in asdict(resources).items() if v is not None}}
            Resources(**merged)  # the merged result must still be coherent (request <= limit)
            ver.resources = merged

    def deploy(self, service: str, version: str, *, replicas: int = 1, image: str | None = None) -> None:
        check_version(check_service(service), version)
        check_replicas(replicas)
        if image is not None and (not isinstance(image, str) or not image.strip() or " " in image):
            raise UsageError(f"image {image!r} is invalid: pass an image reference or version string")
        with self._session() as state:
            svc = state.services.get(service) or self._new_service(state, service, 0, 0)
            ver = svc.versions.get(version)
            if ver is None:
                ver = svc.versions[version] = VersionState(
                    image=image or f"rpops-workload:{version}", replicas=replicas
                )
            else:
                ver.image = image or ver.image
                ver.replicas = replicas
            self.store.save(state)
            self._set_instances(state, svc, version, ver, replicas)

    def wait_ready(self, service: str, version: str, *, timeout: float = 300.0) -> Workload:
        deadline = time.monotonic() + check_timeout(timeout)
        while True:
            workload = self.workload(service, version)
            if workload.ready:
                return workload
            if time.monotonic() >= deadline:
                raise DeadlineExceeded(
                    f"{service}/{version} not ready after {round(timeout, 2):g}s: "
                    f"{workload.ready_replicas}/{workload.replicas} ready"
                )
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    def route(self, service: str, version: str, *, preview: bool = False) -> None:
        with self._session() as state:
            svc = self._service(state, service)
            self._version(svc, version)
            if preview:
                svc.preview = version
            else:
                svc.active = version
            self._push(svc)  # one PUT: the proxy swaps its sets in one assignment

    def remove(self, service: str, version: str, *, delete: bool = True) -> None:
        with self._session() as state:
            svc = self._service(state, service)
            check_version(svc.name, version)
            if svc.active == version:
                raise Conflict(
                    f"version {version} of {service} takes the active route: route another version "
                    "before removing it"
                )
            ver = svc.versions.get(version)
            if ver is None:
                return
            ver.replicas = 0
            self._set_instances(state, svc, version, ver, 0)
            if delete:
                del svc.versions[version]

    def annotate(
        self, service: str, annotations: Mapping[str, str | None], *, version: str | None = None
    ) -> None:
        prefixed = check_annotations(annotations)
        with self._session() as state:
            svc = self._service(state, service)
            target = svc.annotations if version is None else self._version(svc, version).annotations
            for key, value in prefixed.items():
                if value is None:
                    target.pop(key, None)
                else:
                    target[key] = value

    def restart(self, service: str, version: str) -> None:
        """Rolling: start one new instance, put it in rotation, drain and stop one old one; repeat."""
        with self._session() as state:
            svc = self._service(state, service)
            ver = self._version(svc, version)
            for old in list(ver.instances):
                self._start_instances(state, svc, version, ver, 1)
                ver.instances.remove(old)
                self._push(svc)
                self.store.save(state)
                self._drain_and_stop(svc, [old])
            ver.restarted_at = time.time()

    def list_objects(self, kinds: Sequence[str]) -> list[dict[str, Any]]:
        """Refused: the local platform has no Kubernetes objects. Deployment-like dicts made up
        from its state would be judged on fields nobody set (securityContext, probes, policies)
        and report findings about the synthesis, not about the platform."""
        check_kinds(kinds)
        raise UsageError(
            "--live: the local platform runs the workload as processes on 127.0.0.1, not as Kubernetes "
            "objects, so there is no live configuration to check; check the manifests instead "
            "(--manifests manifests/platform) or scan a cluster with RPOPS_PLATFORM=kubernetes"
        )

    # -- the local platform as a whole (rpops local platform up|down|status) ------------------

    def up(
        self,
        service: str = "research-platform",
        version: str = "v1",
        *,
        replicas: int = 2,
        port: int = 8080,
        preview_port: int = 0,
    ) -> ServiceStatus:
        """Start (or converge) a service: proxy on `port`, `replicas` instances of `version`, routed."""
        check_version(check_service(service), version)
        check_replicas(replicas)
        for flag, value in (("--port", port), ("--preview-port", preview_port)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
                raise UsageError(f"{flag} {value!r} is invalid: use 1..65535, or 0 for a free port")
        with self._session() as state:
            svc = state.services.get(service)
            if svc is not None and svc.proxy is not None and port and svc.proxy.port != port:
                raise UsageError(
                    f"service {service} is already up on port {svc.proxy.port}, not {port}: run "
                    "`rpops local platform down` first, or pass --port "
                    f"{svc.proxy.port}"
                )
            if svc is None:
                for flag, value in (("--port", port), ("--preview-port", preview_port)):
                    if value and not proc.port_free(value):
                        raise UsageError(
                            f"{flag} {value} is in use on {HOST}: pick another port (0 picks a free one)"
                        )
                svc = self._new_service(state, service, port, preview_port)
            ver = svc.versions.get(version)
            if ver is None:
                ver = svc.versions[version] = VersionState(
                    image=f"rpops-workload:{version}", replicas=replicas
                )
            ver.replicas = replicas
            self.store.save(state)
            self._set_instances(state, svc, version, ver, replicas)
            if svc.active is None:
                svc.active = version
            self._push(svc)
            return self._status(svc)

    def down(self, service: str | None = None) -> list[str]:
        """Stop every process of the service (or of all services) by PID and forget them."""
        with self._session(repair=False) as state:
            names = [check_service(service)] if service else sorted(state.services)
            if service and service not in state.services:
                return []
            for name in names:
                svc = state.services[name]
                victims = [i for ver in svc.versions.values() for i in ver.instances]
                for inst in victims:  # signal all first, then wait: a parallel stop
                    proc.send_term(inst.pid, inst.create_time)
                if svc.proxy is not None:
                    proc.terminate(svc.proxy.pid, svc.proxy.create_time, timeout=self.drain_timeout)
                for inst in victims:
                    proc.terminate(inst.pid, inst.create_time, timeout=self.drain_timeout, signalled=True)
                del state.services[name]
                for leftover in (self.root / "run").glob(f"{name}*"):
                    leftover.unlink(missing_ok=True)
            return names

    def _status(self, svc: ServiceState) -> ServiceStatus:
        proxy_alive = bool(svc.proxy and proc.alive(svc.proxy.pid, svc.proxy.create_time))
        versions = []
        for vname in sorted(svc.versions):
            ver = svc.versions[vname]
            instances = [
                InstanceStatus(
                    name=i.name,
                    pid=i.pid,
                    port=i.port,
                    url=f"http://{HOST}:{i.port}",
                    alive=proc.alive(i.pid, i.create_time),
                    ready=proc.probe_ready(i.port),
                )
                for i in ver.instances
            ]
            versions.append(
                VersionStatus(
                    version=vname,
                    image=ver.image,
                    replicas=ver.replicas,
                    active=svc.active == vname,
                    preview=svc.preview == vname,
                    instances=instances,
                )
            )
        return ServiceStatus(
            service=svc.name,
            url=f"http://{HOST}:{svc.proxy.port}" if svc.proxy else None,
            preview_url=f"http://{HOST}:{svc.proxy.preview_port}" if svc.proxy else None,
            proxy_pid=svc.proxy.pid if svc.proxy else None,
            proxy_alive=proxy_alive,
            active=svc.active,
            preview=svc.preview,
            autoscaling=svc.autoscaling,
            versions=versions,
        )

    def status(self, service: str | None = None) -> list[ServiceStatus]:
        if service is None and not self.store.path.exists():
            return []  # nothing is running: a read creates no state folder
        with self._session() as state:
            if service is not None:
                return [self._status(self._service(state, service))]
            return [self._status(state.services[name]) for name in sorted(state.services)]

    def service_url(self, service: str, *, preview: bool = False) -> str:
        with self._session() as state:
            svc = self._service(state, service)
            assert svc.proxy is not None
            return f"http://{HOST}:{svc.proxy.preview_port if preview else svc.proxy.port}"

    def admin_token(self, service: str) -> str:
        """The bearer token of the service's workloads' /admin/faults endpoint (for fault injection)."""
        with self._session(repair=False) as state:
            return self._service(state, service).admin_token

    def proxy_status(self, service: str) -> dict[str, Any]:
        """The proxy's own view: backend sets, in-flight and served counts, readiness."""
        with self._session() as state:
            return self._control(self._service(state, service)).status()
