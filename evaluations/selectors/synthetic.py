"""Reads of synthetic examples: a suite's generations, one generation's candidates (pending first) with
their counts, the `synthesize` strategy versions to choose from."""

from __future__ import annotations

from django.db.models import Case as Switch
from django.db.models import Count, IntegerField, QuerySet, Value, When

from evaluations.models import (
    CandidateStatus,
    Strategy,
    StrategyKind,
    Suite,
    SyntheticCandidate,
    SyntheticGeneration,
)

# Review order: what needs a verdict first, then the verdicts, then what the filter dropped.
ORDER = (CandidateStatus.PENDING, CandidateStatus.ACCEPTED, CandidateStatus.REJECTED, CandidateStatus.DROPPED)


def generations(suite: Suite | None = None) -> QuerySet[SyntheticGeneration]:
    rows = SyntheticGeneration.objects.select_related(
        "suite_version__suite", "endpoint", "strategy", "created_by", "promoted_version"
    ).order_by("-created_at", "-id")
    return rows.filter(suite_version__suite=suite) if suite is not None else rows


def generation(pk: int) -> SyntheticGeneration | None:
    return generations().filter(pk=pk).first()


def candidates(gen: SyntheticGeneration, status: str | None = None) -> QuerySet[SyntheticCandidate]:
    """The generation's candidates in review order (pending first), by position within each status."""
    rows = gen.candidates.select_related("reviewer").annotate(
        review_order=Switch(
            *[When(status=s, then=Value(i)) for i, s in enumerate(ORDER)],
            default=Value(len(ORDER)),
            output_field=IntegerField(),
        )
    )
    if status:
        rows = rows.filter(status=status)
    return rows.order_by("review_order", "position")


def candidate_counts(gen: SyntheticGeneration) -> dict[str, int]:
    """Candidates by status (every status present, 0 when none)."""
    counts = dict.fromkeys(CandidateStatus.values, 0)
    for status, n in gen.candidates.order_by().values_list("status").annotate(n=Count("id")):
        counts[status] = n
    return counts


def synthesize_strategies() -> QuerySet[Strategy]:
    """The versions of the generation prompt, newest first."""
    return Strategy.objects.filter(kind=StrategyKind.SYNTHESIZE).order_by("name", "-version")


def seed_keys(version) -> list[str]:
    """The keys of a version's train cases, the seeds a generation may start from (the first 200)."""
    if version is None:
        return []
    return list(version.cases.filter(split="train").order_by("position").values_list("key", flat=True)[:200])


def latest_synthesize() -> Strategy | None:
    """The generation prompt's latest version (None before any exists)."""
    return synthesize_strategies().filter(name="synthesize").first()
