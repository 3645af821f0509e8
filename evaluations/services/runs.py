"""Run writes: create, start, cancel, resume, delete, fail; the batches' leases; score a batch;
finalize. Generating a batch is services/generation.py; the workers' recovery sweep is
services/recovery.py.

Every step is idempotent and safe to run twice (a redelivered message after a killed worker):
results are upserted on (arm, case, sample), and the steps that count (a batch generated, a batch
scored, a run finalized) are conditional UPDATEs that succeed once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from evaluations import strategies
from evaluations.models import (
    Arm,
    Batch,
    Endpoint,
    Provider,
    Result,
    Run,
    RunStatus,
    Split,
    Strategy,
    SuiteVersion,
    Trigger,
)
from evaluations.selectors.runs import current_scoring, run_delete_refusal
from evaluations.services import queue
from evaluations.services.audit import audit_record
from evaluations.services.leases import heartbeat
from evaluations.services.pairwise import PairwiseBusy, pairwise_score_run
from evaluations.services.scorings import (
    save_scores,
    scoring_apply,
    scoring_create,
    scoring_finish,
)
from evaluations.services.secrets import redact_stored

log = logging.getLogger(__name__)

MAX_REPEATS = 20
MAX_REMOTE_BATCH = 256
# A batch whose task crashed this many times fails its run instead of being retried forever.
MAX_ATTEMPTS = 5


class RunError(ValueError):
    """A run cannot be created as asked; the message says why and what to do."""


def run_create(
    *,
    suite_version: SuiteVersion,
    arms: Sequence[tuple[Endpoint, Strategy]],
    repeats: int = 1,
    trigger: str = Trigger.MANUAL,
    user=None,
    use_cache: bool = True,
    schedule=None,
    split: str = Split.TEST,
) -> Run:
    """Create a run, its arms and their batches in one transaction; start it once committed.

    `split` "train" makes a labelling run: the arms answer the train cases (a teacher's answers, for
    review and then distillation, docs/finetuning.md); it is never a decision's, a trend's or a
    baseline's evidence.

    A run a `schedule` fires is the system's act: its "run.create" event has no actor and names the
    schedule (`user`, the schedule's creator, is still the run's `created_by`)."""
    if not arms:
        raise RunError("a run needs at least one arm (endpoint x strategy)")
    if not 1 <= repeats <= MAX_REPEATS:
        raise RunError(f"repeats must be between 1 and {MAX_REPEATS}")
    seen = set()
    for endpoint, strategy in arms:
        if (endpoint.pk, strategy.pk) in seen:
            raise RunError(f"arm {endpoint.name}:{strategy} is listed twice")
        seen.add((endpoint.pk, strategy.pk))
    if split not in Split.values:
        raise RunError(f"split {split!r}: use one of {', '.join(Split.values)}")
    case_ids = list(suite_version.cases.filter(split=split).order_by("position").values_list("id", flat=True))
    if not case_ids:
        raise RunError(
            f"{suite_version} has no {split} cases"
            + (" to label (upload cases with split=train)" if split == Split.TRAIN else "")
        )
    if split == Split.TRAIN and schedule is not None:
        raise RunError("a schedule runs the test split; a labelling run is started by hand")
    generating = [f"{e.name}:{s}" for e, s in arms if s.kind == "synthesize"]
    if generating:  # the synthetic-examples prompt writes training data; it answers no case
        raise RunError(f"{', '.join(generating)}: a synthesize strategy is not a run's arm")
    retrieving = [f"{e.name}:{s}" for e, s in arms if s.kind in strategies.RAG_KINDS]
    if retrieving and not suite_version.chunks.exists():
        raise RunError(
            f"{', '.join(retrieving)} retrieve from the suite's knowledge documents, and {suite_version} "
            "has none: add them with `manage.py import_knowledge`, the suite page or a knowledge/ folder "
            "in the suite's zip, or leave the retrieval strategies out"
        )
    chunks = {
        endpoint.pk: [case_ids[i : i + size] for i in range(0, len(case_ids), size)]
        for endpoint, size in ((e, batch_size(e)) for e, _ in arms)
    }
    with transaction.atomic():
        run = Run.objects.create(
            suite_version=suite_version,
            trigger=trigger,
            repeats=repeats,
            use_cache=use_cache,
            split=split,
            created_by=user,
            schedule=schedule,
            expected_results=len(case_ids) * len(arms) * repeats,
            batches_total=sum(len(chunks[e.pk]) for e, _ in arms),
        )
        arm_rows = Arm.objects.bulk_create(
            [Arm(run=run, endpoint=e, strategy=s, position=i) for i, (e, s) in enumerate(arms)]
        )
        Batch.objects.bulk_create(
            [
                Batch(run=run, arm=arm, index=index, case_ids=chunk)
                for arm in arm_rows
                for index, chunk in enumerate(chunks[arm.endpoint_id])
            ]
        )
        scoring_create(run=run, user=user)
        audit_record(
            actor=None if schedule is not None else user,
            action="run.create",
            obj=run,
            suite_id=suite_version.suite_id,
            after={
                "suite_version": suite_version.number,
                "trigger": trigger,
                "arms": [f"{e.name} · {s}" for e, s in arms],
                "repeats": repeats,
                "use_cache": use_cache,
                **({"split": split} if split != Split.TEST else {}),
                **({"schedule": schedule.pk, "schedule_name": schedule.name} if schedule is not None else {}),
            },
        )
        queue.enqueue("start_run", run.pk)
    return run


def batch_size(endpoint: Endpoint) -> int:
    """Cases per batch for an arm on `endpoint`: FTVP_BATCH_SIZE, and for a remote endpoint at least
    twice its concurrency (at most MAX_REMOTE_BATCH), so that one batch alone keeps the endpoint busy
    and the fixed cost of a batch (its messages, lease, reads and marks) is spread over many calls."""
    size = settings.FTVP_BATCH_SIZE
    if endpoint.provider == Provider.LOCAL:
        return size
    return max(size, min(MAX_REMOTE_BATCH, 2 * endpoint.max_concurrency))


def run_start(*, run_id: int) -> bool:
    """Claim a queued run (queued -> running) and enqueue its batches, arms interleaved."""
    with transaction.atomic():
        claimed = Run.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
            status=RunStatus.RUNNING, started_at=timezone.now()
        )
        if not claimed:
            return False
        for batch_id in (
            Batch.objects.filter(run_id=run_id)
            .order_by("index", "arm__position")
            .values_list("id", flat=True)
        ):
            queue.enqueue("run_batch", batch_id)
    return True


def run_cancel(*, run_id: int, user=None) -> bool:
    """Cancel a queued or running run; batches in flight stop at their next chunk."""
    with transaction.atomic():
        cancelled = Run.objects.filter(pk=run_id, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).update(
            status=RunStatus.CANCELLED, finished_at=timezone.now()
        )
        if cancelled:
            run = Run.objects.select_related("suite_version").get(pk=run_id)
            audit_record(
                actor=user,
                action="run.cancel",
                obj=run,
                suite_id=run.suite_version.suite_id,
                after={"status": RunStatus.CANCELLED},
            )
    return bool(cancelled)


def run_resume(*, run_id: int, actor=None) -> dict[str, int]:
    """Send again what an unfinished run still needs (a stalled run: its worker gone for good, its
    messages lost): the start of a queued run; the next step (generate or score) of each batch not
    scored that no live worker holds, releasing a stale lease; finalize when every batch is scored.

    Safe to repeat: each step checks its lease and its done-mark first, so a second resume (or the
    recovery sweep of a worker starting meanwhile) adds duplicates that do nothing. A worker must be
    running to take the work. Returns what was sent, by step; RunError for a finished run."""
    counts = {"start": 0, "generate": 0, "score": 0, "finalize": 0}
    with transaction.atomic():
        run = Run.objects.select_for_update().select_related("suite_version").filter(pk=run_id).first()
        if run is None:
            raise RunError(f"run #{run_id} does not exist")
        if run.status not in (RunStatus.QUEUED, RunStatus.RUNNING):
            raise RunError(
                f"run #{run.pk} is {run.status}: only a queued or running run can be resumed; "
                "start a new run to evaluate again"
            )
        if run.status == RunStatus.QUEUED:
            queue.enqueue("start_run", run.pk)
            counts["start"] = 1
        else:
            unfinished = Batch.objects.filter(run_id=run.pk, scored_at__isnull=True).order_by("index")
            batches_resend_unheld(unfinished.filter(heartbeat_at__isnull=True), counts)
            batches_resend_stale(unfinished.filter(heartbeat_at__lt=stale_before()), counts)
            if not unfinished.exists():
                queue.enqueue("finalize_run", run.pk)
                counts["finalize"] = 1
        audit_record(
            actor=actor,
            action="run.resume",
            obj=run,
            suite_id=run.suite_version.suite_id,
            after={"status": run.status, "sent": {k: v for k, v in counts.items() if v}},
        )
    return counts


def run_delete(*, run: Run, user=None) -> None:
    """Delete a finished run with its results, unless `run_delete_refusal` says why not."""
    with transaction.atomic():
        run = Run.objects.select_for_update().select_related("suite_version__suite").get(pk=run.pk)
        suite = run.suite_version.suite
        refusal = run_delete_refusal(run)
        if refusal:
            raise RunError(refusal)
        arms = [
            str(arm.label) for arm in run.arms.select_related("endpoint", "strategy").order_by("position")
        ]
        audit_record(
            actor=user,
            action="run.delete",
            obj=run,
            suite_id=suite.pk,
            before={
                "suite_version": run.suite_version.number,
                "status": run.status,
                "trigger": run.trigger,
                "arms": arms,
                "created_by": run.created_by_id,
                "created_at": run.created_at,
            },
        )
        run.delete()


# --- leases ---------------------------------------------------------------------------------------


def stale_before():
    return timezone.now() - timedelta(seconds=settings.FTVP_STALL_SECONDS)


def batch_claim(batch_id: int, phase: str) -> bool:
    """Take the batch's lease for `phase` unless a live worker holds it or the phase is done.

    Past MAX_ATTEMPTS claims the run fails (a task that keeps crashing is a bug or a broken
    environment, and its log says which), so no run is retried forever.
    """
    done_field = "generated_at" if phase == "generate" else "scored_at"
    qs = Batch.objects.filter(pk=batch_id, **{f"{done_field}__isnull": True}).filter(
        Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=stale_before())
    )
    if phase == "score":
        qs = qs.filter(generated_at__isnull=False)
    if not qs.update(heartbeat_at=timezone.now(), attempts=F("attempts") + 1):
        return False
    if Batch.objects.values_list("attempts", flat=True).get(pk=batch_id) > MAX_ATTEMPTS:
        batch = Batch.objects.select_related("arm__endpoint", "arm__strategy").get(pk=batch_id)
        run_fail(
            run_id=batch.run_id,
            error=f"batch {batch.index} of arm {batch.arm} failed {MAX_ATTEMPTS} times while "
            f"{'generating' if phase == 'generate' else 'scoring'}; the worker log has the errors",
        )
        return False
    return True


def run_fail(*, run_id: int, error: str) -> bool:
    return bool(
        Run.objects.filter(pk=run_id, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).update(
            status=RunStatus.FAILED, error=redact_stored(error)[:2000], finished_at=timezone.now()
        )
    )


def batch_heartbeat(batch_id: int):
    """Keep the batch's lease alive from a side thread while slow work (model calls) runs."""
    return heartbeat(Batch.objects.filter(pk=batch_id), name=f"batch-{batch_id}")


# --- scoring and finalize ------------------------------------------------------------------------


def batch_score(*, batch_id: int) -> None:
    """Score the batch's results; the last batch scored enqueues finalize_run."""
    batch = Batch.objects.select_related("run__suite_version__suite").filter(pk=batch_id).first()
    if batch is None or batch.scored_at is not None or batch.run.status != RunStatus.RUNNING:
        return
    if not batch_claim(batch_id, "score"):
        return
    scoring = current_scoring(batch.run_id)
    results = list(  # the rendered prompt is not scored: not read (it is most of a row)
        Result.objects.filter(arm_id=batch.arm_id, case_id__in=batch.case_ids)
        .select_related("case")
        .defer("prompt")
    )
    with batch_heartbeat(batch_id):
        scoring_apply(scoring=scoring, results=results)
    now = timezone.now()
    with transaction.atomic():
        save_scores(results)
        marked = Batch.objects.filter(pk=batch_id, scored_at__isnull=True).update(
            scored_at=now, heartbeat_at=None
        )
        if marked:
            Run.objects.filter(pk=batch.run_id).update(batches_scored=F("batches_scored") + 1)
    if marked:
        run = Run.objects.only("batches_scored", "batches_total").get(pk=batch.run_id)
        if run.batches_scored >= run.batches_total:
            queue.enqueue("finalize_run", run.pk)


def run_finalize(*, run_id: int) -> bool:
    """Aggregate each arm (means with CIs, costs, latency) and mark the run succeeded, once."""
    run = Run.objects.select_related("suite_version__suite").filter(pk=run_id).first()
    if run is None or run.status != RunStatus.RUNNING:
        return False
    if Batch.objects.filter(run_id=run_id, scored_at__isnull=True).exists():
        return False
    # Every arm's outputs are in: the pairwise checks the batches left pending are judged now,
    # before the summaries (resumable: only what is still pending is judged).
    try:
        pairwise_score_run(scoring=current_scoring(run_id))
    except PairwiseBusy:  # another worker is judging them, and finalizes the run when done
        return False
    with transaction.atomic():
        finished = Run.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(
            status=RunStatus.SUCCEEDED, finished_at=timezone.now()
        )
        if finished:
            scoring_finish(scoring=current_scoring(run_id))
    return bool(finished)


def batches_resend_stale(stale, counts: dict[str, int]) -> None:
    """Batches whose lease went stale (their worker died): each lease is released, if it is still
    stale, as the batch's next step is sent, so a batch is not sent twice by two sweeps."""
    for batch_id, generated_at in stale.values_list("id", "generated_at"):
        with transaction.atomic():
            if stale.filter(pk=batch_id).update(heartbeat_at=None):
                batch_send_next_step(batch_id, generated_at is not None, counts)


def batches_resend_unheld(unheld, counts: dict[str, int]) -> None:
    """Batches nobody holds whose messages were lost: their next step, sent again."""
    for batch_id, generated_at in unheld.values_list("id", "generated_at"):
        batch_send_next_step(batch_id, generated_at is not None, counts)


def batch_send_next_step(batch_id: int, generated: bool, counts: dict[str, int]) -> None:
    queue.enqueue("score_batch" if generated else "run_batch", batch_id)
    counts["score" if generated else "generate"] += 1
