"""Traffic reads: the summary's figures on known calls (per day, p50/p95, tokens, cost, errors, by
endpoint and tag) and the table's filters."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.utils import timezone

from evaluations.selectors.traffic import (
    TrafficFilter,
    TrafficFilterError,
    call_messages,
    call_output,
    traffic_calls,
    traffic_summary,
)
from tests import traffic_rows
from tests.factories import EndpointFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def calls():
    gpt, local = EndpointFactory(name="gpt"), EndpointFactory(name="local")
    rows = []
    # today: 4 calls to gpt with latencies 10, 20, 30, 40 ms, one error
    for i, latency in enumerate([10.0, 20.0, 30.0, 40.0]):
        tags = ["prod", "eu"] if i < 2 else ["prod"]
        rows.append(
            traffic_rows.call(
                gpt, latency_ms=latency, prompt_tokens=10 * (i + 1), completion_tokens=2, cost=0.01, tags=tags
            )
        )
    rows.append(traffic_rows.call(gpt, status=500, error="upstream failed", latency_ms=5000.0, cost=None))
    # two days ago: 2 calls to local, one without tags
    rows.append(traffic_rows.call(local, days_ago=2, latency_ms=100.0, cost=0.5, tags=["dev"]))
    rows.append(traffic_rows.call(local, days_ago=2, latency_ms=300.0, cost=0.25))
    # 40 days ago: out of the default window
    rows.append(traffic_rows.call(gpt, days_ago=40, cost=100.0))
    return rows


def test_the_summary_counts_each_day_of_the_window_with_its_figures(calls):
    summary = traffic_summary()
    assert summary["window"]["days"] == 30 and len(summary["days"]) == 30
    today = summary["days"][-1]
    assert today["date"] == timezone.localdate().isoformat()
    assert today["calls"] == 5 and today["errors"] == 1 and today["error_rate"] == 0.2
    assert today["cost"] == pytest.approx(0.04)
    # latency over the successful calls: p50 of 10, 20, 30, 40 = 25; p95 = 38.5 (linear)
    assert today["latency_p50"] == 25.0 and today["latency_p95"] == 38.5
    assert today["tokens_per_request"] == (12 + 22 + 32 + 42) / 4
    assert today["prompt_tokens_per_request"] == 25.0
    two_days_ago = summary["days"][-3]
    assert two_days_ago["calls"] == 2 and two_days_ago["cost"] == pytest.approx(0.75)
    assert summary["days"][-2]["calls"] == 0 and summary["days"][-2]["latency_p50"] is None
    totals = summary["totals"]
    assert totals["calls"] == 7 and totals["errors"] == 1 and totals["cost"] == pytest.approx(0.79)
    assert totals["latency_p50"] == 35.0  # 10, 20, 30, 40, 100, 300


def test_the_summary_splits_by_endpoint_and_by_tag(calls):
    summary = traffic_summary()
    endpoints = {row["name"]: row for row in summary["by_endpoint"]}
    assert endpoints["gpt"]["calls"] == 5 and endpoints["local"]["calls"] == 2
    assert endpoints["local"]["latency_p95"] == pytest.approx(290.0)
    tags = {row["name"]: row["calls"] for row in summary["by_tag"]}
    assert tags == {"prod": 4, "eu": 2, "dev": 1, "(none)": 2}
    series = {s["name"]: s["calls"] for s in summary["series"]["endpoint"]}
    assert series["gpt"][-1] == 5 and series["local"][-3] == 2 and sum(series["local"]) == 2


def test_the_summary_takes_the_filters_and_a_window(calls):
    assert traffic_summary(TrafficFilter(endpoint="local"))["totals"]["calls"] == 2
    assert traffic_summary(TrafficFilter(tag="eu"))["totals"]["calls"] == 2
    assert traffic_summary(TrafficFilter(status="error"))["totals"]["calls"] == 1
    assert traffic_summary(days=1)["totals"]["calls"] == 5
    assert traffic_summary(days=60)["totals"]["calls"] == 8
    with pytest.raises(TrafficFilterError, match="days"):
        traffic_summary(days=0)


def test_the_table_filters_by_endpoint_tag_status_kind_and_dates(calls):
    assert traffic_calls().count() == 8
    assert traffic_calls(TrafficFilter(endpoint="gpt")).count() == 6
    assert traffic_calls(TrafficFilter(tag="prod")).count() == 4
    assert traffic_calls(TrafficFilter(tag="pro")).count() == 0  # a tag matches whole
    assert traffic_calls(TrafficFilter(status="ok")).count() == 7
    assert traffic_calls(TrafficFilter(status="error")).get().status == 500
    assert traffic_calls(TrafficFilter(kind="embeddings")).count() == 0
    today = timezone.localdate()
    assert traffic_calls(TrafficFilter(date_from=today)).count() == 5
    assert traffic_calls(TrafficFilter(date_to=today - timedelta(days=1))).count() == 3
    assert (
        traffic_calls(
            TrafficFilter(date_from=today - timedelta(days=2), date_to=today - timedelta(days=2))
        ).count()
        == 2
    )
    first = list(traffic_calls())
    assert first == sorted(first, key=lambda c: c.started_at, reverse=True)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"status": "bad"}, "status"), ({"kind": "images"}, "kind"),
     ({"date_from": date(2026, 2, 1), "date_to": date(2026, 1, 1)}, "date_from")],
)  # fmt: skip
def test_bad_filters_say_which(kwargs, message):
    with pytest.raises(TrafficFilterError, match=message):
        TrafficFilter(**kwargs)


def test_a_call_gives_its_messages_and_its_answer(db):
    row = traffic_rows.call(EndpointFactory(), question="hi", answer="hello")
    assert call_messages(row)[-1] == {"role": "user", "content": "hi"} and call_output(row) == "hello"
    row.response = {"choices": [{"message": {"content": [{"type": "text", "text": "a"}, {"text": "b"}]}}]}
    assert call_output(row) == "ab"
    row.request, row.response = {"input": "x"}, {"data": []}
    assert call_messages(row) is None and call_output(row) is None
