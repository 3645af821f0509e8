"""Worker lifecycle: a heartbeat row so the CLI can tell a worker is up, and the recovery sweep.

On start a worker re-enqueues work a killed worker left behind; then, every FTVP_STALL_SECONDS / 2,
it re-enqueues batches whose lease went stale. Both run in a side thread of the worker's main process.
"""

from __future__ import annotations

import logging
import threading
import time

from celery.signals import worker_init, worker_ready, worker_shutdown

log = logging.getLogger("ftvp.worker")
_stop = threading.Event()


def _loop(hostname: str, queues: str) -> None:
    from django.conf import settings
    from django.db import close_old_connections
    from django.utils import timezone

    from evaluations.models import WorkerBeat
    from evaluations.services.alerts import alerts_recover
    from evaluations.services.finetune import finetunes_recover
    from evaluations.services.runs import runs_recover

    sweep_every = max(1.0, settings.FTVP_STALL_SECONDS / 2)
    beat_every = settings.FTVP_WORKER_BEAT_SECONDS
    last_sweep = time.monotonic()
    first = True
    while not _stop.is_set():
        try:
            close_old_connections()
            WorkerBeat.objects.update_or_create(
                hostname=hostname, defaults={"last_seen": timezone.now(), "queues": queues}
            )
            if first or time.monotonic() - last_sweep >= sweep_every:
                counts = runs_recover(startup=first)
                if any(counts.values()):
                    log.info("recovery re-enqueued %s", counts)
                jobs = finetunes_recover(startup=first)
                if any(jobs.values()):
                    log.info("fine-tuning recovery: %s", jobs)
                if alerts := alerts_recover():
                    log.info("alert recovery re-enqueued %d delivery(ies)", alerts)
                first, last_sweep = False, time.monotonic()
        except Exception:  # the loop must outlive a database hiccup
            log.exception("worker heartbeat/recovery failed; retrying")
        _stop.wait(beat_every)
    try:
        WorkerBeat.objects.filter(hostname=hostname).delete()
    except Exception:
        log.exception("could not remove the worker heartbeat")


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
    ):
        importlib.import_module(module)


@worker_ready.connect
def _start_heartbeat(sender=None, **kwargs) -> None:
    hostname = getattr(sender, "hostname", "worker")
    queues = ",".join(sorted(q.name for q in sender.app.amqp.queues.consume_from.values())) if sender else ""
    thread = threading.Thread(target=_loop, args=(hostname, queues), name="ftvp-heartbeat", daemon=True)
    thread.start()


@worker_shutdown.connect
def _stop_heartbeat(**kwargs) -> None:
    _stop.set()
