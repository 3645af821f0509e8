"""The optimised few-shot search, its pure part: carve a dev slice from the train split, propose
candidate demonstration sets (with their order), pick the winner by mean dev score.

Everything here is seeded and deterministic: the same train split, k, candidate count, dev size and
seed give the same dev slice and the same candidates, in the same order. The calls to a model and
the scoring of its answers are the service's (evaluations/services/fewshot_optimize.py); like
DSPy's LabeledFewShot random search, nothing here is bootstrapped from the model's own outputs: the
demonstrations are labelled train cases, as they are.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

# The dev slice takes about this share of the labelled train cases (at most `dev_size`); the rest is
# the pool the demonstrations are drawn from, never smaller than k.
DEV_FRACTION = 0.3
# Tries per candidate wanted before giving up on distinct ones (a small pool has few orderings).
TRIES_PER_CANDIDATE = 50


def minimum_train(k: int) -> int:
    """The labelled train cases a search with k demonstrations needs: k for the pool, 2 for the dev."""
    return k + 2


def dev_count(n: int, *, k: int, dev_size: int) -> int:
    """How many of `n` labelled train cases go to the dev slice: about DEV_FRACTION of them (at least
    one), at most `dev_size`, and never so many that fewer than k are left for the pool."""
    wanted = max(1, math.floor(DEV_FRACTION * n + 0.5))
    return max(1, min(dev_size, wanted, n - k))


def carve(n: int, *, k: int, dev_size: int, seed: int) -> tuple[list[int], list[int]]:
    """Split `n` labelled train cases (by position) into (dev, pool) index lists, each in train order.

    ValueError when `n` is below `minimum_train(k)` or k, dev_size are not positive."""
    if k < 1:
        raise ValueError(f"k must be at least 1; got {k}")
    if dev_size < 1:
        raise ValueError(f"dev_size must be at least 1; got {dev_size}")
    if n < minimum_train(k):
        raise ValueError(
            f"the train split has {n} labelled case(s); k={k} needs at least {minimum_train(k)} "
            f"({k} to draw demonstrations from and 2 for the dev slice)"
        )
    order = list(range(n))
    random.Random(f"fewshot-dev:{seed}").shuffle(order)
    dev = sorted(order[: dev_count(n, k=k, dev_size=dev_size)])
    chosen = set(dev)
    return dev, [i for i in range(n) if i not in chosen]


def balanced(labels: Sequence[str | None], k: int, rng: random.Random) -> tuple[int, ...]:
    """k pool indices covering as many distinct labels as possible: one of each label in turn (the
    labels' turn order and the item of each label seeded), so the demonstrations alternate labels."""
    groups: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault("" if label is None else str(label), []).append(i)
    names = sorted(groups)
    rng.shuffle(names)
    for name in names:
        rng.shuffle(groups[name])
    picked: list[int] = []
    while len(picked) < min(k, len(labels)):
        for name in names:
            if groups[name] and len(picked) < k:
                picked.append(groups[name].pop())
    return tuple(picked)


def propose(
    pool_size: int,
    *,
    k: int,
    candidates: int,
    seed: int,
    labels: Sequence[str | None] | None = None,
) -> list[tuple[int, ...]]:
    """Up to `candidates` distinct candidate demonstration lists: k pool indices each, in the order
    they are shown. With `labels` (a classification suite: the label of each pool item) the first
    candidate is label-balanced; the others are seeded random draws (subset and order). Fewer come
    back only when the pool has fewer distinct orderings than asked for."""
    if pool_size < 1 or candidates < 1 or k < 1:
        return []
    size = min(k, pool_size)
    rng = random.Random(f"fewshot-candidates:{seed}")
    out: list[tuple[int, ...]] = []
    seen: set[tuple[int, ...]] = set()
    if labels is not None:
        if len(labels) != pool_size:
            raise ValueError(f"labels: {len(labels)} given for a pool of {pool_size}")
        first = balanced(labels, size, rng)
        out.append(first)
        seen.add(first)
    tries = 0
    while len(out) < candidates and tries < candidates * TRIES_PER_CANDIDATE:
        tries += 1
        candidate = tuple(rng.sample(range(pool_size), size))
        if candidate not in seen:
            seen.add(candidate)
            out.append(candidate)
    return out


def dev_score(scores: Sequence[float | None]) -> float | None:
    """A candidate's dev score: the mean of its dev cases' scores (a failed call scores 0; a case
    nothing could score, None, is left out, as in a run's mean). None when none was scored."""
    scored = [s for s in scores if s is not None]
    return sum(scored) / len(scored) if scored else None


def pick(scores: Sequence[float | None], sizes: Sequence[float]) -> int:
    """The winner's index: the best dev score; ties (to 1e-9) go to the smaller prompt (`sizes`:
    prompt tokens, or any measure of the demonstrations' length), then to the earlier candidate. A
    candidate without a score ranks last."""
    if not scores:
        raise ValueError("no candidate to pick from")
    if len(scores) != len(sizes):
        raise ValueError(f"{len(scores)} scores for {len(sizes)} sizes")

    def rank(i: int) -> tuple:
        score = scores[i]
        return (score is not None, round(score, 9) if score is not None else 0.0, -sizes[i], -i)

    return max(range(len(scores)), key=rank)
