"""Trend series over time: one series per arm (endpoint · strategy), the markers where the suite
version, a prompt or an endpoint changed, and deterministic downsampling of very long series.

Pure functions over plain rows (the trend points the selector reads); nothing here imports Django.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, tzinfo
from typing import NamedTuple

# More points than this in one series (over the range shown) are reduced to daily means. Nightly
# runs give at most 365 points a year, so only suites run many times a day are ever downsampled.
MAX_POINTS_PER_SERIES = 1000

# The charted figures: (key in the page's data, attribute of TrendRow, decimals kept).
METRICS: tuple[tuple[str, str, int], ...] = (
    ("mean", "mean_score", 4),
    ("low", "score_ci_low", 4),
    ("high", "score_ci_high", 4),
    ("pass_rate", "pass_rate", 4),
    ("cost", "cost_per_request", 10),
    ("latency_p95", "latency_p95_ms", 1),
    ("drift_auc", "drift_auc", 4),
)

_EPOCH = datetime(1970, 1, 1)  # wall-clock (naive) arithmetic on purpose


class TrendRow(NamedTuple):
    """One stored trend point, as read from the database (the selector's `values_list` order)."""

    series: str
    at: datetime
    run_id: int
    suite_version: int
    strategy_version: int
    endpoint_fingerprint: str
    mean_score: float | None
    score_ci_low: float | None
    score_ci_high: float | None
    pass_rate: float | None
    cost_per_request: float | None
    latency_p95_ms: float | None
    drift_auc: float | None


_INDEX = {name: i for i, name in enumerate(TrendRow._fields)}


def wall_ms(at: datetime, tz: tzinfo) -> int:
    """Milliseconds since the epoch of the wall-clock time in `tz`: the browser formats it as UTC
    and so shows the server's local date and time, whatever its own time zone is."""
    if at.tzinfo is None:
        return int((at - _EPOCH).total_seconds() * 1000)
    utc = tz is UTC or getattr(tz, "key", None) == "UTC"
    offset = 0.0 if utc else at.astimezone(tz).utcoffset().total_seconds()
    return int((at.timestamp() + offset) * 1000)


def _label_parts(series: str) -> tuple[str, str]:
    endpoint, _, strategy = series.rpartition(" · ")
    return (endpoint, strategy) if endpoint else (series, "")


def markers(rows: Sequence[TrendRow], *, since: datetime, tz: tzinfo = UTC) -> list[dict]:
    """Where something changed, in time order, for the points at or after `since`.

    `rows` are sorted by time and may start with each series' last point before `since`: those only
    give the state before the range, so a change on its first day is still marked.

    - suite: the first run on a newer suite version (a run pinned to an older version is no change);
    - prompt: a series' strategy version differs from its previous point;
    - endpoint: a series' endpoint fingerprint (model, URL, parameters, adapter) differs from its
      previous point.
    Changes of one run that several series share (an endpoint under three strategies) are one marker.
    """
    found: dict[tuple, dict] = {}
    newest_version: int | None = None
    previous: dict[str, TrendRow] = {}
    for row in rows:
        shown = row.at >= since
        if newest_version is None or row.suite_version > newest_version:
            if newest_version is not None and shown:
                _add(found, row, tz, "suite", f"suite v{row.suite_version} (was v{newest_version})", None)
            newest_version = row.suite_version
        before = previous.get(row.series)
        previous[row.series] = row
        if before is None or not shown:
            continue
        endpoint, strategy = _label_parts(row.series)
        if row.strategy_version != before.strategy_version:
            label = f"prompt {strategy} v{before.strategy_version} → v{row.strategy_version}"
            _add(found, row, tz, "prompt", label, row.series)
        if (
            row.endpoint_fingerprint
            and before.endpoint_fingerprint
            and row.endpoint_fingerprint != before.endpoint_fingerprint
        ):
            _add(found, row, tz, "endpoint", f"endpoint {endpoint} changed", row.series)
    return sorted(found.values(), key=lambda m: (m["t"], m["kind"], m["label"]))


def _add(found: dict, row: TrendRow, tz: tzinfo, kind: str, label: str, series: str | None) -> None:
    marker = found.get((row.run_id, kind, label))
    if marker is None:
        local = row.at.astimezone(tz) if row.at.tzinfo else row.at
        marker = found[(row.run_id, kind, label)] = {
            "t": wall_ms(row.at, tz),
            "date": local.strftime("%Y-%m-%d"),
            "kind": kind,
            "label": label,
            "run": row.run_id,
            "series": [],
        }
    if series is not None and series not in marker["series"]:
        marker["series"].append(series)


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def series_columns(
    rows: Sequence[TrendRow], *, tz: tzinfo = UTC, max_points: int = MAX_POINTS_PER_SERIES
) -> dict:
    """One series' points (sorted by time) as columns for the charts; daily means past `max_points`."""
    if len(rows) > max_points:
        return _daily_means(rows, tz)
    fields = list(zip(*rows, strict=True)) if rows else [()] * len(TrendRow._fields)
    columns: dict = {
        "t": [wall_ms(at, tz) for at in fields[_INDEX["at"]]],
        "run": list(fields[_INDEX["run_id"]]),
    }
    for key, attr, digits in METRICS:
        columns[key] = [None if v is None else round(v, digits) for v in fields[_INDEX[attr]]]
    columns["downsampled"] = False
    return columns


def _daily_means(rows: Sequence[TrendRow], tz: tzinfo) -> dict:
    """Deterministic downsampling: one point per calendar day (in `tz`) at noon, each figure the
    mean of that day's non-empty values; `n` says how many runs each point stands for."""
    days: dict[str, list[TrendRow]] = {}
    for row in rows:
        local = row.at.astimezone(tz) if row.at.tzinfo else row.at
        days.setdefault(local.strftime("%Y-%m-%d"), []).append(row)
    columns: dict = {"t": [], "run": [], "n": []}
    for key, _, _ in METRICS:
        columns[key] = []
    for day, group in days.items():  # rows are sorted, so days come in order
        noon = datetime.strptime(day, "%Y-%m-%d").replace(hour=12)
        columns["t"].append(int((noon - _EPOCH).total_seconds() * 1000))
        columns["run"].append(group[-1].run_id)  # the day's last run, for the link
        columns["n"].append(len(group))
        for key, attr, digits in METRICS:
            values = [v for v in (getattr(r, attr) for r in group) if v is not None]
            columns[key].append(round(sum(values) / len(values), digits) if values else None)
    columns["downsampled"] = True
    return columns


def latest(row: TrendRow, tz: tzinfo = UTC) -> dict:
    """A series' last point, for the table under the charts."""
    local = row.at.astimezone(tz) if row.at.tzinfo else row.at
    out = {
        "date": local.strftime("%Y-%m-%d %H:%M"),
        "run": row.run_id,
        "suite_version": row.suite_version,
        "strategy_version": row.strategy_version,
    }
    for key, attr, digits in METRICS:
        out[key] = _rounded(getattr(row, attr), digits)
    return out


def build(rows: Iterable[TrendRow], *, since: datetime, tz: tzinfo = UTC,
          max_points: int = MAX_POINTS_PER_SERIES) -> dict:  # fmt: skip
    """Series (sorted by name) and markers from rows sorted by time; rows before `since` only set
    the state the markers compare with (see `markers`)."""
    rows = list(rows)
    by_series: dict[str, list[TrendRow]] = {}
    for row in rows:
        if row.at >= since:
            by_series.setdefault(row.series, []).append(row)
    series = []
    for name in sorted(by_series):
        points = by_series[name]
        series.append(
            {
                "name": name,
                "points": len(points),
                **series_columns(points, tz=tz, max_points=max_points),
                "latest": latest(points[-1], tz),
            }
        )
    return {
        "series": series,
        "markers": markers(rows, since=since, tz=tz),
        "points": sum(s["points"] for s in series),
    }
