import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as sps

from evaluations.analysis.stats import mean_ci, mean_or_none, percentile, wilson_ci

# --- mean_ci ----------------------------------------------------------------------------------------


def test_mean_ci_matches_a_hand_computed_t_interval():
    values = [0.2, 0.4, 0.6, 0.8]
    sd = math.sqrt(((0.3**2) * 2 + (0.1**2) * 2) / 3)
    half = sps.t.ppf(0.975, df=3) * sd / math.sqrt(4)

    mean, low, high = mean_ci(values)

    assert mean == pytest.approx(0.5)
    assert low == pytest.approx(0.5 - half)
    assert high == pytest.approx(0.5 + half)
    assert half == pytest.approx(0.4108, abs=1e-4)


def test_mean_ci_is_narrower_at_lower_confidence():
    values = [0.2, 0.4, 0.6, 0.8]
    _, low95, high95 = mean_ci(values)
    _, low80, high80 = mean_ci(values, confidence=0.8)
    assert low95 < low80 < high80 < high95


def test_mean_ci_is_clipped_to_the_bounds():
    mean, low, high = mean_ci([0.0, 1.0, 1.0])
    assert mean == pytest.approx(2 / 3)
    assert (low, high) == (0.0, 1.0)


def test_mean_ci_uses_custom_bounds():
    values = [0.0, 10.0, 20.0]
    half = sps.t.ppf(0.975, df=2) * 10.0 / math.sqrt(3)

    mean, low, high = mean_ci(values, bounds=(0.0, 100.0))

    assert mean == pytest.approx(10.0)
    assert low == 0.0
    assert high == pytest.approx(10.0 + half)


def test_mean_ci_of_nothing_is_none():
    assert mean_ci([]) == (None, None, None)
    assert mean_ci([None, None]) == (None, None, None)


def test_mean_ci_ignores_missing_values():
    assert mean_ci([0.2, None, 0.4, 0.6, 0.8]) == mean_ci([0.2, 0.4, 0.6, 0.8])


def test_mean_ci_of_one_value_is_that_point():
    assert mean_ci([0.7]) == (0.7, 0.7, 0.7)


@pytest.mark.parametrize("value", [0.0, 0.5, 1.0])
def test_mean_ci_of_constant_values_has_no_width(value):
    assert mean_ci([value] * 5) == (value, value, value)


def test_mean_ci_of_constant_values_with_rounding_noise_has_no_meaningful_width():
    mean, low, high = mean_ci([0.1] * 3)
    assert (mean, low, high) == pytest.approx((0.1, 0.1, 0.1), abs=1e-12)


@given(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=50))
def test_mean_ci_contains_the_mean_and_lies_within_the_bounds(values):
    mean, low, high = mean_ci(values)
    assert 0.0 <= low <= mean <= high <= 1.0


# --- wilson_ci --------------------------------------------------------------------------------------


def test_wilson_ci_of_no_successes_has_a_positive_upper_bound():
    p, low, high = wilson_ci(0, 10)
    assert (p, low) == (0.0, 0.0)
    assert high == pytest.approx(0.2775, abs=1e-4)


def test_wilson_ci_of_all_successes_has_a_lower_bound_below_one():
    p, low, high = wilson_ci(10, 10)
    assert (p, high) == (1.0, 1.0)
    assert low == pytest.approx(0.7225, abs=1e-4)


def test_wilson_ci_matches_the_formula_for_a_middle_proportion():
    z = sps.norm.ppf(0.975)
    n, p = 20, 0.7
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)

    rate, low, high = wilson_ci(14, 20)

    assert rate == pytest.approx(0.7)
    assert low == pytest.approx(centre - half)
    assert high == pytest.approx(centre + half)
    assert (low, high) == pytest.approx((0.4810, 0.8545), abs=1e-4)


def test_wilson_ci_of_no_trials_is_none():
    assert wilson_ci(0, 0) == (None, None, None)


@given(st.integers(min_value=1, max_value=10_000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_ci_contains_the_proportion_within_zero_and_one(case):
    successes, n = case
    p, low, high = wilson_ci(successes, n)
    assert 0.0 <= low <= p <= high <= 1.0


# --- percentile / mean_or_none ----------------------------------------------------------------------


def test_percentile_interpolates_linearly_and_ignores_missing_values():
    assert percentile([4, None, 1, 3, 2], 50) == 2.5
    assert percentile([1, 2, 3, 4, 5], 95) == pytest.approx(4.8)
    assert percentile([7], 95) == 7.0


def test_percentile_of_nothing_is_none():
    assert percentile([], 50) is None
    assert percentile([None], 50) is None


def test_mean_or_none_ignores_missing_values():
    assert mean_or_none([1, None, 2]) == 1.5
    assert mean_or_none([None]) is None
