"""`evaluate --wait` makes sure a live worker takes its run (issue 18), in process: the worker it would
start is a stand-in that runs the queued tasks here (tests/integration/test_evaluate_workers.py starts
real ones). On embedded defaults it starts its own whenever none takes work or none picks the run up;
with Redis it says how to start one and gives up when none runs."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from evaluations.models import Run, RunStatus, WorkerBeat
from evaluations.selectors.workers import this_host
from tests.factories import EndpointFactory, strategy
from tests.services.test_runs import _suite


class StandInWorker:
    """What `embedded.start_worker` returns. "works": runs every queued task as it starts and keeps
    running; "fails": exits before reporting in; "dies": reports in, then exits having done nothing."""

    def __init__(self, task_queue, mode: str = "works") -> None:
        self.pid, self.returncode, self.mode, self.polls = 4_000_000, None, mode, 0
        if mode == "works":
            task_queue.drain()
        elif mode == "fails":
            self.returncode = 1

    def poll(self):
        self.polls += 1
        if self.mode == "dies" and self.polls > 1:
            self.returncode = 1
        return self.returncode


@pytest.fixture
def setup(db, fake_openai, task_queue, monkeypatch):
    _suite(4)
    EndpointFactory(name="e", base_url=fake_openai.base_url)
    strategy("plain")
    monkeypatch.setattr("evaluations.management.commands.evaluate.PICKUP_SECONDS", 0.3)
    started: list[str] = []
    plan: list[str] = []  # what each worker started does (StandInWorker's modes); then "works"

    def start_worker(*, name, log_path, **kwargs):
        started.append(name)
        return StandInWorker(task_queue, plan.pop(0) if plan else "works")

    monkeypatch.setattr("workers.embedded.start_worker", start_worker)
    monkeypatch.setattr("workers.embedded.wait_until_ready", lambda proc, timeout=120: proc.poll() is None)
    monkeypatch.setattr("workers.embedded.stop_worker", lambda proc, timeout=20: None)
    return started, plan


def _evaluate(*extra: str) -> tuple[str, str]:
    from evaluations.models import SuiteVersion

    suite = SuiteVersion.objects.get().suite.name
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("evaluate", "--suite", suite, "--arm", "e:plain", "--wait", "--json", *extra,
                     stdout=out, stderr=err)  # fmt: skip
    except CommandError as exc:
        exc.stderr = err.getvalue()
        raise
    return out.getvalue(), err.getvalue()


def _beat(pid: int, host: str | None = None) -> WorkerBeat:
    return WorkerBeat.objects.create(hostname=f"w{pid}@box", queues="llm,scoring,training",
                                     last_seen=timezone.now(), pid=pid, host=host or this_host())  # fmt: skip


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_fresh_row_of_a_worker_that_exited_is_not_relied_on(setup, settings):
    """Issue 18: the previous command's worker, just stopped, its row still there: start our own."""
    settings.EMBEDDED = True
    started, _ = setup
    _beat(_dead_pid())
    _, err = _evaluate()
    run = Run.objects.get()
    assert run.status == RunStatus.SUCCEEDED
    assert started == [f"evaluate-{run.pk}"]
    assert "no worker running: starting one for this command" in err


def test_a_live_worker_that_does_not_pick_the_run_up_gets_company(setup, settings):
    settings.EMBEDDED = True
    started, _ = setup
    _beat(os.getpid())  # alive, but takes nothing (busy, or wedged)
    _, err = _evaluate()
    run = Run.objects.get()
    assert run.status == RunStatus.SUCCEEDED and len(started) == 1
    assert f"no worker has picked up run #{run.pk} after" in err


def test_a_worker_that_fails_to_start_is_said_at_once(setup, settings):
    settings.EMBEDDED = True
    _, plan = setup
    plan.append("fails")
    with pytest.raises(CommandError) as exc:
        _evaluate()
    assert exc.value.returncode == 2 and "the worker did not start; see" in str(exc.value)


def test_a_worker_that_exits_mid_wait_is_replaced_until_the_run_ends(setup, settings):
    settings.EMBEDDED = True
    started, plan = setup
    plan += ["dies", "dies"]
    _, err = _evaluate()
    run = Run.objects.get()
    assert run.status == RunStatus.SUCCEEDED
    assert started == [f"evaluate-{run.pk}", f"evaluate-{run.pk}-2", f"evaluate-{run.pk}-3"]
    assert err.count("the worker this command started exited (code 1)") == 2
    assert f"no live worker has picked up run #{run.pk} (the one relied on is gone)" in err


def test_a_worker_that_keeps_exiting_is_given_up_on(setup, settings):
    settings.EMBEDDED = True
    started, plan = setup
    plan += ["dies"] * 10
    with pytest.raises(CommandError) as exc:
        _evaluate()
    assert exc.value.returncode == 2 and "exited 5 times" in str(exc.value)
    assert len(started) == 5


def test_with_redis_and_no_worker_it_says_how_to_start_one_and_gives_up_with_exit_2(setup, settings):
    settings.EMBEDDED = False
    started, _ = setup
    _beat(_dead_pid())  # a killed worker's row
    with pytest.raises(CommandError) as exc:
        _evaluate("--worker-grace", "1")
    run = Run.objects.get()
    assert exc.value.returncode == 2 and started == []
    assert f"no worker has picked up run #{run.pk}: none has been running for 1s" in str(exc.value)
    assert "celery -A workers worker -Q llm,scoring" in str(exc.value)
    assert f"no worker is running to pick up run #{run.pk}" in exc.value.stderr
    assert run.status == RunStatus.QUEUED  # it resumes when a worker runs


def test_with_redis_a_busy_worker_is_reported_and_waited_for(setup, settings):
    settings.EMBEDDED = False
    _beat(os.getpid())  # alive: the command waits (until --timeout) rather than giving up
    with pytest.raises(CommandError) as exc:
        _evaluate("--worker-grace", "0.2", "--timeout", "1.5")
    run = Run.objects.get()
    assert "did not finish within 2s" in str(exc.value)
    assert f"no worker has picked up run #{run.pk} after" in exc.value.stderr
    assert "start another with: celery -A workers worker -Q llm,scoring" in exc.value.stderr


def test_with_redis_a_worker_that_goes_away_mid_run_is_reported(setup, settings, monkeypatch):
    settings.EMBEDDED = False
    alive = iter([True, True, True])  # then gone for good
    monkeypatch.setattr("evaluations.selectors.workers.run_workers_alive", lambda **kw: next(alive, False))
    with pytest.raises(CommandError) as exc:
        _evaluate("--worker-grace", "0.6")
    run = Run.objects.get()
    assert exc.value.returncode == 2
    assert f"no worker has picked up run #{run.pk}: none is running" in exc.value.stderr
    assert "giving up in 1s unless one reports in" in exc.value.stderr
