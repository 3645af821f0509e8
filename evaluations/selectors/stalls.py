"""Stalled runs: unfinished, and nobody is working on them.

A run that is queued or running is stalled when all three hold:
- no worker that takes runs (queues llm or scoring) is alive: none has reported in lately (a fresh
  WorkerBeat row: within 3 x FTVP_WORKER_BEAT_SECONDS), or those that did are known to have exited
  or are shutting down (evaluations/selectors/workers.py, as `evaluate --wait` counts live workers);
- no batch of the run holds a live lease (a heartbeat within FTVP_STALL_SECONDS);
- nothing progressed for FTVP_STALL_SECONDS: not the run's start, a batch generated or scored, a lease
  renewed or a result saved.
A live worker's recovery sweep resumes lost work by itself, so only a run without one is reported;
`run_resume` re-sends its work, and a worker started later picks it up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Max
from django.utils import timezone
from django.utils.timesince import timesince

from evaluations.models import Batch, Result, Run, RunStatus, WorkerBeat
from evaluations.selectors.workers import RUN_QUEUES, beat_takes_work


@dataclass(frozen=True)
class RunStall:
    """Why an unfinished run is stalled: when it last moved, and when a worker last reported in."""

    run_id: int
    status: str
    last_progress: datetime
    worker_last_seen: datetime | None  # None: no worker has reported in (or all stopped cleanly)

    @property
    def reason(self) -> str:
        now = timezone.now()
        if self.worker_last_seen is None:
            workers = "no worker is running (none is reporting in)"
        else:
            workers = f"no worker has reported in for {timesince(self.worker_last_seen, now)}"
        what = "has not started" if self.status == RunStatus.QUEUED else "has made no progress"
        since = timezone.localtime(self.last_progress).strftime("%Y-%m-%d %H:%M:%S")
        return f"{workers}, and the run {what} since {since} ({timesince(self.last_progress, now)} ago)"

    def as_dict(self) -> dict:
        return {
            "reason": self.reason,
            "last_progress": self.last_progress,
            "worker_last_seen": self.worker_last_seen,
        }


def _worker_last_seen() -> tuple[bool, datetime | None]:
    """(is a worker that takes runs alive?, when any such worker last reported in)."""
    now = timezone.now()
    alive, last = False, None
    for beat in WorkerBeat.objects.all():
        # A worker that named no queues is counted (an older heartbeat row); a training-only one is not.
        if beat.queues and not RUN_QUEUES & set(beat.queues.split(",")):
            continue
        alive = alive or beat_takes_work(beat, now=now)
        last = beat.last_seen if last is None or beat.last_seen > last else last
    return alive, last


def runs_stalled(runs: Iterable[Run]) -> dict[int, RunStall]:
    """The stalled runs among `runs`, by id. Finished runs cost nothing; unfinished ones one query for
    the workers, and, only when no worker is alive, two more for all of them."""
    unfinished = [r for r in runs if r.status in (RunStatus.QUEUED, RunStatus.RUNNING)]
    if not unfinished:
        return {}
    alive, worker_seen = _worker_last_seen()
    if alive:
        return {}
    stale_before = timezone.now() - timedelta(seconds=settings.FTVP_STALL_SECONDS)
    ids = [run.pk for run in unfinished]
    batches = {
        row["run_id"]: row
        for row in Batch.objects.filter(run_id__in=ids)
        .values("run_id")
        .annotate(generated=Max("generated_at"), scored=Max("scored_at"), lease=Max("heartbeat_at"))
    }
    saved = dict(
        Result.objects.filter(arm__run_id__in=ids)
        .values("arm__run_id")
        .annotate(last=Max("created_at"))
        .values_list("arm__run_id", "last")
    )
    stalled = {}
    for run in unfinished:
        marks = batches.get(run.pk, {})
        if marks.get("lease") is not None and marks["lease"] >= stale_before:
            continue  # a worker held a batch a moment ago: not stalled (yet)
        moments = [run.created_at, run.started_at, saved.get(run.pk)]
        moments += [marks.get("generated"), marks.get("scored"), marks.get("lease")]
        last_progress = max(t for t in moments if t is not None)
        if last_progress < stale_before:
            stalled[run.pk] = RunStall(
                run_id=run.pk, status=run.status, last_progress=last_progress, worker_last_seen=worker_seen
            )
    return stalled


def run_stall(run: Run) -> RunStall | None:
    """Why `run` is stalled, or None when it is finished or being worked on (see the module)."""
    return runs_stalled([run]).get(run.pk)
