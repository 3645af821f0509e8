import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from evaluations.analysis.stats import bootstrap_mean_ci


def scipy_ci(values, method, n_resamples, seed, confidence=0.95):
    res = sps.bootstrap(
        (np.asarray(values, dtype=float),),
        np.mean,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method=method,
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def test_matches_scipy_bca_with_the_same_seed():
    values = np.random.default_rng(7).uniform(0.2, 0.9, size=60).tolist()
    low_ref, high_ref = scipy_ci(values, "BCa", 1000, seed=3)

    mean, low, high = bootstrap_mean_ci(values, n_resamples=1000, seed=3)

    assert mean == pytest.approx(np.mean(values))
    assert (low, high) == (pytest.approx(low_ref), pytest.approx(high_ref))
    assert low < mean < high


def test_binary_scores_match_scipy_and_stay_inside_0_1():
    values = [1.0] * 27 + [0.0] * 3
    low_ref, high_ref = scipy_ci(values, "BCa", 1000, seed=0)

    mean, low, high = bootstrap_mean_ci(values, n_resamples=1000)

    assert mean == pytest.approx(0.9)
    assert low == pytest.approx(low_ref)
    assert high == pytest.approx(min(1.0, high_ref))
    assert 0.0 <= low < 0.9 < high <= 1.0


@pytest.mark.filterwarnings("ignore")
def test_falls_back_to_percentile_when_bca_is_degenerate():
    values, n_resamples, seed = [0.0, 0.0, 1.0], 2, 4
    bca = scipy_ci(values, "BCa", n_resamples, seed)
    assert all(math.isnan(x) for x in bca)  # the premise: scipy's BCa gives up here
    low_ref, high_ref = scipy_ci(values, "percentile", n_resamples, seed)

    mean, low, high = bootstrap_mean_ci(values, n_resamples=n_resamples, seed=seed)

    assert mean == pytest.approx(1 / 3)
    assert low == pytest.approx(min(low_ref, mean))
    assert high == pytest.approx(max(high_ref, mean))
    assert not math.isnan(low) and not math.isnan(high)


def test_degenerate_inputs():
    assert bootstrap_mean_ci([]) == (None, None, None)
    assert bootstrap_mean_ci([None, None]) == (None, None, None)
    assert bootstrap_mean_ci([0.4]) == (0.4, 0.4, 0.4)
    assert bootstrap_mean_ci([0.7, 0.7, 0.7, 0.7]) == pytest.approx((0.7, 0.7, 0.7))
    assert bootstrap_mean_ci([1.0, 1.0]) == (1.0, 1.0, 1.0)


def test_none_values_are_dropped():
    with_none = bootstrap_mean_ci([0.1, None, 0.5, 0.9, None, 0.3], n_resamples=500)
    assert with_none == bootstrap_mean_ci([0.1, 0.5, 0.9, 0.3], n_resamples=500)


def test_deterministic_for_a_seed():
    values = np.random.default_rng(1).random(40).tolist()
    first = bootstrap_mean_ci(values, n_resamples=500, seed=11)
    assert bootstrap_mean_ci(values, n_resamples=500, seed=11) == first
    assert bootstrap_mean_ci(values, n_resamples=500, seed=12) != first


def test_bounds_clip_and_none_disables_clipping():
    values = [-3.0, -1.0, 2.0, 5.0, 8.0]
    mean, low, high = bootstrap_mean_ci(values, n_resamples=500, bounds=None)
    low_ref, high_ref = scipy_ci(values, "BCa", 500, seed=0)
    assert mean == pytest.approx(2.2)
    assert (low, high) == (pytest.approx(low_ref), pytest.approx(high_ref))
    assert low < 0

    _, low_c, high_c = bootstrap_mean_ci(values, n_resamples=500)
    assert (low_c, high_c) == (0.0, 1.0)


def test_lower_confidence_gives_a_narrower_interval():
    values = np.random.default_rng(2).random(50).tolist()
    _, low95, high95 = bootstrap_mean_ci(values, n_resamples=1000)
    _, low80, high80 = bootstrap_mean_ci(values, confidence=0.8, n_resamples=1000)
    assert low95 < low80 < high80 < high95


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1, allow_nan=False), min_size=1, max_size=30))
def test_interval_contains_the_mean_and_respects_bounds(values):
    mean, low, high = bootstrap_mean_ci(values, n_resamples=100)
    assert 0.0 <= low <= mean <= high <= 1.0


def test_large_samples_use_the_percentile_interval_and_stay_cheap():
    import numpy as np
    from scipy import stats as scipy_stats

    from evaluations.analysis.stats import BCA_MAX_N, bootstrap_mean_ci

    values = np.random.default_rng(0).random(BCA_MAX_N * 5)
    mean, low, high = bootstrap_mean_ci(values, n_resamples=200, seed=3)
    rng = np.random.default_rng(3)
    result = scipy_stats.bootstrap((values,), np.mean, n_resamples=200, method="percentile", rng=rng)
    ref = result.confidence_interval
    assert (low, high) == pytest.approx((ref.low, ref.high))
    assert low < mean < high
