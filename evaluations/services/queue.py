"""Enqueue Celery tasks by name, only after the surrounding transaction commits."""

from __future__ import annotations

from django.db import transaction


def enqueue(task: str, *args: object) -> None:
    """Send `workers.tasks.<task>(*args)` once the current transaction commits (at once outside one)."""
    from workers.celery import app

    name = f"workers.tasks.{task}"
    # robust: a broker that is down must not stop the callbacks after this one (nor fail the request
    # that committed); the workers' recovery sweep re-sends what was not sent.
    transaction.on_commit(lambda: app.send_task(name, args=list(args)), robust=True)
