"""Stalled runs (unfinished, no worker alive, no live lease, no progress) are told apart from runs
being worked on, and `run_resume` sends again exactly the work they still need."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from evaluations.models import AuditEvent, Batch, Result, Run, RunStatus, WorkerBeat
from evaluations.selectors.stalls import run_stall, runs_stalled
from evaluations.services.runs import RunError, run_create, run_resume
from tests.factories import UserFactory, strategy
from tests.services.test_runs import _suite

# The tests' FTVP_STALL_SECONDS is an hour (tests/conftest.py): "long ago" is two.
LONG_AGO = timedelta(hours=2)


def _started_run(endpoint, task_queue, cases: int = 16) -> Run:
    """A running run of `cases // 4` batches whose batch messages were lost (never delivered)."""
    run = run_create(suite_version=_suite(cases), arms=[(endpoint, strategy("plain"))])
    task_queue.drain(limit=1)  # start_run
    task_queue.sent.clear()
    return Run.objects.get(pk=run.pk)


def _age(run: Run) -> Run:
    """Everything that happened to the run happened long ago (the run as it is now)."""
    then = timezone.now() - LONG_AGO
    Run.objects.filter(pk=run.pk).update(created_at=then, started_at=then)
    Result.objects.filter(arm__run=run).update(created_at=then)
    for field in ("generated_at", "scored_at", "heartbeat_at"):
        Batch.objects.filter(run=run, **{f"{field}__isnull": False}).update(**{field: then})
    return Run.objects.get(pk=run.pk)


def _worker(seen_ago: timedelta, queues: str = "llm,scoring,training") -> None:
    WorkerBeat.objects.create(hostname=f"w{WorkerBeat.objects.count()}@h", queues=queues,
                              last_seen=timezone.now() - seen_ago)  # fmt: skip


# --- stalled or not -------------------------------------------------------------------------------


def test_a_running_run_whose_worker_is_gone_and_that_made_no_progress_is_stalled(endpoint, task_queue):
    run = _started_run(endpoint, task_queue)
    first = Batch.objects.filter(run=run).order_by("index").first()
    Result.objects.create(arm=run.arms.get(), case_id=first.case_ids[0], sample=0, output="answer 0")
    Batch.objects.filter(pk=first.pk).update(heartbeat_at=timezone.now())  # a dead worker's lease
    _worker(seen_ago=timedelta(hours=3))
    run = _age(run)

    stall = run_stall(run)

    assert stall is not None and stall.worker_last_seen is not None
    assert stall.last_progress < timezone.now() - timedelta(hours=1)
    assert stall.reason.startswith("no worker has reported in for 3\xa0hours")
    assert "the run has made no progress since" in stall.reason


def test_a_queued_run_nobody_picked_up_is_stalled_and_says_no_worker_is_running(endpoint, task_queue):
    run = run_create(suite_version=_suite(4), arms=[(endpoint, strategy("plain"))])
    run = _age(run)
    stall = run_stall(run)
    assert stall is not None and stall.worker_last_seen is None
    assert stall.reason.startswith("no worker is running")
    assert "the run has not started since" in stall.reason


@pytest.mark.parametrize(
    "situation",
    ["a worker reported in just now", "a batch's lease is live", "a result was saved just now",
     "a batch was scored just now", "the run started just now"],
)  # fmt: skip
def test_a_run_being_worked_on_or_just_moved_is_not_stalled(endpoint, task_queue, situation):
    run = _started_run(endpoint, task_queue)
    run = _age(run)
    _worker(seen_ago=timedelta(hours=3))
    assert run_stall(run) is not None  # the control: stalled until the situation says otherwise
    first = Batch.objects.filter(run=run).order_by("index").first()
    now = timezone.now()
    if situation == "a worker reported in just now":
        _worker(seen_ago=timedelta(seconds=1), queues="llm")
    elif situation == "a batch's lease is live":
        Batch.objects.filter(pk=first.pk).update(heartbeat_at=now)
    elif situation == "a result was saved just now":
        Result.objects.create(arm=run.arms.get(), case_id=first.case_ids[0], sample=0, output="x")
    elif situation == "a batch was scored just now":
        Batch.objects.filter(pk=first.pk).update(generated_at=now, scored_at=now)
    else:
        Run.objects.filter(pk=run.pk).update(started_at=now)
    assert run_stall(Run.objects.get(pk=run.pk)) is None


def test_a_worker_that_only_trains_does_not_keep_a_run_from_being_stalled(endpoint, task_queue):
    run = _started_run(endpoint, task_queue)
    run = _age(run)
    _worker(seen_ago=timedelta(seconds=1), queues="training")
    assert run_stall(run) is not None


def test_finished_runs_are_never_stalled_and_cost_no_query(endpoint, task_queue):
    run = _started_run(endpoint, task_queue)
    run = _age(run)
    Run.objects.filter(pk=run.pk).update(status=RunStatus.CANCELLED, finished_at=timezone.now())
    run.refresh_from_db()
    with CaptureQueriesContext(connection) as queries:
        assert runs_stalled([run]) == {}
    assert len(queries) == 0


# --- resume ---------------------------------------------------------------------------------------


def test_resume_sends_exactly_the_unfinished_steps_no_live_worker_holds(endpoint, task_queue):
    run = _started_run(endpoint, task_queue, cases=20)  # 5 batches
    scored, generated, stale, live, untouched = Batch.objects.filter(run=run).order_by("index")
    now, then = timezone.now(), timezone.now() - LONG_AGO
    Batch.objects.filter(pk=scored.pk).update(generated_at=then, scored_at=then)
    Batch.objects.filter(pk=generated.pk).update(generated_at=then)
    Batch.objects.filter(pk=stale.pk).update(heartbeat_at=then)  # its worker died
    Batch.objects.filter(pk=live.pk).update(heartbeat_at=now)  # a worker is on it
    editor = UserFactory(username="eddie", roles=["editor"])

    sent = run_resume(run_id=run.pk, actor=editor)

    assert sent == {"start": 0, "generate": 2, "score": 1, "finalize": 0}
    assert sorted(task_queue.sent) == sorted(
        [("score_batch", (generated.pk,)), ("run_batch", (stale.pk,)), ("run_batch", (untouched.pk,))]
    )
    assert Batch.objects.get(pk=stale.pk).heartbeat_at is None  # released: the sweep leaves it be
    assert Batch.objects.get(pk=live.pk).heartbeat_at == now
    [event] = AuditEvent.objects.filter(action="run.resume")
    assert event.actor_name == "eddie" and event.object_id == str(run.pk)
    assert event.after == {"status": "running", "sent": {"generate": 2, "score": 1}}


def test_resume_starts_a_queued_run_and_finalizes_a_run_whose_batches_are_all_scored(endpoint, task_queue):
    queued = run_create(suite_version=_suite(4), arms=[(endpoint, strategy("plain"))])
    task_queue.sent.clear()
    assert run_resume(run_id=queued.pk)["start"] == 1
    assert task_queue.sent == [("start_run", (queued.pk,))]

    task_queue.sent.clear()
    running = _started_run(endpoint, task_queue, cases=8)
    Batch.objects.filter(run=running).update(generated_at=timezone.now(), scored_at=timezone.now())
    assert run_resume(run_id=running.pk) == {"start": 0, "generate": 0, "score": 0, "finalize": 1}
    assert task_queue.sent == [("finalize_run", (running.pk,))]


def test_resuming_twice_is_harmless_and_the_run_finishes_with_one_result_each(
    endpoint, fake_openai, task_queue
):
    run = _started_run(endpoint, task_queue, cases=12)
    run_resume(run_id=run.pk)
    run_resume(run_id=run.pk)  # the same steps twice: each checks its lease and done-mark first
    assert task_queue.names().count("run_batch") == 6
    task_queue.drain()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert Result.objects.filter(arm__run=run).count() == 12
    assert len(fake_openai.requests) == 12  # no case was asked twice
    assert run.batches_scored == run.batches_total == 3


@pytest.mark.parametrize("status", [RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED])
def test_resume_refuses_a_finished_run_and_says_why(endpoint, task_queue, status):
    run = _started_run(endpoint, task_queue)
    Run.objects.filter(pk=run.pk).update(status=status, finished_at=timezone.now())
    with pytest.raises(RunError) as refused:
        run_resume(run_id=run.pk)
    assert str(refused.value) == (
        f"run #{run.pk} is {status}: only a queued or running run can be resumed; "
        "start a new run to evaluate again"
    )
    assert task_queue.sent == []
    assert not AuditEvent.objects.filter(action="run.resume").exists()
