"""The hosted fine-tuning backend (an OpenAI-compatible fine-tuning API) against a loopback fake
(tests/fakefinetune.py), the leakage guard of both backends, and QLoRA's refusal on a CPU machine."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import serializers
from django.utils import timezone

from evaluations.models import AuditEvent, Endpoint, EndpointKind, FineTuneJob, FineTuneStatus, Run, RunStatus
from evaluations.services.endpoints import endpoint_create
from evaluations.services.finetune import (
    LADDER_STRATEGIES,
    FineTuneError,
    finetune_cancel,
    finetune_create,
    finetune_examples,
    finetune_files,
    finetune_leaks,
    finetunes_recover,
)
from evaluations.training import qlora_unavailable
from tests.factories import CaseFactory, EndpointFactory, SuiteVersionFactory
from tests.fakefinetune import FakeFineTune
from workers import tasks

KEY = "sk-hosted-secret-key-0123456789abcdef"
KEY_ENV = "OPENAI_FT_TEST_KEY"


@pytest.fixture
def server():
    fake = FakeFineTune(api_key=KEY, queue_polls=1, run_polls=2)
    yield fake
    fake.stop()


@pytest.fixture
def version(db):
    version = SuiteVersionFactory(suite__name="routing")
    for i in range(3):
        CaseFactory(version=version, key=f"t{i}", position=i, input=f"ticket {i}", expected="billing")
    for i in range(12):
        CaseFactory(
            version=version, key=f"x{i}", position=10 + i, input=f"train {i}", expected=["access", "other"],
            split="train",
        )  # fmt: skip
    return version


@pytest.fixture
def base(db, server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    return endpoint_create(
        name="gpt-mini", provider="openai", model="gpt-4o-mini", base_url=server.base_url,
        api_key_env=KEY_ENV, price_in=0.15, price_out=0.6, price_train=3, timeout_seconds=5,
    )  # fmt: skip


def _create(version, base, **hp):
    return finetune_create(suite_version=version, base_endpoint=base, hyperparameters=hp, backend="openai")


def test_success_registers_the_endpoint_with_its_training_cost_and_evaluates_it(
    version, base, server, task_queue, user
):
    job = finetune_create(
        suite_version=version, base_endpoint=base, backend="openai", user=user,
        hyperparameters={"epochs": 3, "batch_size": 2, "learning_rate_multiplier": 0.5, "suffix": "tickets",
                         "seed": 7},
    )  # fmt: skip
    assert job.status == FineTuneStatus.QUEUED and job.backend == "openai"
    assert task_queue.sent == [("finetune_poll", (job.pk, 0))]
    while task_queue.sent and task_queue.sent[0][0] == "finetune_poll":
        task_queue.drain(limit=1)
    job.refresh_from_db()
    assert job.status == FineTuneStatus.SUCCEEDED and job.remote_status == "succeeded"
    assert job.fine_tuned_model == f"ft:gpt-4o-mini:tickets:{job.remote_job_id}"
    assert job.trained_tokens == 12_000 and job.next_poll_at is None
    # 12,000 tokens x USD 3 per 1M
    assert job.training_cost == pytest.approx(0.036)
    endpoint = job.endpoint
    assert endpoint.kind == EndpointKind.FINE_TUNED and endpoint.base_endpoint == base
    assert endpoint.provider == "openai" and endpoint.model == job.fine_tuned_model
    assert endpoint.base_url == base.base_url and endpoint.api_key_env == KEY_ENV
    assert endpoint.training_cost == Decimal("0.0360")
    # One job created, with the hyperparameters as the API names them.
    assert len(server.creates) == 1
    create = server.creates[0]
    assert create["model"] == "gpt-4o-mini" and create["suffix"] == "tickets" and create["seed"] == 7
    assert create["hyperparameters"] == {"n_epochs": 3, "batch_size": 2, "learning_rate_multiplier": 0.5}
    assert create["validation_file"] == job.remote_validation_file
    # Events and checkpoint metrics for the live chart.
    messages = [e["message"] for e in job.events]
    assert messages[0].startswith("Validating training file") and "successfully completed" in messages[-1]
    assert [p["step"] for p in job.checkpoints] == [1, 2]
    first = job.checkpoints[0]
    assert {"train_loss", "valid_loss", "train_accuracy", "valid_accuracy", "checkpoint"} <= set(first)
    assert job.losses == [2.0, 1.0] and job.step == job.total_steps == 2
    # The polls were sent again with a countdown; every request carried the base endpoint's key.
    assert task_queue.countdowns and all(name == "finetune_poll" for name, _ in task_queue.countdowns)
    assert all(h["authorization"] == f"Bearer {KEY}" for _, _, h in server.api_requests)
    # The evaluation: the base model's ladder and the fine-tuned endpoint, run to the end.
    run = job.run
    arms = {(a.endpoint.name, a.strategy.name) for a in run.arms.select_related("endpoint", "strategy")}
    assert {(base.name, s) for s in LADDER_STRATEGIES} <= arms and (endpoint.name, "plain") in arms
    task_queue.drain()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    models = {body.get("model") for body in server.requests}
    assert job.fine_tuned_model in models and "gpt-4o-mini" in models
    assert AuditEvent.objects.filter(action="finetune.create", object_id=str(job.pk)).exists()


def test_the_providers_own_cost_figure_wins(version, base, server, task_queue):
    server.cost = 1.25
    job = _create(version, base)
    while task_queue.sent and task_queue.sent[0][0] == "finetune_poll":
        task_queue.drain(limit=1)
    job.refresh_from_db()
    assert job.training_cost == pytest.approx(1.25) and job.endpoint.training_cost == Decimal("1.2500")


def test_the_uploaded_files_hold_exactly_the_train_split_in_chat_format(version, base, server, task_queue):
    job = _create(version, base, validation_fraction=0.2)
    task_queue.drain(limit=1)  # the first poll submits
    job.refresh_from_db()
    assert job.remote_training_file and job.remote_validation_file and job.remote_job_id
    assert job.examples == 10 and job.validation_examples == 2
    train = server.file_lines(job.remote_training_file)
    valid = server.file_lines(job.remote_validation_file)
    expected = [
        {"messages": [*m, {"role": "assistant", "content": a}]} for m, a in finetune_examples(version)
    ]
    assert train + valid == expected and len(expected) == 12
    assert {server.files[f]["purpose"] for f in server.files} == {"fine-tune"}
    sent = json.dumps(train + valid)
    assert "train 3" in sent and not any(f"ticket {i}" in sent for i in range(3))
    assert finetune_files(job) == (server.files[job.remote_training_file]["content"],
                                   server.files[job.remote_validation_file]["content"])  # fmt: skip


def test_no_validation_file_when_the_fraction_is_zero(version, base, server, task_queue):
    job = _create(version, base, validation_fraction=0)
    task_queue.drain(limit=1)
    job.refresh_from_db()
    assert job.remote_validation_file == "" and len(server.file_lines(job.remote_training_file)) == 12
    assert "validation_file" not in server.creates[0]


@pytest.mark.parametrize("outcome", ["failed", "cancelled"])
def test_failure_and_cancel_at_the_provider_leave_no_endpoint(version, base, server, task_queue, outcome):
    server.outcome = outcome
    job = _create(version, base)
    task_queue.drain()
    job.refresh_from_db()
    assert job.status == outcome and job.remote_status == outcome and job.next_poll_at is None
    assert job.endpoint is None and job.run is None and job.finished_at is not None
    assert not Endpoint.objects.filter(kind=EndpointKind.FINE_TUNED).exists() and not Run.objects.exists()
    if outcome == "failed":
        assert "the training file has invalid examples (invalid_training_file)" in job.error


def test_cancel_cancels_the_remote_job(version, base, server, task_queue, user):
    job = _create(version, base)
    task_queue.drain(limit=1)  # submitted, and a first look: queued
    job.refresh_from_db()
    assert job.remote_job_id and job.status == FineTuneStatus.QUEUED
    assert finetune_cancel(job_id=job.pk, user=user) is True
    task_queue.drain()
    job.refresh_from_db()
    assert server.cancels == [job.remote_job_id] and server.jobs[job.remote_job_id]["status"] == "cancelled"
    assert job.status == FineTuneStatus.CANCELLED and job.remote_status == "cancelled"
    assert job.next_poll_at is None and job.endpoint is None
    assert not Endpoint.objects.filter(kind=EndpointKind.FINE_TUNED).exists()
    assert finetune_cancel(job_id=job.pk) is False


def test_cancel_before_submission_submits_nothing(version, base, server, task_queue):
    job = _create(version, base)
    assert finetune_cancel(job_id=job.pk) is True
    task_queue.drain()
    job.refresh_from_db()
    assert job.status == FineTuneStatus.CANCELLED and job.next_poll_at is None
    assert server.api_requests == [] and server.creates == []


def test_a_worker_killed_mid_poll_resumes_without_a_second_job(
    version, base, server, task_queue, monkeypatch
):
    job = _create(version, base)
    from evaluations.providers.finetune_api import FineTuneClient

    real_get = FineTuneClient.get_job
    calls = {"n": 0}

    def dies_once(self, job_id):
        calls["n"] += 1
        if calls["n"] == 1:
            raise SystemExit("worker killed")  # after the job was created, before its first look
        return real_get(self, job_id)

    monkeypatch.setattr(FineTuneClient, "get_job", dies_once)
    with pytest.raises(SystemExit):
        task_queue.drain(limit=1)
    job.refresh_from_db()
    assert job.remote_job_id and len(server.creates) == 1 and task_queue.sent == []
    # The message of the killed poll is delivered again: its look was claimed, so it is dropped.
    requests = len(server.api_requests)
    tasks.finetune_poll.run(job.pk, 0)
    assert len(server.api_requests) == requests
    # A worker's start while the killed poll's lease still runs: the sweep's poll is dropped.
    assert finetunes_recover(startup=True) == {"failed": 0, "requeued": 0, "polled": 1}
    task_queue.drain()
    assert len(server.api_requests) == requests
    # The lease runs out (FTVP_STALL_SECONDS after the killed poll's last call): the sweep follows it.
    FineTuneJob.objects.filter(pk=job.pk).update(poll_lease_until=timezone.now() - timedelta(seconds=1))
    assert finetunes_recover(startup=True) == {"failed": 0, "requeued": 0, "polled": 1}
    assert task_queue.names() == ["finetune_poll"]
    task_queue.sent.append(task_queue.sent[0])  # and a duplicate of it: harmless
    task_queue.drain()
    job.refresh_from_db()
    assert job.status == FineTuneStatus.SUCCEEDED and len(server.creates) == 1
    assert len(server.files) == 2  # the files were uploaded once each
    assert Endpoint.objects.filter(kind=EndpointKind.FINE_TUNED).count() == 1


def test_an_overdue_look_is_sent_again_by_the_periodic_sweep(version, base, server, task_queue, settings):
    settings.FTVP_STALL_SECONDS = 60
    job = _create(version, base)
    task_queue.sent.clear()  # the message was lost
    assert finetunes_recover() == {"failed": 0, "requeued": 0, "polled": 0}  # not overdue yet
    FineTuneJob.objects.filter(pk=job.pk).update(next_poll_at=job.created_at.replace(year=2000))
    assert finetunes_recover()["polled"] == 1
    task_queue.drain()
    job.refresh_from_db()
    assert job.status == FineTuneStatus.SUCCEEDED and len(server.creates) == 1


def test_a_lost_create_answer_is_looked_up_not_sent_again(version, base, server, task_queue):
    server.drop_create_answer = True
    job = _create(version, base)
    task_queue.drain(limit=1)
    job.refresh_from_db()
    assert job.remote_job_id == "" and job.submitted_at is not None and len(server.creates) == 1
    task_queue.drain()
    job.refresh_from_db()
    assert job.status == FineTuneStatus.SUCCEEDED and len(server.creates) == 1
    assert job.remote_job_id == "ftjob-1"


def test_429s_are_retried_and_then_waited_out(version, base, server, task_queue):
    server.fail_api_next(429, 3, headers={"retry-after": "0"})  # more than one call's retries
    job = _create(version, base)
    task_queue.drain()
    job.refresh_from_db()
    assert job.status == FineTuneStatus.SUCCEEDED and len(server.creates) == 1
    assert len(server.files) == 1 + (1 if job.remote_validation_file else 0)


def test_a_slow_queue_is_polled_less_and_less_often(version, base, server, task_queue):
    server.queue_polls = 6
    job = _create(version, base)
    task_queue.drain()
    job.refresh_from_db()
    assert job.status == FineTuneStatus.SUCCEEDED
    waits = [countdown for _, countdown in task_queue.countdowns]
    assert max(waits) > 2 * min(waits)  # backed off while nothing changed
    assert waits.count(min(waits)) >= 2  # and back to the first wait when something did


def test_a_permanent_error_fails_the_job_without_the_key(version, base, server, task_queue):
    server.fail_api_next(400, 1, body={"error": {"message": f"bad request (key {KEY})"}})
    job = _create(version, base)
    task_queue.drain()
    job.refresh_from_db()
    assert job.status == FineTuneStatus.FAILED and "HTTP 400" in job.error and KEY not in job.error
    assert job.next_poll_at is None and server.creates == []


def test_a_key_variable_missing_in_the_worker_fails_with_a_sentence(version, base, task_queue, monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    job = _create(version, base)
    task_queue.drain()
    job.refresh_from_db()
    assert job.status == FineTuneStatus.FAILED
    assert f"environment variable {KEY_ENV} is not set in the worker" in job.error


def test_the_key_never_appears_in_stored_rows(version, base, server, task_queue):
    server.outcome = "failed"
    server.error_message = f"invalid file (Authorization: Bearer {KEY})"  # a provider that echoes it
    failed = _create(version, base)
    task_queue.drain()
    server.outcome = "succeeded"
    succeeded = _create(version, base)
    task_queue.drain()
    failed.refresh_from_db()
    succeeded.refresh_from_db()
    assert failed.status == FineTuneStatus.FAILED and "invalid file" in failed.error
    assert succeeded.status == FineTuneStatus.SUCCEEDED
    from django.apps import apps

    dump = serializers.serialize("json", [row for model in apps.get_app_config("evaluations").get_models()
                                          for row in model.objects.all()])  # fmt: skip
    assert KEY not in dump and KEY_ENV in dump
    assert KEY not in repr(succeeded.events)


def test_the_openai_backend_needs_an_openai_compatible_base_model(version, task_queue, db):
    local = EndpointFactory(name="smol", provider="local", model="smollm2-135m-instruct", base_url="")
    with pytest.raises(FineTuneError, match="not an OpenAI-compatible base model"):
        _create(version, local)
    with pytest.raises(FineTuneError, match=r"unknown hyperparameter.*rank"):
        finetune_create(suite_version=version, base_endpoint=EndpointFactory(), backend="openai",
                        hyperparameters={"rank": 8})  # fmt: skip
    with pytest.raises(FineTuneError, match="backend 'vertex'"):
        finetune_create(suite_version=version, base_endpoint=local, backend="vertex")
    assert not FineTuneJob.objects.exists() and task_queue.sent == []


@pytest.mark.parametrize("backend", ["local", "openai"])
def test_a_test_input_in_the_train_split_is_refused_naming_the_cases(version, base, task_queue, backend):
    CaseFactory(version=version, key="leaky", position=50, input="  TRAIN   3 ", expected="billing")
    CaseFactory(version=version, key="chatty", position=51,
                input=[{"role": "user", "content": "Train 5"}], expected="billing")  # fmt: skip
    assert finetune_leaks(version) == [("leaky", "x3"), ("chatty", "x5")]
    endpoint = (
        base if backend == "openai" else EndpointFactory(provider="local", model="smollm2-135m-instruct")
    )
    with pytest.raises(FineTuneError, match=r"2 test case\(s\).*leaky \(= train x3\), chatty \(= train x5\)"):
        finetune_create(suite_version=version, base_endpoint=endpoint, backend=backend)
    assert not FineTuneJob.objects.exists() and task_queue.sent == []


def test_qlora_is_refused_on_a_cpu_machine(version, task_queue, monkeypatch, db):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    local = EndpointFactory(provider="local", model="smollm2-135m-instruct", base_url="")
    with pytest.raises(FineTuneError, match=r"QLoRA \(qlora: true\) needs a CUDA GPU with bitsandbytes"):
        finetune_create(suite_version=version, base_endpoint=local, hyperparameters={"qlora": True})
    assert not FineTuneJob.objects.exists()
    reason = qlora_unavailable()
    assert reason is not None and ("no CUDA device" in reason or "bitsandbytes is not installed" in reason)
    job = finetune_create(suite_version=version, base_endpoint=local, hyperparameters={"qlora": False})
    assert job.hyperparameters["qlora"] is False


def test_local_jobs_are_not_followed_by_the_poller_nor_hosted_ones_trained(version, base, server, task_queue):
    hosted = _create(version, base)
    task_queue.sent.clear()
    tasks.finetune.run(hosted.pk)  # a local training message for a hosted job: ignored
    hosted.refresh_from_db()
    assert hosted.status == FineTuneStatus.QUEUED and hosted.started_at is None
    local = finetune_create(
        suite_version=version, base_endpoint=EndpointFactory(provider="local", model="smollm2-135m-instruct")
    )
    tasks.finetune_poll.run(local.pk, 0)  # and a poll of a local job: ignored
    assert server.api_requests == []
    counts = finetunes_recover(startup=True)
    assert counts == {"failed": 0, "requeued": 1, "polled": 1}


def test_a_server_without_checkpoints_is_followed_on_its_events(version, base, server, task_queue):
    server.checkpoints_route = False
    job = _create(version, base)
    while task_queue.sent and task_queue.sent[0][0] == "finetune_poll":
        task_queue.drain(limit=1)
    job.refresh_from_db()
    assert job.status == FineTuneStatus.SUCCEEDED
    assert [p["step"] for p in job.checkpoints] == [1, 2] and "checkpoint" not in job.checkpoints[0]
    assert job.checkpoints[1]["valid_loss"] == pytest.approx(1.1)


def test_a_cancel_whose_poll_was_lost_is_resumed_by_the_sweep(version, base, server, task_queue):
    job = _create(version, base)
    task_queue.drain(limit=1)
    task_queue.sent.clear()
    assert finetune_cancel(job_id=job.pk) is True
    task_queue.sent.clear()  # the poll that would cancel remotely was lost
    assert finetunes_recover(startup=True)["polled"] == 1
    task_queue.drain()
    job.refresh_from_db()
    assert server.cancels == [job.remote_job_id] and job.remote_status == "cancelled"
    assert finetunes_recover(startup=True)["polled"] == 0  # nothing left to follow


def test_the_poll_runs_on_a_short_queue(settings):
    assert settings.CELERY_TASK_ROUTES["workers.tasks.finetune_poll"] == {"queue": "scoring"}


def test_the_training_price_is_an_endpoint_setting(base):
    from evaluations.services.endpoints import endpoint_update

    assert base.price_train == Decimal("3")
    endpoint_update(endpoint=base, price_train="2.5")
    base.refresh_from_db()
    assert base.price_train == Decimal("2.5")
    with pytest.raises(Exception, match="must not be negative"):
        endpoint_update(endpoint=base, price_train=-1)


def test_events_are_read_page_by_page_back_to_the_last_one_stored(version, base, server, task_queue):
    server.events_page_size = 2
    server.run_polls = 5
    job = _create(version, base)
    task_queue.drain()
    job.refresh_from_db()
    remote = server.events[job.remote_job_id]
    assert [e["id"] for e in job.events] == [e["id"] for e in remote] and len(remote) > 4
    assert [p["step"] for p in job.checkpoints] == [1, 2, 3, 4, 5]


def test_the_job_page_shows_the_hosted_job_and_its_provider_events(
    version, base, server, task_queue, admin_client
):
    job = finetune_create(suite_version=version, base_endpoint=base, backend="openai")
    while task_queue.sent and task_queue.sent[0][0] == "finetune_poll":
        task_queue.drain(limit=1)
    job.refresh_from_db()

    html = admin_client.get(f"/finetunes/{job.pk}/").content.decode()
    assert f"hosted job <code>{job.remote_job_id}</code> (succeeded), 12000 tokens trained" in html
    assert "Provider events" in html and "successfully completed" in html
    assert KEY not in html


def test_a_poll_sent_while_another_is_still_submitting_creates_nothing(
    version, base, server, task_queue, monkeypatch
):
    """A worker starting (its recovery sweep) while a slow poll uploads the files: the sweep's poll
    finds the job held and is dropped; one job is created, each file uploaded once."""
    job = _create(version, base)
    from evaluations.providers.finetune_api import FineTuneClient

    real_upload = FineTuneClient.upload_file
    seen = {"n": 0}

    def slow_upload(self, name, content):
        seen["n"] += 1
        if seen["n"] == 1:  # meanwhile another worker starts and follows the job
            finetunes_recover(startup=True)
            second = [args for name_, args in task_queue.sent if name_ == "finetune_poll"]
            task_queue.sent.clear()
            for args in second:
                tasks.finetune_poll.run(*args)
        return real_upload(self, name, content)

    monkeypatch.setattr(FineTuneClient, "upload_file", slow_upload)
    task_queue.drain()
    job.refresh_from_db()
    assert job.status == FineTuneStatus.SUCCEEDED
    assert len(server.creates) == 1 and len(server.files) == 2  # training and validation, once each


def test_the_fine_tuning_api_needs_ten_training_examples_and_keeps_them_all_when_few(db, base):
    from evaluations.services.finetune import FineTuneError, hosted_split

    small = SuiteVersionFactory(suite__name="small")
    CaseFactory(version=small, key="t", position=0, input="ticket", expected="billing")
    for i in range(9):
        CaseFactory(
            version=small, key=f"x{i}", position=1 + i, input=f"train {i}", expected="access", split="train"
        )
    with pytest.raises(
        FineTuneError,
        match=r"has 9 train case\(s\) with an expected output; the fine-tuning API needs at least 10",
    ):
        finetune_create(suite_version=small, base_endpoint=base, backend="openai")
    assert hosted_split(list(range(10)), 0.1) == (list(range(10)), [])  # no validation below 10 to train
    assert hosted_split(list(range(12)), 0.1) == (list(range(11)), [11])


def test_the_leakage_guard_sees_through_invisible_characters():
    from evaluations.services.finetune import normalised_input

    assert (
        normalised_input("Ticket\u200b 1")
        == normalised_input("ticket  1")
        == normalised_input("tick\u00adet 1")
    )
