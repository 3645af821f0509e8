"""Win rates from pairwise judgements: the rate over cases, its Wilson CI with ties, parity."""

from __future__ import annotations

import pytest

from evaluations.analysis.pairwise import case_outcomes, summarise, verdict, win_rate


def test_ties_count_as_half_a_win():
    rate = win_rate([1, 0.5, 0.5, 0])
    assert rate["rate"] == 0.5
    assert (rate["wins"], rate["ties"], rate["losses"], rate["n"]) == (1, 2, 1, 4)


def test_the_interval_contains_the_rate_and_stays_within_0_and_1():
    for values in ([1.0] * 5, [0.0] * 5, [1, 0, 0.5] * 10):
        rate = win_rate(values)
        low, high = rate["ci"]
        assert 0.0 <= low <= rate["rate"] <= high <= 1.0
    assert win_rate([1.0] * 5)["ci"][0] < 1.0  # few cases: the interval keeps a width


def test_parity_when_the_ci_contains_one_half_else_wins_or_loses():
    assert win_rate([1, 0] * 20)["verdict"] == "parity"
    assert win_rate([1] * 30 + [0] * 10)["verdict"] == "wins"
    assert win_rate([0] * 30 + [0.5] * 10)["verdict"] == "loses"
    assert win_rate([1, 1, 0])["verdict"] == "parity"  # too few cases to tell
    assert verdict(0.5, 0.9) == "parity" and verdict(None, None) is None


def test_more_cases_narrow_the_interval():
    small = win_rate([1, 1, 0] * 5)["ci"]
    large = win_rate([1, 1, 0] * 100)["ci"]
    assert large[1] - large[0] < small[1] - small[0]
    assert win_rate([1, 1, 0] * 100)["verdict"] == "wins"


def test_a_case_with_several_samples_counts_once():
    outcomes = case_outcomes([("c1", 1.0), ("c1", 0.0), ("c2", 1.0)])
    assert outcomes == {"c1": 0.5, "c2": 1.0}
    assert win_rate(outcomes)["n"] == 2


def test_no_cases_gives_no_rate():
    assert win_rate([]) == {
        "n": 0, "wins": 0, "ties": 0, "losses": 0, "rate": None, "ci": [None, None], "verdict": None
    }  # fmt: skip


def test_an_outcome_outside_0_1_is_refused():
    with pytest.raises(ValueError):
        win_rate([1.5])


def test_it_summarises_an_arms_checks_by_reference():
    def check(**details):
        return {
            "type": "pairwise",
            "pairwise": {"against": "teacher", "reference": "the teacher t:plain"} | details,
        }

    rows = [
        (1, {"assertions": [{"type": "similar"}, check(outcome="win")]}),
        (2, {"assertions": [check(outcome="tie")]}),
        (3, {"assertions": [check(error="judge down")]}),
        (4, {"assertions": [check(not_applicable="no output")]}),
        (5, {"error": "timeout"}),
    ]
    got = summarise(rows)["teacher"]
    assert got["rate"] == 0.75 and got["n"] == 2
    assert (got["errors"], got["not_applicable"], got["reference"]) == (1, 1, "the teacher t:plain")


def test_the_reference_arms_own_checks_are_left_out():
    rows = [(1, {"assertions": [{"pairwise": {"against": "teacher", "is_reference": True}}]})]
    assert summarise(rows) == {}
