"""Acceptance: a schedule advanced by celery beat, without sleeping, makes a scheduled run that is run
and compared with the baseline.

django-celery-beat's real DatabaseScheduler reads the schedule's PeriodicTask from the database and
decides what is due; only its clock is ours. A due entry goes through the real `apply_async` of the
`scheduled_run` task, eager here, and the run's own tasks run in-process (`task_queue`).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler, ModelEntry
from django_celery_beat.tzcrontab import TzAwareCrontab

from evaluations.models import Finding, FindingKind, Run, RunStatus, Trigger
from evaluations.services.findings import baseline_set
from evaluations.services.runs import run_create
from evaluations.services.schedules import schedule_create
from tests.factories import CaseFactory, EndpointFactory, SuiteVersionFactory, strategy
from workers.celery import app

LABELS = ("positive", "negative")
N = 100


class Clock:
    """The time as beat, Django and the services see it; moved by the test, never slept through."""

    def __init__(self, now: datetime) -> None:
        self.value = now

    def now(self) -> datetime:
        return self.value

    def set(self, value: datetime) -> None:
        self.value = value


@pytest.fixture
def clock(monkeypatch):
    clock = Clock(datetime(2030, 5, 13, 12, 0, tzinfo=UTC))
    # Django (and through it django-celery-beat's now/aware_now, auto_now fields, the services) ...
    monkeypatch.setattr("django.utils.timezone.now", clock.now)
    # ... a beat entry's own "now" (its last run when it has none, the time it records when sent) ...
    monkeypatch.setattr(ModelEntry, "_default_now", lambda entry: clock.now().astimezone(entry.app.timezone))
    # ... and the crontab's "now", which decides whether the entry is due.
    monkeypatch.setattr(TzAwareCrontab, "nowfunc", lambda cron: clock.now().astimezone(cron.tz))
    return clock


@pytest.fixture
def beat(transactional_db, monkeypatch):
    """Starts celery beat's database scheduler (call it with the clock set); sent tasks run eagerly.

    The scheduler commits and closes connections as it would in its own process, hence a
    transactional test database."""
    monkeypatch.setitem(app.conf, "task_always_eager", True)
    started = []

    def start() -> DatabaseScheduler:
        scheduler = DatabaseScheduler(app=app)
        scheduler.producer = None  # eager tasks publish nothing: no broker connection
        started.append(scheduler)
        return scheduler

    yield start
    for scheduler in started:
        scheduler.close()
        scheduler._finalize.cancel()  # it would sync again at exit, after the test database is gone


def tick(scheduler: DatabaseScheduler) -> list[Run]:
    """One beat wake-up at the clock's time: send every due entry (a tick sends at most one), and
    return the scheduled runs that made."""
    before = set(Run.objects.filter(trigger=Trigger.SCHEDULE).values_list("pk", flat=True))
    for _ in range(10):
        if scheduler.tick() != 0:
            break
    return list(Run.objects.filter(trigger=Trigger.SCHEDULE).exclude(pk__in=before))


@pytest.fixture
def reviews(transactional_db, fake_openai, task_queue, settings):
    """A classification suite on a loopback endpoint whose right answers the test chooses per run."""
    settings.FTVP_BATCH_SIZE = N
    version = SuiteVersionFactory(
        suite__name="reviews", suite__task_type="classification", labels=list(LABELS)
    )
    for i in range(N):
        CaseFactory(version=version, key=f"r{i:03d}", position=i, input=f"review {i}", expected=LABELS[i % 2])
    endpoint = EndpointFactory(name="model", model="model", base_url=fake_openai.base_url)

    def answer_right(right: set[int]) -> None:
        def answer(body):
            i = int(body["messages"][-1]["content"].split()[1])
            return LABELS[i % 2] if i in right else LABELS[1 - i % 2]

        fake_openai.responder = answer

    return version, endpoint, answer_right


def test_beat_fires_a_nightly_schedule_whose_run_is_run_and_compared_with_the_baseline(
    clock, beat, reviews, task_queue
):
    version, endpoint, answer_right = reviews
    arm = (endpoint, strategy("plain"))
    rng = random.Random(7)
    good = set(rng.sample(range(N), 90))  # 90% right
    answer_right(good)
    baseline = run_create(suite_version=version, arms=[arm], use_cache=False)
    task_queue.drain()
    baseline.refresh_from_db()
    assert baseline.status == RunStatus.SUCCEEDED
    baseline_set(suite=version.suite, run=baseline)
    schedule = schedule_create(suite=version.suite, name="nightly", arms=[arm])  # 02:00 UTC

    # The model behind the endpoint changes during the day: it now gets 70% right.
    answer_right(set(rng.sample(sorted(good), 70)))
    clock.set(datetime(2030, 5, 14, 1, 58, tzinfo=UTC))
    scheduler = beat()
    assert tick(scheduler) == []
    clock.set(datetime(2030, 5, 14, 1, 59, 59, tzinfo=UTC))
    assert tick(scheduler) == []

    clock.set(datetime(2030, 5, 14, 2, 0, 1, tzinfo=UTC))
    (night1,) = tick(scheduler)
    assert night1.schedule == schedule and night1.use_cache is False
    assert night1.created_at == clock.now() and night1.status == RunStatus.QUEUED
    task = PeriodicTask.objects.get(pk=schedule.periodic_task_id)
    assert task.total_run_count == 1 and task.last_run_at == clock.now()

    task_queue.drain()
    night1.refresh_from_db()
    assert night1.status == RunStatus.SUCCEEDED
    (finding,) = Finding.objects.filter(run=night1, kind=FindingKind.REGRESSION)
    assert finding.baseline_run == baseline
    assert finding.details["baseline"] == pytest.approx(0.9)
    assert finding.details["current"] == pytest.approx(0.7)

    # Later the same night: nothing more is due.
    clock.set(datetime(2030, 5, 14, 2, 30, tzinfo=UTC))
    assert tick(scheduler) == []

    # The model is fixed; the next night's run answers like the baseline and raises no alarm.
    answer_right(good)
    clock.set(datetime(2030, 5, 15, 2, 0, 2, tzinfo=UTC))
    (night2,) = tick(scheduler)
    task_queue.drain()
    night2.refresh_from_db()
    assert night2.status == RunStatus.SUCCEEDED and night2.schedule == schedule
    assert not Finding.objects.filter(run=night2).exists()
    schedule.refresh_from_db()
    assert schedule.last_run == night2 and schedule.last_fired_at == datetime(2030, 5, 15, 2, 0, tzinfo=UTC)


def test_beat_does_not_send_a_disabled_schedule(clock, beat, reviews, task_queue):
    version, endpoint, _ = reviews
    schedule = schedule_create(
        suite=version.suite, name="off", arms=[(endpoint, strategy("plain"))], enabled=False
    )
    clock.set(datetime(2030, 5, 14, 1, 58, tzinfo=UTC))
    scheduler = beat()
    clock.set(datetime(2030, 5, 14, 2, 0, 1, tzinfo=UTC))
    assert tick(scheduler) == []
    clock.set(clock.now() + timedelta(days=1))
    assert tick(scheduler) == []
    assert PeriodicTask.objects.get(pk=schedule.periodic_task_id).total_run_count == 0  # never sent
    assert not Run.objects.exists()
