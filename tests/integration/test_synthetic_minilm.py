"""Synthetic examples with the real MiniLM embedder: reworded copies of a test case and of a seed are
dropped by meaning, not only by their words."""

from __future__ import annotations

import json

import pytest

from evaluations.services.synthetic import synthetic_create
from tests.factories import CaseFactory, EndpointFactory, SuiteVersionFactory

pytestmark = pytest.mark.integration

ANSWER = "\n".join(
    json.dumps({"input": text, "expected": label})
    for text, label in [
        ("How do I change the e-mail on my account, please?", "account"),  # the test case, reworded
        ("How can I update the email address of my account?", "account"),  # the test case, paraphrased
        ("I was billed twice in March on my invoice", "billing"),  # the seed, paraphrased
        ("printer driver fails after update", "technical"),  # new
    ]
)


def test_minilm_drops_reworded_test_cases_and_seeds(db, fake_openai, task_queue, settings):
    settings.FTVP_EMBEDDER = "minilm"
    fake_openai.responder = lambda body: ANSWER
    version = SuiteVersionFactory()
    seed = "my invoice shows a double charge for march"
    CaseFactory(version=version, key="seed", input=seed, expected="billing", split="train")
    CaseFactory(
        version=version, key="test", input="how do I change the email on my account", expected="account"
    )
    endpoint = EndpointFactory(base_url=fake_openai.base_url)
    generation = synthetic_create(
        suite_version=version, endpoint=endpoint, seed_keys=["seed"], n=4, threshold=0.8
    )
    task_queue.drain()

    generation.refresh_from_db()
    assert (generation.dropped_test_copies, generation.dropped_duplicates) == (2, 1)
    kept = generation.candidates.get(status="pending")
    assert kept.input == "printer driver fails after update" and kept.nearest_similarity < 0.5
    reasons = dict(generation.candidates.filter(status="dropped").values_list("position", "nearest"))
    assert reasons == {0: "test:test", 1: "test:test", 2: "seed:seed"}
