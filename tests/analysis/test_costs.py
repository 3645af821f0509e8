"""Cost model: per-request cost from measured means, break-even and the cumulative cost curves."""

from __future__ import annotations

import math

import pytest

from evaluations.analysis.costs import (
    break_even,
    calculator,
    cumulative_costs,
    per_request_cost,
    retrains_in,
)
from evaluations.analysis.verdict import pareto_frontier


def test_the_calculator_reproduces_the_textbook_example():
    # 500 tokens saved per request, 100,000 requests a month, $0.002 per 1K tokens, a $50 fine-tune.
    result = calculator(
        tokens_saved=500, requests_per_month=100_000, price_per_1k_tokens=0.002, training_cost=50
    )
    assert result["saving_per_request"] == pytest.approx(0.001)
    assert result["monthly_saving"] == pytest.approx(100.0)
    assert result["break_even_requests"] == pytest.approx(50_000)
    assert result["break_even_months"] == pytest.approx(0.5)
    assert round(result["break_even_days"]) == 15
    assert result["pays_back_within_horizon"] is True


def test_retraining_and_hosting_over_the_horizon_are_fixed_costs():
    be = break_even(
        saving_per_request=0.001,
        requests_per_month=100_000,
        training_cost=50,
        horizon_months=12,
        retrains_per_year=4,
        hosting_per_month=10,
    )
    assert be.retrains == 3  # at months 3, 6 and 9; the one due at month 12 serves the next year
    assert be.fixed_costs == pytest.approx(50 + 3 * 50 + 10 * 12)
    # Hosting accrues until break-even: one-off costs / (monthly saving - hosting).
    assert be.break_even_months == pytest.approx(200 / (100 - 10))
    assert be.break_even_requests == pytest.approx(200 / 90 * 100_000)
    assert be.net_saving_over_horizon == pytest.approx(90 * 12 - 200)
    assert be.pays_back_within_horizon


def test_hosting_that_eats_the_saving_never_pays_back():
    be = break_even(saving_per_request=0.001, requests_per_month=1000, training_cost=5, hosting_per_month=2)
    assert be.break_even_requests is None and not be.pays_back_within_horizon
    assert "hosting eats the saving" in be.reason


def test_cheaper_hosting_can_pay_for_a_dearer_request():
    # Prompting runs on a self-hosted $5,000/month box; the fine-tune is an API 20% dearer a request.
    be = break_even(
        saving_per_request=-0.0001, requests_per_month=1_000_000, training_cost=100, hosting_per_month=-5000
    )
    assert be.break_even_months == pytest.approx(100 / (-100 + 5000))
    assert be.pays_back_within_horizon and be.net_saving_over_horizon > 0


def test_a_fine_tune_that_costs_more_per_request_never_pays_back():
    be = break_even(saving_per_request=-0.0002, requests_per_month=100_000, training_cost=50)
    assert be.break_even_requests is None and be.break_even_days is None
    assert not be.pays_back_within_horizon
    assert "never paid back" in be.reason


def test_zero_volume_gives_no_break_even_time_and_no_division_error():
    be = break_even(saving_per_request=0.001, requests_per_month=0, training_cost=50)
    assert be.break_even_requests == pytest.approx(50_000)
    assert be.break_even_days is None and be.break_even_months is None
    assert not be.pays_back_within_horizon
    assert "no production volume" in be.reason


@pytest.mark.parametrize(
    "field",
    ["tokens_saved", "requests_per_month", "price_per_1k_tokens", "training_cost", "hosting_per_month"],
)
def test_the_calculator_rejects_negative_and_non_finite_input(field):
    args = {
        "tokens_saved": 500,
        "requests_per_month": 1000,
        "price_per_1k_tokens": 0.002,
        "training_cost": 50,
    }
    for bad in (-1, math.nan, math.inf):
        with pytest.raises(ValueError, match=field.replace("_", " ")):
            calculator(**{**args, field: bad})


def test_per_request_cost_is_unknown_when_a_set_price_has_nothing_measured():
    assert per_request_cost(
        prompt_tokens=100, completion_tokens=10, compute_seconds=None, price_in=1, price_out=2, price_hour=0
    ) == pytest.approx((100 + 20) / 1e6)
    assert per_request_cost(
        prompt_tokens=None,
        completion_tokens=None,
        compute_seconds=2.0,
        price_in=0,
        price_out=0,
        price_hour=3.6,
    ) == pytest.approx(0.002)
    assert (
        per_request_cost(
            prompt_tokens=100,
            completion_tokens=10,
            compute_seconds=None,
            price_in=0,
            price_out=0,
            price_hour=1,
        )
        is None
    )


def test_retrains_are_counted_once_per_period():
    assert retrains_in(retrains_per_year=4, months=12) == 3
    assert retrains_in(retrains_per_year=4, months=12.5) == 4
    assert retrains_in(retrains_per_year=4, months=11) == 3
    assert retrains_in(retrains_per_year=12, months=1) == 0
    assert retrains_in(retrains_per_year=1, months=6) == 0
    assert retrains_in(retrains_per_year=0, months=12) == 0


def test_the_curves_cross_where_the_saving_has_paid_for_the_training():
    curves = cumulative_costs(
        prompting_per_month=100, fine_tuned_per_month=0, training_cost=50, horizon_months=12
    )
    assert curves.crossing_month == pytest.approx(0.5)
    assert curves.ahead_at_horizon
    assert curves.prompting[-1] == (12, 1200)
    assert curves.fine_tuned[-1] == (12, 50)


def test_the_curves_step_up_at_each_retraining_and_may_never_cross():
    curves = cumulative_costs(
        prompting_per_month=10,
        fine_tuned_per_month=5,
        training_cost=100,
        horizon_months=12,
        retrains_per_year=2,
    )
    assert curves.crossing_month is None
    assert not curves.ahead_at_horizon
    # The training at 0, then a step at 6 months (the one due at 12 serves the next year).
    assert (6.0, 130.0) in curves.fine_tuned and (6.0, 230.0) in curves.fine_tuned
    assert curves.fine_tuned[-1] == (12.0, 100 * 2 + 60)


def test_the_pareto_frontier_keeps_only_arms_nothing_beats_on_cost_and_quality():
    points = [("cheap-bad", 1.0, 0.5), ("mid", 2.0, 0.8), ("dominated", 3.0, 0.7), ("best", 5.0, 0.9)]
    assert pareto_frontier(points) == ["cheap-bad", "mid", "best"]
    assert pareto_frontier([("a", 1.0, 0.5), ("b", 1.0, 0.5)]) == ["a", "b"]


def test_a_horizon_of_zero_months_is_refused():
    with pytest.raises(ValueError, match="horizon months"):
        calculator(
            tokens_saved=500,
            requests_per_month=1000,
            price_per_1k_tokens=0.002,
            training_cost=50,
            horizon_months=0,
        )
