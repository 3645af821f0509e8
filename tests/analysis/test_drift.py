"""Drift statistics: the Mann-Kendall trend test, the classifier two-sample test, centroid distance,
shifts of means, and the verdict that combines them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from evaluations.analysis.drift import (
    AUC_DRIFT,
    DRIFT_ALPHA,
    centroid_distance,
    classifier_two_sample,
    mann_kendall,
    output_drift,
    shift,
)

DIM = 64


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def cloud(n: int, *, seed: int, centre: np.ndarray | None = None, spread: float = 1.0) -> np.ndarray:
    """n unit vectors scattered around a centre (the same centre for every seed by default)."""
    if centre is None:
        centre = np.random.default_rng(99).normal(size=DIM)
    return unit(centre + spread * np.random.default_rng(seed).normal(size=(n, DIM)))


# --- Mann-Kendall ----------------------------------------------------------------------------------


def test_a_steady_fall_is_a_downward_trend_with_sens_slope():
    t = mann_kendall([0.90 - 0.02 * i for i in range(10)])
    assert t.direction == "down" and t.s == -45 and t.tau == pytest.approx(-1.0)
    assert t.slope == pytest.approx(-0.02) and t.p_value < 0.001


def test_a_steady_rise_is_an_upward_trend():
    t = mann_kendall([1, 2, 3, 5, 4, 6, 7, 8, 9, 10])
    assert t.direction == "up" and t.s == 43 and t.p_value < 0.01 and t.slope == pytest.approx(1.0)


def test_it_matches_the_textbook_p_value_without_ties():
    # n=10 strictly increasing: var(S) = 10*9*25/18 = 125, z = (45-1)/sqrt(125).
    t = mann_kendall(list(range(10)))
    assert t.var_s == pytest.approx(125.0)
    assert t.p_value == pytest.approx(2 * sps.norm.sf(44 / math.sqrt(125)))


def test_ties_shrink_the_variance():
    values = [1, 1, 2, 2, 2, 3, 4, 4, 5, 6]  # tie groups of 2, 3, 2
    t = mann_kendall(values)
    ties = 2 * 1 * 9 + 3 * 2 * 11 + 2 * 1 * 9
    assert t.var_s == pytest.approx((10 * 9 * 25 - ties) / 18)
    # S counts only strict pairs: the tied pairs add nothing.
    expected_s = sum(np.sign(values[j] - values[i]) for i in range(10) for j in range(i + 1, 10))
    assert t.s == expected_s and t.direction == "up"


def test_a_constant_series_has_no_trend():
    t = mann_kendall([0.8] * 14)
    assert t.direction == "none" and t.p_value == 1.0 and t.slope == 0.0


def test_noise_without_a_trend_is_not_a_trend():
    values = np.random.default_rng(3).normal(0.8, 0.02, size=14)
    assert mann_kendall(values).direction == "none"


@pytest.mark.parametrize("values", [[], [0.5], [0.9, 0.8], [0.9, 0.8, 0.7]])
def test_fewer_than_four_points_give_no_test(values):
    t = mann_kendall(values)
    assert t.p_value is None and t.direction == "none"


def test_missing_values_are_dropped():
    t = mann_kendall([0.9, None, 0.85, float("nan"), 0.8, 0.75, 0.7, 0.65])
    assert t.n == 6 and t.direction == "down"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=-1e3, max_value=1e3, allow_nan=False), min_size=4, max_size=30))
def test_reversing_a_series_mirrors_its_trend(values):
    forward, backward = mann_kendall(values), mann_kendall(values[::-1])
    assert forward.s == -backward.s
    assert forward.p_value == pytest.approx(backward.p_value)
    mirror = {"up": "down", "down": "up", "none": "none"}
    assert mirror[forward.direction] == backward.direction
    assert 0.0 <= forward.p_value <= 1.0 and -1.0 <= forward.tau <= 1.0


# --- classifier two-sample test --------------------------------------------------------------------


def test_identical_samples_are_never_a_false_alarm():
    a = cloud(200, seed=1)
    t = classifier_two_sample(a, a.copy())
    assert t.auc <= 0.5 and t.p_value > 0.5


def test_two_samples_of_one_distribution_are_indistinguishable():
    t = classifier_two_sample(cloud(200, seed=1), cloud(200, seed=2))
    assert abs(t.auc - 0.5) < 0.1 and t.p_value > DRIFT_ALPHA


def test_a_shifted_distribution_is_told_apart():
    centre = np.random.default_rng(99).normal(size=DIM)
    moved = centre + 0.5 * np.random.default_rng(7).normal(size=DIM)
    t = classifier_two_sample(cloud(200, seed=1), cloud(200, seed=2, centre=moved))
    assert t.auc > 0.9 and t.p_value < 1e-10 and t.folds == 5


def test_it_is_deterministic_for_a_seed():
    a, b = cloud(60, seed=1), cloud(60, seed=2, spread=1.3)
    assert classifier_two_sample(a, b, seed=4) == classifier_two_sample(a, b, seed=4)


def test_small_samples_use_fewer_folds_and_tiny_ones_give_no_auc():
    centre = np.random.default_rng(99).normal(size=DIM)
    t = classifier_two_sample(cloud(3, seed=1), cloud(50, seed=2, centre=-centre))
    assert t.auc is None and t.p_value is None and t.folds == 0
    t = classifier_two_sample(cloud(4, seed=1), cloud(4, seed=2, centre=-centre))
    assert t.folds == 4 and t.auc == pytest.approx(1.0)


def test_constant_features_score_alike():
    t = classifier_two_sample(np.ones((10, 3)), np.ones((10, 3)))
    assert t.auc <= 0.5 and t.p_value > DRIFT_ALPHA


def test_one_dimensional_samples_work():
    rng = np.random.default_rng(0)
    t = classifier_two_sample(rng.normal(0, 1, 100), rng.normal(3, 1, 100))
    assert t.auc > 0.95


# --- centroid distance -----------------------------------------------------------------------------


def test_centroid_distance_is_zero_for_the_same_centroid_and_one_for_orthogonal_ones():
    a = np.array([[1.0, 0.0], [1.0, 0.0]])
    assert centroid_distance(a, a) == pytest.approx(0.0)
    assert centroid_distance(a, np.array([[0.0, 1.0]])) == pytest.approx(1.0)
    assert centroid_distance(a, np.array([[-1.0, 0.0]])) == pytest.approx(2.0)
    assert centroid_distance(a, np.zeros((3, 2))) == 0.0
    with pytest.raises(ValueError, match="at least one vector"):
        centroid_distance(a, np.zeros((0, 2)))


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=0, max_value=10_000), st.floats(min_value=0.1, max_value=10))
def test_centroid_distance_is_symmetric_scale_free_and_bounded(seed, scale):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(5, 4)), rng.normal(size=(7, 4))
    d = centroid_distance(a, b)
    assert 0.0 <= d <= 2.0
    assert centroid_distance(b, a) == pytest.approx(d)
    assert centroid_distance(a * scale, b) == pytest.approx(d, abs=1e-9)


# --- shifts ----------------------------------------------------------------------------------------


def test_a_fourfold_length_is_a_significant_shift():
    rng = np.random.default_rng(1)
    s = shift(rng.normal(50, 5, 100), rng.normal(200, 20, 100))
    assert s.relative_change == pytest.approx(3.0, abs=0.1) and s.fold == pytest.approx(4.0, abs=0.1)
    assert s.p_value < 1e-10 and s.significant


def test_equal_values_are_no_shift():
    s = shift([10, 10, 10], [10, 10, 10])
    assert s.relative_change == 0.0 and s.p_value == 1.0 and not s.significant


def test_a_small_significant_change_is_not_a_drift_sized_shift():
    rng = np.random.default_rng(2)
    s = shift(rng.normal(100, 5, 2000), rng.normal(110, 5, 2000))
    assert s.p_value < 1e-10 and s.fold < 1.5 and not s.significant


def test_shifts_ignore_missing_values_and_handle_a_zero_baseline():
    s = shift([None, 1.0, 3.0], [2.0, None, 6.0])
    assert (s.n_baseline, s.n_current, s.baseline_mean, s.current_mean) == (2, 2, 2.0, 4.0)
    zero = shift([0, 0, 0], [1, 2, 3])
    assert zero.relative_change is None and math.isinf(zero.fold)
    assert zero.to_dict()["fold"] is None
    empty = shift([], [1.0])
    assert empty.baseline_mean is None and empty.p_value is None and not empty.significant


# --- the verdict -----------------------------------------------------------------------------------


def metrics(n: int, *, chars: float, seed: int, latency: float = 100.0) -> dict[str, list[float]]:
    rng = np.random.default_rng(seed)
    length = rng.normal(chars, chars / 10, n).clip(1)
    return {
        "output_chars": length.tolist(),
        "completion_tokens": (length / 4).tolist(),
        "latency_ms": rng.normal(latency, 10, n).tolist(),
        "cost": (length * 1e-6).tolist(),
    }


def test_identical_outputs_do_not_drift():
    a = cloud(100, seed=1)
    m = metrics(100, chars=40, seed=1)
    report = output_drift(
        baseline_embeddings=a, current_embeddings=a.copy(), baseline_metrics=m, current_metrics=m,
        inputs_same=True, suite_versions=(1, 1),
    )  # fmt: skip
    assert not report.drifted and report.severity == "none" and report.reasons == []
    assert report.centroid_distance == pytest.approx(0.0, abs=1e-9)
    d = report.to_dict()
    assert d["drifted"] is False and d["auc"] <= 0.5


def test_near_identical_outputs_do_not_drift():
    a = cloud(100, seed=1)
    b = a.copy()
    b[:3] = cloud(3, seed=5)  # three answers reworded
    base, cur = metrics(100, chars=40, seed=1), metrics(100, chars=40, seed=1)
    cur["output_chars"][:3] = [44, 38, 41]
    report = output_drift(
        baseline_embeddings=a, current_embeddings=b, baseline_metrics=base, current_metrics=cur,
        inputs_same=True, suite_versions=(1, 1),
    )  # fmt: skip
    assert not report.drifted


def test_answers_four_times_longer_with_the_same_inputs_are_a_silent_model_update():
    centre = np.random.default_rng(99).normal(size=DIM)
    verbose = centre + 0.4 * np.random.default_rng(8).normal(size=DIM)
    report = output_drift(
        baseline_embeddings=cloud(80, seed=1),
        current_embeddings=cloud(80, seed=2, centre=verbose),
        baseline_metrics=metrics(80, chars=40, seed=1),
        current_metrics=metrics(80, chars=160, seed=2),
        inputs_same=True,
        suite_versions=(3, 3),
        mean_scores=(0.90, 0.905),
    )
    assert report.drifted and report.severity == "critical" and report.silent_update_suspected
    text = " ".join(report.reasons)
    assert "AUC 0.9" in text and "Output length went from 39.7 chars to 160.7 chars" in text
    assert "(x4.0, p < 0.0001)" in text and "Cost per request went from $0.0000397 to $0.000161" in text
    assert "stable, so the scores alone would not show this drift" in text
    assert "signature of a silent model update" in text
    d = report.to_dict()
    assert d["shifts"]["output_chars"]["significant"] is True and d["auc"] > AUC_DRIFT


def test_length_alone_is_enough_even_when_embeddings_match():
    a = cloud(60, seed=1)
    report = output_drift(
        baseline_embeddings=a, current_embeddings=a.copy(),
        baseline_metrics=metrics(60, chars=40, seed=1), current_metrics=metrics(60, chars=100, seed=2),
        inputs_same=True,
    )  # fmt: skip
    assert report.drifted and report.severity == "critical"
    assert not any("classifier" in r for r in report.reasons)


def test_a_changed_suite_version_says_the_inputs_changed_too():
    centre = np.random.default_rng(99).normal(size=DIM)
    report = output_drift(
        baseline_embeddings=cloud(80, seed=1), current_embeddings=cloud(80, seed=2, centre=-centre),
        baseline_metrics={}, current_metrics={}, inputs_same=False, suite_versions=(1, 2),
    )  # fmt: skip
    assert report.drifted and not report.silent_update_suspected
    text = " ".join(report.reasons)
    assert "suite version changed too (v1 to v2)" in text and "silent model update" not in text


def test_a_changed_endpoint_is_not_called_a_silent_update():
    centre = np.random.default_rng(99).normal(size=DIM)
    report = output_drift(
        baseline_embeddings=cloud(80, seed=1), current_embeddings=cloud(80, seed=2, centre=-centre),
        baseline_metrics={}, current_metrics={}, inputs_same=True, endpoint_changed=True,
    )  # fmt: skip
    assert report.drifted and not report.silent_update_suspected
    assert any("endpoint's configuration" in r for r in report.reasons)


def test_slower_or_dearer_answers_alone_are_not_output_drift():
    a = cloud(100, seed=1)
    base = metrics(100, chars=40, seed=1, latency=100)
    cur = metrics(100, chars=40, seed=1, latency=400)
    cur["cost"] = [c * 3 for c in cur["cost"]]  # a new price
    report = output_drift(
        baseline_embeddings=a, current_embeddings=a.copy(), baseline_metrics=base, current_metrics=cur,
        inputs_same=True,
    )  # fmt: skip
    assert not report.drifted and report.severity == "none"
    assert report.shifts["latency_ms"].significant and report.shifts["cost"].significant
    assert any(r.startswith("Latency went from 99.3 ms to 399.3 ms") for r in report.reasons)


def test_too_few_outputs_give_no_classifier_verdict():
    centre = np.random.default_rng(99).normal(size=DIM)
    report = output_drift(
        baseline_embeddings=cloud(3, seed=1), current_embeddings=cloud(3, seed=2, centre=-centre),
        baseline_metrics={}, current_metrics={}, inputs_same=True,
    )  # fmt: skip
    assert not report.drifted and report.two_sample.auc is None
    assert report.to_dict()["auc"] is None
