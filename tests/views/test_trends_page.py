"""The suite trends page: series and change markers from stored trend points, a range selector, an
empty state, and a bounded number of queries however many runs the suite has."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from evaluations.demo_data.trends import trends_seed_bench
from evaluations.models import Result, TrendPoint
from evaluations.services.trends import trends_record
from tests.factories import EndpointFactory, SuiteFactory
from tests.runs import ArmSpec, finished_run, scores_with_mean, suite_version

SMALL_FEW, LARGE_FEW = "bench-small · bench-few-shot", "bench-large · bench-few-shot"


def _get(client, suite, **params):
    return client.get(reverse("evaluations:suite-trends", args=[suite.pk]), params)


def _data(response) -> dict:
    html = response.content.decode()
    match = re.search(r'id="trends-data" type="application/json">(.*?)</script>', html)
    assert match, "no chart data on the page"
    return json.loads(match.group(1))


@pytest.fixture
def seeded(db):
    """60 nights x 5 arms: suite v2 on night 15, v3 on night 42, few-shot prompt v2 on night 36 and
    the large endpoint's update on night 54 (counted from the oldest night)."""
    return trends_seed_bench(suite_name="bench", days=60, arms=5)["suite"]


def test_the_page_needs_a_login(client, seeded):
    response = _get(client, seeded)
    assert response.status_code == 302 and "/login" in response["Location"]


def test_the_suite_page_links_to_it(auth_client, seeded):
    response = auth_client.get(reverse("evaluations:suite-detail", args=[seeded.pk]))
    assert f'href="/suites/{seeded.pk}/trends/"' in response.content.decode()


def test_a_suite_without_finished_runs_shows_the_empty_state(auth_client, db):
    suite = SuiteFactory()
    response = _get(auth_client, suite)
    assert response.status_code == 200
    html = response.content.decode()
    assert "No run of this suite has finished yet" in html
    assert 'id="trends-data"' not in html and "<canvas" not in html


def test_finished_runs_become_series_with_their_figures(auth_client, db):
    version = suite_version(test_cases=10)
    endpoint = EndpointFactory(name="gpt-x")
    runs = []
    for days_ago, right in ((3, 6), (2, 7), (1, 9)):
        run = finished_run(
            version,
            [ArmSpec(endpoint, "zero-shot", scores_with_mean(10, right)),
             ArmSpec(endpoint, "few-shot", scores_with_mean(10, right - 1))],
        )  # fmt: skip
        run.finished_at = timezone.now() - timedelta(days=days_ago)
        run.save()
        trends_record(run=run)
        runs.append(run)
    response = _get(auth_client, version.suite)
    assert response.status_code == 200
    data = _data(response)
    assert [s["name"] for s in data["series"]] == ["gpt-x · few-shot", "gpt-x · zero-shot"]
    zero = data["series"][1]
    assert zero["mean"] == [0.6, 0.7, 0.9] and zero["run"] == [r.pk for r in runs]
    assert zero["pass_rate"] == [0.6, 0.7, 0.9]
    assert zero["low"][2] <= 0.9 <= zero["high"][2]
    assert zero["t"] == sorted(zero["t"])
    assert data["markers"] == []
    html = response.content.decode()
    # The table fallback: the latest value of each arm, linked to its run.
    assert "<td>gpt-x · zero-shot</td>" in html and f'href="/runs/{runs[2].pk}/"' in html
    assert "No drift measured in this range" in html  # no baseline, no drift AUC


def test_series_and_change_markers_reach_the_script(auth_client, seeded):
    data = _data(_get(auth_client, seeded, days=90))
    assert data["days"] == 90
    assert len(data["series"]) == 5 and all(s["points"] == 60 for s in data["series"])
    assert all(s["downsampled"] is False for s in data["series"])
    found = [(m["kind"], m["label"], m["series"]) for m in data["markers"]]
    assert found == [
        ("suite", "suite v2 (was v1)", []),
        ("prompt", "prompt bench-few-shot v1 → v2", [LARGE_FEW, SMALL_FEW]),
        ("suite", "suite v3 (was v2)", []),
        ("endpoint", "endpoint bench-large changed", [LARGE_FEW, "bench-large · bench-zero-shot"]),
    ]
    # Each marker sits on the first run after the change.
    suite_v3 = TrendPoint.objects.filter(suite=seeded, suite_version_number=3).order_by("at").first()
    assert data["markers"][2]["run"] == suite_v3.run_id
    assert data["markers"][2]["date"] == timezone.localtime(suite_v3.at).strftime("%Y-%m-%d")
    # Drift was measured from the fourth night on: the AUC reaches the chart.
    large = next(s for s in data["series"] if s["name"] == "bench-large · bench-zero-shot")
    assert large["drift_auc"][0] is None and large["drift_auc"][-1] > 0.65
    html = _get(auth_client, seeded, days=90).content.decode()
    assert 'id="drift-chart"' in html and "endpoint bench-large changed" in html


def test_the_range_selector_filters_by_date(auth_client, seeded):
    since = timezone.now() - timedelta(days=30)
    expected = TrendPoint.objects.filter(suite=seeded, at__gte=since, series=SMALL_FEW).count()
    assert 29 <= expected <= 31
    response = _get(auth_client, seeded, days=30)
    data = _data(response)
    assert data["days"] == 30
    assert {s["points"] for s in data["series"]} == {expected}
    first = TrendPoint.objects.filter(suite=seeded, series=SMALL_FEW, at__gte=since).order_by("at").first()
    small = next(s for s in data["series"] if s["name"] == SMALL_FEW)
    assert small["run"][0] == first.run_id
    # Only the changes within the range: the prompt (23 nights ago), suite v3 (17), the endpoint (5).
    assert [m["kind"] for m in data["markers"]] == ["prompt", "suite", "endpoint"]
    assert 'aria-current="page">30 days' in response.content.decode()


def test_an_unknown_range_falls_back_to_90_days_and_says_so(auth_client, seeded):
    response = _get(auth_client, seeded, days=7)
    assert response.status_code == 200
    assert _data(response)["days"] == 90
    assert "Range &#x27;7&#x27; is not offered: choose 30, 90, 365 days" in response.content.decode()
    response = _get(auth_client, seeded, days="a year")
    assert (
        _data(response)["days"] == 90
        and "Range &#x27;a year&#x27; is not offered" in response.content.decode()
    )
    assert "is not offered" not in _get(auth_client, seeded, days="365").content.decode()


def test_a_range_without_runs_says_when_the_latest_finished(auth_client, db):
    suite = trends_seed_bench(suite_name="old", days=5, arms=2, now=timezone.now() - timedelta(days=100))[
        "suite"
    ]
    latest = TrendPoint.objects.filter(suite=suite).order_by("at").last()
    html = _get(auth_client, suite, days=30).content.decode()
    assert "No run finished in the last 30 days" in html
    assert f"the latest finished on {timezone.localtime(latest.at):%Y-%m-%d}" in html
    assert _data(_get(auth_client, suite, days=365))["series"][0]["points"] == 5


def _page_queries(client, suite) -> list[str]:
    with CaptureQueriesContext(connection) as ctx:
        response = _get(client, suite, days=365)
    assert response.status_code == 200
    return [q["sql"] for q in ctx.captured_queries]


def test_the_page_makes_the_same_few_queries_for_5_nights_or_2_years_of_nightly_runs(
    auth_client, db, django_assert_max_num_queries
):
    few = trends_seed_bench(suite_name="few", days=5, arms=5)["suite"]
    many = trends_seed_bench(suite_name="many", days=730, arms=5)["suite"]  # as bench/trends_page.py
    assert TrendPoint.objects.filter(suite=many).count() == 3650
    _page_queries(auth_client, few)  # warm: the session's first read
    # session, user, the role check (the user's and their groups' permissions), the roles shown in the
    # header, suite, two reads of trend points
    with django_assert_max_num_queries(8):
        sql_few = _page_queries(auth_client, few)
    with django_assert_max_num_queries(8):
        sql_many = _page_queries(auth_client, many)
    assert len(sql_few) == len(sql_many)
    # Aggregates only: the page never reads results (nor arms or runs).
    for table in (Result._meta.db_table, "evaluations_arm", '"evaluations_run"'):
        assert not any(table in sql for sql in sql_many), table
