"""Reads for human review: a run's review queue, its agreement with the scorer, the suggested
threshold, and the reviews shown next to results.

A result counts as reviewed once someone gave it a verdict (correct, incorrect or corrected): a
comment-only review leaves it in the queue and out of the progress figure. The reviewers' verdict on a
result is its latest such review, whoever wrote it: agreement with the scorer (percent, kappa, the
confusion table) and the suggested threshold all count each reviewed result once, with that verdict.

The queue is built from a bounded number of queries whatever the run's size: the run's results as
one values_list, the reviewed result ids, the arms, and (when the suite has a baseline) the baseline's
arms and results as one values_list. The ordering itself is pure (evaluations/analysis/review.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from evaluations.analysis import review as review_stats
from evaluations.models import Arm, Result, Review, Run, Verdict

VERDICT_MARKS = {
    Verdict.CORRECT: "✓",
    Verdict.INCORRECT: "✗",
    Verdict.CORRECTED: "✎",
    Verdict.COMMENT: "💬",
}


@dataclass
class ReviewQueue:
    run: Run
    items: list[review_stats.QueueItem]  # every reviewable result, queue order, reviewed ones marked
    baseline_run_id: int | None = None
    by_result: dict[int, review_stats.QueueItem] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_result = {item.result_id: item for item in self.items}

    @property
    def total(self) -> int:
        return len(self.items)

    @property
    def pending(self) -> list[review_stats.QueueItem]:
        return [item for item in self.items if not item.reviewed]

    @property
    def left(self) -> int:
        return sum(1 for item in self.items if not item.reviewed)

    @property
    def reviewed(self) -> int:
        return self.total - self.left

    def next_after(self, result_id: int | None) -> review_stats.QueueItem | None:
        return review_stats.next_in_queue(self.items, result_id)

    def position(self, result_id: int) -> int | None:
        """1-based place of an unreviewed result among those left."""
        for n, item in enumerate(self.pending, start=1):
            if item.result_id == result_id:
                return n
        return None

    def pending_by_bucket(self) -> list[tuple[str, int]]:
        counts: dict[int, int] = defaultdict(int)
        for item in self.items:
            if not item.reviewed:
                counts[item.bucket] += 1
        return [(review_stats.BUCKET_NAMES[b], counts[b]) for b in sorted(counts)]


def _baseline_passes(run: Run, arms: dict[int, tuple[int, str, int]]) -> tuple[int | None, dict]:
    """(baseline run id, {(arm id of this run, case key): the case passed in the baseline}).

    Arms match on endpoint and strategy name; a case passes when all its scored samples pass."""
    suite = run.suite_version.suite
    baseline_id = suite.baseline_run_id
    if baseline_id is None or baseline_id == run.pk:
        return None, {}
    base_arms = {
        (endpoint_id, strategy_name): arm_id
        for arm_id, endpoint_id, strategy_name in Arm.objects.filter(run_id=baseline_id).values_list(
            "pk", "endpoint_id", "strategy__name"
        )
    }
    matched = {}  # baseline arm id -> this run's arm id
    for arm_id, (endpoint_id, strategy_name, _) in arms.items():
        base = base_arms.get((endpoint_id, strategy_name))
        if base is not None:
            matched[base] = arm_id
    if not matched:
        return baseline_id, {}
    passes: dict[tuple[int, str], bool] = {}
    rows = Result.objects.filter(arm_id__in=list(matched), passed__isnull=False).values_list(
        "arm_id", "case__key", "passed"
    )
    for base_arm, key, passed in rows.iterator(chunk_size=5000):
        k = (matched[base_arm], key)
        passes[k] = passes.get(k, True) and passed
    return baseline_id, passes


def review_queue(run: Run) -> ReviewQueue:
    """The run's results in review order (see evaluations/analysis/review.py), each with its reasons.

    Results whose call failed (an error, no output) are not queued: there is nothing to judge."""
    arms = {
        arm_id: (endpoint_id, strategy_name, position)
        for arm_id, endpoint_id, strategy_name, position in Arm.objects.filter(run=run).values_list(
            "pk", "endpoint_id", "strategy__name", "position"
        )
    }
    baseline_id, base = _baseline_passes(run, arms)
    reviewed = set(_labelled(run).values_list("result_id", flat=True))
    values = Result.objects.filter(arm__run=run, error="").values_list(
        "pk", "arm_id", "case__key", "case__position", "sample", "passed", "score"
    )
    rows = [
        review_stats.QueueRow(
            result_id=pk,
            arm_id=arm_id,
            case_key=key,
            case_position=position,
            arm_position=arms[arm_id][2],
            sample=sample,
            passed=passed,
            score=score,
            baseline_passed=base.get((arm_id, key)),
        )
        for pk, arm_id, key, position, sample, passed, score in values.iterator(chunk_size=5000)
    ]
    threshold = run.suite_version.suite.pass_threshold
    items = review_stats.queue_items(rows, threshold=threshold, reviewed=reviewed)
    return ReviewQueue(run=run, items=items, baseline_run_id=baseline_id)


def _labelled(run: Run):
    """The run's reviews that give a verdict (comment-only reviews carry none)."""
    return Review.objects.filter(run=run, verdict__in=list(review_stats.LABELS))


def _latest_labels(run: Run) -> tuple[list[tuple[bool, bool]], list[tuple[float, bool]]]:
    """The reviewers' verdict on each reviewed result (its latest labelled review, by anyone) as
    ((human label, automatic pass) of the scored ones, (score, human label) of those with a score)."""
    rows = (
        _labelled(run)
        .order_by("updated_at", "pk")
        .values_list("result_id", "verdict", "result__passed", "result__score")
    )
    latest: dict[int, tuple[bool, bool | None, float | None]] = {}
    for result_id, verdict, passed, score in rows:
        latest[result_id] = (review_stats.human_label(verdict), passed, score)  # by time: the last wins
    pairs = [(label, passed) for label, passed, _ in latest.values() if passed is not None]
    scored = [(score, label) for label, _, score in latest.values() if score is not None]
    return pairs, scored


@dataclass
class RunReviewSummary:
    total: int
    reviewed: int  # results with a verdict (correct, incorrect or corrected)
    reviews: int  # every review, comment-only ones included
    agreement: review_stats.Agreement
    threshold: review_stats.ThresholdSuggestion

    @property
    def percent_reviewed(self) -> float:
        return 100.0 * self.reviewed / self.total if self.total else 0.0


def run_review_summary(run: Run) -> RunReviewSummary:
    """Review progress, agreement with the scorer and the suggested threshold (five small queries)."""
    total = Result.objects.filter(arm__run=run, error="").count()
    reviewed = _labelled(run).filter(result__error="").values("result_id").distinct().count()
    pairs, scored = _latest_labels(run)
    return RunReviewSummary(
        total=total,
        reviewed=reviewed,
        reviews=Review.objects.filter(run=run).count(),
        agreement=review_stats.agreement(pairs),
        threshold=review_stats.suggest_threshold(scored, current=run.suite_version.suite.pass_threshold),
    )


def result_reviews(result: Result) -> list[Review]:
    return list(result.reviews.select_related("reviewer").order_by("-updated_at", "-pk"))


def review_mark(review: Review) -> str:
    """A short label of a review for a table cell, e.g. "✓ alice"."""
    who = review.reviewer.get_username() if review.reviewer else "deleted user"
    suffix = " (corrected)" if review.verdict == Verdict.CORRECTED else ""
    return f"{VERDICT_MARKS.get(review.verdict, '?')} {who}{suffix}"


def with_reviews(results: Iterable[Result]) -> list[Result]:
    """The results as a list, each with `human_reviews` (its reviews, newest first): one query."""
    results = list(results)
    by_result: dict[int, list[Review]] = defaultdict(list)
    if results:
        for review in (
            Review.objects.filter(result_id__in=[r.pk for r in results])
            .select_related("reviewer")
            .order_by("-updated_at", "-pk")
        ):
            review.mark = review_mark(review)
            by_result[review.result_id].append(review)
    for result in results:
        result.human_reviews = by_result.get(result.pk, [])
    return results
