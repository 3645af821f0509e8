import numpy as np
import pytest

from evaluations.analysis.costs import compute_cost, token_cost
from evaluations.analysis.stats import bootstrap_mean_ci, wilson_ci
from evaluations.analysis.summary import Row, summarise


def row(case_id=1, *, score=1.0, passed=True, error=False, cost=0.001, pt=100, ct=20, latency=200.0, **kw):
    return Row(
        case_id=case_id,
        score=score,
        passed=passed,
        error=error,
        cost=cost,
        prompt_tokens=pt,
        completion_tokens=ct,
        latency_ms=latency,
        **kw,
    )


def generation(rows, monthly_volume=1000):
    return summarise(rows, task_type="generation", labels=[], monthly_volume=monthly_volume)


# --- quality ----------------------------------------------------------------------------------------


def test_mean_score_and_ci_come_from_the_scored_rows():
    scores = [0.2, 0.4, 0.6, 0.8]
    s = generation([row(i, score=v) for i, v in enumerate(scores)])

    mean, low, high = bootstrap_mean_ci(scores)  # a bootstrap interval over cases
    assert s["mean_score"] == pytest.approx(mean)
    assert s["score_ci"] == pytest.approx([low, high])
    assert s["scored"] == 4


def test_error_rows_count_as_zero_only_when_the_rows_say_so():
    good = [row(1, score=1.0), row(2, score=1.0)]

    as_zero = generation([*good, row(3, score=0.0, passed=False, error=True, cost=0.0)])
    unscored = generation([*good, row(3, score=None, passed=None, error=True, cost=0.0)])

    assert as_zero["mean_score"] == pytest.approx(2 / 3)
    assert as_zero["scored"] == 3
    assert unscored["mean_score"] == 1.0
    assert unscored["scored"] == 2


def test_unscored_rows_are_left_out_of_scores_and_pass_rate():
    s = generation([row(1, score=1.0, passed=True), row(2, score=0.0, passed=False, scored=False)])

    assert s["mean_score"] == 1.0
    assert s["scored"] == 1
    assert s["pass_rate"] == 1.0
    assert s["results"] == 2


def test_pass_rate_is_over_judged_rows_with_a_wilson_interval():
    rows = [
        row(1, passed=True),
        row(2, passed=True),
        row(3, passed=False),
        row(4, passed=True),
        row(5, passed=None),  # no pass/fail criterion: not judged
    ]
    s = generation(rows)

    _, low, high = wilson_ci(3, 4)
    assert s["pass_rate"] == pytest.approx(0.75)
    assert s["pass_ci"] == pytest.approx([low, high])


def test_counts_cases_results_and_errors():
    rows = [row(1), row(1), row(2), row(3, score=None, passed=None, error=True)]
    s = generation(rows)
    assert (s["cases"], s["results"], s["errors"]) == (3, 4, 1)


def test_no_rows_gives_empty_aggregates():
    s = generation([])

    assert s["mean_score"] is None and s["score_ci"] is None
    assert s["pass_rate"] is None and s["pass_ci"] is None
    assert s["cost_per_request"] is None and s["monthly_cost"] is None
    assert s["latency_p50_ms"] is None
    assert s["prompt_tokens_mean"] is None
    assert (s["cases"], s["results"], s["errors"], s["cost_total"]) == (0, 0, 0, 0)


# --- cost, tokens, latency --------------------------------------------------------------------------


def test_cost_per_request_is_over_non_error_rows_and_scales_to_monthly_cost():
    rows = [
        row(1, cost=0.002),
        row(2, cost=0.004),
        row(3, score=None, passed=None, error=True, cost=0.0, pt=None, ct=None, latency=None),
    ]
    s = generation(rows, monthly_volume=10_000)

    assert s["cost_total"] == pytest.approx(0.006)
    assert s["cost_per_request"] == pytest.approx(0.003)
    assert s["monthly_cost"] == pytest.approx(30.0)


def test_cost_per_request_is_none_when_every_call_failed():
    s = generation([row(1, score=None, passed=None, error=True, cost=0.0)])
    assert s["cost_per_request"] is None
    assert s["monthly_cost"] is None
    assert s["errors"] == 1


def test_token_means_and_latency_percentiles_ignore_error_rows():
    rows = [row(i, pt=100 * i, ct=10 * i, latency=float(100 * i)) for i in range(1, 6)]
    rows.append(row(99, error=True, score=None, passed=None, pt=9999, ct=9999, latency=60_000.0))
    s = generation(rows)

    assert s["prompt_tokens_mean"] == pytest.approx(300.0)
    assert s["completion_tokens_mean"] == pytest.approx(30.0)
    assert s["latency_p50_ms"] == pytest.approx(300.0)
    assert s["latency_p95_ms"] == pytest.approx(float(np.percentile([100, 200, 300, 400, 500], 95)))


def test_missing_token_counts_and_latencies_are_skipped_not_zeroed():
    s = generation([row(1, pt=100, ct=None, latency=None), row(2, pt=None, ct=40, latency=250.0)])

    assert s["prompt_tokens_mean"] == 100.0
    assert s["completion_tokens_mean"] == 40.0
    assert s["latency_p50_ms"] == 250.0


# --- classification ---------------------------------------------------------------------------------

LABELS = ["pos", "neg", "neu"]


def labelled(case_id, expected, predicted, **kw):
    score = 1.0 if expected == predicted else 0.0
    return row(
        case_id, score=score, passed=bool(score), expected_label=expected, predicted_label=predicted, **kw
    )


def test_classification_fills_accuracy_and_macro_f1():
    rows = [
        labelled(1, "pos", "pos"),
        labelled(2, "pos", "neg"),
        labelled(3, "neg", "neg"),
        labelled(4, "neg", None),
        labelled(5, "neu", "neu"),
    ]
    s = summarise(rows, task_type="classification", labels=LABELS, monthly_volume=1)

    assert s["accuracy"] == pytest.approx(3 / 5)
    assert s["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)


def test_classification_metrics_skip_unscored_and_unlabelled_rows():
    rows = [
        labelled(1, "pos", "pos"),
        labelled(2, "neg", "pos", scored=False),
        row(3, expected_label=None, predicted_label="neg"),
    ]
    s = summarise(rows, task_type="classification", labels=LABELS, monthly_volume=1)

    assert s["accuracy"] == 1.0


def test_accuracy_and_macro_f1_stay_empty_for_other_task_types():
    rows = [labelled(1, "pos", "pos"), labelled(2, "neg", "pos")]
    for task_type in ("generation", "json"):
        s = summarise(rows, task_type=task_type, labels=LABELS, monthly_volume=1)
        assert s["accuracy"] is None
        assert s["macro_f1"] is None


# --- costs ------------------------------------------------------------------------------------------


def test_token_cost_prices_input_and_output_per_million_tokens():
    assert token_cost(1000, 500, 2.5, 10.0) == pytest.approx((1000 * 2.5 + 500 * 10.0) / 1_000_000)
    assert token_cost(1_000_000, 1_000_000, 0.15, 0.6) == pytest.approx(0.75)


def test_token_cost_treats_missing_token_counts_as_zero():
    assert token_cost(None, 200, 1.0, 5.0) == pytest.approx(0.001)
    assert token_cost(None, None, 1.0, 5.0) == 0.0


def test_compute_cost_prices_seconds_at_an_hourly_rate():
    assert compute_cost(90, 1.2) == pytest.approx(0.03)
    assert compute_cost(3600, 0.5) == pytest.approx(0.5)
    assert compute_cost(0, 2.0) == 0.0
