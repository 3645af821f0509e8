"""Schedules: validation, the beat entry kept in step, and firing (one run per cron slot, never piling up)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from evaluations.cron import parse
from evaluations.models import Run, RunStatus, Schedule, Trigger
from evaluations.services.schedules import (
    ScheduleError,
    schedule_create,
    schedule_delete,
    schedule_fire,
    schedule_update,
)
from tests.factories import CaseFactory, EndpointFactory, SuiteVersionFactory, UserFactory, strategy

NIGHT = datetime(2030, 5, 14, 2, 0, 3, tzinfo=UTC)  # three seconds after a nightly 02:00 slot


def _version(suite=None, cases: int = 3):
    version = SuiteVersionFactory(**({"suite": suite} if suite else {}))
    for i in range(cases):
        CaseFactory(version=version, key=f"k{i}", position=i, input=f"q{i}", expected=f"a{i}")
    return version


@pytest.fixture
def version(db):
    return _version()


@pytest.fixture
def arms(db):
    endpoint = EndpointFactory(name="model")
    return [(endpoint, strategy("zero-shot")), (endpoint, strategy("cot"))]


def _schedule(version, arms, **kwargs):
    return schedule_create(suite=version.suite, name=kwargs.pop("name", "nightly"), arms=arms, **kwargs)


# --- validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"cron": "0 2 * *"}, "cron", "give 5 fields"),
        ({"cron": "0 24 * * *"}, "cron", "hour field '24' is not valid"),
        ({"cron": "61 2 * * *"}, "cron", "minute field '61'"),
        ({"cron": "0 2 30 2 *"}, "cron", "never fires"),
        ({"timezone": "Mars/Olympus"}, "timezone", "not a known time zone"),
        ({"repeats": 0}, "repeats", "from 1 to 20"),
        ({"repeats": 21}, "repeats", "from 1 to 20"),
        ({"name": "  "}, "name", "give the schedule a name"),
    ],
)
def test_it_refuses_bad_fields_naming_the_field_and_what_to_do(version, arms, changes, field, message):
    with pytest.raises(ScheduleError, match=message) as caught:
        _schedule(version, arms, **changes)
    assert caught.value.field == field and str(caught.value).startswith(f"{field}: ")
    assert not Schedule.objects.exists() and not PeriodicTask.objects.exists()


def test_it_refuses_no_arms_and_duplicate_arms(version, arms):
    with pytest.raises(ScheduleError, match="at least one arm"):
        _schedule(version, [])
    with pytest.raises(ScheduleError, match="listed twice"):
        _schedule(version, [arms[0], arms[0]])


def test_names_are_unique_per_suite_not_across_suites(version, arms):
    _schedule(version, arms)
    with pytest.raises(ScheduleError, match="already has a schedule called 'nightly'"):
        _schedule(version, arms)
    other = _version()
    assert _schedule(other, arms).name == "nightly"


def test_a_pinned_version_must_belong_to_the_suite(version, arms):
    other = _version()
    with pytest.raises(ScheduleError, match="version of another suite") as caught:
        _schedule(version, arms, suite_version=other)
    assert caught.value.field == "suite_version"


def test_a_suite_without_versions_cannot_be_scheduled(arms):
    suite = SuiteVersionFactory().suite
    suite.versions.all().delete()
    with pytest.raises(ScheduleError, match="has no versions yet"):
        schedule_create(suite=suite, name="n", arms=arms)


# --- the beat entry --------------------------------------------------------------------------------


def test_create_makes_a_crontab_periodic_task_in_the_schedules_time_zone(version, arms):
    schedule = _schedule(version, arms, cron="30  4 * * 1-5", timezone="Europe/Berlin")
    assert schedule.cron == "30 4 * * 1-5"  # normalized
    task = PeriodicTask.objects.get(pk=schedule.periodic_task_id)
    assert task.task == "workers.tasks.scheduled_run"
    assert json.loads(task.args) == [schedule.pk] and task.enabled
    cron = task.crontab
    assert (cron.minute, cron.hour, cron.day_of_month, cron.month_of_year, cron.day_of_week) == (
        "30", "4", "*", "*", "1-5",
    )  # fmt: skip
    assert str(cron.timezone) == "Europe/Berlin"
    assert list(schedule.arms.values_list("strategy__name", flat=True)) == ["zero-shot", "cot"]


def test_the_default_is_nightly_at_two_utc_on_the_latest_version(version, arms):
    schedule = _schedule(version, arms)
    assert (schedule.cron, schedule.timezone, schedule.suite_version, schedule.repeats) == (
        "0 2 * * *", "UTC", None, 1,
    )  # fmt: skip
    assert schedule.periodic_task.crontab.hour == "2"


def test_update_keeps_the_periodic_task_in_step(version, arms):
    schedule = _schedule(version, arms)
    task_id, crontab_id = schedule.periodic_task_id, schedule.periodic_task.crontab_id
    schedule_update(
        schedule=schedule, cron="15 3 * * *", timezone="America/New_York", enabled=False, name="early"
    )
    task = PeriodicTask.objects.get(pk=task_id)
    assert (task.crontab_id, task.crontab.minute, task.crontab.hour) == (crontab_id, "15", "3")
    assert str(task.crontab.timezone) == "America/New_York"
    assert not task.enabled and "early" in task.name
    schedule_update(schedule=schedule, enabled=True, arms=arms[:1], repeats=3)
    schedule.refresh_from_db()
    assert PeriodicTask.objects.get(pk=task_id).enabled
    assert schedule.arms.count() == 1 and schedule.repeats == 3
    assert PeriodicTask.objects.count() == 1 and CrontabSchedule.objects.count() == 1


def test_changing_the_time_restarts_the_beat_entrys_clock(version, arms):
    """A new time counts from now: beat must not fire at once for a slot the old time never had."""
    schedule = _schedule(version, arms)
    PeriodicTask.objects.filter(pk=schedule.periodic_task_id).update(
        last_run_at=datetime(2020, 1, 1, tzinfo=UTC)
    )
    schedule.refresh_from_db()
    schedule_update(schedule=schedule, cron="0 1 * * *")
    task = PeriodicTask.objects.get(pk=schedule.periodic_task_id)
    assert task.last_run_at > datetime.now(UTC) - timedelta(minutes=1)


def test_a_failed_update_changes_nothing(version, arms):
    schedule = _schedule(version, arms)
    with pytest.raises(ScheduleError, match="cron"):
        schedule_update(schedule=schedule, name="renamed", cron="nope")
    schedule.refresh_from_db()
    assert schedule.name == "nightly" and schedule.periodic_task.crontab.hour == "2"
    with pytest.raises(ScheduleError, match="cannot be changed"):
        schedule_update(schedule=schedule, suite=version.suite)


def test_the_beat_entry_is_recreated_when_it_was_deleted_by_hand(version, arms):
    schedule = _schedule(version, arms)
    PeriodicTask.objects.all().delete()
    schedule.refresh_from_db()
    schedule_update(schedule=schedule, repeats=2)
    schedule.refresh_from_db()
    assert schedule.periodic_task is not None and json.loads(schedule.periodic_task.args) == [schedule.pk]


def test_delete_removes_the_beat_entry_and_keeps_the_runs(version, arms, task_queue):
    schedule = _schedule(version, arms)
    run = schedule_fire(schedule_id=schedule.pk, fired_at=NIGHT)
    schedule_delete(schedule=schedule)
    assert not Schedule.objects.exists()
    assert not PeriodicTask.objects.exists() and not CrontabSchedule.objects.exists()
    run.refresh_from_db()
    assert run.schedule is None and run.trigger == Trigger.SCHEDULE


# --- firing ----------------------------------------------------------------------------------------


def test_firing_creates_a_run_with_trigger_schedule_that_bypasses_the_cache(version, arms, task_queue):
    user = UserFactory(username="scheduler")
    schedule = schedule_create(suite=version.suite, name="nightly", arms=arms, repeats=2, user=user)
    run = schedule_fire(schedule_id=schedule.pk, fired_at=NIGHT)
    assert run is not None
    run.refresh_from_db()
    assert run.trigger == Trigger.SCHEDULE and run.use_cache is False
    assert run.schedule == schedule and run.suite_version == version and run.repeats == 2
    assert run.created_by == user
    assert [(a.endpoint, a.strategy) for a in run.arms.order_by("position")] == arms
    schedule.refresh_from_db()
    assert schedule.last_run == run and schedule.last_fired_at == NIGHT.replace(second=0)  # the slot
    assert task_queue.sent == [("start_run", (run.pk,))]


def test_a_fired_run_is_recorded_as_the_systems_act_naming_its_schedule(version, arms, task_queue):
    from evaluations.models import AuditEvent

    user = UserFactory(username="scheduler")
    schedule = schedule_create(suite=version.suite, name="nightly", arms=arms, user=user)
    run = schedule_fire(schedule_id=schedule.pk, fired_at=NIGHT)

    event = AuditEvent.objects.get(action="run.create", object_id=str(run.pk))
    assert (event.actor_id, event.actor_name) == (None, "system")
    assert (event.after["schedule"], event.after["schedule_name"]) == (schedule.pk, "nightly")


def test_a_second_delivery_for_the_same_slot_is_skipped(version, arms, task_queue, caplog):
    schedule = _schedule(version, arms)
    first = schedule_fire(schedule_id=schedule.pk, fired_at=NIGHT)
    Run.objects.filter(pk=first.pk).update(status=RunStatus.SUCCEEDED)  # not held back by a busy run
    assert schedule_fire(schedule_id=schedule.pk, fired_at=NIGHT + timedelta(seconds=40)) is None
    assert "already fired" in caplog.text
    # A delivery whose clock runs a little behind beat's still belongs to the next night's slot.
    nxt = schedule_fire(schedule_id=schedule.pk, fired_at=NIGHT + timedelta(days=1, seconds=-10))
    assert nxt is not None and Run.objects.count() == 2


def test_a_late_delivery_leaves_the_next_slot_free(version, arms, task_queue):
    """The slot is recorded, not the time the task ran: 02:00's delivery 45 s late does not take
    02:01's place."""
    schedule = _schedule(version, arms, cron="* * * * *")
    late = schedule_fire(schedule_id=schedule.pk, fired_at=datetime(2030, 5, 14, 2, 0, 45, tzinfo=UTC))
    Run.objects.filter(pk=late.pk).update(status=RunStatus.SUCCEEDED)
    schedule.refresh_from_db()
    assert schedule.last_fired_at == datetime(2030, 5, 14, 2, 0, tzinfo=UTC)
    on_time = schedule_fire(schedule_id=schedule.pk, fired_at=datetime(2030, 5, 14, 2, 1, 0, tzinfo=UTC))
    assert on_time is not None and Run.objects.count() == 2
    schedule.refresh_from_db()
    assert schedule.last_fired_at == datetime(2030, 5, 14, 2, 1, tzinfo=UTC)


def test_a_duplicate_delivery_of_a_frequent_schedule_is_refused(version, arms, task_queue, caplog):
    schedule = _schedule(version, arms, cron="* * * * *")
    first = schedule_fire(schedule_id=schedule.pk, fired_at=datetime(2030, 5, 14, 2, 0, 2, tzinfo=UTC))
    Run.objects.filter(pk=first.pk).update(status=RunStatus.SUCCEEDED)
    again = datetime(2030, 5, 14, 2, 0, 20, tzinfo=UTC)
    assert schedule_fire(schedule_id=schedule.pk, fired_at=again) is None
    assert "already fired" in caplog.text and Run.objects.count() == 1


def test_a_very_late_message_runs_once(version, arms, task_queue):
    """02:00's message held up until 07:30 (a stopped worker) still runs, once: its redelivery an
    hour later (the broker's visibility timeout) is refused, and the next night fires as usual."""
    schedule = _schedule(version, arms)
    late = schedule_fire(schedule_id=schedule.pk, fired_at=NIGHT.replace(hour=7, minute=30))
    assert late is not None
    Run.objects.filter(pk=late.pk).update(status=RunStatus.SUCCEEDED)
    schedule.refresh_from_db()
    assert schedule.last_fired_at == NIGHT.replace(second=0)
    assert schedule_fire(schedule_id=schedule.pk, fired_at=NIGHT.replace(hour=8, minute=30)) is None
    assert Run.objects.count() == 1
    assert schedule_fire(schedule_id=schedule.pk, fired_at=NIGHT + timedelta(days=1)) is not None


def test_every_slot_of_a_frequent_schedule_fires(version, arms, task_queue):
    schedule = _schedule(version, arms, cron="*/5 * * * *")
    start = datetime(2030, 5, 14, 10, 0, 1, tzinfo=UTC)
    fired = []
    for minutes in (0, 5, 10):
        run = schedule_fire(schedule_id=schedule.pk, fired_at=start + timedelta(minutes=minutes))
        Run.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
        fired.append(run)
    assert len({r.pk for r in fired}) == 3


def test_a_disabled_schedule_does_not_fire(version, arms, task_queue, caplog):
    schedule = _schedule(version, arms, enabled=False)
    assert schedule_fire(schedule_id=schedule.pk, fired_at=NIGHT) is None
    assert not Run.objects.exists() and "disabled" in caplog.text
    assert not PeriodicTask.objects.get(pk=schedule.periodic_task_id).enabled


def test_deleting_the_suite_deletes_its_schedules_beat_entries(version, arms):
    """Schedules go with their suite (and a pinned version); beat must not keep sending for them."""
    _schedule(version, arms, name="pinned", suite_version=version)
    _schedule(version, arms, name="latest")
    other = _schedule(_version(), arms)
    assert PeriodicTask.objects.count() == 3 and CrontabSchedule.objects.count() == 3
    version.suite.delete()
    assert list(Schedule.objects.all()) == [other]
    assert list(PeriodicTask.objects.values_list("pk", flat=True)) == [other.periodic_task_id]
    assert list(CrontabSchedule.objects.values_list("pk", flat=True)) == [other.periodic_task.crontab_id]


def test_a_schedule_deleted_outside_the_service_takes_its_beat_entry(version, arms):
    """The admin or a shell deletes the model directly."""
    schedule = _schedule(version, arms)
    Schedule.objects.filter(pk=schedule.pk).delete()
    assert not PeriodicTask.objects.exists() and not CrontabSchedule.objects.exists()


def test_a_deleted_schedule_does_not_fire(version, arms, task_queue):
    schedule = _schedule(version, arms)
    pk = schedule.pk
    schedule_delete(schedule=schedule)
    assert schedule_fire(schedule_id=pk, fired_at=NIGHT) is None
    assert not Run.objects.exists()


@pytest.mark.parametrize("status", [RunStatus.QUEUED, RunStatus.RUNNING])
def test_runs_do_not_pile_up_behind_an_unfinished_one(version, arms, task_queue, caplog, status):
    schedule = _schedule(version, arms)
    first = schedule_fire(schedule_id=schedule.pk, fired_at=NIGHT)
    Run.objects.filter(pk=first.pk).update(status=status)
    assert schedule_fire(schedule_id=schedule.pk, fired_at=NIGHT + timedelta(days=1)) is None
    assert f"still {status}" in caplog.text
    Run.objects.filter(pk=first.pk).update(status=RunStatus.FAILED)
    assert schedule_fire(schedule_id=schedule.pk, fired_at=NIGHT + timedelta(days=1)) is not None


def test_it_runs_the_latest_version_when_it_fires_unless_one_is_pinned(version, arms, task_queue):
    latest = _schedule(version, arms, name="latest")
    pinned = _schedule(version, arms, name="pinned", suite_version=version)
    newer = _version(suite=version.suite)
    assert schedule_fire(schedule_id=latest.pk, fired_at=NIGHT).suite_version == newer
    assert schedule_fire(schedule_id=pinned.pk, fired_at=NIGHT).suite_version == version


def test_a_schedule_that_cannot_start_a_run_logs_why(arms, task_queue, caplog, db):
    version = _version(cases=0)
    schedule = _schedule(version, arms)
    assert schedule_fire(schedule_id=schedule.pk, fired_at=NIGHT) is None
    assert "has no test cases" in caplog.text
    schedule.refresh_from_db()
    assert schedule.last_fired_at is None  # nothing ran: the next delivery may try again


def test_the_slot_is_the_cron_time_in_the_schedules_time_zone():
    cron = parse("0 2 * * *")
    berlin_night = datetime(2030, 1, 10, 1, 0, 5, tzinfo=UTC)  # 02:00:05 in Berlin (UTC+1)
    assert cron.previous(berlin_night, "Europe/Berlin").astimezone(UTC) == datetime(
        2030, 1, 10, 1, 0, tzinfo=UTC
    )
    assert cron.previous(berlin_night, "UTC") == datetime(2030, 1, 9, 2, 0, tzinfo=UTC)
    assert cron.next(berlin_night, "UTC") == datetime(2030, 1, 10, 2, 0, tzinfo=UTC)


def test_the_29th_of_february_on_a_monday_is_a_valid_cron():
    """Celery fires it (every 28 years, 40 across 2100), so it is accepted and its times are found."""
    cron = parse("0 0 29 2 1")
    mid_2026 = datetime(2026, 7, 1, tzinfo=UTC)
    assert cron.previous(mid_2026) == datetime(2016, 2, 29, tzinfo=UTC)
    assert cron.next(mid_2026) == datetime(2044, 2, 29, tzinfo=UTC)
    assert parse("0 0 29 2 0").next(datetime(2088, 3, 1, tzinfo=UTC)) == datetime(2128, 2, 29, tzinfo=UTC)
