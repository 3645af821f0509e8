"""Scorings: the configuration a run's results are scored with, and re-scoring a finished run.

Re-scoring applies the suite's current assertions to stored outputs: no model is called, and the
embedding cache means only texts never embedded before are embedded.
"""

from __future__ import annotations

import json
import logging

from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from evaluations.models import Result, Run, RunStatus, Scoring, SuiteVersion
from evaluations.scoring import assertions
from evaluations.selectors.runs import arm_summaries, run_rescoring
from evaluations.services import queue
from evaluations.services.audit import audit_record
from evaluations.services.pairwise import PairwiseBusy, pairwise_score_run
from evaluations.services.result_scores import TASK_DEFAULTS, get_embedder, score_results
from evaluations.services.signoffs import approvals_void

RESCORE_CHUNK = 500

log = logging.getLogger(__name__)


class RescoreError(ValueError):
    pass


def version_default_assertions(version: SuiteVersion) -> list[dict]:
    """What a version's cases are checked with by default now: a version imported with its own
    defaults (promptfoo's defaultTest) keeps them; else the suite's ([]: the task type's apply)."""
    return list(version.default_assertions or version.suite.default_assertions or [])


def scoring_create(*, run: Run, trigger: str = Scoring.Trigger.RUN, user=None) -> Scoring:
    """Snapshot how the run is scored now: the suite's default assertions, scorer versions, embedder."""
    version = run.suite_version
    defaults = version_default_assertions(version)
    if defaults:
        used = list(defaults)
    else:  # the task type's defaults apply to cases with an expected output
        has_expected = version.cases.filter(expected__isnull=False).exists()
        used = list(TASK_DEFAULTS[version.task_type]) if has_expected else []
    for case_assertions in version.cases.exclude(assertions=[]).values_list("assertions", flat=True):
        used.extend(case_assertions)
    number = (run.scorings.aggregate(n=Max("number"))["n"] or 0) + 1
    return Scoring.objects.create(
        run=run,
        number=number,
        trigger=trigger,
        embedder=get_embedder().name,
        default_assertions=defaults,
        scorer_versions=assertions.scorer_versions(used),
        created_by=user,
    )


def scoring_apply(*, scoring: Scoring, results: list[Result]) -> None:
    """Score results in memory with the scoring's configuration (the caller saves them)."""
    version = scoring.run.suite_version
    score_results(
        results,
        task_type=version.task_type,
        labels=list(version.labels),
        pass_threshold=version.suite.pass_threshold,
        default_assertions=scoring.default_assertions,
    )
    now = timezone.now()
    for r in results:
        r.scoring, r.scored_at = scoring, now


def save_scores(results: list[Result]) -> None:
    """Write the scores of many results in one statement per row, batched (executemany).

    Django's bulk_update builds one CASE expression per field over all rows, which costs more than
    the embedding itself when re-scoring thousands of results.
    """
    if not results:
        return
    table = Result._meta.db_table
    jsonb = "::jsonb" if connection.vendor == "postgresql" else ""
    # Only the model's own table name and a fixed cast are formatted in; every value is a parameter.
    sql = (
        f"UPDATE {table} SET scores = %s{jsonb}, score = %s, passed = %s, scoring_id = %s, scored_at = %s "  # noqa: S608
        "WHERE id = %s"
    )
    adapt = connection.ops.adapt_datetimefield_value
    rows = [
        (json.dumps(r.scores), r.score, r.passed, r.scoring_id, adapt(r.scored_at), r.pk) for r in results
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def scoring_finish(*, scoring: Scoring) -> dict[int, dict]:
    """Aggregate the run's arms under this scoring, on the scoring and (as current) on the arms."""
    run = scoring.run
    summaries = arm_summaries(run)
    with transaction.atomic():
        for arm in run.arms.all():
            arm.summary = summaries[arm.pk]
            arm.save(update_fields=["summary"])
        scoring.summaries = {str(k): v for k, v in summaries.items()}
        scoring.finished_at = timezone.now()
        scoring.save(update_fields=["summaries", "finished_at"])
    if run.status == RunStatus.SUCCEEDED:
        # Trends, the baseline comparison, drift and alerts run in their own task once this commits:
        # drift embeds outputs, which must not hold the finalize transaction (and SQLite's lock).
        Run.objects.filter(pk=run.pk).update(analysed_at=None, analysis_sent_at=timezone.now())
        queue.enqueue("analyse_run", run.pk)
    return summaries


def run_rescore(*, run_id: int, user=None) -> Scoring:
    """Score a finished run again with the suite's current assertions; no model is called.

    Refused for a signed-off run (locked: its scores are what was approved). The approvals of a
    pending sign-off are voided: the approvers judged the old scores."""
    run = Run.objects.select_related("suite_version__suite").get(pk=run_id)
    if run.signed_off_at is not None:
        raise RescoreError(
            f"run #{run.pk} is signed off and locked: its scores are the ones approved; start a new run "
            "to score the outputs with the current assertions"
        )
    if run.status not in (RunStatus.SUCCEEDED, RunStatus.CANCELLED, RunStatus.FAILED):
        raise RescoreError(f"run #{run.pk} is {run.status}; re-score it once it has finished")
    if run_rescoring(run):
        raise RescoreError(f"run #{run.pk} is being re-scored already")
    with transaction.atomic():
        voided = approvals_void(run=run, user=user)  # locks the pending sign-off first
        if Run.objects.filter(pk=run.pk, signed_off_at__isnull=False).exists():  # signed off meanwhile
            raise RescoreError(f"run #{run.pk} is signed off and locked: its scores are the ones approved")
        scoring = scoring_create(run=run, trigger=Scoring.Trigger.RESCORE, user=user)
        audit_record(
            actor=user,
            action="run.rescore",
            obj=run,
            suite_id=run.suite_version.suite_id,
            after={"scoring": scoring.number, "approvals_voided": voided},
        )
        queue.enqueue("rescore_run", scoring.pk)
    return scoring


def scoring_execute(*, scoring_id: int) -> None:
    """The re-score task: every result of the run, in chunks; idempotent (a rerun scores again)."""
    scoring = Scoring.objects.select_related("run__suite_version__suite").filter(pk=scoring_id).first()
    if scoring is None or scoring.finished_at is not None:
        return
    last_id = 0
    while True:
        chunk = list(
            Result.objects.filter(arm__run_id=scoring.run_id, pk__gt=last_id)
            .select_related("case")
            .order_by("pk")[:RESCORE_CHUNK]
        )
        if not chunk:
            break
        scoring_apply(scoring=scoring, results=chunk)
        save_scores(chunk)
        last_id = chunk[-1].pk
    try:
        pairwise_score_run(scoring=scoring)  # every output is in: the pairwise checks, judged again
    except PairwiseBusy:  # the same re-score running twice: the one judging finishes it
        return
    scoring_finish(scoring=scoring)
