"""Observe: the three requests of a validation, concurrently, through one pooled prober."""

from __future__ import annotations

import asyncio

from rpops.clients.probe import Prober
from rpops.steps.validate.decide import EXPRESSION, Observation


async def observe(url: str, timeout: float, retries: int) -> Observation:
    async with Prober(timeout=timeout, retries=retries) as prober:
        health, secure_eval, monitoring = await asyncio.gather(
            prober.get(f"{url}/health"),
            prober.post_json(f"{url}/api/secure-eval", {"expression": EXPRESSION}),
            prober.get(f"{url}/api/performance/status"),
        )
    return Observation(health=health, secure_eval=secure_eval, monitoring=monitoring)
