"""The demo's setup and its fine-tune, without a worker: idempotent, and robust to an interrupted run."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from evaluations.demo import (
    DEMO_PARAMS,
    LOCAL_ENDPOINT,
    TICKETS_SUITE,
    DemoSize,
    demo_cancel,
    demo_job,
    demo_setup,
)
from evaluations.models import Endpoint, FineTuneJob, FineTuneStatus, Suite

SMALL = DemoSize(train=10, test=5)


@pytest.fixture
def queue(task_queue, monkeypatch):
    return task_queue


def test_setup_creates_the_suites_and_the_local_endpoint_once(db):
    suite = demo_setup(size=SMALL)
    assert suite.name == TICKETS_SUITE and suite.monthly_volume == 50_000 and suite.retrains_per_year == 2
    counts = (Suite.objects.count(), Endpoint.objects.count())
    assert counts == (3, 1)
    Endpoint.objects.filter(name=LOCAL_ENDPOINT).update(params={"temperature": 0, "max_tokens": 64})
    demo_setup(size=DemoSize(train=50, test=20))  # sizes only apply to the first run
    assert (Suite.objects.count(), Endpoint.objects.count()) == counts
    assert suite.latest_version().cases.count() == 15
    # The demo endpoint gets the demo's generation settings back.
    assert Endpoint.objects.get(name=LOCAL_ENDPOINT).params == DEMO_PARAMS


def test_the_demo_reuses_its_job_and_replaces_one_an_interrupted_demo_left_running(db, queue, settings):
    suite = demo_setup(size=SMALL)
    job = demo_job(suite, size=SMALL)
    assert job.status == FineTuneStatus.QUEUED and job.hyperparameters["epochs"] == SMALL.epochs
    assert demo_job(suite, size=SMALL) == job
    # A worker killed mid-training left the job running with a stale heartbeat.
    settings.FTVP_STALL_SECONDS = 60
    FineTuneJob.objects.filter(pk=job.pk).update(
        status=FineTuneStatus.RUNNING, heartbeat_at=timezone.now() - timedelta(minutes=5)
    )
    fresh = demo_job(suite, size=SMALL)
    job.refresh_from_db()
    assert fresh != job and job.status == FineTuneStatus.CANCELLED and fresh.status == FineTuneStatus.QUEUED


def test_an_interrupted_demo_cancels_its_fine_tune(db, queue):
    suite = demo_setup(size=SMALL)
    job = demo_job(suite, size=SMALL)
    demo_cancel(suite)
    job.refresh_from_db()
    assert job.status == FineTuneStatus.CANCELLED
