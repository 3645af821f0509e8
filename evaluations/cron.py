"""Cron expressions as celery beat reads them: parse and validate, the previous and next fire time in a
time zone, and a description in words. Pure: no Django.

Celery's crontab is parsed by celery itself, so what passes here is what beat runs. One difference
from classic cron: when both day-of-month and day-of-week are restricted, celery fires only on days
matching *both* (classic cron: either).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from celery.schedules import ParseException, crontab

FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
# (name, celery's max_, min_, range in words)
_RANGES = (
    ("minute", 60, 0, "0-59"),
    ("hour", 24, 0, "0-23"),
    ("day-of-month", 31, 1, "1-31"),
    ("month", 12, 1, "1-12"),
    ("day-of-week", 7, 0, "0-6, Sunday is 0"),
)
# How far previous() and next() look: far enough for the rarest expression celery accepts. That is
# the 29th of February on one day of the week (`0 0 29 2 1`: 29 February when it is a Monday), which
# comes round every 28 years, and 40 across a century year that is not a leap year (2100).
SEARCH_DAYS = 366 * 40
EXAMPLE = "0 2 * * * (02:00 every night)"


class CronError(ValueError):
    """The cron expression is not valid; the message names the field and what to write instead."""


def zone(name: str) -> ZoneInfo:
    """The IANA time zone called `name`, or CronError."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise CronError(
            f"'{name}' is not a known time zone; use an IANA name such as UTC, Europe/Berlin or "
            "America/New_York"
        ) from None


@dataclass(frozen=True)
class Cron:
    expr: str  # normalized: five fields separated by single spaces
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 is Sunday, as in cron and celery

    @property
    def fields(self) -> dict[str, str]:
        """The five fields by django-celery-beat's CrontabSchedule names."""
        minute, hour, day_of_month, month_of_year, day_of_week = self.expr.split(" ")
        return {
            "minute": minute,
            "hour": hour,
            "day_of_month": day_of_month,
            "month_of_year": month_of_year,
            "day_of_week": day_of_week,
        }

    def _day_matches(self, d: date) -> bool:
        return d.month in self.months and d.day in self.days and d.isoweekday() % 7 in self.weekdays

    def previous(self, at: datetime, tz: str = "UTC") -> datetime | None:
        """The latest fire time at or before `at` (aware, in `tz`), or None if none in years."""
        local = _aware(at).astimezone(zone(tz))
        times = [(h, m) for h in self.hours for m in self.minutes]
        for offset in range(SEARCH_DAYS):
            d = local.date() - timedelta(days=offset)
            if not self._day_matches(d):
                continue
            if offset == 0:
                index = bisect_right(times, (local.hour, local.minute))
                if index == 0:
                    continue
                hour, minute = times[index - 1]
            else:
                hour, minute = times[-1]
            return datetime(d.year, d.month, d.day, hour, minute, tzinfo=local.tzinfo)
        return None

    def next(self, after: datetime, tz: str = "UTC") -> datetime | None:
        """The earliest fire time strictly after `after`'s minute (aware, in `tz`), or None."""
        local = _aware(after).astimezone(zone(tz))
        times = [(h, m) for h in self.hours for m in self.minutes]
        for offset in range(SEARCH_DAYS):
            d = local.date() + timedelta(days=offset)
            if not self._day_matches(d):
                continue
            if offset == 0:
                index = bisect_left(times, (local.hour, local.minute + 1))
                if index == len(times):
                    continue
                hour, minute = times[index]
            else:
                hour, minute = times[0]
            return datetime(d.year, d.month, d.day, hour, minute, tzinfo=local.tzinfo)
        return None


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def parse(expr: str) -> Cron:
    """Parse `minute hour day-of-month month day-of-week` with celery's crontab parser."""
    parts = str(expr or "").split()
    if len(parts) != 5:
        raise CronError(f"give 5 fields ({' '.join(FIELDS)}), e.g. {EXAMPLE}; got {len(parts)} in '{expr}'")
    values = []
    for part, (name, max_, min_, bounds) in zip(parts, _RANGES, strict=True):
        try:
            values.append(crontab._expand_cronspec(part, max_, min_))
        except (ParseException, ValueError, TypeError) as exc:
            raise CronError(
                f"the {name} field '{part}' is not valid ({bounds}; e.g. *, 5, 1-5, */15): {exc}"
            ) from None
    minute, hour, day_of_month, month, day_of_week = parts
    try:
        crontab(minute, hour, day_of_week, day_of_month, month)
    except (ParseException, ValueError) as exc:
        raise CronError(f"'{' '.join(parts)}' never fires: {exc}") from None
    minutes, hours, days, months, weekdays = values
    cron = Cron(
        expr=" ".join(parts),
        minutes=tuple(sorted(minutes)),
        hours=tuple(sorted(hours)),
        days=frozenset(days),
        months=frozenset(months),
        weekdays=frozenset(weekdays),
    )
    if cron.next(datetime(2000, 1, 1, tzinfo=UTC)) is None:
        raise CronError(
            f"'{cron.expr}' does not fire in {SEARCH_DAYS // 366} years: when both day-of-month and "
            "day-of-week are set, a day must match both; set one of them to *"
        )
    return cron


def describe(expr: str) -> str:
    """The expression in words ("At 02:00"), or the expression itself if it cannot be described."""
    try:
        from cron_descriptor import ExpressionDescriptor, Options

        options = Options()
        options.use_24hour_time_format = True
        return ExpressionDescriptor(expr, options).get_description()
    except Exception:  # a description is a nicety; never fail a page over it
        return expr
