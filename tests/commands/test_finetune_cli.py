"""`manage.py finetune` (issue 21): a local job with --wait --json, its exit codes (0 succeeded, 1 failed
or cancelled, 2 usage error). The worker it starts on embedded defaults is a stand-in that runs the
queued fine-tune here, with the training faked as in tests/views/test_finetune_pages.py."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from evaluations.models import FineTuneJob, FineTuneStatus, Run, RunStatus
from tests.factories import CaseFactory, EndpointFactory, SuiteVersionFactory
from tests.views.test_finetune_pages import _fake_training


@pytest.fixture
def version(db):
    version = SuiteVersionFactory(suite__name="routing")
    CaseFactory(version=version, key="t0", position=0, input="ticket", expected="billing")
    for i in range(10):
        CaseFactory(version=version, key=f"x{i}", position=10 + i, input=f"train {i}", expected="access",
                    split="train")  # fmt: skip
    return version


@pytest.fixture
def local(db):
    return EndpointFactory(
        name="smol", provider="local", model="smollm2-135m-instruct", base_url="", price_hour=0.5
    )


class StandInWorker:
    """What `embedded.start_worker` returns: runs the queued fine-tune in process, then marks the
    evaluation run it started finished (its generation would load a real model)."""

    def __init__(self, task_queue, name: str) -> None:
        self.pid, self.returncode, self.name = 4_000_001, None, name
        for task, args in list(task_queue.sent):
            if task == "finetune":
                task_queue.sent.remove((task, args))
                from workers import tasks

                tasks.finetune.run(*args)
        Run.objects.filter(status=RunStatus.QUEUED).update(
            status=RunStatus.SUCCEEDED, finished_at=timezone.now(), analysed_at=timezone.now()
        )

    def poll(self):
        return self.returncode


@pytest.fixture
def workers(task_queue, monkeypatch, settings):
    settings.EMBEDDED = True
    started: list[str] = []

    def start_worker(*, name, log_path, **kwargs):
        started.append(name)
        return StandInWorker(task_queue, name)

    monkeypatch.setattr("workers.embedded.start_worker", start_worker)
    monkeypatch.setattr("workers.embedded.wait_until_ready", lambda proc, timeout=120: True)
    monkeypatch.setattr("workers.embedded.stop_worker", lambda proc, timeout=20: None)
    return started


def _finetune(*args: str) -> tuple[dict | str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("finetune", *args, stdout=out, stderr=err)
    except CommandError as exc:
        exc.stdout, exc.stderr = out.getvalue(), err.getvalue()
        raise
    text = out.getvalue()
    return (json.loads(text) if "--json" in args else text), err.getvalue()


def test_wait_json_trains_evaluates_and_exits_0(version, local, workers, tmp_path, monkeypatch, settings):
    _fake_training(tmp_path, monkeypatch, settings)
    payload, err = _finetune("--suite", "routing", "--base", "smol", "--epochs", "3", "--batch-size", "2",
                             "--learning-rate", "0.01", "--seed", "7", "--wait", "--json")  # fmt: skip
    job = FineTuneJob.objects.get()
    assert job.status == FineTuneStatus.SUCCEEDED
    assert job.hyperparameters["epochs"] == 3 and job.hyperparameters["learning_rate"] == 0.01
    source = payload.pop("source")
    assert payload == {
        "job_id": job.pk, "status": "succeeded", "backend": "local", "endpoint": f"smol-ft{job.pk}",
        "trained_tokens": None, "training_cost": pytest.approx(0.005), "data_cost": 0.0, "run_id": job.run_id,
        "run_status": "succeeded", "error": "",
    }  # fmt: skip
    assert source["spec"] == "train" and source["examples"] == job.examples and len(source["sample"]) == 3
    assert workers == [f"finetune-{job.pk}"]
    assert "no worker takes fine-tune" in err and f"evaluating smol-ft{job.pk} in run #{job.run_id}" in err


def test_without_wait_the_job_is_queued_and_the_command_exits_0(version, local, task_queue):
    payload, err = _finetune("--suite", "routing", "--base", "smol", "--json")
    job = FineTuneJob.objects.get()
    assert payload["job_id"] == job.pk and payload["status"] == "queued" and payload["run_id"] is None
    assert task_queue.sent == [("finetune", (job.pk,))] and f"fine-tune #{job.pk} queued (local)" in err


def test_a_failed_training_exits_1(version, local, workers, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr("evaluations.services.finetune.train_lora", broken)
    with pytest.raises(CommandError) as exc:
        _finetune("--suite", "routing", "--base", "smol", "--wait", "--json")
    assert exc.value.returncode == 1 and "ended failed: RuntimeError: out of memory" in str(exc.value)
    assert json.loads(exc.value.stdout)["status"] == "failed"


def test_a_cancelled_job_exits_1(version, local, workers, monkeypatch):
    from evaluations.services.finetune import finetune_cancel

    def cancelled_meanwhile(**kwargs):
        finetune_cancel(job_id=FineTuneJob.objects.get().pk)
        raise AssertionError("never trained")

    monkeypatch.setattr("evaluations.services.finetune.train_lora", cancelled_meanwhile)
    with pytest.raises(CommandError) as exc:
        _finetune("--suite", "routing", "--base", "smol", "--wait")
    assert exc.value.returncode == 1 and "ended cancelled" in str(exc.value)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--suite", "nope", "--base", "smol"), "--suite 'nope': no such suite"),
        (("--suite", "routing", "--base", "nope"), "--base 'nope': no such endpoint"),
        (("--suite", "routing", "--suite-version", "9", "--base", "smol"), "has no version 9"),
        (("--suite", "routing", "--base", "smol", "--epochs", "0"), "epochs: 0 is outside 1..50"),
        (("--suite", "routing", "--base", "smol", "--suffix", "x"), "--suffix applies to the openai backend"),
        (
            ("--suite", "routing", "--base", "smol", "--lr-multiplier", "2"),
            "--lr-multiplier applies to the openai",
        ),
        (("--suite", "routing", "--base", "gpt"), "is not a local base model"),
    ],
)
def test_usage_errors_exit_2(version, local, task_queue, args, message):
    EndpointFactory(name="gpt")
    with pytest.raises(CommandError) as exc:
        _finetune(*args)
    assert exc.value.returncode == 2 and message in str(exc.value)
    assert not FineTuneJob.objects.exists() and task_queue.sent == []


def test_an_unknown_backend_is_a_usage_error(version, local):
    with pytest.raises(CommandError, match="invalid choice"):
        _finetune("--suite", "routing", "--base", "smol", "--backend", "azure")


def test_the_openai_backend_takes_its_own_options(version, task_queue, fake_openai):
    EndpointFactory(name="gpt-mini", base_url=fake_openai.base_url)
    payload, _ = _finetune("--suite", "routing", "--base", "gpt-mini", "--backend", "openai",
                             "--lr-multiplier", "0.5", "--suffix", "routing", "--json")  # fmt: skip
    job = FineTuneJob.objects.get()
    assert payload["backend"] == "openai" and payload["status"] == "queued" and payload["job_id"] == job.pk
    assert (
        job.hyperparameters["learning_rate_multiplier"] == 0.5 and job.hyperparameters["suffix"] == "routing"
    )
    with pytest.raises(CommandError) as exc:
        _finetune("--suite", "routing", "--base", "gpt-mini", "--backend", "openai", "--learning-rate", "0.1")
    assert exc.value.returncode == 2 and "--learning-rate applies to the local backend" in str(exc.value)
