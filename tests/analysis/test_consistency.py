import statistics
from types import SimpleNamespace

import numpy as np
import pytest

from evaluations.analysis.consistency import (
    SampleRow,
    arm_consistency,
    case_consistency,
    normalise_answer,
)


def rows(*answers, scores=None, passed=None, format_ok=None):
    n = len(answers)
    scores = scores or [None] * n
    passed = passed or [None] * n
    format_ok = format_ok or [None] * n
    return [SampleRow(a, s, p, f) for a, s, p, f in zip(answers, scores, passed, format_ok, strict=True)]


def test_normalise_answer():
    assert normalise_answer("  Hello\n  WORLD\t ") == "hello world"
    assert normalise_answer("Straße") == normalise_answer("STRASSE")
    assert normalise_answer(None) == ""


def test_case_agreement_uses_normalised_answers():
    c = case_consistency(rows("Paris", " paris ", "PARIS\n", "Lyon", scores=[1.0, 1.0, 0.9, 0.0]))
    assert c["n_samples"] == 4
    assert c["agreement"] == pytest.approx(0.75)
    assert c["all_agree"] is False
    assert c["majority_answer"] == "paris"


def test_case_score_sd_is_the_population_sd():
    scores = [1.0, 0.8, 0.3, 0.55]
    c = case_consistency(rows("a", "a", "b", "c", scores=scores))
    assert c["score_sd"] == pytest.approx(np.std(scores, ddof=0))
    assert c["score_sd"] == pytest.approx(statistics.pstdev(scores))


def test_case_pass_rate_ignores_missing_verdicts():
    c = case_consistency(rows("a", "a", "a", "a", passed=[True, False, True, None]))
    assert c["pass_rate"] == pytest.approx(2 / 3)
    assert c["all_agree"] is True and c["agreement"] == 1.0


def test_case_degenerate_inputs():
    one = case_consistency(rows("x", scores=[0.4], passed=[True]))
    assert (one["agreement"], one["all_agree"], one["score_sd"], one["pass_rate"]) == (1.0, True, None, 1.0)

    no_info = case_consistency(rows("x", "y", scores=[None, 0.5]))
    assert no_info["score_sd"] is None  # one score only
    assert no_info["pass_rate"] is None
    assert no_info["agreement"] == 0.5

    empty = case_consistency([])
    assert empty["n_samples"] == 0 and empty["agreement"] is None and empty["score_sd"] is None


def test_case_accepts_objects_and_mappings():
    objs = [
        SimpleNamespace(answer="A", score=1.0, passed=True, format_ok=True),
        {"answer": "a", "score": 0.0},
    ]
    c = case_consistency(objs)
    assert c["all_agree"] is True
    assert c["score_sd"] == pytest.approx(0.5)
    assert c["pass_rate"] == 1.0


def test_arm_consistency():
    cases = {
        # agrees, stable score, passes every time, valid format
        "c1": rows("yes", "Yes", "yes", scores=[1.0, 1.0, 1.0], passed=[True] * 3, format_ok=[True] * 3),
        # disagrees, flaky pass, one invalid format
        "c2": rows(
            "yes",
            "no",
            "no",
            scores=[1.0, 0.0, 0.0],
            passed=[True, False, False],
            format_ok=[True, False, True],
        ),
        # disagrees, never passes, no format info
        "c3": rows("a", "b", "c", scores=[0.2, 0.1, 0.0], passed=[False] * 3),
        # a single sample: counted in format compliance only
        "c4": rows("z", scores=[0.5], passed=[True], format_ok=[False]),
    }
    r = arm_consistency(cases)

    assert r["cases"] == 4 and r["samples"] == 10
    assert r["cases_with_repeats"] == 3
    assert r["share_disagreeing"] == pytest.approx(2 / 3)
    assert r["mean_agreement"] == pytest.approx(np.mean([1.0, 2 / 3, 1 / 3]))
    assert r["mean_score_sd"] == pytest.approx(
        np.mean([np.std([1.0, 1.0, 1.0]), np.std([1.0, 0.0, 0.0]), np.std([0.2, 0.1, 0.0])])
    )
    assert r["format_compliance"] == pytest.approx(5 / 7)
    assert r["flaky_pass"] == pytest.approx(1 / 3)


def test_arm_without_repeats_or_information():
    r = arm_consistency({"c1": rows("a"), "c2": rows("b")})
    assert r["cases_with_repeats"] == 0
    for key in ("share_disagreeing", "mean_agreement", "mean_score_sd", "format_compliance", "flaky_pass"):
        assert r[key] is None

    r = arm_consistency({})
    assert (r["cases"], r["samples"], r["cases_with_repeats"]) == (0, 0, 0)

    no_scores = arm_consistency({"c1": rows("a", "a"), "c2": rows("a", "b")})
    assert no_scores["share_disagreeing"] == 0.5
    assert no_scores["mean_score_sd"] is None and no_scores["flaky_pass"] is None
