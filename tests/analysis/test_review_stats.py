from __future__ import annotations

import math

import pytest
from sklearn.metrics import cohen_kappa_score

from evaluations.analysis.review import (
    DISAGREE,
    FAILED,
    FLIPPED,
    LOW_CONFIDENCE,
    REST,
    QueueRow,
    agreement,
    human_label,
    next_in_queue,
    queue_items,
    suggest_threshold,
)


def row(result_id, *, passed, score, case="c1", arm=1, sample=0, position=None, baseline=None):
    return QueueRow(
        result_id=result_id,
        arm_id=arm,
        case_key=case,
        case_position=position if position is not None else int(case[1:]),
        arm_position=arm,
        sample=sample,
        passed=passed,
        score=score,
        baseline_passed=baseline,
    )


# --- queue ---------------------------------------------------------------------------------------------


def test_the_queue_puts_failed_then_flipped_then_disagreeing_then_low_confidence_then_the_rest():
    rows = [
        row(1, passed=True, score=0.99, case="c1"),  # the rest
        row(2, passed=True, score=0.85, case="c2"),  # low confidence (0.05 from 0.8)
        row(3, passed=True, score=0.95, case="c3", baseline=False),  # flipped: failed in the baseline
        row(4, passed=False, score=0.2, case="c4"),  # failed
        row(5, passed=True, score=0.97, case="c5", sample=0),  # samples disagree
        row(6, passed=False, score=0.3, case="c5", sample=1),  # failed and disagree
        row(7, passed=True, score=0.75, case="c7"),  # low confidence, closer (0.05 below... tie)
        row(8, passed=True, score=0.81, case="c8"),  # low confidence, closest
    ]

    items = queue_items(rows, threshold=0.8)

    assert [i.result_id for i in items] == [4, 6, 3, 5, 8, 2, 7, 1]
    assert [i.bucket for i in items] == [FAILED, FAILED, FLIPPED, DISAGREE] + [LOW_CONFIDENCE] * 3 + [REST]
    by_id = {i.result_id: i for i in items}
    assert [r.code for r in by_id[6].reasons] == ["failed", "disagree"]
    assert by_id[6].reasons[1].text == "samples disagree: 1 of 2 pass"
    assert by_id[3].reasons[0].text == "failed in the baseline run, passes here"
    assert "within 0.1 of the pass threshold 0.8" in by_id[8].reasons[0].text
    assert by_id[1].reasons == ()


def test_a_result_that_passed_in_the_baseline_and_fails_here_says_so():
    items = queue_items([row(1, passed=False, score=0.1, baseline=True)], threshold=0.5)

    assert [(r.code, r.text) for r in items[0].reasons] == [
        ("failed", "failed the automatic check (score 0.100)"),
        ("flipped", "passed in the baseline run, fails here"),
    ]


def test_samples_of_different_arms_do_not_disagree_with_each_other():
    rows = [row(1, passed=True, score=1.0, arm=1), row(2, passed=False, score=0.0, arm=2)]

    items = queue_items(rows, threshold=0.5)

    assert [r.code for i in items for r in i.reasons] == ["failed"]


def test_reviewed_results_are_marked_and_next_skips_them_wrapping_round():
    rows = [row(i, passed=False, score=0.0, case=f"c{i}") for i in range(1, 5)]
    items = queue_items(rows, threshold=0.5, reviewed={2})

    assert [i.reviewed for i in items] == [False, True, False, False]
    assert next_in_queue(items, None).result_id == 1
    assert next_in_queue(items, 1).result_id == 3  # 2 is reviewed
    assert next_in_queue(items, 4).result_id == 1  # wraps round: skipped ones come back
    assert next_in_queue(items, 999).result_id == 1


def test_next_is_none_when_everything_is_reviewed_and_the_last_one_returns_itself():
    rows = [row(1, passed=False, score=0.0), row(2, passed=True, score=1.0, case="c2")]

    assert next_in_queue(queue_items(rows, threshold=0.5, reviewed={1, 2}), 1) is None
    assert next_in_queue(queue_items(rows, threshold=0.5, reviewed={2}), 1).result_id == 1


def test_ten_thousand_rows_are_ordered_by_bucket():
    """Every row of a large run gets a place in the queue, in bucket order."""
    rows = [
        row(i, passed=i % 3 != 0, score=(i % 100) / 100, case=f"c{i // 2}", sample=i % 2, baseline=i % 7 == 0)
        for i in range(10_000)
    ]
    items = queue_items(rows, threshold=0.8)

    assert len(items) == 10_000
    buckets = [i.bucket for i in items]
    assert buckets == sorted(buckets)


# --- agreement -----------------------------------------------------------------------------------------


def test_human_labels_of_verdicts():
    assert [human_label(v) for v in ("correct", "incorrect", "corrected", "comment")] == [
        True,
        False,
        False,
        None,
    ]


def test_agreement_matches_sklearn_and_counts_the_confusion():
    pairs = [(True, True)] * 6 + [(True, False)] * 2 + [(False, True)] * 1 + [(False, False)] * 3

    a = agreement(pairs)

    assert (a.count, a.agreed) == (12, 9)
    assert a.percent == pytest.approx(75.0)
    expected = cohen_kappa_score([h for h, _ in pairs], [x for _, x in pairs])
    assert a.kappa == pytest.approx(expected)
    assert a.confusion == [[6, 2], [1, 3]]
    assert a.kappa_note == ""


def test_kappa_is_undefined_when_everything_has_one_label():
    a = agreement([(True, True)] * 4)

    assert a.kappa is None
    assert a.percent == 100.0
    assert "undefined" in a.kappa_note and "all 4" in a.kappa_note


def test_kappa_is_zero_not_undefined_when_only_the_reviewers_use_one_label():
    a = agreement([(True, True), (True, False)])

    assert a.kappa == pytest.approx(0.0)
    assert not math.isnan(a.kappa)


def test_agreement_of_nothing():
    a = agreement([])

    assert (a.count, a.percent, a.kappa) == (0, None, None)
    assert "no reviewed result" in a.kappa_note


# --- threshold -----------------------------------------------------------------------------------------


def test_the_suggested_threshold_separates_the_reviewers_labels():
    pairs = [(0.95, True), (0.9, True), (0.72, True), (0.7, False), (0.5, False), (0.3, False)]

    t = suggest_threshold(pairs, current=0.8)

    assert t.available
    assert 0.7 < t.threshold <= 0.72
    assert t.threshold == 0.71  # halfway between 0.70 and 0.72, and rounding changes nothing
    assert t.youden_j == pytest.approx(1.0)
    assert t.percent == 100.0
    assert t.current_percent == pytest.approx(100 * 5 / 6)
    assert (t.count, t.positives, t.negatives) == (6, 3, 3)
    assert t.differs


def test_the_threshold_maximises_youden_j_on_overlapping_scores():
    pairs = [(0.9, True), (0.8, True), (0.6, False), (0.65, True), (0.55, False), (0.7, False), (0.4, False)]

    t = suggest_threshold(pairs, current=0.5)

    # Cut at 0.8: tpr 2/3, fpr 0 -> J 0.667; at 0.65: tpr 1, fpr 1/4 -> J 0.75 (the best).
    assert t.youden_j == pytest.approx(0.75)
    assert [s >= t.threshold for s, _ in pairs] == [True, True, False, True, False, True, False]


def test_no_threshold_without_both_labels_says_what_is_needed():
    only_pass = suggest_threshold([(0.9, True), (0.8, True)], current=0.8)
    nothing = suggest_threshold([], current=0.8)

    assert not only_pass.available
    assert only_pass.needed.endswith("review at least 1 more result as incorrect or corrected")
    assert nothing.needed.endswith(
        "at least 1 more result as correct and 1 more result as incorrect or corrected"
    )
    assert nothing.current_percent is None
