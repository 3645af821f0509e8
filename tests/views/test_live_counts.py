"""A running run's counts are computed once per FTVP_LIVE_SECONDS for all its viewers; a finished
run's are always exact."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from evaluations.models import Result, Run, RunStatus, WorkerBeat
from evaluations.selectors.runs import run_arms_with_summaries, run_live_counts
from tests.factories import EndpointFactory
from tests.runs import ArmSpec, finished_run, suite_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def running(db):
    version = suite_version(test_cases=6)
    run = finished_run(version, [ArmSpec(EndpointFactory(), "plain", [1.0] * 6, errors={5})])
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, finished_at=None)
    run.refresh_from_db()
    cache.clear()
    yield run
    cache.clear()


def _drop_one(run: Run) -> None:
    Result.objects.filter(arm__run=run).order_by("-pk").first().delete()


def test_a_running_runs_counts_are_reused_within_the_interval(running, settings):
    settings.FTVP_LIVE_SECONDS = 60
    assert run_live_counts(running) == {"n": 6, "scored": 6, "errors": 1}
    _drop_one(running)
    assert run_live_counts(running)["n"] == 6  # the figure of the last 60 s
    cache.clear()  # the interval is over
    assert run_live_counts(running) == {"n": 5, "scored": 5, "errors": 0}


def test_the_live_part_makes_no_count_of_results_within_the_interval(running, settings, auth_client):
    settings.FTVP_LIVE_SECONDS = 60
    WorkerBeat.objects.create(hostname="w1", last_seen=timezone.now(), queues="llm,scoring")  # not stalled
    url = reverse("evaluations:run-live", args=[running.pk])
    first = auth_client.get(url)
    assert first.status_code == 200 and "6 of " in first.content.decode()
    with CaptureQueriesContext(connection) as queries:
        again = auth_client.get(url)
    assert again.status_code == 200
    assert not [q for q in queries.captured_queries if "evaluations_result" in q["sql"]]


def test_a_finished_runs_counts_are_always_exact(running, settings):
    settings.FTVP_LIVE_SECONDS = 60
    Run.objects.filter(pk=running.pk).update(status=RunStatus.SUCCEEDED)
    running.refresh_from_db()
    assert run_live_counts(running)["n"] == 6
    _drop_one(running)
    assert run_live_counts(running)["n"] == 5


def test_with_the_interval_at_zero_every_request_counts_afresh(running, settings):
    settings.FTVP_LIVE_SECONDS = 0
    assert run_live_counts(running)["n"] == 6
    _drop_one(running)
    assert run_live_counts(running)["n"] == 5


@pytest.mark.django_db(transaction=True)
def test_changed_summaries_are_recomputed_in_the_background_while_the_last_ones_are_served(settings):
    from tests.conftest import wait_for

    version = suite_version(test_cases=4)
    run = finished_run(version, [ArmSpec(EndpointFactory(), "plain", [1.0] * 4)])
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, finished_at=None)
    run.refresh_from_db()
    cache.clear()
    settings.FTVP_LIVE_SECONDS = 1
    (arm, first), *_ = run_arms_with_summaries(run)  # the first view computes them
    assert first["results"] == 4
    _drop_one(run)
    cache.delete(f"ftvp:live-counts:{run.pk}:{run.status}")  # the counts' interval is over
    key = f"ftvp:live-summaries:{run.pk}"
    marker, computed_at, summaries = cache.get(key)
    cache.set(key, (marker, computed_at - 5, summaries))  # and so is the summaries'
    (_, served), *_ = run_arms_with_summaries(run)
    assert served["results"] == 4  # the last figures, at once
    wait_for(lambda: cache.get(key)[2][arm.pk]["results"] == 3, 10, 0.05, message="the refresh")
    (_, fresh), *_ = run_arms_with_summaries(run)
    assert fresh["results"] == 3
    cache.clear()


def test_a_run_that_ends_without_stored_summaries_shows_its_final_figures_at_once(running, settings):
    """A cancelled run has no stored summaries (finalize never ran): its figures are computed anew,
    never the running ones served stale."""
    settings.FTVP_LIVE_SECONDS = 60
    (_, live), *_ = run_arms_with_summaries(running)
    assert live["results"] == 6
    _drop_one(running)
    Run.objects.filter(pk=running.pk).update(status=RunStatus.CANCELLED)
    running.refresh_from_db()
    running.arms.update(summary={})
    (_, final), *_ = run_arms_with_summaries(running)
    assert final["results"] == 5
