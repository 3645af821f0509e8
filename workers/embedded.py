"""Start a real Celery worker process for embedded mode (`make demo`, `evaluate --wait`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings

QUEUES = "llm,scoring,training"


def live_worker_count() -> int:
    """Workers that run and take new work (their heartbeat checked: evaluations/selectors/workers.py)."""
    from evaluations.selectors.workers import live_workers

    return len(live_workers())


def worker_command(*, name: str, concurrency: int = 4, beat: bool = False) -> list[str]:
    """The worker's command line. `beat` also runs celery beat inside it (schedules from the
    database): only for `make demo`, where it is the one beat of the installation; a second beat
    (say, `evaluate --wait`'s worker) would send every due schedule twice."""
    # A thread pool: one copy of the local model and the embedder serves every task of the process.
    command = [
        sys.executable, "-m", "celery", "-A", "workers", "worker",
        "-Q", QUEUES, "--pool", "threads", "--concurrency", str(concurrency),
        "--loglevel", "INFO", "--hostname", f"{name}@%h", "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    if beat:
        command += ["--beat", "--scheduler", settings.CELERY_BEAT_SCHEDULER]
    return command


def start_worker(
    *, name: str, log_path: Path, env: dict | None = None, beat: bool = False
) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")  # noqa: SIM115 - the child process owns it
    return subprocess.Popen(
        worker_command(name=name, beat=beat),
        cwd=settings.BASE_DIR,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )


def wait_until_ready(proc: subprocess.Popen, timeout: float = 120.0) -> bool:
    """Whether the worker `proc` reported in (its own heartbeat row: another worker's does not
    count) before it exited or `timeout` passed."""
    from evaluations.selectors.workers import worker_reported

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if worker_reported(proc.pid):
            return True
        time.sleep(0.2)
    return False


def stop_worker(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)  # warm shutdown: finish the task in hand
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:  # the whole group: an embedded beat is a child process of the worker
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        proc.wait(timeout=5)
