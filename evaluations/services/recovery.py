"""The workers' recovery sweep: work whose message or worker was lost, sent again."""

from __future__ import annotations

from django.db.models import F, Max

from evaluations.models import (
    Batch,
    Run,
    RunStatus,
)
from evaluations.selectors.runs import scorings_unfinished_before
from evaluations.services import queue
from evaluations.services.run_analysis import runs_unanalysed_before
from evaluations.services.runs import batches_resend_stale, batches_resend_unheld
from evaluations.services.runs import stale_before as lease_stale_before
from evaluations.services.synthetic import synthetic_recover


def runs_recover(*, startup: bool = False, orphaned_before=None) -> dict[str, int]:
    """Re-enqueue work whose message or worker was lost. Run by every worker, on start and then
    every FTVP_STALL_SECONDS / 2.

    - Batches whose lease went stale (their worker died): the lease is released as they are
      re-enqueued, so a batch still waiting in a long queue is not re-enqueued again.
    - Batches nobody holds: on a worker's start (a killed worker's prefetched messages are gone),
      and whenever the workers have been idle for FTVP_STALL_SECONDS (no live lease anywhere) while
      a run made no progress: their messages were lost (a broker blip, a worker killed between two
      steps).
    - Runs still queued: on start, and when queued for longer than FTVP_STALL_SECONDS.
    Duplicates are harmless: each step checks its lease and its done-mark first.

    `orphaned_before`: a starting worker's sweep when no other worker can hold a lease (every other
    worker is known to have exited, see selectors.workers.others_may_hold_leases): leases taken, and
    analyses and re-scores sent, before that moment are orphaned, recovered now instead of once
    FTVP_STALL_SECONDS have passed.
    """
    counts = {"runs": 0, "generate": 0, "score": 0, "finalize": 0}
    stale_before = lease_stale_before()
    if orphaned_before is not None:
        stale_before = max(stale_before, orphaned_before)
    queued = Run.objects.filter(status=RunStatus.QUEUED)
    if not startup:
        queued = queued.filter(created_at__lt=stale_before)
    for run_id in queued.values_list("id", flat=True):
        queue.enqueue("start_run", run_id)
        counts["runs"] += 1
    pending = Batch.objects.filter(run__status=RunStatus.RUNNING, scored_at__isnull=True)
    lost = _runs_with_lost_messages(startup=startup, stale_before=stale_before)
    # Those unheld now: a stale lease released below is sent by batches_resend_stale, not once more here.
    unheld = list(pending.filter(run_id__in=lost, heartbeat_at__isnull=True).values_list("id", flat=True))
    batches_resend_stale(pending.filter(heartbeat_at__lt=stale_before), counts)
    batches_resend_unheld(pending.filter(pk__in=unheld, heartbeat_at__isnull=True), counts)
    for run_id in Run.objects.filter(
        status=RunStatus.RUNNING, batches_scored__gte=F("batches_total")
    ).values_list("id", flat=True):
        queue.enqueue("finalize_run", run_id)
        counts["finalize"] += 1
    for run_id in runs_unanalysed_before(stale_before):  # analysing again is harmless
        queue.enqueue("analyse_run", run_id)
        counts["analyse"] = counts.get("analyse", 0) + 1
    synthetic = synthetic_recover(startup=startup, stale=stale_before)  # claimed again only when lost
    if synthetic:
        counts["synthetic"] = synthetic
    if startup:  # a re-score whose worker died (re-scoring again is harmless)
        for scoring_id in scorings_unfinished_before(stale_before):
            queue.enqueue("rescore_run", scoring_id)
            counts["rescore"] = counts.get("rescore", 0) + 1
    return counts


def _runs_with_lost_messages(*, startup: bool, stale_before) -> list[int]:
    running = Run.objects.filter(status=RunStatus.RUNNING)
    if startup:
        return list(running.values_list("id", flat=True))
    if Batch.objects.filter(run__status=RunStatus.RUNNING, heartbeat_at__gte=stale_before).exists():
        return []  # a worker is busy: unheld batches are waiting their turn in the queue
    idle = []
    rows = running.annotate(generated=Max("batches__generated_at"), scored=Max("batches__scored_at"))
    for run_id, started, generated, scored in rows.values_list("id", "started_at", "generated", "scored"):
        last_progress = max(t for t in (started, generated, scored) if t is not None) if started else None
        if last_progress is None or last_progress < stale_before:
            idle.append(run_id)
    return idle
