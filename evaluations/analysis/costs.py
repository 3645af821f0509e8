"""Cost of a call: measured tokens x per-1M prices, or compute seconds x hourly price."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


def token_cost(
    prompt_tokens: int | None, completion_tokens: int | None, price_in: float, price_out: float
) -> float:
    return ((prompt_tokens or 0) * price_in + (completion_tokens or 0) * price_out) / 1_000_000


def compute_cost(seconds: float, price_hour: float) -> float:
    return seconds * price_hour / 3600.0


DAYS_PER_MONTH = 365.25 / 12


def per_request_cost(
    *,
    prompt_tokens: float | None,
    completion_tokens: float | None,
    compute_seconds: float | None,
    price_in: float,
    price_out: float,
    price_hour: float,
) -> float | None:
    """Cost of one request from measured means and the endpoint's current prices (None: unknown).

    Token prices need measured tokens; a compute price needs measured compute seconds. A price
    that is set but has nothing measured to apply to makes the cost unknown rather than lower.
    """
    cost = 0.0
    if price_in or price_out:
        if prompt_tokens is None or completion_tokens is None:
            return None
        cost += (prompt_tokens * price_in + completion_tokens * price_out) / 1_000_000
    if price_hour:
        if compute_seconds is None:
            return None
        cost += compute_cost(compute_seconds, price_hour)
    return cost


def retrains_in(*, retrains_per_year: float, months: float) -> int:
    """Retraining events strictly within `months`: one every 12 / retrains_per_year months (a
    retraining due at the very end serves the months after it)."""
    if retrains_per_year <= 0 or months <= 0:
        return 0
    return max(0, math.ceil(retrains_per_year * months / 12 - 1e-9) - 1)


@dataclass(frozen=True)
class BreakEven:
    """Prompting (arm P) against fine-tuning (arm F) at a volume V, over a horizon of H months.

    saving_per_request s = P's cost per request - F's; hosting h = F's hosting - P's, per month;
    one-off costs = training + retrains within the horizon x retraining cost;
    fixed_costs = one-off costs + h x H (everything fine-tuning costs besides its requests);
    break_even_months = one-off costs / (s x V - h), the hosting accruing until then
    (only when s x V > h); break_even_requests = break_even_months x V;
    net_saving_over_horizon = (s x V - h) x H - one-off costs.
    """

    saving_per_request: float
    requests_per_month: float
    horizon_months: float
    training_cost: float
    retrains: int
    retraining_cost: float
    hosting_per_month: float
    fixed_costs: float
    monthly_saving: float
    break_even_requests: float | None
    break_even_months: float | None
    break_even_days: float | None
    net_saving_over_horizon: float
    pays_back_within_horizon: bool
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def break_even(
    *,
    saving_per_request: float,
    requests_per_month: float,
    training_cost: float,
    horizon_months: float = 12,
    retrains_per_year: float = 0,
    retraining_cost: float | None = None,
    hosting_per_month: float = 0,
) -> BreakEven:
    """Requests (and time at the volume) until fine-tuning's fixed costs are paid back by its saving.

    `retraining_cost` defaults to the training cost (the same data, trained again);
    `hosting_per_month` is the fine-tuned model's extra hosting over the prompting arm's.
    """
    _check_non_negative(
        requests_per_month=requests_per_month,
        training_cost=training_cost,
        horizon_months=horizon_months,
        retrains_per_year=retrains_per_year,
    )
    if horizon_months <= 0:
        raise ValueError(f"horizon months must be a number > 0, not {horizon_months!r}")
    retrain_each = training_cost if retraining_cost is None else retraining_cost
    retrains = retrains_in(retrains_per_year=retrains_per_year, months=horizon_months)
    one_off = training_cost + retrains * retrain_each
    fixed = one_off + hosting_per_month * horizon_months
    monthly_saving = saving_per_request * requests_per_month
    monthly_net = monthly_saving - hosting_per_month  # what fine-tuning saves a month, hosting paid
    net = monthly_net * horizon_months - one_off
    requests = months = days = None
    if requests_per_month <= 0:
        if saving_per_request > 0 and hosting_per_month == 0:
            requests = one_off / saving_per_request
        reason = "no production volume is set, so the saving per request never adds up"
    elif monthly_net <= 0:
        reason = (
            "the fine-tuned model costs as much or more per request than prompting, "
            if saving_per_request <= 0
            else "its extra hosting eats the saving per request, "
        ) + "so its fixed costs are never paid back"
    else:
        months = one_off / monthly_net
        requests = months * requests_per_month
        days = months * DAYS_PER_MONTH
        reason = (
            f"pays back after {requests:,.0f} requests, {days:,.1f} days at "
            f"{requests_per_month:,.0f} requests a month"
        )
    pays_back = months is not None and net >= 0
    return BreakEven(
        saving_per_request=saving_per_request,
        requests_per_month=requests_per_month,
        horizon_months=horizon_months,
        training_cost=training_cost,
        retrains=retrains,
        retraining_cost=retrain_each,
        hosting_per_month=hosting_per_month,
        fixed_costs=fixed,
        monthly_saving=monthly_saving,
        break_even_requests=requests,
        break_even_months=months,
        break_even_days=days,
        net_saving_over_horizon=net,
        pays_back_within_horizon=pays_back,
        reason=reason,
    )


def calculator(
    *,
    tokens_saved: float,
    requests_per_month: float,
    price_per_1k_tokens: float,
    training_cost: float,
    horizon_months: float = 12,
    retrains_per_year: float = 0,
    hosting_per_month: float = 0,
) -> dict:
    """The standalone break-even calculator: prompt tokens a fine-tuned model saves per request."""
    _check_non_negative(
        tokens_saved=tokens_saved,
        price_per_1k_tokens=price_per_1k_tokens,
        hosting_per_month=hosting_per_month,
    )
    saving = tokens_saved * price_per_1k_tokens / 1000
    result = break_even(
        saving_per_request=saving,
        requests_per_month=requests_per_month,
        training_cost=training_cost,
        horizon_months=horizon_months,
        retrains_per_year=retrains_per_year,
        hosting_per_month=hosting_per_month,
    ).to_dict()
    return {"tokens_saved": tokens_saved, "price_per_1k_tokens": price_per_1k_tokens, **result}


@dataclass(frozen=True)
class CostCurves:
    """Cumulative cost over the horizon: points (month, USD) for both options, and where they cross."""

    prompting: list[tuple[float, float]]
    fine_tuned: list[tuple[float, float]]
    crossing_month: float | None
    crossing_cost: float | None
    ahead_at_horizon: bool

    def to_dict(self) -> dict:
        return {
            "prompting": [list(p) for p in self.prompting],
            "fine_tuned": [list(p) for p in self.fine_tuned],
            "crossing_month": self.crossing_month,
            "crossing_days": None if self.crossing_month is None else self.crossing_month * DAYS_PER_MONTH,
            "crossing_cost": self.crossing_cost,
            "ahead_at_horizon": self.ahead_at_horizon,
        }


def cumulative_costs(
    *,
    prompting_per_month: float,
    fine_tuned_per_month: float,
    training_cost: float,
    horizon_months: float,
    retrains_per_year: float = 0,
    retraining_cost: float | None = None,
) -> CostCurves:
    """Prompting grows linearly; fine-tuning starts at its training cost, grows at its own monthly
    rate (requests + hosting) and steps up at every retraining. The crossing is the first month
    from which fine-tuning has cost no more than prompting."""
    retrain_each = training_cost if retraining_cost is None else retraining_cost
    n = retrains_in(retrains_per_year=retrains_per_year, months=horizon_months)
    events = [12 * (j + 1) / retrains_per_year for j in range(n)]
    slope_p, slope_f = prompting_per_month, fine_tuned_per_month
    prompting = [(0.0, 0.0)]
    fine = [(0.0, training_cost)]
    crossing = None
    level = training_cost  # fine-tuned's fixed costs so far
    start = 0.0
    for end in sorted({*events, horizon_months}):
        gap = level + (slope_f - slope_p) * start  # fine-tuned minus prompting at the segment's start
        if crossing is None:
            if gap <= 0:
                crossing = start
            elif slope_f < slope_p and start + gap / (slope_p - slope_f) <= end:
                crossing = start + gap / (slope_p - slope_f)
        prompting.append((end, slope_p * end))
        fine.append((end, level + slope_f * end))
        if end in events:  # retraining: a step up
            level += retrain_each
            fine.append((end, level + slope_f * end))
        start = end
    ahead = fine[-1][1] <= prompting[-1][1]
    cost = None if crossing is None else slope_p * crossing
    return CostCurves(prompting, fine, crossing, cost, ahead)


def _check_non_negative(**values: float) -> None:
    for name, value in values.items():
        if value is None or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name.replace('_', ' ')} must be a number >= 0, not {value!r}")
