"""Writes of human review: a reviewer's verdict on a result, and applying a suggested pass threshold.

Both record an AuditEvent in the transaction that makes the change (see services/audit.py).
"""

from __future__ import annotations

import math

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from evaluations.models import Result, Review, Run, Suite, Verdict
from evaluations.services.audit import audit_record

REVIEW_FIELDS = ("verdict", "corrected_output", "comment")


def _review_state(review: Review | None) -> dict:
    if review is None:
        return {}
    return {name: getattr(review, name) for name in REVIEW_FIELDS}


@transaction.atomic
def review_save(
    *, result: Result, reviewer, verdict: str, corrected_output: str = "", comment: str = ""
) -> Review:
    """Create or update `reviewer`'s review of `result` (an upsert: two concurrent first saves of the
    same review make one row, the later one updating the earlier).

    A corrected verdict needs the corrected output; a comment-only review needs a comment. The
    corrected output is kept only with a corrected verdict. Raises ValidationError naming the field.
    """
    if reviewer is None or not getattr(reviewer, "is_authenticated", False):
        raise ValidationError({"reviewer": "a review needs a signed-in reviewer"})
    if verdict not in Verdict.values:
        raise ValidationError(
            {"verdict": f"{verdict!r} is not a verdict; use one of {', '.join(Verdict.values)}"}
        )
    corrected_output = (corrected_output or "").replace("\r\n", "\n")
    comment = (comment or "").replace("\r\n", "\n").strip()
    for name, text in (("corrected_output", corrected_output), ("comment", comment)):
        if "\x00" in text:
            raise ValidationError({name: "contains a NUL character (\\x00); remove it"})
    if verdict == Verdict.CORRECTED:
        if not corrected_output.strip():
            raise ValidationError(
                {"corrected_output": "a corrected verdict needs the corrected output; write what the "
                 "model should have answered"}
            )  # fmt: skip
    else:
        corrected_output = ""
    if verdict == Verdict.COMMENT and not comment:
        raise ValidationError(
            {"comment": "a comment-only review needs a comment; write it, or pick a verdict"}
        )

    run = result.arm.run
    fields = {"verdict": verdict, "corrected_output": corrected_output, "comment": comment}
    review = _locked_review(result, reviewer)
    if review is None:
        review = Review(result=result, run=run, reviewer=reviewer, **fields)
        try:
            with transaction.atomic():  # a savepoint: a concurrent first save may win the insert
                review.save(force_insert=True)
        except IntegrityError:
            review = _locked_review(result, reviewer)
            if review is None:  # not the one-review-per-reviewer constraint: a real error
                raise
        else:
            _audit_save(review, reviewer=reviewer, before=None)
            return review
    before = _review_state(review)
    for name, value in fields.items():
        setattr(review, name, value)
    review.run = run
    if _review_state(review) == before:
        return review  # nothing changed: no write, no event
    review.save()
    _audit_save(review, reviewer=reviewer, before=before)
    return review


def _locked_review(result: Result, reviewer) -> Review | None:
    """`reviewer`'s review of `result`, locked for the rest of the transaction; None when there is none."""
    return Review.objects.select_for_update().filter(result=result, reviewer=reviewer).first()


def _audit_save(review: Review, *, reviewer, before: dict | None) -> None:
    audit_record(
        actor=reviewer,
        action="review.save",
        obj=review,
        suite_id=review.run.suite_version.suite_id,
        before=before or None,
        after=_review_state(review),
    )


LABELLED = (Verdict.CORRECT, Verdict.INCORRECT, Verdict.CORRECTED)


@transaction.atomic
def reviews_accept_passing(*, run: Run, reviewer, arm_id: int | None = None) -> int:
    """The shortcut of a labelling run's review: every result that passed scoring and that nobody has
    given a verdict yet is marked correct by `reviewer` (one review each, one audit event for all).
    Failed, errored and already-reviewed results stay as they are. Returns how many were accepted."""
    if reviewer is None or not getattr(reviewer, "is_authenticated", False):
        raise ValidationError({"reviewer": "a review needs a signed-in reviewer"})
    if arm_id is not None and not run.arms.filter(pk=arm_id).exists():
        raise ValidationError({"arm": f"run #{run.pk} has no arm #{arm_id}"})
    if run.status != "succeeded":
        raise ValidationError(
            {"run": f"run #{run.pk} is {run.status}: its answers are accepted once it has succeeded "
             "(until then scores may still change)"}
        )  # fmt: skip
    Run.objects.select_for_update().filter(pk=run.pk).first()  # one accept-all at a time per run
    results = Result.objects.filter(arm__run=run, passed=True, error="").exclude(
        reviews__verdict__in=LABELLED
    )
    if arm_id is not None:
        results = results.filter(arm_id=arm_id)
    ids = list(results.values_list("pk", flat=True).distinct())
    # The reviewer's own comment-only reviews of those results get the verdict, keeping the comment.
    mine = Review.objects.filter(result_id__in=ids, reviewer=reviewer)
    commented = set(mine.values_list("result_id", flat=True))
    mine.filter(verdict=Verdict.COMMENT).update(verdict=Verdict.CORRECT)
    Review.objects.bulk_create(
        [
            Review(result_id=pk, run=run, reviewer=reviewer, verdict=Verdict.CORRECT)
            for pk in ids
            if pk not in commented
        ],
        batch_size=1000,
        ignore_conflicts=True,  # a review the reviewer saved meanwhile stays as it is
    )
    accepted = mine.filter(verdict=Verdict.CORRECT).count()
    if accepted:
        audit_record(
            actor=reviewer,
            action="review.accept_passing",
            obj=run,
            suite_id=run.suite_version.suite_id,
            after={"accepted": accepted, **({"arm": arm_id} if arm_id is not None else {})},
        )
    return accepted


@transaction.atomic
def suite_threshold_apply(*, suite: Suite, threshold: float, user) -> Suite:
    """Set the suite's pass threshold (0..1). Results keep their pass/fail until the run is re-scored."""
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise ValidationError(
            {"threshold": f"{threshold!r} is not a number; give a value from 0 to 1"}
        ) from None
    if not math.isfinite(value) or not 0 <= value <= 1:
        raise ValidationError({"threshold": f"{value:g} is outside 0..1; give a value from 0 to 1"})
    suite = Suite.objects.select_for_update().get(pk=suite.pk)
    before = suite.pass_threshold
    if before == value:
        return suite
    suite.pass_threshold = value
    suite.save(update_fields=["pass_threshold"])
    audit_record(
        actor=user,
        action="suite.threshold",
        obj=suite,
        suite_id=suite.pk,
        before={"pass_threshold": before},
        after={"pass_threshold": value},
    )
    return suite
