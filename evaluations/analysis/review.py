"""Human review of a run's results: the order of the review queue, the agreement between the automatic
scorer and the reviewers, and the similarity threshold that best matches the reviewers' verdicts.

Pure functions (no Django): the selectors in ``evaluations/selectors/reviews.py`` read the rows and
pass them in.

Queue buckets, most useful first (a result takes the first bucket any of its reasons puts it in, and
keeps every reason for display):

0. failed: the automatic check failed;
1. flipped: the case passed in the suite's baseline run and fails here, or the reverse;
2. samples disagree: other samples of the same case and arm got a different pass/fail;
3. low confidence: the score lies within ``margin`` of the suite's pass threshold;
4. the rest.

Human labels: ``correct`` means the output should pass, ``incorrect`` and ``corrected`` mean it should
not (a corrected output says the model's was wrong); ``comment`` carries no label, so a result with
only comments is not reviewed yet. The selectors pass one label per reviewed result, its latest
verdict (by any reviewer), to both ``agreement`` and ``suggest_threshold``.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

FAILED, FLIPPED, DISAGREE, LOW_CONFIDENCE, REST = range(5)
BUCKET_NAMES = {
    FAILED: "failed",
    FLIPPED: "flipped against the baseline",
    DISAGREE: "samples disagree",
    LOW_CONFIDENCE: "low confidence",
    REST: "the rest",
}
LOW_CONFIDENCE_MARGIN = 0.1
LABELS = {"correct": True, "incorrect": False, "corrected": False}  # verdict -> the result should pass


class QueueRow(NamedTuple):
    """One result as the queue needs it (read with one values_list query)."""

    result_id: int
    arm_id: int
    case_key: str
    case_position: int
    arm_position: int
    sample: int
    passed: bool | None
    score: float | None
    baseline_passed: bool | None = None  # the case in the baseline's matching arm; None: no baseline


class Reason(NamedTuple):
    code: str  # failed, flipped, disagree, low_confidence
    text: str


class QueueItem(NamedTuple):
    result_id: int
    bucket: int
    reasons: tuple[Reason, ...]
    reviewed: bool = False

    @property
    def bucket_name(self) -> str:
        return BUCKET_NAMES[self.bucket]


def _fmt(value: float) -> str:
    return f"{value:.3f}"


def queue_items(
    rows: Iterable[QueueRow],
    *,
    threshold: float,
    reviewed: set[int] | frozenset[int] = frozenset(),
    margin: float = LOW_CONFIDENCE_MARGIN,
) -> list[QueueItem]:
    """Every row as a queue item with its reasons, in queue order: bucket, then (low confidence) the
    closest to the threshold first, then case, arm and sample. `reviewed` result ids are marked."""
    rows = list(rows)
    passes_by_group: dict[tuple[int, str], list[bool]] = defaultdict(list)
    for row in rows:
        if row.passed is not None:
            passes_by_group[(row.arm_id, row.case_key)].append(row.passed)

    keyed = []
    for row in rows:
        reasons: list[Reason] = []
        if row.passed is False:
            shown = f" (score {_fmt(row.score)})" if row.score is not None else ""
            reasons.append(Reason("failed", f"failed the automatic check{shown}"))
        if row.passed is not None and row.baseline_passed is not None and row.baseline_passed != row.passed:
            text = (
                "passed in the baseline run, fails here"
                if row.baseline_passed
                else "failed in the baseline run, passes here"
            )
            reasons.append(Reason("flipped", text))
        group = passes_by_group.get((row.arm_id, row.case_key), [])
        if len(set(group)) > 1:
            reasons.append(Reason("disagree", f"samples disagree: {sum(group)} of {len(group)} pass"))
        distance = math.inf
        if row.score is not None and abs(row.score - threshold) <= margin + 1e-12:
            distance = abs(row.score - threshold)
            reasons.append(
                Reason(
                    "low_confidence",
                    f"score {_fmt(row.score)} is within {margin:g} of the pass threshold {threshold:g}",
                )
            )
        codes = [r.code for r in reasons]
        bucket = min(
            [{"failed": FAILED, "flipped": FLIPPED, "disagree": DISAGREE, "low_confidence": LOW_CONFIDENCE}[c]
             for c in codes] or [REST]
        )  # fmt: skip
        order = (
            bucket,
            distance if bucket == LOW_CONFIDENCE else 0.0,
            row.case_position,
            row.arm_position,
            row.sample,
            row.result_id,
        )
        keyed.append((order, QueueItem(row.result_id, bucket, tuple(reasons), row.result_id in reviewed)))
    keyed.sort(key=lambda pair: pair[0])
    return [item for _, item in keyed]


def next_in_queue(items: Sequence[QueueItem], after: int | None) -> QueueItem | None:
    """The first unreviewed item after result `after` in queue order, wrapping round to the start
    (so skipped items come back); None when nothing is left. `after` itself is never returned unless
    it is the only unreviewed item left."""
    pending = [item for item in items if not item.reviewed]
    if not pending:
        return None
    if after is None:
        return pending[0]
    index = next((i for i, item in enumerate(items) if item.result_id == after), None)
    if index is None:
        return pending[0]
    for item in [*items[index + 1 :], *items[:index]]:
        if not item.reviewed:
            return item
    return pending[0]


# --- agreement ------------------------------------------------------------------------------------------


def human_label(verdict: str) -> bool | None:
    """True when the reviewer says the result should pass, False when not, None for a comment."""
    return LABELS.get(verdict)


@dataclass(frozen=True)
class Agreement:
    """Reviewers' labels against the automatic pass/fail. Confusion rows: human, columns: automatic."""

    count: int
    agreed: int
    percent: float | None
    kappa: float | None
    kappa_note: str
    both_pass: int
    human_pass_auto_fail: int
    human_fail_auto_pass: int
    both_fail: int

    @property
    def confusion(self) -> list[list[int]]:
        return [[self.both_pass, self.human_pass_auto_fail], [self.human_fail_auto_pass, self.both_fail]]


def agreement(pairs: Iterable[tuple[bool, bool]]) -> Agreement:
    """Agreement of (human label, automatic pass) pairs, one per reviewed result: count, percent,
    Cohen's kappa, confusion.

    Kappa is undefined when both sides give one and the same label to everything (chance agreement
    is then 1): it is None with a note saying so."""
    pairs = [(bool(h), bool(a)) for h, a in pairs]
    n = len(pairs)
    both_pass = sum(1 for h, a in pairs if h and a)
    human_pass_auto_fail = sum(1 for h, a in pairs if h and not a)
    human_fail_auto_pass = sum(1 for h, a in pairs if not h and a)
    both_fail = n - both_pass - human_pass_auto_fail - human_fail_auto_pass
    agreed = both_pass + both_fail
    kappa: float | None = None
    note = ""
    if n == 0:
        note = "no reviewed result has a correct, incorrect or corrected verdict yet"
    elif len({h for h, _ in pairs} | {a for _, a in pairs}) < 2:
        label = "pass" if pairs[0][0] else "fail"
        note = (
            f"undefined: reviewers and scorer both say {label} for all {n} reviewed result(s), so "
            "agreement beyond chance cannot be measured; review results of the other kind"
        )
    else:
        from sklearn.metrics import cohen_kappa_score

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            value = float(
                cohen_kappa_score([h for h, _ in pairs], [a for _, a in pairs], labels=[True, False])
            )
        if math.isfinite(value):
            kappa = value
        else:  # pragma: no cover - excluded above; kept so a NaN never reaches a page
            note = "undefined for these labels"
    return Agreement(
        count=n,
        agreed=agreed,
        percent=(100.0 * agreed / n) if n else None,
        kappa=kappa,
        kappa_note=note,
        both_pass=both_pass,
        human_pass_auto_fail=human_pass_auto_fail,
        human_fail_auto_pass=human_fail_auto_pass,
        both_fail=both_fail,
    )


# --- threshold ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThresholdSuggestion:
    """The similarity threshold whose pass/fail best matches the reviewers (Youden's J on the ROC of
    score against the human label), with the agreement it would give and the current one's."""

    count: int
    positives: int  # reviewed as pass
    negatives: int  # reviewed as fail
    current: float
    current_percent: float | None
    threshold: float | None = None
    youden_j: float | None = None
    percent: float | None = None
    needed: str = ""

    @property
    def available(self) -> bool:
        return self.threshold is not None

    @property
    def differs(self) -> bool:
        return self.threshold is not None and abs(self.threshold - self.current) > 1e-9


def _percent_at(threshold: float, scores: Sequence[float], labels: Sequence[bool]) -> float:
    agreed = sum(1 for s, h in zip(scores, labels, strict=True) if (s >= threshold) == h)
    return 100.0 * agreed / len(scores)


def suggest_threshold(pairs: Iterable[tuple[float, bool]], *, current: float) -> ThresholdSuggestion:
    """`pairs` are (score, human label) of reviewed results. Needs at least one reviewed pass and one
    reviewed fail; otherwise `needed` says how many more are needed.

    The threshold is placed halfway between the lowest score the best ROC cut keeps and the next
    score below it (the same pass/fail on the reviewed results, with margin either side), rounded to
    3 decimals when that changes none of them; it is clipped to 0..1."""
    pairs = [(float(s), bool(h)) for s, h in pairs if s is not None and math.isfinite(float(s))]
    scores = [s for s, _ in pairs]
    labels = [h for _, h in pairs]
    positives = sum(labels)
    negatives = len(labels) - positives
    base = {
        "count": len(pairs),
        "positives": positives,
        "negatives": negatives,
        "current": current,
        "current_percent": _percent_at(current, scores, labels) if pairs else None,
    }
    if not positives or not negatives:
        missing = []
        if not positives:
            missing.append("1 more result as correct")
        if not negatives:
            missing.append("1 more result as incorrect or corrected")
        return ThresholdSuggestion(
            **base,
            needed="it needs reviewed passes and fails with a score; review at least "
            + " and ".join(missing),
        )

    from sklearn.metrics import roc_curve

    fpr, tpr, thresholds = roc_curve(labels, scores, drop_intermediate=False)
    best = None
    for f, t, cut in zip(fpr, tpr, thresholds, strict=True):
        if not math.isfinite(cut):
            continue
        j = float(t - f)
        percent = _percent_at(float(cut), scores, labels)
        key = (round(j, 12), round(percent, 9), -abs(float(cut) - current))
        if best is None or key > best[0]:
            best = (key, float(cut), j)
    _, cut, j = best
    below = [s for s in scores if s < cut]
    threshold = (cut + max(below)) / 2 if below else cut
    predictions = [s >= threshold for s in scores]
    rounded = round(threshold, 3)
    if [s >= rounded for s in scores] == predictions:
        threshold = rounded
    threshold = min(1.0, max(0.0, threshold))
    return ThresholdSuggestion(
        **base,
        threshold=threshold,
        youden_j=j,
        percent=_percent_at(threshold, scores, labels),
    )
