"""The embedded worker's command line: only the demo's worker runs beat (a second beat would send
every due schedule twice)."""

from __future__ import annotations

from workers.embedded import worker_command


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_the_demo_worker_runs_beat_with_the_database_scheduler():
    command = worker_command(name="demo", beat=True)
    assert "--beat" in command
    assert _option(command, "--scheduler") == "django_celery_beat.schedulers:DatabaseScheduler"
    assert _option(command, "-Q") == "llm,scoring,training"


def test_other_embedded_workers_run_no_beat():
    command = worker_command(name="evaluate-1")
    assert "--beat" not in command and "-B" not in command and "--scheduler" not in command
