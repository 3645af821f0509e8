"""Heartbeats for leases held by slow work (a batch's model calls, a training job)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import QuerySet
from django.utils import timezone

log = logging.getLogger(__name__)


@contextmanager
def heartbeat(rows: QuerySet, *, name: str) -> Iterator[None]:
    """Set `heartbeat_at` on `rows` from a side thread every FTVP_STALL_SECONDS / 4 while the body
    runs, so a lease goes stale only when its process is gone."""
    stop = threading.Event()
    interval = max(1.0, settings.FTVP_STALL_SECONDS / 4)

    def beat() -> None:
        try:
            while not stop.wait(interval):
                try:
                    rows.update(heartbeat_at=timezone.now())
                except DatabaseError:  # a locked or restarting database: try again next beat
                    log.warning("heartbeat of %s failed; retrying", name, exc_info=True)
                    connection.close()
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name=f"heartbeat-{name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
