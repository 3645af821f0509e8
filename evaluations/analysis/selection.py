"""Selection and confirmation: pick on one part of the cases, report on the other (the winner's curse).

The verdict picks arms: the best prompting arm, the cheapest one meeting the target, the fine-tune
to recommend. An arm picked as the best of several on some cases looks better on those cases than
it is (it was picked partly for its luck), so the same cases cannot also tell how good it is. The
test cases are therefore split in two, once and for all, by a hash of each case's key:

- the *selection* half, on which the arms are picked;
- the *confirmation* half, on which the picked arms' scores, intervals and paired differences are
  reported and the verdict is drawn.

A case's half depends on its key alone (SHA-256 of a fixed prefix and the key, never Python's
randomised `hash()`), so it is the same in every run and every process, and adding cases to a suite
never moves a case from one half to the other.

With fewer than `MIN_HALF_CASES` paired cases in either half, the split is not made: the arms are
picked and judged on the same cases, and a Bonferroni correction stands in for the held-out half
(p-values multiplied by the number of pairs the comparison was picked from, intervals at
1 - 0.05 / k for an arm picked among k).

Pure: no Django. The method is in docs/decision.md ("Selection and confirmation").
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Iterable

SPLIT = "split"
SAME_CASES = "same-cases"
BONFERRONI = "bonferroni"

SELECTION, CONFIRMATION = 0, 1
# Below this many paired cases in either half, the halves are too small to pick on one and confirm
# on the other: with pass/fail scores only the cases two arms disagree on count (about half of them
# for arms near 60%), and with 10 such cases 9 must go one way for p < 0.05.
MIN_HALF_CASES = 20
_PREFIX = b"ftvp-verdict-split:v1:"


def case_half(key: Hashable) -> int:
    """SELECTION (0) or CONFIRMATION (1): the low bit of the SHA-256 of the case key."""
    digest = hashlib.sha256(_PREFIX + str(key).encode("utf-8")).digest()
    return digest[-1] & 1


def split_keys(keys: Iterable[Hashable]) -> tuple[list, list]:
    """The keys of the selection half and of the confirmation half, each in the order given."""
    selection, confirmation = [], []
    for key in keys:
        (confirmation if case_half(key) == CONFIRMATION else selection).append(key)
    return selection, confirmation


def bonferroni(p: float | None, m: int) -> float | None:
    """A p-value adjusted for the best of `m` comparisons: min(1, p x m)."""
    if p is None:
        return None
    return min(1.0, p * max(1, m))
