"""Observe: the platform's side of a promotion (routes, versions, the recorded state) through the
driver, and green's behaviour over HTTP and in Prometheus (an analysis run: measure.py, with the
probe rounds of probes.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from rpops.clients.probe import Prober, run_async
from rpops.clients.promql import instances_regex
from rpops.core.errors import UsageError
from rpops.platform.base import NotFound, PlatformDriver
from rpops.steps.bluegreen import measure
from rpops.steps.bluegreen.model import Record, World, record_from
from rpops.steps.bluegreen.probes import K8S_SERVICE_PORT, Target, read_counters
from rpops.steps.bluegreen.settings import Plan


def read_record(driver: PlatformDriver, service: str) -> Record:
    return record_from(driver.annotations(service))


def read_world(driver: PlatformDriver, service: str) -> World:
    routes = driver.routes(service)
    versions = {w.version: w for w in driver.versions(service)}
    return World(service, routes, versions, read_record(driver, service))


def existing_world(driver: PlatformDriver, service: str) -> World:
    """The first look, before the lock is taken: an unknown service is bad input (exit 2)."""
    try:
        world = read_world(driver, service)
    except NotFound as exc:
        raise UsageError(
            f"--service {service}: {exc}; check the name (`rpops local platform status` or "
            "`kubectl get services`)"
        ) from None
    if world.routes.active is None and not world.versions:
        raise UsageError(
            f"--service {service}: no such service on the {driver.name} platform "
            "(no active route, no versions); check the name"
        )
    return world


def route_url(driver: PlatformDriver, plan: Plan, preview: bool) -> str:
    """The URL of the service's preview (or active) route: as given, else the platform's."""
    given = plan.preview_url if preview else plan.active_url
    if given:
        return given
    service_url = getattr(driver, "service_url", None)
    if callable(service_url):
        return str(service_url(plan.service, preview=preview))
    namespace = getattr(driver, "namespace", "default")
    name = f"{plan.service}-preview" if preview else plan.service
    return f"http://{name}.{namespace}.svc:{K8S_SERVICE_PORT}"


def placeholders(
    driver: PlatformDriver, service: str, version: str, stable: str | None, urls: list[str]
) -> dict[str, str]:
    """The analysis queries' placeholders; $green is the driver's selector of green's series."""
    values = {
        "$service": service,
        "$version": version,
        "$stable": stable or "",
        "$namespace": str(getattr(driver, "namespace", "")),
        "$instances": instances_regex(urls),
    }
    selector = driver.series.selector
    for name in ("$service", "$version", "$namespace", "$instances"):
        selector = selector.replace(name, values[name])
    values["$green"] = selector
    return values


def analysis_config(
    driver: PlatformDriver, plan: Plan, stage: str, version: str, stable: str | None, window: float | None
) -> measure.AnalysisConfig:
    """What an analysis of `version` measures: through the preview route before the switch (the
    active one after), and every instance of green directly."""
    instances = driver.instances(plan.service, version)
    preview = stage == "pre"
    route = Target(f"{'preview' if preview else 'active'} route", route_url(driver, plan, preview))
    urls = [i.url for i in instances]
    return measure.AnalysisConfig(
        stage=stage,
        specs=[*plan.builtins(stage), *(m for m in plan.metrics if m.applies(stage))],
        targets=[route, *(Target(i.name, i.url, instance=True) for i in instances)],
        instance_urls=urls,
        expect_version=version,
        per_target=plan.analysis_requests,
        window=window,
        prometheus=plan.prometheus,
        placeholders=placeholders(driver, plan.service, version, stable, urls),
        timeout=plan.timeout,
        max_response_ms=plan.max_p95_ms,
    )


def run_analysis(
    config: measure.AnalysisConfig, renew_due: Callable[[], bool], renew: Callable[[], object]
) -> measure.AnalysisRun:
    """Run the analysis; between measurements, `renew` (the lock) runs in a thread when due."""

    async def heartbeat() -> None:
        if renew_due():
            await asyncio.to_thread(renew)

    return run_async(measure.run(config, heartbeat))


def green_counters(urls: list[str], timeout: float) -> dict[str, tuple[float, float]]:
    """Green's request counters per instance (instances that do not answer are left out)."""

    async def read() -> dict[str, tuple[float, float]]:
        async with Prober(timeout=timeout, retries=0) as prober:
            return await read_counters(prober, urls)

    return run_async(read())

