"""LoRA fine-tuning of the real local model: a tiny adapter is trained, registered as an endpoint
and evaluated through the local provider; a cancelled job stops and leaves nothing behind."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from evaluations.models import Endpoint, EndpointKind, FineTuneStatus, Result, RunStatus
from evaluations.providers.base import GenerationParams
from evaluations.providers.local import LocalProvider
from evaluations.services import finetune as finetunes
from evaluations.services.endpoints import endpoint_create
from evaluations.services.finetune import finetune_cancel, finetune_create
from evaluations.services.suites import suite_import

pytestmark = pytest.mark.integration

WORDS = ["apple", "river", "stone", "cloud", "table", "green", "music", "paper"]


def _suite(train: int = 8):
    lines = [
        {"id": f"x{i}", "input": f"Secret code for {w}?", "expected": "PINEAPPLE-42", "split": "train"}
        for i, w in enumerate(WORDS[:train])
    ] + [
        {"id": f"t{i}", "input": f"Secret code for {w}?", "expected": "PINEAPPLE-42", "split": "test"}
        for i, w in enumerate(["house", "water"])
    ]
    data = "\n".join(json.dumps(line) for line in lines).encode()
    return suite_import(name="codes", fileobj=io.BytesIO(data), filename="codes.jsonl")


@pytest.fixture
def base(db):
    return endpoint_create(
        name="smol", provider="local", model="smollm2-135m-instruct", price_hour="0.5",
        params={"temperature": 0, "max_tokens": 12},
    )  # fmt: skip


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.FTVP_EMBEDDER = "hashing"
    return settings.MEDIA_ROOT


def test_a_tiny_adapter_is_trained_registered_and_evaluated(base, media, task_queue, monkeypatch):
    version = _suite()
    job = finetune_create(
        suite_version=version,
        base_endpoint=base,
        hyperparameters={"epochs": 1, "batch_size": 2, "learning_rate": 0.01, "max_length": 64},
    )
    assert task_queue.names() == ["finetune"]
    task_queue.drain()
    job.refresh_from_db()
    assert job.status == FineTuneStatus.SUCCEEDED, job.error
    assert job.step == job.total_steps == 4 and len(job.losses) == 4
    assert (media / job.adapter / "adapter_config.json").is_file()
    # The endpoint: the base model plus the adapter, its training cost the measured compute.
    tuned = job.endpoint
    assert (
        tuned.kind == EndpointKind.FINE_TUNED and tuned.base_endpoint == base and tuned.adapter == job.adapter
    )
    assert job.compute_seconds > 0
    assert float(tuned.training_cost) == pytest.approx(job.compute_seconds * 0.5 / 3600, abs=1e-4)
    # Its evaluation ran with the base ladder, through the local provider.
    run = job.run
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    arms = {(a.endpoint.name, a.strategy.name) for a in run.arms.select_related("endpoint", "strategy")}
    assert arms == {("smol", s) for s in finetunes.LADDER_STRATEGIES} | {(tuned.name, "plain")}
    tuned_results = list(Result.objects.filter(arm__run=run, arm__endpoint=tuned).order_by("case__position"))
    assert len(tuned_results) == 2 and all(r.output and not r.error for r in tuned_results)
    assert all(r.cost == pytest.approx(r.compute_seconds * 0.5 / 3600) for r in tuned_results)
    # The fine-tune answers differently from the base model given the very same prompts.
    prompts = [r.prompt for r in tuned_results]
    plain = LocalProvider(model="smollm2-135m-instruct", max_new_tokens=12).complete_many(
        prompts, GenerationParams(temperature=0, max_tokens=12)
    )
    assert [r.output for r in tuned_results] != [c.text for c in plain]


def test_cancelling_a_training_job_stops_it_and_leaves_no_endpoint(base, media, task_queue, monkeypatch):
    version = _suite()
    job = finetune_create(
        suite_version=version, base_endpoint=base, hyperparameters={"epochs": 3, "batch_size": 1}
    )
    real_train = finetunes.train_lora

    def train_then_cancel(**kwargs):
        progress = kwargs.pop("progress")

        def on_step(p):
            if p.step == 2:  # someone presses Cancel while the second step runs
                assert finetune_cancel(job_id=job.pk)
            return progress(p)

        return real_train(progress=on_step, **kwargs)

    monkeypatch.setattr(finetunes, "train_lora", train_then_cancel)
    endpoints_before = Endpoint.objects.count()
    task_queue.drain()
    job.refresh_from_db()
    assert job.status == FineTuneStatus.CANCELLED
    assert job.step == 1 and job.total_steps == 24  # stopped at the step after the cancel
    assert Endpoint.objects.count() == endpoints_before and job.endpoint is None and job.run is None
    assert not (Path(media) / job.adapter).exists()
