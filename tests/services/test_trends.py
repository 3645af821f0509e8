"""Trend points: recorded at finalize from the arms' summaries, refreshed by a re-score, backfilled
for older runs; and the bench seed behind the trends page's benchmark."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.utils import timezone

from evaluations.demo_data.trends import trends_seed_bench
from evaluations.models import Arm, Result, Run, RunStatus, TrendPoint
from evaluations.services.runs import run_create
from evaluations.services.scorings import run_rescore
from evaluations.services.trends import endpoint_fingerprint, trends_backfill, trends_record
from tests.factories import CaseFactory, EndpointFactory, SuiteVersionFactory, strategy
from tests.fakeopenai import answers_responder
from tests.runs import ArmSpec, finished_run, scores_with_mean, suite_version


@pytest.fixture
def pipeline_run(db, fake_openai, task_queue):
    """A run through the real pipeline (fake model): finalize records its trend points."""
    fake_openai.responder = answers_responder({"q0": "Paris is the capital", "q1": "Lyon", "q2": "PARIS"})
    version = SuiteVersionFactory()
    for i in range(3):
        CaseFactory(version=version, key=f"c{i}", position=i, input=f"q{i}", expected="Paris")
    endpoint = EndpointFactory(name="gpt-x", base_url=fake_openai.base_url)
    run = run_create(
        suite_version=version, arms=[(endpoint, strategy("plain")), (endpoint, strategy("zero-shot"))]
    )
    task_queue.drain()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    return run


def test_a_finished_run_gets_one_point_per_arm_with_its_summary_figures(pipeline_run):
    points = {p.series: p for p in TrendPoint.objects.filter(run=pipeline_run)}
    assert set(points) == {"gpt-x · plain", "gpt-x · zero-shot"}
    for arm in pipeline_run.arms.select_related("endpoint"):
        point = arm.trend
        s = arm.summary
        assert point.series == f"gpt-x · {arm.strategy.name}"
        assert point.at == pipeline_run.finished_at
        assert point.suite_id == pipeline_run.suite_version.suite_id
        assert point.suite_version_number == pipeline_run.suite_version.number
        assert point.strategy_version == 1
        assert point.endpoint_fingerprint == endpoint_fingerprint(arm.endpoint)
        assert point.mean_score == pytest.approx(s["mean_score"])
        assert [point.score_ci_low, point.score_ci_high] == pytest.approx(s["score_ci"])
        assert point.pass_rate == pytest.approx(s["pass_rate"])
        assert point.cost_per_request == pytest.approx(s["cost_per_request"])
        assert point.latency_p95_ms == pytest.approx(s["latency_p95_ms"])
        assert point.completion_tokens_mean == pytest.approx(s["completion_tokens_mean"])
        outputs = list(Result.objects.filter(arm=arm, error="").values_list("output", flat=True))
        assert point.output_chars_mean == pytest.approx(sum(map(len, outputs)) / len(outputs))


def test_a_rescore_refreshes_the_points_without_duplicating_them(pipeline_run, task_queue):
    before = dict(TrendPoint.objects.values_list("arm_id", "pass_rate"))
    suite = pipeline_run.suite_version.suite
    suite.default_assertions = [{"type": "icontains", "value": "paris"}]
    suite.save()
    run_rescore(run_id=pipeline_run.pk)
    task_queue.drain()
    assert TrendPoint.objects.count() == 2
    after = dict(TrendPoint.objects.values_list("arm_id", "pass_rate"))
    assert set(after) == set(before)
    for arm in Arm.objects.filter(run=pipeline_run):
        assert after[arm.pk] == pytest.approx(2 / 3) == pytest.approx(arm.summary["pass_rate"])
    assert after != before


def test_runs_that_did_not_succeed_get_no_points(db):
    version = suite_version(test_cases=4)
    run = finished_run(version, [ArmSpec(EndpointFactory(), "zero-shot", scores_with_mean(4, 2))])
    run.status = RunStatus.FAILED
    run.save()
    assert trends_record(run=run) == []
    assert not TrendPoint.objects.exists()


def test_backfill_records_older_runs_once(db):
    version = suite_version(test_cases=4)
    endpoint = EndpointFactory(name="older")
    runs = [finished_run(version, [ArmSpec(endpoint, "zero-shot", scores_with_mean(4, k))]) for k in (1, 3)]
    failed = finished_run(version, [ArmSpec(endpoint, "zero-shot", scores_with_mean(4, 2))])
    Run.objects.filter(pk=failed.pk).update(status=RunStatus.FAILED)
    assert not TrendPoint.objects.exists()  # written straight to the database, like runs of before
    assert trends_backfill() == 2
    assert sorted(TrendPoint.objects.values_list("run_id", "mean_score")) == [
        (runs[0].pk, pytest.approx(0.25)),
        (runs[1].pk, pytest.approx(0.75)),
    ]
    assert trends_backfill() == 0
    assert TrendPoint.objects.count() == 2


def test_the_bench_seed_writes_nightly_runs_with_points_and_is_idempotent(db):
    now = timezone.now()
    seeded = trends_seed_bench(suite_name="bench-x", days=40, arms=5, now=now)
    assert (seeded["runs"], seeded["points"]) == (40, 200)
    runs = list(Run.objects.filter(suite_version__suite=seeded["suite"]).order_by("finished_at"))
    assert len(runs) == 40 and all(r.status == RunStatus.SUCCEEDED and r.trigger == "schedule" for r in runs)
    gaps = {(b.finished_at.date() - a.finished_at.date()).days for a, b in itertools.pairwise(runs)}
    assert gaps == {1}  # nightly
    assert runs[-1].finished_at <= now + timedelta(minutes=30)
    assert not Result.objects.exists()  # the trends page never reads results
    points = TrendPoint.objects.filter(suite=seeded["suite"])
    assert points.values("series").distinct().count() == 5
    # The changes the page marks: three suite versions, a new prompt version, an endpoint update.
    assert set(points.values_list("suite_version_number", flat=True)) == {1, 2, 3}
    assert set(points.values_list("strategy_version", flat=True)) == {1, 2}
    large = points.filter(series__startswith="bench-x-large")
    assert large.values("endpoint_fingerprint").distinct().count() == 2
    assert all(0 <= p.mean_score <= 1 and p.score_ci_low <= p.mean_score <= p.score_ci_high for p in points)
    # Each arm carries the summary finalize would have stored.
    arm = Arm.objects.filter(run=runs[-1]).first()
    assert arm.summary["mean_score"] == pytest.approx(arm.trend.mean_score)
    again = trends_seed_bench(suite_name="bench-x", days=40, arms=5, now=now)
    assert (again["runs"], again["points"]) == (0, 0)
    assert points.count() == 200


def test_the_bench_seed_rejects_impossible_sizes(db):
    with pytest.raises(ValueError, match="arms must be between 1 and 10"):
        trends_seed_bench(suite_name="bench-y", days=3, arms=11)
    with pytest.raises(ValueError, match="days must be at least 1"):
        trends_seed_bench(suite_name="bench-y", days=0)
