"""Reads for the trends page: a suite's trend points over a range of days, as series and markers.

Only `TrendPoint` rows are read (stored at finalize, one per arm of each succeeded run), in two
queries whatever the number of runs: never results, arms or runs. Series over
`timeline.MAX_POINTS_PER_SERIES` points in the range are reduced to daily means.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Max, Q
from django.utils import timezone

from evaluations.analysis import timeline
from evaluations.models import Suite, TrendPoint

RANGES = (30, 90, 365)
DEFAULT_DAYS = 90

_FIELDS = (  # in the order of timeline.TrendRow's fields
    "series",
    "at",
    "run_id",
    "suite_version_number",
    "strategy_version",
    "endpoint_fingerprint",
    "mean_score",
    "score_ci_low",
    "score_ci_high",
    "pass_rate",
    "cost_per_request",
    "latency_p95_ms",
    "drift_auc",
)


def suite_trends(suite: Suite, *, days: int, now: datetime | None = None) -> dict:
    """The suite's series over the last `days` days, with the markers where something changed.

    Returns {"days", "since", "range" (the x axis: since and now, see `timeline.wall_ms`),
    "series": [{name, points, t, run, mean, low, high, pass_rate, cost, latency_p95, drift_auc,
    downsampled, latest}], "markers": [{t, date, kind, label, run, series}],
    "points", "last_at"}: `last_at` is when the suite's latest trend point was taken (None: no run
    has finished), so an empty range can say how long ago that was.
    """
    now = now or timezone.now()
    since = now - timedelta(days=days)
    tz = timezone.get_current_timezone()
    points = TrendPoint.objects.filter(suite=suite).order_by()
    # Query 1: each series' last point before the range, so a change on the range's first day shows.
    before = dict(
        points.filter(at__lt=since).values("series").annotate(last=Max("at")).values_list("series", "last")
    )
    # Query 2: the range, and those last points (the same instants may hold other series' points
    # of the same runs: only each series' own last point is kept).
    rows = [
        timeline.TrendRow(*values)
        for values in points.filter(Q(at__gte=since) | Q(at__in=set(before.values())))
        .order_by("at", "series")
        .values_list(*_FIELDS)
        if values[1] >= since or before.get(values[0]) == values[1]
    ]
    data = timeline.build(rows, since=since, tz=tz)
    last_at = rows[-1].at if rows else None
    return {
        "days": days,
        "since": timezone.localtime(since, tz).strftime("%Y-%m-%d"),
        "range": [timeline.wall_ms(since, tz), timeline.wall_ms(now, tz)],
        "last_at": last_at,
        **data,
    }
