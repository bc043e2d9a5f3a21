"""Synthetic request-rate traces with known shape, for tests, benchmarks and demos.

A trace is `rate(t)`: a business-day curve (a morning ramp to a plateau, a lunch dip, an
afternoon peak, a quiet night), a weekend factor, a linear trend, multiplicative Gaussian noise
and optional spikes. The noiseless curve is kept apart so accuracy is measured against truth.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

DAY = 86400.0


@dataclass(frozen=True)
class Spike:
    start: float  # unix seconds
    duration_s: float
    factor: float  # multiplies the rate while it lasts


@dataclass(frozen=True)
class Trace:
    base: float = 40.0  # night-time rate, rps
    peak: float = 200.0  # daytime plateau, rps
    ramp_start_h: float = 8.5  # UTC hour the morning ramp starts
    ramp_minutes: float = 20.0
    evening_h: float = 19.0  # UTC hour the evening decline starts
    weekend_factor: float = 0.6  # Saturday and Sunday
    trend_per_day: float = 0.01  # relative growth per day
    noise: float = 0.05  # relative standard deviation
    origin: float = 0.0  # trend measured from here
    spikes: tuple[Spike, ...] = field(default=())

    def truth(self, t: float) -> float:
        """The noiseless rate at unix time t (spikes included: they are real traffic)."""
        hour = (t % DAY) / 3600
        ramp = (hour - self.ramp_start_h) * 60 / self.ramp_minutes
        up = min(1.0, max(0.0, ramp))
        down = min(1.0, max(0.0, (hour - self.evening_h) / 2.0))
        day = up * (1 - down)
        lunch = 0.15 * math.exp(-(((hour - 12.5) / 0.6) ** 2))
        afternoon = 0.1 * math.exp(-(((hour - 15.0) / 1.5) ** 2))
        value = self.base + (self.peak - self.base) * day * (1 - lunch + afternoon)
        weekday = (int(t // DAY) + 3) % 7  # 1970-01-01 was a Thursday: 0 = Monday
        if weekday >= 5:
            value *= self.weekend_factor
        value *= 1 + self.trend_per_day * (t - self.origin) / DAY
        for spike in self.spikes:
            if spike.start <= t < spike.start + spike.duration_s:
                value *= spike.factor
        return value

    def ramp_time(self, day_start: float) -> float:
        """When the morning ramp of the day starting at `day_start` (midnight UTC) begins."""
        return day_start + self.ramp_start_h * 3600


def sample(trace: Trace, start: float, end: float, step: float, seed: int = 1) -> list[tuple[float, float]]:
    """Noisy observations every `step` seconds in [start, end)."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    out = []
    t = start
    while t < end:
        out.append((t, max(0.0, trace.truth(t) * (1 + rng.gauss(0.0, trace.noise)))))
        t += step
    return out


def truth_at(trace: Trace, times: Sequence[float]) -> list[float]:
    return [trace.truth(t) for t in times]
