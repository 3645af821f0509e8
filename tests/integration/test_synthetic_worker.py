"""Synthetic examples through a real Celery worker process on the llm queue, the configured broker and
DB, against the loopback OpenAI-compatible server with planted duplicates and test copies."""

from __future__ import annotations

import pytest

from evaluations.models import SyntheticGeneration
from evaluations.services.synthetic import synthetic_create
from tests.conftest import wait_for
from tests.factories import CaseFactory, EndpointFactory, SuiteVersionFactory
from tests.fakeopenai import FakeOpenAI
from tests.services.test_synthetic import SEEDS, TESTS, UNIQUE, Planted

pytestmark = pytest.mark.integration


def test_a_worker_generates_and_filters_the_candidates(worker):
    with FakeOpenAI(responder=Planted()) as server:
        worker.start()
        version = SuiteVersionFactory(suite__name="tickets-worker")
        for position, (key, text, label) in enumerate(SEEDS):
            CaseFactory(
                version=version, key=key, position=position, input=text, expected=label, split="train"
            )
        for position, (key, text, label) in enumerate(TESTS, start=len(SEEDS)):
            CaseFactory(version=version, key=key, position=position, input=text, expected=label)
        endpoint = EndpointFactory(name="writer", base_url=server.base_url)
        generation = synthetic_create(
            suite_version=version, endpoint=endpoint, seed_keys=["seed-1", "seed-2"], n=12
        )

        def finished():
            row = SyntheticGeneration.objects.get(pk=generation.pk)
            return row if row.is_finished else None

        row = wait_for(finished, timeout=90, message="the generation to finish")
    assert row.status == "succeeded", (row.error, worker.log_text())
    assert (row.generated, row.dropped_duplicates, row.dropped_test_copies) == (12, 2, 2)
    assert row.candidates.filter(status="pending").count() == len(UNIQUE)
    assert row.cost > 0 and row.heartbeat_at is None
