"""Reads for the schedule pages and the suite page's Schedules section."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from evaluations.cron import CronError, describe
from evaluations.cron import parse as parse_cron
from evaluations.models import Schedule, ScheduleArm, Suite


@dataclass
class ScheduleRow:
    schedule: Schedule
    description: str  # the cron expression in words
    next_at: datetime | None  # in the schedule's time zone; None when disabled
    arms: list[str]


def schedules_for_suite(suite: Suite) -> QuerySet[Schedule]:
    return (
        Schedule.objects.filter(suite=suite)
        .select_related("suite_version", "last_run")
        .prefetch_related(
            Prefetch("arms", queryset=ScheduleArm.objects.select_related("endpoint", "strategy"))
        )
        .order_by("name")
    )


def next_fire(schedule: Schedule, *, now: datetime | None = None) -> datetime | None:
    """When beat will next fire the schedule (in its time zone), or None if it is off."""
    if not schedule.enabled:
        return None
    try:
        return parse_cron(schedule.cron).next(now or timezone.now(), schedule.timezone)
    except CronError:
        return None


def schedule_rows(suite: Suite) -> list[ScheduleRow]:
    now = timezone.now()
    return [
        ScheduleRow(
            schedule=s,
            description=describe(s.cron),
            next_at=next_fire(s, now=now),
            arms=[f"{a.endpoint.name} · {a.strategy}" for a in s.arms.all()],
        )
        for s in schedules_for_suite(suite)
    ]
