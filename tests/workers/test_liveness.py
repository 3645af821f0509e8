"""A worker's liveness is checked, not guessed (issue 18): a heartbeat row counts as a live worker only
when it is fresh, its process still runs (when it ran on this machine) and it is not shutting down;
the worker writes its row before its first task and removes it as it stops."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone

from evaluations.models import Batch, Run, WorkerBeat
from evaluations.selectors.stalls import runs_stalled
from evaluations.selectors.workers import (
    beat_alive,
    beat_takes_work,
    known_dead,
    live_workers,
    namesake_may_hold_leases,
    others_may_hold_leases,
    pid_running,
    run_workers_alive,
    this_host,
    worker_reported,
)
from evaluations.services.recovery import runs_recover
from evaluations.services.runs import run_create
from tests.factories import EndpointFactory, strategy
from tests.services.test_runs import _suite
from workers.embedded import live_worker_count

OTHER_HOST = "elsewhere pid:[1]"


def _dead_pid() -> int:
    """The pid of a process that ran here and has exited (reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _beat(*, pid: int | None = None, host: str | None = None, seen_ago: float = 0.0, **fields) -> WorkerBeat:
    return WorkerBeat.objects.create(
        hostname=fields.pop("hostname", f"w{WorkerBeat.objects.count()}@box"),
        queues=fields.pop("queues", "llm,scoring,training"),
        last_seen=timezone.now() - timedelta(seconds=seen_ago),
        pid=os.getpid() if pid is None else pid,
        host=this_host() if host is None else host,
        **fields,
    )


def test_a_fresh_row_of_a_running_process_here_is_a_live_worker(db):
    beat = _beat()
    assert beat_alive(beat) and beat_takes_work(beat)
    assert live_worker_count() == 1 and run_workers_alive()
    assert worker_reported(os.getpid())


def test_a_stale_row_is_no_live_worker_even_if_its_process_runs(db, settings):
    settings.FTVP_WORKER_BEAT_SECONDS = 5
    here = _beat(seen_ago=16)  # 3 x 5 s without a beat
    there = _beat(host=OTHER_HOST, pid=12345, seen_ago=16)
    assert not beat_alive(here) and not beat_alive(there)
    assert live_worker_count() == 0 and not run_workers_alive()
    assert not worker_reported(os.getpid())


def test_a_fresh_row_whose_process_is_gone_is_no_live_worker(db):
    """The defect of issue 18: a stopped worker's row, a second old, taken for a live worker."""
    beat = _beat(pid=_dead_pid())
    assert known_dead(beat) and not beat_alive(beat)
    assert live_worker_count() == 0 and not run_workers_alive()


def test_a_zombie_process_is_gone(db):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 10
        while pid_running(proc.pid) and time.monotonic() < deadline:  # exited, not reaped yet
            time.sleep(0.05)
        assert not pid_running(proc.pid)
        assert not beat_alive(_beat(pid=proc.pid))
    finally:
        proc.wait()


def test_a_row_of_another_host_is_judged_by_its_age_alone(db):
    """Its pid means another machine's process: not checked here (no such pid here either)."""
    dead_here = _dead_pid()
    beat = _beat(host=OTHER_HOST, pid=dead_here)
    assert not known_dead(beat) and beat_alive(beat)
    assert live_worker_count() == 1


def test_a_row_without_a_pid_is_judged_by_its_age(db):
    """Rows written before the pid was recorded."""
    assert beat_alive(_beat(pid=0, host=""))
    assert not beat_alive(_beat(pid=0, host="", seen_ago=3600))


def test_a_worker_shutting_down_runs_but_takes_no_new_work(db):
    beat = _beat(stopping=True)
    assert beat_alive(beat) and not beat_takes_work(beat)
    assert live_worker_count() == 0 and not run_workers_alive()
    assert not worker_reported(os.getpid())


def test_live_workers_must_take_both_steps_of_a_run(db):
    _beat(queues="training")
    assert live_workers() and not run_workers_alive()
    _beat(queues="llm")
    assert not run_workers_alive()
    _beat(queues="scoring")
    assert run_workers_alive()
    assert len(live_workers(queues={"llm"})) == 1


def test_only_workers_that_may_still_run_may_hold_leases(db, settings):
    settings.FTVP_STALL_SECONDS = 120
    _beat(hostname="me@box")
    assert not others_may_hold_leases("me@box")
    _beat(pid=_dead_pid(), hostname="killed@box")  # fresh, known dead
    assert not others_may_hold_leases("me@box")
    _beat(host=OTHER_HOST, pid=1, seen_ago=300, hostname="long-gone@elsewhere")
    assert not others_may_hold_leases("me@box")
    stopping = _beat(stopping=True, hostname="stopping@box")  # finishing its tasks in hand
    assert others_may_hold_leases("me@box")
    stopping.delete()
    _beat(host=OTHER_HOST, pid=1, seen_ago=60, hostname="quiet@elsewhere")  # a lease may still be fresh
    assert others_may_hold_leases("me@box")


def test_a_worker_started_under_a_running_workers_name_does_not_take_its_leases(db, settings):
    """Two workers started without -n are both celery@host: the second must not read the first's
    row as its own and recover (re-send) the batches the first is still working on."""
    settings.FTVP_STALL_SECONDS = 120
    assert not namesake_may_hold_leases("celery@box")  # no row under the name yet
    row = _beat(hostname="celery@box", pid=os.getppid())  # another process here, alive
    assert namesake_may_hold_leases("celery@box")
    row.pid = os.getpid()  # the row is this very process's own
    row.save()
    assert not namesake_may_hold_leases("celery@box")
    row.pid = _dead_pid()  # its process has exited: nothing it held is held any more
    row.save()
    assert not namesake_may_hold_leases("celery@box")


def test_a_run_is_stalled_when_its_only_worker_is_known_dead(db, settings, task_queue):
    settings.FTVP_STALL_SECONDS = 5
    run = run_create(suite_version=_suite(4), arms=[(EndpointFactory(), strategy("plain"))])
    Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    run.refresh_from_db()
    beat = _beat()
    assert runs_stalled([run]) == {}
    WorkerBeat.objects.filter(pk=beat.pk).update(pid=_dead_pid())
    assert run.pk in runs_stalled([run])


# --- the worker's own row -------------------------------------------------------------------------


def _consumer():
    """What the worker_ready signal is sent with: the hostname and the queues consumed."""
    queues = {name: SimpleNamespace(name=name) for name in ("llm", "scoring")}
    app = SimpleNamespace(amqp=SimpleNamespace(queues=SimpleNamespace(consume_from=queues)))
    return SimpleNamespace(hostname="evaluate-7@box", app=app)


@pytest.fixture
def heartbeat_state():
    from workers import lifecycle

    for event in (lifecycle._stop, lifecycle._stopping, lifecycle._wake):
        event.clear()
    lifecycle._me.clear()
    yield lifecycle
    lifecycle._stop.set()  # ends the side thread
    lifecycle._wake.set()


def test_the_worker_writes_its_row_before_its_first_task_and_removes_it_as_it_stops(
    transactional_db, heartbeat_state
):
    signals = heartbeat_state
    signals._start_heartbeat(sender=_consumer())
    beat = WorkerBeat.objects.get()  # written before the handler returned, not by the side thread
    assert (beat.hostname, beat.queues, beat.pid, beat.host) == (
        "evaluate-7@box",
        "llm,scoring",
        os.getpid(),
        this_host(),
    )
    assert beat_takes_work(beat)

    signals._mark_stopping(sig="SIGTERM", how="Warm", exitcode=0)
    deadline = time.monotonic() + 5
    while not WorkerBeat.objects.get().stopping:  # the side thread marks it at once
        assert time.monotonic() < deadline, "the row was not marked stopping"
        time.sleep(0.02)
    assert live_worker_count() == 0

    signals._stop_heartbeat()
    assert not WorkerBeat.objects.exists()  # gone when the handler returns
    time.sleep(0.2)
    assert not WorkerBeat.objects.exists()  # and the side thread does not write it back


# --- the start-up sweep ---------------------------------------------------------------------------


def _running_run(task_queue, cases: int = 8) -> tuple[Run, Batch, Batch]:
    """A running run of two batches: the first held by a lease taken a second ago (by a worker that
    may be gone), the second unheld, its message lost."""
    run = run_create(suite_version=_suite(cases), arms=[(EndpointFactory(), strategy("plain"))])
    task_queue.drain(limit=1)  # start_run
    task_queue.sent.clear()
    held, unheld = Batch.objects.filter(run=run).order_by("index")
    Batch.objects.filter(pk=held.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=1))
    return run, held, unheld


def test_the_start_up_sweep_releases_leases_at_once_only_when_they_are_orphaned(db, task_queue):
    """FTVP_STALL_SECONDS is an hour in tests: a lease a second old is live, unless every worker that
    could hold it is known to have exited (`orphaned_before`, the starting worker's start)."""
    _, held, unheld = _running_run(task_queue)
    runs_recover(startup=True)
    assert task_queue.sent == [("run_batch", (unheld.pk,))]
    task_queue.sent.clear()

    runs_recover(startup=True, orphaned_before=timezone.now())
    assert sorted(task_queue.sent) == sorted([("run_batch", (held.pk,)), ("run_batch", (unheld.pk,))])
    assert Batch.objects.get(pk=held.pk).heartbeat_at is None
    task_queue.sent.clear()

    # A lease taken after the worker started (its own) is not orphaned.
    Batch.objects.filter(pk=held.pk).update(heartbeat_at=timezone.now())
    runs_recover(startup=True, orphaned_before=timezone.now() - timedelta(seconds=5))
    assert task_queue.sent == [("run_batch", (unheld.pk,))]


def test_the_start_up_sweep_sends_an_orphaned_analysis_again_at_once(db, task_queue):
    run = run_create(suite_version=_suite(4), arms=[(EndpointFactory(), strategy("plain"))])
    while "analyse_run" not in task_queue.names():
        task_queue.drain(limit=1)
    task_queue.sent.clear()  # the worker was killed with the analysis in hand
    runs_recover(startup=True)
    assert "analyse_run" not in task_queue.names()  # sent a moment ago: maybe under way
    runs_recover(startup=True, orphaned_before=timezone.now())
    assert task_queue.sent == [("analyse_run", (run.pk,))]


def test_a_worker_starting_alone_recovers_a_killed_workers_batch_at_once(
    transactional_db, heartbeat_state, task_queue
):
    _, held, unheld = _running_run(task_queue)
    _beat(pid=_dead_pid(), hostname="killed@box")  # it held the lease; its row is fresh
    heartbeat_state._start_heartbeat(sender=_consumer())
    assert Batch.objects.get(pk=held.pk).heartbeat_at is None
    assert sorted(task_queue.sent) == sorted([("run_batch", (held.pk,)), ("run_batch", (unheld.pk,))])


def test_a_worker_starting_beside_one_finishing_its_tasks_leaves_their_leases_alone(
    transactional_db, heartbeat_state, task_queue
):
    _, held, unheld = _running_run(task_queue)
    _beat(stopping=True, hostname="stopping@box")  # in its warm shutdown, the batch in hand
    heartbeat_state._start_heartbeat(sender=_consumer())
    assert Batch.objects.get(pk=held.pk).heartbeat_at is not None
    assert task_queue.sent == [("run_batch", (unheld.pk,))]
