"""Which worker processes are alive: their heartbeat rows (WorkerBeat), checked rather than trusted.

Each worker writes its row every FTVP_WORKER_BEAT_SECONDS with its process id and host, marks it
`stopping` when its warm shutdown begins, and removes it as the shutdown ends (workers/lifecycle.py). A
killed worker leaves its row behind, fresh for a few more seconds; so a row counts as a live worker
only when:

- it is fresh: seen within 3 x FTVP_WORKER_BEAT_SECONDS;
- its process still runs, when the row was written on this machine (same host name and process-id
  namespace: the pid means the same process here); a row of another machine is judged by its age
  alone;
- for taking work: its worker is not shutting down (a worker in warm shutdown finishes the tasks in
  hand, holding their leases, but takes no new ones).
"""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from evaluations.models import WorkerBeat

RUN_QUEUES = frozenset({"llm", "scoring"})


@functools.cache
def this_host() -> str:
    """This machine as far as process ids go: its name and, on Linux, its pid namespace (two
    containers may share a name, never a namespace)."""
    name = socket.gethostname()
    try:
        return f"{name} {os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return name


@functools.cache
def _has_proc() -> bool:
    return os.path.exists("/proc/self/stat")


def pid_running(pid: int | None) -> bool:
    """Whether process `pid` of this machine runs: it exists and is not a zombie (exited, not yet
    reaped by its parent)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    except OSError:
        return False
    if not _has_proc():
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except FileNotFoundError:
        return False  # it exited just now
    except OSError:
        return True
    state = stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3]
    return state not in (b"Z", b"X")


def _fresh_after(now: datetime) -> datetime:
    return now - timedelta(seconds=3 * settings.FTVP_WORKER_BEAT_SECONDS)


def is_local(beat: WorkerBeat) -> bool:
    """Whether the row's pid can be checked here."""
    return bool(beat.pid) and beat.host == this_host()


def known_dead(beat: WorkerBeat) -> bool:
    """The row's process is known to have exited (it ran on this machine and runs no more)."""
    return is_local(beat) and not pid_running(beat.pid)


def beat_alive(beat: WorkerBeat, *, now: datetime | None = None) -> bool:
    """The row's worker process runs (possibly in its warm shutdown): fresh, and not known dead."""
    now = now or timezone.now()
    return beat.last_seen >= _fresh_after(now) and not known_dead(beat)


def beat_takes_work(beat: WorkerBeat, *, now: datetime | None = None) -> bool:
    """The row's worker runs and takes new tasks (it is not shutting down)."""
    return not beat.stopping and beat_alive(beat, now=now)


def beat_queues(beat: WorkerBeat) -> set[str] | None:
    """The queues the worker consumes; None for a row that named none (counted as taking all)."""
    return {q for q in beat.queues.split(",") if q} or None


def live_workers(*, queues: Iterable[str] | None = None, now: datetime | None = None) -> list[WorkerBeat]:
    """The workers that run and take new tasks; with `queues`, only those consuming one of them."""
    now = now or timezone.now()
    wanted = set(queues) if queues is not None else None
    found = []
    for beat in WorkerBeat.objects.filter(last_seen__gte=_fresh_after(now), stopping=False):
        if not beat_takes_work(beat, now=now):
            continue
        taken = beat_queues(beat)
        if wanted is None or taken is None or wanted & taken:
            found.append(beat)
    return found


def run_workers_alive(*, now: datetime | None = None) -> bool:
    """Whether live workers take every step of a run: together they consume `llm` and `scoring`."""
    covered: set[str] = set()
    for beat in live_workers(queues=RUN_QUEUES, now=now):
        taken = beat_queues(beat)
        if taken is None:
            return True
        covered |= taken
    return covered >= RUN_QUEUES


def worker_reported(pid: int, *, now: datetime | None = None) -> bool:
    """Whether the worker process `pid` of this machine has reported in and takes work (a worker
    this process started is ready)."""
    now = now or timezone.now()
    return any(
        beat_takes_work(beat, now=now)
        for beat in WorkerBeat.objects.filter(pid=pid, host=this_host(), last_seen__gte=_fresh_after(now))
    )


def _lease_window() -> float:
    """How long after its last heartbeat a worker may still hold a fresh lease."""
    return max(settings.FTVP_STALL_SECONDS, 3 * settings.FTVP_WORKER_BEAT_SECONDS)


def namesake_may_hold_leases(hostname: str, *, now: datetime | None = None) -> bool:
    """Whether another process reported under this node name and may still hold a lease: two
    workers started on one machine without `-n` are both `celery@host` and share one row. Read before
    a starting worker writes its own row over that one."""
    now = now or timezone.now()
    window = _lease_window()
    beat = WorkerBeat.objects.filter(
        hostname=hostname, last_seen__gte=now - timedelta(seconds=window)
    ).first()
    if beat is None or (beat.pid == os.getpid() and is_local(beat)):
        return False
    return not known_dead(beat)


def others_may_hold_leases(hostname: str, *, now: datetime | None = None) -> bool:
    """Whether a worker other than `hostname` may hold a lease (a batch in hand): one that runs, even
    in its warm shutdown, or one that reported in within FTVP_STALL_SECONDS and is not known to have
    exited (a row of another machine, whose process cannot be checked from here). When none may, every
    lease taken before now is orphaned: a worker starting recovers that work at once."""
    now = now or timezone.now()
    window = _lease_window()
    recent = WorkerBeat.objects.exclude(hostname=hostname).filter(
        last_seen__gte=now - timedelta(seconds=window)
    )
    return any(not known_dead(beat) for beat in recent)
