"""Decide (pure): what `rpops scale` does with what it observed; `now` comes from the plan.

reactive    rpops.steps.scale.reactive.decide_reactive: the HPA formula per resource, bounds,
            tolerance, scale-down stabilisation, cooldowns
predictive  rpops.steps.scale.predictive.decide_predictive on the forecast fit to the request-rate
            history (rpops.steps.scale.forecast), with the capacity of one replica
A blue-green promotion holding the service is no decision: the promotion sets the replicas. With
--alert, a run that changes nothing while the alert holds is stuck (exit 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from rpops.steps.scale.forecast import NotEnoughHistory, fit
from rpops.steps.scale.predictive import (
    Capacity,
    ForecastSummary,
    decide_predictive,
    measure_capacity,
    summarise_forecast,
)
from rpops.steps.scale.reactive import Decision, Reading, decide_reactive, evaluate, no_decision
from rpops.steps.scale.settings import Plan
from rpops.steps.scale.state import ScaleState

if TYPE_CHECKING:
    from rpops.alerting.evidence import Evidence
    from rpops.platform.base import Instance, Workload


@dataclass(frozen=True)
class Observation:
    version: str
    workload: Workload
    instances: tuple[Instance, ...]
    state: ScaleState
    readings: dict[str, Reading]
    queries: dict[str, Any] = field(default_factory=dict)  # name -> summary of the query run
    history: tuple[tuple[float, float], ...] = ()  # predictive: request-rate history
    current_rps: float | None = None
    evidence: Evidence | None = None  # alert-driven: the alert's own reading
    promotion: str = ""  # a blue-green promotion holding the service, described; "" when none


def decide(plan: Plan, obs: Observation) -> Decision:
    w = obs.workload
    if obs.promotion:
        return no_decision("reactive", w.replicas, f"{obs.promotion}; the promotion sets the replicas")
    if plan.settings.mode == "reactive":
        return decide_reactive(
            current=w.replicas,
            readings=obs.readings,
            policy=plan.policy,
            bounds=plan.bounds,
            state=obs.state,
            hpa=w.autoscaling,
            now=plan.now,
        )
    forecast, why = forecast_of(plan, obs)
    return decide_predictive(
        current=w.replicas,
        hpa=w.autoscaling,
        bounds=plan.bounds,
        state=obs.state,
        forecast=forecast,
        no_forecast_reason=why,
        capacity=replica_capacity(plan, obs),
        apply=plan.apply_forecast,
        now=plan.now,
    )


def forecast_of(plan: Plan, obs: Observation) -> tuple[ForecastSummary | None, str]:
    """The request-rate forecast over the look-ahead, or None and why there is none."""
    try:
        model = fit(obs.history, plan.step_s, min_span_s=plan.min_history_s)
    except NotEnoughHistory as exc:
        return None, f"not enough history ({exc}) of the request rate"
    return summarise_forecast(model.forecast(plan.now, plan.look_ahead_s), model.describe()), ""


def replica_capacity(plan: Plan, obs: Observation) -> Capacity:
    """Requests per second one replica serves at its target: given, or measured from the current
    rate and the resources' utilisation."""
    if plan.replica_capacity_rps is not None:
        return Capacity(plan.replica_capacity_rps, "--replica-capacity-rps")
    w = obs.workload
    results = [
        evaluate(obs.readings.get(rp.name), rp, max(1, w.replicas), plan.policy.tolerance)
        for rp in plan.policy.resources
    ]
    return measure_capacity(obs.current_rps, w.ready_replicas or w.replicas, results)


def alert_stuck(obs: Observation, scaled: bool) -> bool:
    """The alert that started the run still holds and this run changed nothing: exit 1."""
    return obs.evidence is not None and obs.evidence.holds and not scaled and not obs.promotion


def explain_stuck(obs: Observation, decision: Decision) -> Decision:
    """The decision whose reason says the alert holds and nothing could be done."""
    assert obs.evidence is not None
    why = f"nothing to do while the alert holds ({obs.evidence.summary}): {decision.reason}"
    return replace(decision, reason=why)
