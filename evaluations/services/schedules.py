"""Schedule writes: create, update, delete, and fire (called by celery beat through a task).

Each schedule owns one django-celery-beat PeriodicTask (with its own CrontabSchedule in the schedule's
time zone) running `workers.tasks.scheduled_run(schedule_id)`; it is kept in step in the same
transaction as the schedule, so beat never runs a schedule that is not in the database (or misses
one that is). A fired schedule makes an ordinary run with trigger `schedule` that always calls the
model: a scheduled run exists to notice that a model changed behind an unchanged endpoint, which a
temperature-0 cache hit would hide.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from evaluations.cron import Cron, CronError, zone
from evaluations.cron import parse as parse_cron
from evaluations.models import (
    Endpoint,
    Run,
    RunStatus,
    Schedule,
    ScheduleArm,
    Strategy,
    Suite,
    SuiteVersion,
    Trigger,
)
from evaluations.services.audit import audit_record, audit_update
from evaluations.services.runs import MAX_REPEATS, RunError, run_create

log = logging.getLogger(__name__)

TASK = "workers.tasks.scheduled_run"
DEFAULT_CRON = "0 2 * * *"
# Beat and the worker may run on machines whose clocks differ a little: a delivery up to this much
# before a cron slot (by the worker's clock) counts for that slot if the slot before it has fired.
CLOCK_SKEW = timedelta(seconds=30)
FIELDS = ("name", "arms", "cron", "timezone", "suite_version", "enabled", "repeats")


class ScheduleError(ValueError):
    """A schedule cannot be saved as asked. `field` names the input at fault; the message says what
    is wrong and what to do."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


def _clean_name(suite: Suite, name: str, *, exclude: int | None = None) -> str:
    name = (name or "").strip()
    if not name:
        raise ScheduleError("name", "give the schedule a name, e.g. nightly")
    if len(name) > 200:
        raise ScheduleError("name", f"at most 200 characters (got {len(name)})")
    taken = Schedule.objects.filter(suite=suite, name=name)
    if exclude is not None:
        taken = taken.exclude(pk=exclude)
    if taken.exists():
        raise ScheduleError(
            "name", f"suite {suite.name!r} already has a schedule called {name!r}; choose another"
        )
    return name


def _clean_cron(expr: str) -> Cron:
    try:
        return parse_cron(expr)
    except CronError as exc:
        raise ScheduleError("cron", str(exc)) from None


def _clean_timezone(name: str) -> str:
    name = (name or "").strip()
    try:
        zone(name)
    except CronError as exc:
        raise ScheduleError("timezone", str(exc)) from None
    return name


def _clean_arms(arms: Sequence[tuple[Endpoint, Strategy]]) -> list[tuple[Endpoint, Strategy]]:
    arms = list(arms or [])
    if not arms:
        raise ScheduleError("arms", "choose at least one arm (an endpoint with a strategy)")
    seen = set()
    for endpoint, strategy in arms:
        if (endpoint.pk, strategy.pk) in seen:
            raise ScheduleError("arms", f"arm {endpoint.name} · {strategy} is listed twice; list it once")
        if strategy.kind == "synthesize":  # the synthetic-examples prompt answers no case
            raise ScheduleError(
                "arms", f"arm {endpoint.name} · {strategy}: a synthesize strategy is not a run's arm"
            )
        seen.add((endpoint.pk, strategy.pk))
    return arms


def _clean_repeats(repeats: int) -> int:
    if isinstance(repeats, bool) or not isinstance(repeats, int) or not 1 <= repeats <= MAX_REPEATS:
        raise ScheduleError("repeats", f"give a whole number from 1 to {MAX_REPEATS} (got {repeats!r})")
    return repeats


def _clean_version(suite: Suite, version: SuiteVersion | None) -> SuiteVersion | None:
    if version is None:
        if not suite.versions.exists():
            raise ScheduleError(
                "suite_version", f"suite {suite.name!r} has no versions yet; upload one first"
            )
        return None
    if version.suite_id != suite.pk:
        raise ScheduleError(
            "suite_version",
            f"{version} is a version of another suite; pin a version of {suite.name!r} or leave it "
            "empty for the latest",
        )
    return version


def _task_name(schedule: Schedule) -> str:
    return f"ftvp schedule #{schedule.pk}: {schedule.suite.name} / {schedule.name}"[:200]


def _sync_beat(schedule: Schedule, parsed: Cron, *, timing_changed: bool) -> None:
    """Create or update the schedule's PeriodicTask and CrontabSchedule to match it."""
    task = schedule.periodic_task
    crontab = task.crontab if task is not None else None
    if crontab is None:
        crontab = CrontabSchedule(**parsed.fields, timezone=schedule.timezone)
    else:
        for field, value in parsed.fields.items():
            setattr(crontab, field, value)
        crontab.timezone = schedule.timezone
    crontab.save()
    if task is None:
        task = PeriodicTask(task=TASK, args=json.dumps([schedule.pk]))
    elif timing_changed:
        # Counted from now: a new time must not fire at once for a slot the old time did not have.
        task.last_run_at = timezone.now()
    task.name = _task_name(schedule)
    task.crontab = crontab
    task.enabled = schedule.enabled
    task.description = f"Runs of suite {schedule.suite.name!r} on cron {parsed.expr} ({schedule.timezone})."
    task.save()
    if schedule.periodic_task_id != task.pk:
        schedule.periodic_task = task
        schedule.save(update_fields=["periodic_task"])


def _audit_state(schedule: Schedule) -> dict:
    """What a schedule's audit events record of it."""
    return {
        "name": schedule.name,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "suite_version": schedule.suite_version.number if schedule.suite_version_id else None,
        "enabled": schedule.enabled,
        "repeats": schedule.repeats,
        "arms": [
            f"{a.endpoint.name} · {a.strategy}"
            for a in schedule.arms.select_related("endpoint", "strategy").order_by("position")
        ],
    }


def _save_arms(schedule: Schedule, arms: list[tuple[Endpoint, Strategy]]) -> None:
    ScheduleArm.objects.filter(schedule=schedule).delete()
    ScheduleArm.objects.bulk_create(
        [ScheduleArm(schedule=schedule, endpoint=e, strategy=s, position=i) for i, (e, s) in enumerate(arms)]
    )


def schedule_create(
    *,
    suite: Suite,
    name: str,
    arms: Sequence[tuple[Endpoint, Strategy]],
    cron: str = DEFAULT_CRON,
    timezone: str = "UTC",
    suite_version: SuiteVersion | None = None,
    enabled: bool = True,
    repeats: int = 1,
    user=None,
) -> Schedule:
    """A schedule of runs of `suite` (the pinned version, or the latest when it fires) and its beat entry."""
    name = _clean_name(suite, name)
    arms = _clean_arms(arms)
    parsed = _clean_cron(cron)
    tz = _clean_timezone(timezone)
    repeats = _clean_repeats(repeats)
    suite_version = _clean_version(suite, suite_version)
    try:
        with transaction.atomic():
            schedule = Schedule.objects.create(
                suite=suite,
                name=name,
                suite_version=suite_version,
                cron=parsed.expr,
                timezone=tz,
                enabled=bool(enabled),
                repeats=repeats,
                created_by=user,
            )
            _save_arms(schedule, arms)
            _sync_beat(schedule, parsed, timing_changed=False)
            audit_record(
                actor=user,
                action="schedule.create",
                obj=schedule,
                suite_id=suite.pk,
                after=_audit_state(schedule),
            )
    except IntegrityError:  # created concurrently under the same name
        raise ScheduleError("name", f"suite {suite.name!r} already has a schedule called {name!r}") from None
    log.info("schedule #%s created for suite %s: %s (%s)", schedule.pk, suite.name, parsed.expr, tz)
    return schedule


def schedule_update(*, schedule: Schedule, user=None, **changes) -> Schedule:
    """Change any of the fields `schedule_create` takes (except the suite); the beat entry follows."""
    unknown = sorted(set(changes) - set(FIELDS))
    if unknown:
        raise ScheduleError(unknown[0], f"cannot be changed; changeable: {', '.join(FIELDS)}")
    suite = schedule.suite
    # Everything is checked before anything changes: a refused update leaves the object as it was.
    values = {}
    if "name" in changes:
        values["name"] = _clean_name(suite, changes["name"], exclude=schedule.pk)
    arms = _clean_arms(changes["arms"]) if "arms" in changes else None
    parsed = _clean_cron(changes.get("cron", schedule.cron))
    if "cron" in changes:
        values["cron"] = parsed.expr
    if "timezone" in changes:
        values["timezone"] = _clean_timezone(changes["timezone"])
    if "repeats" in changes:
        values["repeats"] = _clean_repeats(changes["repeats"])
    if "suite_version" in changes:
        values["suite_version"] = _clean_version(suite, changes["suite_version"])
    if "enabled" in changes:
        values["enabled"] = bool(changes["enabled"])
    timing_changed = any(
        values.get(f, getattr(schedule, f)) != getattr(schedule, f) for f in ("cron", "timezone")
    )
    before = _audit_state(schedule)
    for field, value in values.items():
        setattr(schedule, field, value)
    try:
        with transaction.atomic():
            schedule.save()
            if arms is not None:
                _save_arms(schedule, arms)
            _sync_beat(schedule, parsed, timing_changed=timing_changed)
            audit_update(
                actor=user,
                action="schedule.update",
                obj=schedule,
                suite_id=suite.pk,
                before=before,
                after=_audit_state(schedule),
            )
    except IntegrityError:
        raise ScheduleError(
            "name", f"suite {suite.name!r} already has a schedule called {schedule.name!r}"
        ) from None
    return schedule


def schedule_delete(*, schedule: Schedule, user=None) -> None:
    """Delete the schedule and its beat entry; its runs stay (no longer linked to a schedule).

    The beat entry goes in a post_delete receiver (evaluations/receivers.py), so it also goes when the
    schedule is deleted another way: with its suite or pinned version, in the admin."""
    with transaction.atomic():
        audit_record(
            actor=user,
            action="schedule.delete",
            obj=schedule,
            suite_id=schedule.suite_id,
            before=_audit_state(schedule),
        )
        schedule.delete()
    log.info("schedule %s deleted", schedule)


def _slots(cron: Cron, fired_at: datetime, tz: str) -> list[datetime]:
    """The cron slots a delivery at `fired_at` may be for, in the order they are claimed: the latest
    at or before it, then one at most CLOCK_SKEW ahead of it (sent by a beat whose clock is ahead)."""
    slots = [cron.previous(fired_at, tz), cron.previous(fired_at + CLOCK_SKEW, tz)]
    return list(dict.fromkeys(slot for slot in slots if slot is not None))


def schedule_fire(*, schedule_id: int, fired_at: datetime | None = None) -> Run | None:
    """Start the schedule's run for the cron slot of a delivery at `fired_at` (now), or skip and say why.

    A delivery claims a cron slot, not the time it ran: a conditional UPDATE sets `last_fired_at` to
    the slot where it is earlier (or empty), so one delivery per slot gets through however late it
    comes, and a late one does not use up the next slot. The slot is the latest cron time at or
    before `fired_at`; if that one has fired, a cron time at most CLOCK_SKEW after `fired_at` (beat's
    clock may be ahead of the worker's). A message does not say which slot beat sent it for, so a
    duplicate delivered within CLOCK_SKEW of the next slot counts for that slot, whose own delivery
    is then skipped: still at most one run per slot.

    Skipped: a schedule that is gone or disabled; a delivery whose slot already fired (beat or the
    broker may deliver twice); a previous run of the schedule still queued or running (runs must not
    pile up behind a slow or stopped worker).
    """
    fired_at = fired_at or timezone.now()
    if fired_at.tzinfo is None:
        fired_at = fired_at.replace(tzinfo=UTC)
    schedule = (
        Schedule.objects.select_related("suite", "suite_version", "last_run").filter(pk=schedule_id).first()
    )
    if schedule is None:
        log.warning("schedule %s no longer exists; nothing to run", schedule_id)
        return None
    if not schedule.enabled:
        log.info("schedule #%s (%s) is disabled; not running", schedule.pk, schedule.name)
        return None
    busy = [RunStatus.QUEUED, RunStatus.RUNNING]
    if schedule.last_run is not None and schedule.last_run.status in busy:
        log.warning(
            "schedule #%s (%s): its previous run #%s is still %s; skipping this time (is a worker running?)",
            schedule.pk, schedule.name, schedule.last_run_id, schedule.last_run.status,
        )  # fmt: skip
        return None
    try:
        slots = _slots(parse_cron(schedule.cron), fired_at, schedule.timezone)
    except CronError as exc:
        log.error("schedule #%s (%s) cannot run: cron: %s", schedule.pk, schedule.name, exc)
        return None
    if not slots:
        log.warning(
            "schedule #%s (%s): cron %s has no time at or before %s; nothing to run",
            schedule.pk, schedule.name, schedule.cron, fired_at.isoformat(),
        )  # fmt: skip
        return None
    version = schedule.suite_version or schedule.suite.latest_version()
    if version is None:
        log.warning(
            "schedule #%s (%s): suite %s has no versions; nothing to run",
            schedule.pk,
            schedule.name,
            schedule.suite.name,
        )
        return None
    arms = [(a.endpoint, a.strategy) for a in schedule.arms.select_related("endpoint", "strategy")]
    try:
        with transaction.atomic():
            claimable = Schedule.objects.filter(pk=schedule.pk, enabled=True).exclude(
                last_run__status__in=busy
            )
            claimed = None
            for slot in slots:
                unfired = Q(last_fired_at__isnull=True) | Q(last_fired_at__lt=slot)
                if claimable.filter(unfired).update(last_fired_at=slot):
                    claimed = slot
                    break
            if claimed is None:
                log.info(
                    "schedule #%s (%s) already fired for its %s slot; skipping this delivery",
                    schedule.pk, schedule.name, " / ".join(slot.isoformat() for slot in slots),
                )  # fmt: skip
                return None
            run = run_create(
                suite_version=version,
                arms=arms,
                repeats=schedule.repeats,
                trigger=Trigger.SCHEDULE,
                user=schedule.created_by,
                use_cache=False,
                schedule=schedule,
            )
            Schedule.objects.filter(pk=schedule.pk).update(last_run=run)
    except RunError as exc:
        log.error("schedule #%s (%s) could not start a run: %s", schedule.pk, schedule.name, exc)
        return None
    log.info(
        "schedule #%s (%s) started run #%s on %s for its %s slot",
        schedule.pk, schedule.name, run.pk, version, claimed.isoformat(),
    )  # fmt: skip
    return run
