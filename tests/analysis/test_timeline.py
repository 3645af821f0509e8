"""Trend series: markers where the suite version, a prompt or an endpoint changed; downsampling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from evaluations.analysis.timeline import TrendRow, build, markers, series_columns, wall_ms

T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


def row(
    day: float,
    series: str = "gpt · zero-shot",
    *,
    run: int | None = None,
    version: int = 1,
    prompt: int = 1,
    fingerprint: str = "fp1",
    mean: float | None = 0.8,
    drift: float | None = None,
) -> TrendRow:
    return TrendRow(
        series=series, at=T0 + timedelta(days=day), run_id=run if run is not None else int(day * 10) + 1,
        suite_version=version, strategy_version=prompt, endpoint_fingerprint=fingerprint,
        mean_score=mean, score_ci_low=None if mean is None else mean - 0.05,
        score_ci_high=None if mean is None else mean + 0.05, pass_rate=0.7, cost_per_request=0.000123,
        latency_p95_ms=812.34, drift_auc=drift,
    )  # fmt: skip


def kinds(found):
    return [(m["kind"], m["label"], m["date"]) for m in found]


def test_nothing_changed_means_no_markers():
    rows = [row(d) for d in range(10)]
    assert markers(rows, since=T0) == []


def test_a_new_suite_version_is_marked_once_and_an_older_pinned_run_is_no_change():
    rows = [row(0), row(1, version=2), row(2, version=1), row(3, version=2), row(4, version=3)]
    found = markers(rows, since=T0)
    assert kinds(found) == [
        ("suite", "suite v2 (was v1)", "2026-03-02"),
        ("suite", "suite v3 (was v2)", "2026-03-05"),
    ]
    assert found[0]["series"] == [] and found[0]["run"] == rows[1].run_id


def test_a_prompt_change_is_marked_per_series_and_merged_across_endpoints_of_one_run():
    a, b = "small · few-shot", "large · few-shot"
    rows = [row(0, a, run=1), row(0, b, run=1), row(1, a, run=2, prompt=2), row(1, b, run=2, prompt=2)]
    found = markers(rows, since=T0)
    assert kinds(found) == [("prompt", "prompt few-shot v1 → v2", "2026-03-02")]
    assert found[0]["series"] == [a, b]


def test_an_endpoint_change_is_marked_for_the_series_of_that_endpoint():
    rows = [
        row(0, "large · cot", run=1),
        row(0, "small · cot", run=1, fingerprint="s"),
        row(1, "large · cot", run=2, fingerprint="fp2"),
        row(1, "small · cot", run=2, fingerprint="s"),
    ]
    found = markers(rows, since=T0)
    assert kinds(found) == [("endpoint", "endpoint large changed", "2026-03-02")]
    assert found[0]["series"] == ["large · cot"]


def test_an_unknown_fingerprint_is_no_endpoint_change():
    rows = [row(0, fingerprint=""), row(1, fingerprint="fp1"), row(2, fingerprint="")]
    assert markers(rows, since=T0) == []


def test_a_change_on_the_first_day_of_the_range_is_marked_and_earlier_changes_are_not():
    rows = [row(0), row(1, version=2, prompt=2), row(5, version=2, prompt=2), row(6, version=3, prompt=3)]
    since = T0 + timedelta(days=4)
    found = markers(rows[2:], since=since)  # no state before the range: nothing to compare the first with
    assert kinds(found) == [
        ("prompt", "prompt zero-shot v2 → v3", "2026-03-07"),
        ("suite", "suite v3 (was v2)", "2026-03-07"),
    ]
    # With each series' last point before the range, a change at the range's first point shows.
    since = T0 + timedelta(days=3)
    found = markers([rows[1], row(3.5, version=3, prompt=3)], since=since)
    assert [m["kind"] for m in found] == ["prompt", "suite"]
    assert all(m["date"] == "2026-03-04" for m in found)


def test_markers_dates_follow_the_time_zone():
    rows = [row(0), row(0.9, version=2)]  # 2026-03-01 23:36 UTC
    assert markers(rows, since=T0)[0]["date"] == "2026-03-01"
    assert markers(rows, since=T0, tz=ZoneInfo("Asia/Tokyo"))[0]["date"] == "2026-03-02"


def test_wall_clock_milliseconds_show_the_local_time_when_read_as_utc():
    at = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    ms = wall_ms(at, ZoneInfo("Asia/Tokyo"))  # 08:30 the next day in Tokyo
    assert datetime.fromtimestamp(ms / 1000, tz=UTC) == datetime(2026, 3, 2, 8, 30, tzinfo=UTC)


def test_series_are_columns_rounded_for_the_page():
    cols = series_columns([row(0, mean=0.812345), row(1, mean=None)])
    assert cols["downsampled"] is False
    assert cols["mean"] == [0.8123, None] and cols["low"] == [0.7623, None]
    assert cols["latency_p95"] == [812.3, 812.3] and cols["cost"] == [0.000123, 0.000123]
    assert cols["t"][1] - cols["t"][0] == 86_400_000


def test_long_series_become_daily_means_deterministically():
    rows = [
        row(d / 4, mean=0.5 + 0.1 * (i % 4), run=i + 1) for i, d in enumerate(range(8))
    ]  # 4 a day, 2 days
    cols = series_columns(rows, max_points=5)
    assert cols["downsampled"] is True
    assert cols["n"] == [4, 4]
    assert cols["mean"] == pytest.approx([0.65, 0.65])
    assert cols["run"] == [4, 8]  # each day's last run
    assert [datetime.fromtimestamp(t / 1000, tz=UTC).hour for t in cols["t"]] == [12, 12]
    assert series_columns(rows, max_points=5) == cols
    assert series_columns(rows, max_points=8)["downsampled"] is False


def test_build_keeps_only_the_range_and_sorts_series_by_name():
    rows = [row(0, "b · x"), row(0, "a · x"), row(2, "b · x", drift=0.6), row(3, "a · x", version=2)]
    data = build(rows, since=T0 + timedelta(days=1))
    assert [s["name"] for s in data["series"]] == ["a · x", "b · x"]
    assert [s["points"] for s in data["series"]] == [1, 1] and data["points"] == 2
    assert data["series"][1]["drift_auc"] == [0.6]
    assert data["series"][0]["latest"]["suite_version"] == 2
    assert [m["kind"] for m in data["markers"]] == ["suite"]
