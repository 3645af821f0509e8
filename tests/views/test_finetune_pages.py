"""Fine-tuning pages and services without training (the real training is in tests/integration)."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from evaluations.models import Endpoint, FineTuneJob, FineTuneStatus
from evaluations.services.endpoints import endpoint_create
from evaluations.services.finetune import (
    FineTuneError,
    finetune_cancel,
    finetune_create,
    finetune_evaluate,
    finetune_examples,
    finetune_execute,
    finetunes_recover,
)
from evaluations.training import Hyperparameters, Progress, TrainingCancelled, TrainingError, TrainResult
from tests.factories import CaseFactory, EndpointFactory, SuiteVersionFactory


@pytest.fixture
def queue(task_queue, monkeypatch):
    return task_queue


@pytest.fixture
def version(db):
    version = SuiteVersionFactory(suite__name="routing")
    for i in range(3):
        CaseFactory(version=version, key=f"t{i}", position=i, input=f"ticket {i}", expected="billing")
    for i in range(6):
        CaseFactory(
            version=version, key=f"x{i}", position=10 + i, input=f"train {i}", expected=["access", "other"],
            split="train",
        )  # fmt: skip
    return version


@pytest.fixture
def local(db):
    return EndpointFactory(
        name="smol", provider="local", model="smollm2-135m-instruct", base_url="", price_hour=0.5
    )


def _form(version, endpoint, **overrides):
    data = {
        "suite_version": version.pk, "base_endpoint": endpoint.pk, "epochs": 2, "learning_rate": 0.001,
        "rank": 8, "alpha": 16, "target_modules": "q_proj, v_proj", "batch_size": 4, "max_length": 128,
        "seed": 1,
    }  # fmt: skip
    return {**data, **overrides}


def test_the_pages_need_a_login(client, db):
    for url in (reverse("evaluations:finetune-list"), reverse("evaluations:finetune-detail", args=[1])):
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response["Location"]


def test_starting_a_job_queues_it_with_its_hyperparameters(auth_client, version, local, queue):
    response = auth_client.post(reverse("evaluations:finetune-list"), _form(version, local))
    job = FineTuneJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/finetunes/{job.pk}/"
    assert job.status == FineTuneStatus.QUEUED and job.examples == 6
    assert job.hyperparameters["target_modules"] == ["q_proj", "v_proj"] and job.hyperparameters["rank"] == 8
    assert job.adapter == f"adapters/finetune-{job.pk}"
    assert queue.sent == [("finetune", (job.pk,))]
    page = auth_client.get(response["Location"]).content.decode()
    assert "Queued" in page and "6 training examples" in page and "Cancel training" in page


def test_a_hosted_base_model_is_refused_with_the_other_path(auth_client, version, queue):
    hosted = EndpointFactory(name="gpt")
    response = auth_client.post(reverse("evaluations:finetune-list"), _form(version, hosted))
    # The form only offers local base models; the service says why for any other caller.
    assert response.status_code == 400 and not FineTuneJob.objects.exists()
    with pytest.raises(FineTuneError, match="export the train split"):
        finetune_create(suite_version=version, base_endpoint=hosted)
    assert queue.sent == []


def test_too_few_training_examples_are_refused(version, local, queue):
    version.cases.filter(split="train").exclude(key="x0").delete()
    with pytest.raises(FineTuneError, match="has 1 train case"):
        finetune_create(suite_version=version, base_endpoint=local)
    assert not FineTuneJob.objects.exists()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"rank": 0}, "rank: 0 is outside 1..256"),
        ({"learning_rate": "fast"}, "learning_rate: 'fast' is not a number"),
        ({"learning_rate": 2}, "learning_rate: 2.0 is outside"),
        ({"target_modules": " , "}, "target_modules: give at least one"),
        ({"warmup": 3}, "unknown hyperparameter(s): warmup"),
    ],
)
def test_bad_hyperparameters_are_named(values, message):
    with pytest.raises(TrainingError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Hyperparameters.from_dict(values)


def test_cancel_stops_a_queued_job_and_only_once(auth_client, version, local, queue):
    job = finetune_create(suite_version=version, base_endpoint=local)
    response = auth_client.post(reverse("evaluations:finetune-cancel", args=[job.pk]), follow=True)
    assert "cancelled" in response.content.decode()
    job.refresh_from_db()
    assert job.status == FineTuneStatus.CANCELLED and job.finished_at
    assert not finetune_cancel(job_id=job.pk)
    # The queued message, when it arrives, finds nothing to do.
    queue.drain()
    job.refresh_from_db()
    assert job.status == FineTuneStatus.CANCELLED and job.endpoint is None


def test_the_live_part_carries_the_loss_curve(auth_client, version, local, queue):
    job = finetune_create(suite_version=version, base_endpoint=local)
    FineTuneJob.objects.filter(pk=job.pk).update(
        status=FineTuneStatus.RUNNING, step=3, total_steps=10, losses=[2.5, 1.25, 0.5]
    )
    html = auth_client.get(reverse("evaluations:finetune-live", args=[job.pk])).content.decode()
    assert "step 3 of 10" in html and 'hx-trigger="every 2s"' in html
    data = json.loads(html.split('id="loss-data" type="application/json">')[1].split("</script>")[0])
    assert data == {"losses": [2.5, 1.25, 0.5], "total_steps": 10}


def test_a_job_whose_worker_died_fails_and_a_lost_message_is_sent_again(version, local, queue, settings):
    settings.FTVP_STALL_SECONDS = 60
    running = finetune_create(suite_version=version, base_endpoint=local)
    queued = finetune_create(suite_version=version, base_endpoint=local)
    long_ago = running.created_at.replace(year=2000)
    FineTuneJob.objects.filter(pk=running.pk).update(status=FineTuneStatus.RUNNING, heartbeat_at=long_ago)
    FineTuneJob.objects.filter(pk=queued.pk).update(created_at=long_ago)
    queue.sent.clear()
    assert finetunes_recover() == {"failed": 1, "requeued": 1, "polled": 0}
    running.refresh_from_db()
    assert running.status == FineTuneStatus.FAILED and "the worker training it stopped" in running.error
    assert queue.sent == [("finetune", (queued.pk,))]


def test_the_train_split_exports_as_chat_fine_tuning_jsonl(auth_client, version):
    url = reverse("evaluations:suite-finetune-export", args=[version.suite.pk])
    response = auth_client.get(url)
    assert response["Content-Disposition"] == f'attachment; filename="routing-v{version.number}-train.jsonl"'
    lines = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert len(lines) == 6
    assert lines[0] == {
        "messages": [{"role": "user", "content": "train 0"}, {"role": "assistant", "content": "access"}]
    }


def test_every_fine_tuning_url_needs_a_login(client, version, local, queue):
    job = finetune_create(suite_version=version, base_endpoint=local)
    for url, method in (
        (reverse("evaluations:finetune-live", args=[job.pk]), client.get),
        (reverse("evaluations:finetune-cancel", args=[job.pk]), client.post),
        (reverse("evaluations:suite-finetune-export", args=[version.suite.pk]), client.get),
    ):
        response = method(url)
        assert response.status_code == 302 and "/login" in response["Location"], url
    job.refresh_from_db()
    assert job.status == FineTuneStatus.QUEUED


@pytest.mark.parametrize("adapter", ["../../etc", "/tmp/elsewhere", "adapters/../../x", "media-root-itself"])
def test_an_adapter_outside_the_media_adapters_folder_is_refused(db, adapter):
    base = EndpointFactory(name="smol-base", provider="local", model="smollm2-135m-instruct", base_url="")
    with pytest.raises(ValidationError, match="adapters/"):
        endpoint_create(
            name="escape", provider="local", model="smollm2-135m-instruct", kind="fine_tuned",
            base_endpoint=base, adapter=adapter,
        )  # fmt: skip


def test_json_answers_are_trained_as_json_text(db):
    version = SuiteVersionFactory(suite__name="extract", suite__task_type="json")
    CaseFactory(version=version, key="x0", position=0, input="Ann, 31", expected={"name": "Ann", "age": 31},
                split="train")  # fmt: skip
    assert finetune_examples(version) == [
        ([{"role": "user", "content": "Ann, 31"}], '{"age": 31, "name": "Ann"}')
    ]


def _fake_training(tmp_path, monkeypatch, settings):
    """train_lora without a model: writes an adapter folder and reports two steps."""
    settings.MEDIA_ROOT = tmp_path

    def fake(*, out_dir, progress, **kwargs):
        for step in (1, 2):
            if progress(Progress(step, 2, 1, 1.0 / step, 0.1)) is False:
                raise TrainingCancelled("cancelled")
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "adapter_config.json").write_text("{}")
        return TrainResult(steps=2, seconds=36.0, final_loss=0.5, examples=6, tokens=100, losses=[1.0, 0.5])

    monkeypatch.setattr("evaluations.services.finetune.train_lora", fake)


def test_a_trained_job_registers_its_endpoint_and_starts_the_ladder(
    version, local, queue, tmp_path, monkeypatch, settings
):
    _fake_training(tmp_path, monkeypatch, settings)
    job = finetune_create(suite_version=version, base_endpoint=local)
    queue.sent.clear()
    finetune_execute(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == FineTuneStatus.SUCCEEDED and job.losses == [1.0, 0.5]
    assert job.training_cost == pytest.approx(36.0 * 0.5 / 3600)
    assert float(job.endpoint.training_cost) == pytest.approx(0.005)
    assert job.endpoint.name == f"smol-ft{job.pk}" and job.endpoint.adapter == job.adapter
    assert sorted(a.strategy.name for a in job.run.arms.all()) == sorted(
        ["zero-shot", "few-shot", "few-shot-nearest", "system", "cot", "structured", "plain"]
    )
    # Evaluating again (its run was cancelled, say) starts a new run with the same arms.
    first = job.run
    again = finetune_evaluate(job=job)
    assert again.pk != first.pk and job.run == again
    job.refresh_from_db()
    assert job.run == again and again.arms.count() == 7


def test_with_knowledge_the_ladder_gets_retrieval_on_the_base_and_the_fine_tune(
    version, local, queue, tmp_path, monkeypatch, settings
):
    from evaluations.models import KnowledgeChunk, KnowledgeDoc, Strategy

    doc = KnowledgeDoc.objects.create(version=version, doc_id="guide.md", text="a fact", position=0)
    KnowledgeChunk.objects.create(version=version, doc=doc, position=0, text="a fact")
    frozen = Strategy.objects.create(
        name=f"few-shot-optimized-{version.suite.name}", kind="few-shot-optimized",
        params={"examples": [], "search": {"suite": version.suite.name}},
    )  # fmt: skip
    _fake_training(tmp_path, monkeypatch, settings)
    job = finetune_create(suite_version=version, base_endpoint=local)
    finetune_execute(job_id=job.pk)
    job.refresh_from_db()
    arms = sorted((a.endpoint == job.endpoint, a.strategy.name) for a in job.run.arms.all())
    assert arms == sorted(
        [(False, s) for s in ("zero-shot", "few-shot", "few-shot-nearest", "system", "cot", "structured")]
        + [(False, frozen.name), (False, "rag"), (True, "plain"), (True, "rag")]
    )


def test_a_failure_after_training_is_reported_with_its_cause(
    version, local, queue, tmp_path, monkeypatch, settings
):
    _fake_training(tmp_path, monkeypatch, settings)
    job = finetune_create(suite_version=version, base_endpoint=local)

    def broken(*args, **kwargs):
        raise FineTuneError("built-in strategies missing: plain (run migrate)")

    monkeypatch.setattr("evaluations.services.finetune._evaluation_arms", broken)
    finetune_execute(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == FineTuneStatus.FAILED and "built-in strategies missing" in job.error
    assert job.endpoint is None and not (tmp_path / job.adapter).exists()
    assert not Endpoint.objects.filter(kind="fine_tuned").exists()


def test_a_cancel_after_the_last_step_registers_nothing(
    version, local, queue, tmp_path, monkeypatch, settings, django_capture_on_commit_callbacks
):
    settings.MEDIA_ROOT = tmp_path
    job = finetune_create(suite_version=version, base_endpoint=local)

    def trains_then_is_cancelled(*, out_dir, progress, **kwargs):
        assert progress(Progress(1, 1, 1, 0.5, 0.1)) is True
        out_dir.mkdir(parents=True, exist_ok=True)
        finetune_cancel(job_id=job.pk)  # pressed while the adapter was being saved
        return TrainResult(steps=1, seconds=1.0, final_loss=0.5, examples=6, tokens=10, losses=[0.5])

    monkeypatch.setattr("evaluations.services.finetune.train_lora", trains_then_is_cancelled)
    with django_capture_on_commit_callbacks(execute=True):
        finetune_execute(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == FineTuneStatus.CANCELLED and job.endpoint is None and job.run is None
    assert not Endpoint.objects.filter(kind="fine_tuned").exists()
    assert not (tmp_path / job.adapter).exists()
