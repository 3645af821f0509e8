"""The one seam through which services send work to the workers: tasks by name, after the commit.

Services call `queue.enqueue("run_batch", batch_id)` (this module's attribute, so tests replace it
once: tests/conftest.py's `task_queue`). The task is sent by name through the current Celery app
(ftvp_site/__init__.py makes workers/celery.py's app the current one), so nothing here, and nothing
in services/, imports workers/: the workers depend on the services, never the other way round.
"""

from __future__ import annotations

from celery import current_app
from django.db import transaction


def enqueue(task: str, *args: object, countdown: float | None = None) -> None:
    """Send `workers.tasks.<task>(*args)` once the current transaction commits (at once outside one);
    with `countdown`, to be run that many seconds later (a poller's next look)."""
    name = f"workers.tasks.{task}"
    options = {} if countdown is None else {"countdown": max(0.0, float(countdown))}
    # robust: a broker that is down must not stop the callbacks after this one (nor fail the request
    # that committed); the workers' recovery sweep re-sends what was not sent.
    transaction.on_commit(lambda: current_app.send_task(name, args=list(args), **options), robust=True)
