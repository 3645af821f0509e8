"""Enqueue Celery tasks by name, only after the surrounding transaction commits."""

from __future__ import annotations

from django.db import transaction


def enqueue(task: str, *args: object) -> None:
    """Send `workers.tasks.<task>(*args)` once the current transaction commits (at once outside one)."""
    from workers.celery import app

    name = f"workers.tasks.{task}"
    transaction.on_commit(lambda: app.send_task(name, args=list(args)))
