"""Forecast accuracy on synthetic traces: daily + weekly seasonality, trend, noise and spikes."""

from __future__ import annotations

import math
import statistics

import pytest
from rpops.steps.scale.forecast import DAY, NotEnoughHistory, fit, mape, regularise
from rpops.steps.scale.synthetic import Spike, Trace, sample, truth_at

STEP = 300.0
MONDAY = 1_799_020_800.0  # 2027-01-04 00:00 UTC, a Monday
assert (int(MONDAY // DAY) + 3) % 7 == 0


def forecast_error(
    trace: Trace,
    origin: float,
    *,
    days: float = 7,
    look_ahead: float = 1800.0,
    seed: int = 1,
) -> float:
    history = sample(trace, origin - days * DAY, origin, STEP, seed=seed)
    model = fit(history, STEP)
    predicted = model.forecast(origin - STEP, look_ahead + STEP)
    return mape(truth_at(trace, [t for t, _ in predicted]), [v for _, v in predicted])


def origins(start: float, hours: float, every_h: float = 1.0) -> list[float]:
    return [start + k * every_h * 3600 for k in range(int(hours / every_h))]


def test_daily_seasonal_trace_with_noise_within_10_percent() -> None:
    trace = Trace(noise=0.05, origin=MONDAY)
    # a whole Thursday (all hours, the ramp included), one forecast per hour, 30 minutes ahead
    errors = [forecast_error(trace, t, seed=int(t)) for t in origins(MONDAY + 10 * DAY, 24)]
    assert statistics.mean(errors) <= 0.10, errors
    assert max(errors) <= 0.25, errors


def test_noisier_trace_still_within_10_percent_on_average() -> None:
    trace = Trace(noise=0.10, origin=MONDAY)
    errors = [forecast_error(trace, t, seed=int(t)) for t in origins(MONDAY + 9 * DAY + 6 * 3600, 12)]
    assert statistics.mean(errors) <= 0.10, errors


def test_weekly_seasonality_is_learned() -> None:
    trace = Trace(noise=0.03, weekend_factor=0.5, origin=MONDAY)
    saturday = MONDAY + 12 * DAY + 11 * 3600
    assert forecast_error(trace, saturday, days=14) <= 0.10
    model = fit(sample(trace, saturday - 14 * DAY, saturday, STEP), STEP)
    # weekdays from 1970-01-01 (a Thursday): Saturday is 2, Wednesday is 6; the weekend halves traffic
    assert model.weekly[2] - model.weekly[6] == pytest.approx(math.log(0.5), abs=0.1)
    # 12 hours ahead, with no recent level to lean on, the weekday profile alone is far off
    midnight = MONDAY + 12 * DAY
    with_week = fit(sample(trace, midnight - 14 * DAY, midnight, STEP), STEP)
    no_week = fit(sample(trace, midnight - 5 * DAY, midnight, STEP), STEP)
    times = [midnight + 10 * 3600 + k * STEP for k in range(12)]
    truth = truth_at(trace, times)
    assert mape(truth, [with_week.predict(t) for t in times]) <= 0.10
    assert mape(truth, [no_week.predict(t) for t in times]) >= 0.5


def test_trend_is_followed() -> None:
    # +5% of the first day's level per day; over two weeks (a trend is told from a weekly
    # pattern only over more than one week)
    trace = Trace(noise=0.02, trend_per_day=0.05, origin=MONDAY)
    history = sample(trace, MONDAY, MONDAY + 14 * DAY, STEP)
    model = fit(history, STEP)
    assert "trend" in model.parts and "weekly" in model.parts
    growth = model.describe()["growth_per_day"]
    assert isinstance(growth, float) and 0.025 <= growth <= 0.06  # log(1.7) / 14 days = 3.9% a day
    assert forecast_error(trace, MONDAY + 14 * DAY + 14 * 3600, days=14) <= 0.10


def test_a_spike_in_the_history_does_not_bend_the_forecast() -> None:
    origin = MONDAY + 9 * DAY + 10 * 3600  # Wednesday 10:00
    spike = Spike(start=origin - 2 * DAY - 300, duration_s=1800, factor=8.0)  # Monday 09:55-10:25
    spiked = Trace(noise=0.05, origin=MONDAY, spikes=(spike,))
    error = forecast_error(spiked, origin)
    assert error <= 0.10
    assert error <= forecast_error(Trace(noise=0.05, origin=MONDAY), origin) + 0.03


def test_a_sudden_spike_now_is_not_extrapolated() -> None:
    # The last 15 minutes are a x5 spike: a forecast is for the seasonal curve; the spike itself
    # is the reactive mode's job (it sees it in the current utilisation).
    origin = MONDAY + 9 * DAY + 14 * 3600
    spike = Spike(start=origin - 900, duration_s=900, factor=5.0)
    trace = Trace(noise=0.05, origin=MONDAY, spikes=(spike,))
    history = sample(trace, origin - 7 * DAY, origin, STEP)
    model = fit(history, STEP)
    predicted = model.forecast(origin, 1800)
    calm = Trace(noise=0.0, origin=MONDAY)
    assert mape(truth_at(calm, [t for t, _ in predicted]), [v for _, v in predicted]) <= 0.10


def test_a_sustained_level_shift_is_followed() -> None:
    origin = MONDAY + 9 * DAY + 15 * 3600
    shift = Spike(start=origin - 2 * 3600, duration_s=4 * 3600, factor=1.4)  # 2 h at +40% so far
    trace = Trace(noise=0.03, origin=MONDAY, spikes=(shift,))
    assert forecast_error(trace, origin) <= 0.10


def test_one_day_of_history_is_seasonal_naive_without_trend() -> None:
    trace = Trace(noise=0.03, origin=MONDAY)
    history = sample(trace, MONDAY + DAY, MONDAY + 2 * DAY + 3600, STEP)
    model = fit(history, STEP)
    assert model.parts == ("daily", "level") and model.slope == 0
    assert forecast_error(trace, MONDAY + 2 * DAY + 11 * 3600, days=1.2) <= 0.12


def test_not_enough_history_is_refused() -> None:
    history = sample(Trace(), MONDAY, MONDAY + 20 * 3600, STEP)
    with pytest.raises(NotEnoughHistory, match=r"1\d\.\d h of history, at least 24 h"):
        fit(history, STEP)
    with pytest.raises(NotEnoughHistory, match="3 points"):
        fit(history[:3], STEP)


def test_gaps_and_nan_are_tolerated() -> None:
    trace = Trace(noise=0.03, origin=MONDAY)
    history = sample(trace, MONDAY, MONDAY + 7 * DAY, STEP)
    # drop a whole afternoon and poison some points
    holes = [
        (t, v) for t, v in history if not (MONDAY + 3 * DAY + 12 * 3600 <= t < MONDAY + 3 * DAY + 18 * 3600)
    ]
    holes[10] = (holes[10][0], float("nan"))
    holes[20] = (holes[20][0], float("inf"))
    assert len(regularise(holes, STEP)) == len(holes) - 2
    model = fit(holes, STEP)
    predicted = model.forecast(MONDAY + 7 * DAY + 13 * 3600, 1800)
    assert mape(truth_at(trace, [t for t, _ in predicted]), [v for _, v in predicted]) <= 0.10


def test_mape() -> None:
    assert mape([100, 200, 0], [110, 180, 5]) == pytest.approx(0.1)
    assert mape([0], [1]) != mape([0], [1])  # NaN: nothing to compare
