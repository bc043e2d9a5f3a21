"""THE BASELINE: the blue-green procedure `rpops bluegreen` replaces, reproduced step by step
against a platform driver, so that its failure modes can be shown and measured beside it.

The procedure, as a script (`kubectl` on the cluster; here the driver's equivalent calls):

    #!/usr/bin/env bash
    # deploy-bluegreen.sh BLUE GREEN
    set -eu
    kubectl apply -f "k8s/research-platform-$GREEN.yaml"            # replicas: 2, from the manifest
    kubectl rollout status "deploy/research-platform-$GREEN" --timeout=60s \
      || echo "rollout not finished, continuing"
    for i in $(seq 1 30); do                                          # curl /health up to 30 times
      curl -sf http://research-platform/health && break               # (the Service: still blue)
      sleep 2
    done
    kubectl patch svc research-platform -p '{"spec":{"selector":{"version":"'$GREEN'"}}}'
    sleep 10
    if curl -sf http://research-platform/health; then                 # one request decides
      kubectl delete deploy "research-platform-$BLUE"
    else
      kubectl patch svc research-platform -p '{"spec":{"selector":{"version":"'$BLUE'"}}}'
    fi

Nothing is recorded anywhere, nothing is locked, the green replica count is the manifest's.
`kill_after` stops the run after a step as `kill -9` would; `hooks` run after a step (to inject
a fault where a test needs one). Only for the local driver (it curls the service's proxy).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import httpx
from rpops.platform.base import DeadlineExceeded
from rpops.platform.local.driver import LocalDriver

STEPS = ("apply", "rollout-status", "curl", "patch", "sleep", "check", "cleanup")


class BaselineKilled(Exception):
    """The script was killed after a step (kill -9: nothing after it runs)."""


@dataclass
class BaselineRun:
    steps: list[str] = field(default_factory=list)
    rollout_complete: bool | None = None
    curls_before_switch: list[str] = field(default_factory=list)  # "<status> <version>" per curl
    ready_at_switch: tuple[int, int] | None = None  # (ready, desired) of green when the selector moved
    switched_at: float | None = None  # time.monotonic()
    check_passed: bool | None = None
    deleted: str | None = None
    patched_back: bool = False
    patched_back_at: float | None = None
    error: str | None = None


class Baseline:
    def __init__(
        self,
        driver: LocalDriver,
        service: str,
        *,
        manifest_replicas: int = 2,
        rollout_timeout: float = 60.0,
        curl_tries: int = 30,
        curl_sleep: float = 2.0,
        settle: float = 10.0,
        kill_after: str | None = None,
        hooks: Mapping[str, Callable[[], None]] | None = None,
    ) -> None:
        self.driver = driver
        self.service = service
        self.manifest_replicas = manifest_replicas
        self.rollout_timeout = rollout_timeout
        self.curl_tries = curl_tries
        self.curl_sleep = curl_sleep
        self.settle = settle
        self.kill_after = kill_after
        self.hooks = dict(hooks or {})
        self.url = driver.service_url(service)
        self._client = httpx.Client(timeout=5.0, trust_env=False)

    def curl(self) -> tuple[bool, str]:
        """`curl -sf <service>/health`: success on a 2xx."""
        try:
            response = self._client.get(f"{self.url}/health")
        except httpx.HTTPError as exc:
            return False, type(exc).__name__
        try:
            version = str(response.json().get("version"))
        except ValueError:
            version = "?"
        return 200 <= response.status_code < 300, f"{response.status_code} {version}"

    def patch_selector(self, version: str) -> None:
        """`kubectl patch svc ... selector version=<version>`."""
        self.driver.route(self.service, version)

    def _done(self, run: BaselineRun, step: str) -> None:
        run.steps.append(step)
        hook = self.hooks.get(step)
        if hook is not None:
            hook()
        if self.kill_after == step:
            raise BaselineKilled(step)

    def run(self, blue: str, green: str) -> BaselineRun:
        run = BaselineRun()
        try:
            self.driver.deploy(self.service, green, replicas=self.manifest_replicas)
            self._done(run, "apply")
            try:
                self.driver.wait_ready(self.service, green, timeout=self.rollout_timeout)
                run.rollout_complete = True
            except DeadlineExceeded:
                run.rollout_complete = False  # "rollout not finished, continuing"
            self._done(run, "rollout-status")
            for _ in range(self.curl_tries):
                ok, what = self.curl()
                run.curls_before_switch.append(what)
                if ok:
                    break
                time.sleep(self.curl_sleep)
            self._done(run, "curl")
            workload = self.driver.workload(self.service, green)  # observation only, for the record
            run.ready_at_switch = (workload.ready_replicas, workload.replicas)
            self.patch_selector(green)
            run.switched_at = time.monotonic()
            self._done(run, "patch")
            time.sleep(self.settle)
            self._done(run, "sleep")
            run.check_passed, _ = self.curl()
            self._done(run, "check")
            if run.check_passed:
                self.driver.remove(self.service, blue, delete=True)
                run.deleted = blue
            else:
                self.patch_selector(blue)
                run.patched_back = True
                run.patched_back_at = time.monotonic()
            self._done(run, "cleanup")
        except BaselineKilled:
            pass
        except Exception as exc:  # noqa: BLE001 - the script stops at the first failing command (set -e)
            run.error = f"{type(exc).__name__}: {exc}"
        return run

    def close(self) -> None:
        self._client.close()
