"""Traffic -> suite -> local fine-tune (from reviewed captured answers) -> evaluation -> decision with
measured volume (issue [capture]'s acceptance), through the real pipeline: production calls recorded
as the proxy's drain records them, sampled into a suite with captured runs, reviewed, their answers
made the expected outputs, a LoRA of the real local model trained on the reviewed train answers, the
student evaluated, and the decision taken on the volume measured on the captured traffic."""

from __future__ import annotations

import pytest

from evaluations.models import FineTuneStatus, Result, RunStatus, Trigger
from evaluations.selectors.decisions import decision_runs, suite_decision
from evaluations.selectors.training_data import training_set
from evaluations.services.endpoints import endpoint_create
from evaluations.services.finetune import finetune_create
from evaluations.services.reviews import review_save
from evaluations.services.traffic_suite import captured_answers_apply, traffic_to_suite
from tests.factories import UserFactory
from tests.traffic_rows import call

pytestmark = pytest.mark.integration

WORDS = ["apple", "river", "stone", "cloud", "table", "green", "music", "paper", "house", "water", "light",
         "grass", "plane", "chair", "bread", "horse"]  # fmt: skip


@pytest.fixture
def media(db, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.FTVP_EMBEDDER = "hashing"
    return settings.MEDIA_ROOT


def test_captured_traffic_becomes_a_suite_a_fine_tune_and_a_decision_on_measured_volume(media, task_queue):
    live = endpoint_create(
        name="gpt-live", provider="openai", model="big", base_url="http://127.0.0.1:9/v1",
        price_in="5", price_out="15", params={"temperature": 0, "max_tokens": 12},
    )  # fmt: skip
    student = endpoint_create(
        name="smol", provider="local", model="smollm2-135m-instruct", price_hour="0.5",
        params={"temperature": 0, "max_tokens": 12},
    )  # fmt: skip
    # Production: 16 distinct questions asked 3 times each over the last 6 days.
    for repeat in range(3):
        for i, word in enumerate(WORDS):
            call(live, question=f"Secret code for {word}?", answer="MANGO-7", system=None,
                 days_ago=(repeat * 16 + i) / 8, prompt_tokens=30, completion_tokens=4)  # fmt: skip
    reviewer = UserFactory(username="reviewer", roles=["reviewer"])

    # Traffic -> suite: 16 inputs (duplicates removed), split by a hash of the input.
    outcome = traffic_to_suite(suite_name="codes", sample_size=100, seed=1, test_share=0.25, user=reviewer)
    assert outcome.sampled == 16 and outcome.duplicates == 32
    assert outcome.train + outcome.test == 16 and outcome.test >= 1 and outcome.train >= 4
    assert outcome.run.trigger == outcome.test_run.trigger == Trigger.CAPTURE
    assert not decision_runs(outcome.suite).exists()  # captured answers are not an evaluation

    # Review: every captured answer accepted (as a reviewer would, one by one), then made expected.
    for run in (outcome.run, outcome.test_run):
        for result in Result.objects.filter(arm__run=run).select_related("arm__run"):
            review_save(result=result, reviewer=reviewer, verdict="correct")
    version = captured_answers_apply(version=outcome.version, user=reviewer)
    assert set(version.cases.values_list("expected", flat=True)) == {"MANGO-7"}
    assert version.cases.filter(split="test").count() == outcome.test

    # A local fine-tune on the reviewed train answers, evaluated on the reviewed test cases.
    source = f"reviewed:{outcome.run.pk}"
    assert {r.answer for r in training_set(version, source).rows} == {"MANGO-7"}
    job = finetune_create(
        suite_version=version, base_endpoint=student, source=source,
        hyperparameters={"epochs": 1, "batch_size": 2, "learning_rate": 0.01, "max_length": 64},
    )  # fmt: skip
    assert job.examples == outcome.train
    task_queue.drain()
    job.refresh_from_db()
    assert job.status == FineTuneStatus.SUCCEEDED, job.error
    run = job.run
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.suite_version == version

    # The decision on the volume measured on the captured traffic (48 calls in 6 days).
    suite = version.suite
    suite.traffic_endpoint = live
    suite.save(update_fields=["traffic_endpoint"])
    decision = suite_decision(suite)
    assert decision.run.pk == run.pk
    profile = decision.decision.profile
    assert profile["measured_endpoint"] == "gpt-live" and profile["measured_calls"] == 48
    assert profile["monthly_volume"] == pytest.approx(48 / profile["measured_days"] * 30.4375, rel=1e-3)
    assert profile["measured_prompt_tokens"] == pytest.approx(30)
