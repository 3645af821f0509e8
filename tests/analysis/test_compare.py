import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from evaluations.analysis.compare import (
    BETTER,
    NO_DIFFERENCE,
    WORSE,
    compare_passes,
    compare_scores,
    newcombe_paired_ci,
)

N = 300


def arm(n_right, seed, n=N):
    """n cases, exactly n_right of them right (which ones depends on the seed)."""
    right = set(np.random.default_rng(seed).choice(n, size=n_right, replace=False).tolist())
    return {f"case-{i}": i in right for i in range(n)}


def as_scores(passes):
    return {k: 1.0 if v else 0.0 for k, v in passes.items()}


def wrong_on(wrong, n=N):
    return {f"case-{i}": i not in wrong for i in range(n)}


# --- acceptance: a truly better arm, and two equally good arms ----------------------------------------


def test_90_vs_60_percent_right_is_better_with_p_under_001():
    a, b = arm(180, seed=1), arm(270, seed=2)  # 60% vs 90% right, independent cases

    passes = compare_passes(a, b)
    scores = compare_scores(as_scores(a), as_scores(b), n_resamples=500)

    for c in (passes, scores):
        assert c.n == N
        assert (c.mean_a, c.mean_b, c.diff) == pytest.approx((0.6, 0.9, 0.3))
        assert c.verdict == BETTER
        assert c.p_value < 0.01
        assert c.diff_ci[0] > 0 and c.diff_ci[0] < 0.3 < c.diff_ci[1]
        assert c.needed_cases is None


def test_the_other_way_round_is_worse():
    a, b = arm(180, seed=1), arm(270, seed=2)
    assert compare_passes(b, a).verdict == WORSE
    assert compare_scores(as_scores(b), as_scores(a), n_resamples=200).verdict == WORSE


def test_same_accuracy_on_different_cases_is_no_significant_difference():
    a = wrong_on(set(range(0, 90)))  # 70% right
    b = wrong_on(set(range(60, 150)))  # 70% right, half of the misses elsewhere

    for c in (compare_passes(a, b), compare_scores(as_scores(a), as_scores(b), n_resamples=200)):
        assert c.verdict == NO_DIFFERENCE
        assert c.diff == 0
        assert c.p_value > 0.05
        assert c.diff_ci[0] < 0 < c.diff_ci[1]
        assert c.needed_cases is None  # no observed difference to detect


def test_slightly_different_accuracy_gives_a_needed_sample_size():
    a = wrong_on(set(range(0, 90)))  # 70% right
    b = wrong_on(set(range(100, 184)))  # 72% right

    passes = compare_passes(a, b)
    scores = compare_scores(as_scores(a), as_scores(b), n_resamples=200)

    for c in (passes, scores):
        assert c.verdict == NO_DIFFERENCE
        assert c.diff == pytest.approx(0.02)
        assert c.needed_cases > N
    # Both approximations agree on the order of magnitude (~11,000 pairs).
    assert 10_000 < passes.needed_cases < 13_000
    assert 10_000 < scores.needed_cases < 13_000


# --- scores: reference values ----------------------------------------------------------------------------


def score_arms(seed=0, n=80, shift=0.05):
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.3, 0.8, size=n)
    a = {i: float(x) for i, x in enumerate(base)}
    b = {i: float(np.clip(x + shift + rng.normal(0, 0.15), 0, 1)) for i, x in enumerate(base)}
    return a, b


def test_scores_match_scipy_wilcoxon_and_bootstrap():
    a, b = score_arms()
    d = np.array([b[k] - a[k] for k in a])
    p_ref = sps.wilcoxon(d, zero_method="wilcox").pvalue
    ci_ref = sps.bootstrap(
        (d,), np.mean, n_resamples=500, method="BCa", vectorized=True, rng=np.random.default_rng(5)
    ).confidence_interval

    c = compare_scores(a, b, seed=5, n_resamples=500)

    assert c.metric == "score" and c.test == "wilcoxon"
    assert c.n == 80
    assert c.mean_a == pytest.approx(np.mean(list(a.values())))
    assert c.mean_b == pytest.approx(np.mean(list(b.values())))
    assert c.diff == pytest.approx(d.mean())
    assert c.p_value == pytest.approx(p_ref)
    assert c.diff_ci == (pytest.approx(ci_ref.low), pytest.approx(ci_ref.high))


def test_scores_needed_cases_follows_the_normal_approximation():
    a, b = score_arms(seed=3, n=30, shift=0.01)
    d = np.array([b[k] - a[k] for k in a])
    alpha = 0.05
    z = sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(0.8)
    expected = math.ceil((z * d.std(ddof=1) / abs(d.mean())) ** 2)

    c = compare_scores(a, b, alpha=alpha, n_resamples=200)

    assert c.verdict == NO_DIFFERENCE
    assert c.needed_cases == expected


def test_scores_alpha_decides_the_verdict():
    a, b = score_arms(seed=4, n=40, shift=0.04)
    c = compare_scores(a, b, n_resamples=200)
    assert 0.01 < c.p_value < 0.05  # the premise
    assert c.verdict == BETTER
    strict = compare_scores(a, b, alpha=0.01, n_resamples=200)
    assert strict.verdict == NO_DIFFERENCE
    assert strict.needed_cases > 40


def test_scores_use_only_cases_present_in_both_arms():
    a = {"x": 0.2, "y": 0.4, "z": 0.9, "only-a": 1.0, "none-b": 0.5}
    b = {"x": 0.5, "y": 0.4, "z": 1.0, "only-b": 0.0, "none-b": None}
    c = compare_scores(a, b, n_resamples=200)
    assert c.n == 3
    assert c.mean_a == pytest.approx(0.5)
    assert c.mean_b == pytest.approx(1.9 / 3)
    assert c.diff == pytest.approx((0.3 + 0.0 + 0.1) / 3)
    assert c.p_value == pytest.approx(sps.wilcoxon([0.3, 0.0, 0.1], zero_method="wilcox").pvalue)


def test_scores_degenerate_inputs():
    empty = compare_scores({}, {"x": 1.0})
    assert (empty.n, empty.diff, empty.p_value, empty.verdict) == (0, None, None, NO_DIFFERENCE)
    assert empty.diff_ci == (None, None)

    same = compare_scores({"x": 0.5, "y": 0.7}, {"x": 0.5, "y": 0.7})
    assert (same.diff, same.diff_ci, same.p_value, same.needed_cases) == (0.0, (0.0, 0.0), 1.0, None)
    assert same.verdict == NO_DIFFERENCE

    one = compare_scores({"x": 0.2}, {"x": 0.9})
    assert one.n == 1 and one.diff == pytest.approx(0.7)
    assert one.diff_ci == (pytest.approx(0.7), pytest.approx(0.7))
    assert one.verdict == NO_DIFFERENCE and one.needed_cases is None  # no spread to size a study on

    constant_shift = compare_scores(dict.fromkeys(range(10), 0.5), dict.fromkeys(range(10), 0.6))
    assert constant_shift.verdict == BETTER  # every case improved (exact Wilcoxon p = 0.002)


def test_scores_deterministic_for_a_seed():
    a, b = score_arms(seed=9)
    first = compare_scores(a, b, seed=1, n_resamples=300)
    assert compare_scores(a, b, seed=1, n_resamples=300) == first
    assert compare_scores(a, b, seed=2, n_resamples=300).diff_ci != first.diff_ci


# --- passes: reference values ----------------------------------------------------------------------------


def test_passes_table_and_mcnemar_exact_match_scipy_binomtest():
    a = wrong_on(set(range(0, 40)), n=100)  # 60% right
    b = wrong_on(set(range(30, 50)), n=100)  # 80% right
    c = compare_passes(a, b)

    # a fails 0-39, b fails 30-49: only_a = b fails & a passes = 40-49, only_b = 0-29.
    assert (c.both_pass, c.only_a, c.only_b, c.neither) == (50, 10, 30, 10)
    assert (c.mean_a, c.mean_b, c.diff) == pytest.approx((0.6, 0.8, 0.2))
    assert c.p_value == pytest.approx(sps.binomtest(30, 40, 0.5).pvalue)
    assert c.test == "mcnemar-exact" and c.metric == "pass"
    assert c.verdict == BETTER


def test_newcombe_interval_matches_the_published_example():
    # Fagerland, Lydersen & Laake (2017), ch. 8: Cavo et al. (2012), table [[59, 6], [16, 80]]:
    # Newcombe square-and-add estimate -0.0621, 95% CI -0.1186 to -0.0046.
    low, high = newcombe_paired_ci(59, 6, 16, 80)
    assert low == pytest.approx(-0.1186, abs=5e-5)
    assert high == pytest.approx(-0.0046, abs=5e-5)

    # The same table as two arms: b passes (59 + 6), a passes (59 + 16).
    keys = range(161)
    a = {k: k < 59 or 65 <= k < 81 for k in keys}
    b = {k: k < 65 for k in keys}
    c = compare_passes(a, b)
    assert (c.both_pass, c.only_b, c.only_a, c.neither) == (59, 6, 16, 80)
    assert c.diff == pytest.approx(-10 / 161)
    assert c.diff_ci == (pytest.approx(low), pytest.approx(high))


def test_newcombe_without_correlation_is_square_and_add_of_wilson_intervals():
    # ad - bc <= n/2 -> phi = 0: the interval combines the two Wilson intervals directly.
    both, only_1, only_2, neither = 10, 10, 5, 5
    n = 30
    p1, p2 = 20 / n, 15 / n
    l1, u1 = sps.binomtest(20, n).proportion_ci(method="wilson")
    l2, u2 = sps.binomtest(15, n).proportion_ci(method="wilson")
    low, high = newcombe_paired_ci(both, only_1, only_2, neither)
    assert low == pytest.approx(p1 - p2 - math.hypot(p1 - l1, u2 - p2))
    assert high == pytest.approx(p1 - p2 + math.hypot(p2 - l2, u1 - p1))


def test_passes_needed_cases_follows_the_mcnemar_formula():
    a = wrong_on(set(range(0, 30)), n=200)
    b = wrong_on(set(range(20, 45)), n=200)  # only_a = 15 (30-44), only_b = 20 (0-19)
    c = compare_passes(a, b)
    assert (c.only_a, c.only_b) == (15, 20)
    p_disc, d = 35 / 200, 5 / 200
    z_a, z_b = sps.norm.ppf(0.975), sps.norm.ppf(0.8)
    expected = math.ceil(((z_a * math.sqrt(p_disc) + z_b * math.sqrt(p_disc - d**2)) / d) ** 2)
    assert c.verdict == NO_DIFFERENCE
    assert c.needed_cases == expected


def test_passes_degenerate_inputs():
    empty = compare_passes({}, {})
    assert (empty.n, empty.p_value, empty.diff_ci, empty.verdict) == (0, None, (None, None), NO_DIFFERENCE)
    assert (empty.both_pass, empty.only_a, empty.only_b, empty.neither) == (0, 0, 0, 0)

    # No discordant pair: p = 1, no difference, but the interval still has a width (n = 20 is little).
    same = compare_passes({i: i % 2 == 0 for i in range(20)}, {i: i % 2 == 0 for i in range(20)})
    assert (same.p_value, same.diff, same.needed_cases, same.verdict) == (1.0, 0.0, None, NO_DIFFERENCE)
    assert same.diff_ci[0] < 0 < same.diff_ci[1]

    all_pass = compare_passes(dict.fromkeys(range(5), True), dict.fromkeys(range(5), True))
    assert all_pass.diff_ci[0] < 0 <= all_pass.diff_ci[1] <= 1
    assert all_pass.p_value == 1.0

    skipped = compare_passes({"x": True, "y": None, "z": False}, {"x": False, "y": True})
    assert skipped.n == 1 and (skipped.only_a, skipped.only_b) == (1, 0)


def test_to_dict_is_json_serialisable():
    c = compare_passes(wrong_on({1, 2}, n=10), wrong_on({3}, n=10))
    d = c.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert set(d) >= {"metric", "n", "mean_a", "mean_b", "diff", "diff_ci", "p_value", "test", "verdict"}
    assert set(d) >= {"needed_cases", "both_pass", "only_a", "only_b", "neither"}
    s = compare_scores(as_scores(wrong_on({1, 2}, n=10)), as_scores(wrong_on({3}, n=10)), n_resamples=100)
    assert json.loads(json.dumps(s.to_dict()))["only_a"] is None
