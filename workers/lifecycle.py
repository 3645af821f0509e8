"""Worker lifecycle: a heartbeat row so the CLI can tell a worker is up, and the recovery sweep.

The row (WorkerBeat) carries the worker's process id and host, so a reader on the same machine can
check that the process still runs (evaluations/selectors/workers.py). It is written before the worker
takes its first task, then every FTVP_WORKER_BEAT_SECONDS from a side thread; it is marked `stopping`
as soon as a warm shutdown begins (the worker takes no new work) and removed, synchronously, as the
shutdown ends: a command that relies on the worker sees it go at once, not a few seconds later.

On start a worker re-enqueues work a killed or stopped worker left behind (before taking any task of
its own: when every other worker is known to have exited, the leases they held are released at once);
then, every FTVP_STALL_SECONDS / 2, it re-enqueues batches whose lease went stale.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from celery.signals import worker_init, worker_ready, worker_shutdown, worker_shutting_down

log = logging.getLogger("ftvp.worker")

_lock = threading.Lock()  # one write of the row at a time; none after its removal
_stop = threading.Event()  # the worker has stopped: the row is gone and stays gone
_stopping = threading.Event()  # a warm shutdown began
_wake = threading.Event()  # write the row now (it is stopping)
_me: dict[str, str] = {}


def _write_beat() -> None:
    """Insert or refresh this worker's row, unless it was removed (the worker stopped)."""
    from django.utils import timezone

    from evaluations.models import WorkerBeat
    from evaluations.selectors.workers import this_host

    with _lock:
        if _stop.is_set():
            return
        WorkerBeat.objects.update_or_create(
            hostname=_me["hostname"],
            defaults={
                "last_seen": timezone.now(),
                "queues": _me["queues"],
                "pid": os.getpid(),
                "host": this_host(),
                "stopping": _stopping.is_set(),
            },
        )


def _remove_beat() -> None:
    """Remove this worker's row for good (its pid: a row taken over by a namesake is left alone)."""
    from evaluations.models import WorkerBeat

    with _lock:
        _stop.set()
        if _me:
            WorkerBeat.objects.filter(hostname=_me["hostname"], pid=os.getpid()).delete()


def _sweep(*, startup: bool, orphaned_before=None) -> None:
    from evaluations.services.alerts import alerts_recover
    from evaluations.services.finetune import finetunes_recover
    from evaluations.services.recovery import runs_recover
    from evaluations.services.shadow import shadows_dispatch

    counts = runs_recover(startup=startup, orphaned_before=orphaned_before)
    if any(counts.values()):
        log.info("recovery re-enqueued %s", counts)
    jobs = finetunes_recover(startup=startup)
    if any(jobs.values()):
        log.info("fine-tuning recovery: %s", jobs)
    if alerts := alerts_recover():
        log.info("alert recovery re-enqueued %d delivery(ies)", alerts)
    if shadows := shadows_dispatch():  # live calls recorded since: their shadows
        log.debug("shadow evaluation: %d configuration(s) with new calls", shadows)


def _loop(*, swept: bool) -> None:
    from django.conf import settings
    from django.db import close_old_connections, connection

    sweep_every = max(1.0, settings.FTVP_STALL_SECONDS / 2)
    beat_every = settings.FTVP_WORKER_BEAT_SECONDS
    last_sweep = time.monotonic()
    first = not swept
    while not _stop.is_set():
        try:
            close_old_connections()
            _write_beat()
            due = first or time.monotonic() - last_sweep >= sweep_every
            if due and not _stopping.is_set() and not _stop.is_set():
                _sweep(startup=first)
                first, last_sweep = False, time.monotonic()
        except Exception:  # the loop must outlive a database hiccup
            log.exception("worker heartbeat/recovery failed; retrying")
        _wake.wait(beat_every)
        _wake.clear()
    connection.close()


@worker_init.connect
def _import_the_pipeline(**kwargs) -> None:
    """Import what a run's steps use before taking work: otherwise the first run of a fresh worker
    waits a second or two mid-run for scipy, scikit-learn and the analysis modules to load."""
    import importlib

    for module in (
        "evaluations.services.runs",
        "evaluations.services.scorings",
        "evaluations.services.drift",
        "evaluations.services.findings",
        "evaluations.services.trends",
        "evaluations.services.alerts",
        "evaluations.providers.openai_compat",
        "evaluations.selectors.workers",
    ):
        importlib.import_module(module)


@worker_ready.connect
def _start_heartbeat(sender=None, **kwargs) -> None:
    """Sent once the worker consumes and before it takes its first task: write the row, sweep for
    work left behind, then keep the row fresh from a side thread."""
    from django.db import connection
    from django.utils import timezone

    from evaluations.selectors.workers import namesake_may_hold_leases, others_may_hold_leases

    hostname = getattr(sender, "hostname", None) or f"worker-{os.getpid()}"
    queues = ",".join(sorted(q.name for q in sender.app.amqp.queues.consume_from.values())) if sender else ""
    _me.update(hostname=hostname, queues=queues)
    swept = False
    try:
        started = timezone.now()  # any lease this worker takes is newer
        namesake = namesake_may_hold_leases(hostname)  # before this worker's row replaces its
        _write_beat()
        alone = not namesake and not others_may_hold_leases(hostname)
        _sweep(startup=True, orphaned_before=started if alone else None)
        swept = True
    except Exception:  # the side thread tries again
        log.exception("worker heartbeat/start-up recovery failed; retrying")
    finally:
        connection.close()  # this thread's; the side thread has its own
    thread = threading.Thread(target=_loop, kwargs={"swept": swept}, name="ftvp-heartbeat", daemon=True)
    thread.start()


@worker_shutting_down.connect
def _mark_stopping(**kwargs) -> None:
    """Sent from the signal handler (SIGTERM, SIGINT): the side thread marks the row `stopping` at
    once, so commands relying on this worker start their own while it finishes the tasks in hand."""
    _stopping.set()
    _wake.set()


@worker_shutdown.connect
def _stop_heartbeat(**kwargs) -> None:
    """Sent as the worker stops, in its main thread, after its tasks in hand finished: the row goes
    now (a daemon thread left to do it may never run before the process exits)."""
    from django.db import connection

    _wake.set()
    try:
        _remove_beat()
    except Exception:
        log.exception("could not remove the worker heartbeat")
    finally:
        connection.close()
