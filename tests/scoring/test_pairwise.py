"""The pairwise assertion's pure part: configuration, the seeded order, the judge's choice, the score."""

from __future__ import annotations

import pytest

from evaluations.analysis.pairwise import win_rate
from evaluations.scoring import assertions
from evaluations.scoring import pairwise as pw


@pytest.mark.parametrize(
    "assertion",
    [
        {"type": "pairwise", "against": "teacher"},
        {"type": "pairwise", "against": "baseline", "rubric": "Is it polite?", "weight": 2},
        {"type": "pairwise", "against": "gpt-4o:few-shot@v2", "threshold": 1},
    ],
)
def test_it_accepts_the_three_kinds_of_reference(assertion):
    assert assertions.validate_assertion(assertion) is None


@pytest.mark.parametrize(
    ("assertion", "problem"),
    [
        ({"type": "pairwise"}, "needs 'against'"),
        ({"type": "pairwise", "against": "the other one"}, "needs 'against'"),
        ({"type": "pairwise", "against": ":zero-shot"}, "needs 'against'"),
        ({"type": "pairwise", "against": "teacher", "rubric": ""}, "rubric must be a non-empty text"),
        ({"type": "pairwise", "against": "teacher", "threshold": 2}, "out of range"),
        ({"type": "not-pairwise", "against": "teacher"}, "cannot be negated"),
    ],
)
def test_it_refuses_a_pairwise_assertion_it_cannot_run(assertion, problem):
    assert problem in assertions.validate_assertion(assertion)


def test_a_batch_leaves_the_comparison_pending_not_scored():
    verdict = assertions.evaluate({"type": "pairwise", "against": "teacher"}, assertions.Context(output="x"))
    assert verdict.skipped and verdict.reason == pw.PENDING_REASON


@pytest.mark.parametrize(
    ("reply", "choice"),
    [
        ("A", "A"),
        ("b", "B"),
        ("(B)", "B"),
        ("TIE", "TIE"),
        ("Tie.", "TIE"),
        ("A\nIt is more precise.", "A"),
        ("Answer B is better because it names the capital.", "B"),
        ('{"winner": "B", "reason": "shorter"}', "B"),
        ('{"choice": "tie"}', "TIE"),
        ("Both answers are equally good.", "TIE"),
        ("**A**", "A"),
    ],
)
def test_it_reads_the_judges_choice(reply, choice):
    assert pw.parse_choice(reply) == choice


@pytest.mark.parametrize("reply", ["", "I cannot decide.", "A or B, hard to say"])
def test_a_reply_without_a_clear_choice_is_an_error_not_a_tie(reply):
    with pytest.raises(ValueError, match="no choice"):
        pw.parse_choice(reply)


def test_the_outcome_is_seen_from_the_scored_arm():
    assert pw.outcome("A", scored_first=True) == "win"
    assert pw.outcome("A", scored_first=False) == "loss"
    assert pw.outcome("B", scored_first=False) == "win"
    assert pw.outcome("TIE", scored_first=True) == "tie"
    assert [pw.verdict(o, threshold=None, reference="x")[:2] for o in ("win", "tie", "loss")] == [
        (1.0, True),
        (0.5, True),
        (0.0, False),
    ]


def test_the_order_is_deterministic_per_pair_and_differs_between_pairs():
    seed = pw.order_seed(run_id=7, case_key="c1", sample=0, arm_id=3, reference_arm_id=4)
    assert seed == pw.order_seed(run_id=7, case_key="c1", sample=0, arm_id=3, reference_arm_id=4)
    assert seed != pw.order_seed(run_id=7, case_key="c1", sample=1, arm_id=3, reference_arm_id=4)
    assert seed != pw.order_seed(run_id=7, case_key="c1", sample=0, arm_id=4, reference_arm_id=3)
    assert pw.scored_shown_first(seed, "scored-first") is True
    assert pw.scored_shown_first(seed, "reference-first") is False
    with pytest.raises(ValueError):
        pw.scored_shown_first(seed, "sometimes")


@pytest.mark.parametrize(
    ("order", "expected"), [("random", None), ("scored-first", 1.0), ("reference-first", 0.0)]
)
def test_a_judge_that_always_prefers_the_first_answer_is_cancelled_by_the_random_order(order, expected):
    """The acceptance case: a judge with pure position bias ("A", always) between equal answers."""
    outcomes = []
    for i in range(200):
        seed = pw.order_seed(run_id=1, case_key=f"c{i}", sample=0, arm_id=1, reference_arm_id=2)
        outcomes.append(pw.SCORES[pw.outcome("A", pw.scored_shown_first(seed, order))])
    rate = win_rate(outcomes)
    if expected is None:
        assert 0.4 <= rate["rate"] <= 0.6 and rate["verdict"] == "parity"
    else:
        assert rate["rate"] == expected and rate["verdict"] == ("wins" if expected else "loses")
