"""The optimised few-shot search's pure part: the dev slice, the candidates, the winner."""

from __future__ import annotations

import pytest

from evaluations.analysis import fewshot_search as search


def test_the_dev_slice_is_about_30_percent_at_most_dev_size_and_leaves_k_for_the_pool():
    assert search.dev_count(100, k=3, dev_size=20) == 20  # 30 wanted, capped by dev_size
    assert search.dev_count(40, k=3, dev_size=20) == 12
    assert search.dev_count(5, k=3, dev_size=20) == 2  # 1.5 rounds up; 3 are left for the pool
    assert search.dev_count(5, k=4, dev_size=20) == 1
    assert search.dev_count(3, k=1, dev_size=20) == 1


def test_carve_is_seeded_disjoint_complete_and_in_train_order():
    dev, pool = search.carve(40, k=3, dev_size=20, seed=7)
    assert len(dev) == 12 and len(pool) == 28
    assert sorted(dev + pool) == list(range(40))
    assert dev == sorted(dev) and pool == sorted(pool)
    assert search.carve(40, k=3, dev_size=20, seed=7) == (dev, pool)
    assert search.carve(40, k=3, dev_size=20, seed=8)[0] != dev


def test_carve_refuses_too_few_cases_naming_the_numbers():
    with pytest.raises(ValueError, match=r"has 4 labelled case\(s\); k=3 needs at least 5"):
        search.carve(4, k=3, dev_size=20, seed=0)
    with pytest.raises(ValueError, match="k must be at least 1"):
        search.carve(10, k=0, dev_size=20, seed=0)
    with pytest.raises(ValueError, match="dev_size must be at least 1"):
        search.carve(10, k=2, dev_size=0, seed=0)


def test_candidates_are_distinct_seeded_ordered_draws_of_k():
    found = search.propose(10, k=3, candidates=8, seed=1)
    assert len(found) == 8 and len(set(found)) == 8
    assert all(len(c) == 3 and len(set(c)) == 3 and all(0 <= i < 10 for i in c) for c in found)
    assert search.propose(10, k=3, candidates=8, seed=1) == found
    assert search.propose(10, k=3, candidates=8, seed=2) != found


def test_a_small_pool_gives_fewer_candidates_orders_included():
    found = search.propose(3, k=3, candidates=20, seed=0)
    assert sorted(found) == sorted(
        [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]
    )  # every ordering of the only set, once
    assert search.propose(2, k=3, candidates=2, seed=0)[0] in ((0, 1), (1, 0))  # k capped by the pool


def test_classification_puts_a_label_balanced_candidate_first():
    labels = ["spam"] * 8 + ["ham"] * 8 + ["eggs"]
    found = search.propose(len(labels), k=3, candidates=5, seed=3, labels=labels)
    first = found[0]
    assert {labels[i] for i in first} == {"spam", "ham", "eggs"}
    assert len(found) == 5 and len(set(found)) == 5
    two = search.propose(len(labels), k=4, candidates=1, seed=3, labels=labels)[0]
    assert len({labels[i] for i in two}) == 3 and len(two) == 4
    # consecutive demonstrations alternate labels while there are several to show
    assert labels[two[0]] != labels[two[1]]
    with pytest.raises(ValueError, match="labels"):
        search.propose(5, k=2, candidates=2, seed=0, labels=["a"])


def test_dev_score_is_the_mean_of_the_scored_cases():
    assert search.dev_score([1.0, 0.0, None, 0.5]) == pytest.approx(0.5)
    assert search.dev_score([None, None]) is None
    assert search.dev_score([]) is None


def test_the_winner_is_the_best_score_then_the_smaller_prompt_then_the_first():
    assert search.pick([0.5, 0.9, 0.7], [10, 10, 10]) == 1
    assert search.pick([0.9, 0.9, 0.7], [30, 20, 10]) == 1  # tie: fewer prompt tokens
    assert search.pick([0.9, 0.9, 0.9], [20, 20, 20]) == 0  # tie on both: the first
    assert search.pick([0.1 + 0.2, 0.3], [20, 10]) == 1  # float noise is a tie
    assert search.pick([None, 0.0], [1, 100]) == 1  # unscored ranks last
    with pytest.raises(ValueError):
        search.pick([], [])
