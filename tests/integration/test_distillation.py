"""Distillation through the real pipeline (issue [data]'s acceptance): a loopback teacher answers the
train split in a labelling run, a LoRA of the real local model is trained on the teacher's answers
(not the suite's expected outputs), the student is evaluated next to the base model's ladder and the
teacher, and the decision page weighs the student against the teacher with the labelling in its
training cost."""

from __future__ import annotations

import io
import json

import pytest

from evaluations.models import FineTuneStatus, Result, RunStatus, Split
from evaluations.selectors.decisions import suite_decision
from evaluations.services.endpoints import endpoint_create
from evaluations.services.finetune import TRAINING_FILE, adapter_dir, finetune_create
from evaluations.services.runs import run_create
from evaluations.services.suites import suite_import
from tests.factories import UserFactory, strategy
from tests.fakeopenai import last_user_text

pytestmark = pytest.mark.integration

WORDS = ["apple", "river", "stone", "cloud", "table", "green", "music", "paper"]
TEACHER = "MANGO-7"  # what the teacher answers; the suite's own train answers say PINEAPPLE-42


def _suite():
    lines = [
        {"id": f"x{i}", "input": f"Secret code for {w}?", "expected": "PINEAPPLE-42", "split": "train"}
        for i, w in enumerate(WORDS)
    ] + [
        {"id": f"t{i}", "input": f"Secret code for {w}?", "expected": TEACHER, "split": "test"}
        for i, w in enumerate(["house", "water"])
    ]
    data = "\n".join(json.dumps(line) for line in lines).encode()
    return suite_import(name="codes", fileobj=io.BytesIO(data), filename="codes.jsonl")


@pytest.fixture
def media(db, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.FTVP_EMBEDDER = "hashing"
    return settings.MEDIA_ROOT


def test_a_teacher_is_distilled_into_a_local_student_and_the_decision_weighs_one_against_the_other(
    media, fake_openai, task_queue, client
):
    fake_openai.responder = lambda body: TEACHER if "Secret code" in last_user_text(body) else "?"
    teacher = endpoint_create(
        name="big-teacher", provider="openai", model="big", base_url=fake_openai.base_url,
        price_in="5", price_out="15", params={"temperature": 0, "max_tokens": 12},
    )  # fmt: skip
    student = endpoint_create(
        name="smol", provider="local", model="smollm2-135m-instruct", price_hour="0.5",
        params={"temperature": 0, "max_tokens": 12},
    )  # fmt: skip
    version = _suite()

    # 1. The teacher labels the train split.
    labelling = run_create(suite_version=version, arms=[(teacher, strategy("system"))], split=Split.TRAIN)
    task_queue.drain()
    labelling.refresh_from_db()
    assert labelling.status == RunStatus.SUCCEEDED
    arm = labelling.arms.get()
    labelling_cost = sum(Result.objects.filter(arm=arm).values_list("cost", flat=True))
    assert labelling_cost > 0

    # 2. A LoRA of the local model on the teacher's answers (all of them: they differ from the suite's).
    job = finetune_create(
        suite_version=version,
        base_endpoint=student,
        source=f"run:{labelling.pk}:{arm.pk}:all",
        hyperparameters={"epochs": 1, "batch_size": 2, "learning_rate": 0.01, "max_length": 64},
    )
    task_queue.drain()
    job.refresh_from_db()
    assert job.status == FineTuneStatus.SUCCEEDED, job.error
    assert job.examples == 8 and job.data_cost == pytest.approx(labelling_cost)
    trained_on = [json.loads(line) for line in (adapter_dir(job) / TRAINING_FILE).read_text().splitlines()]
    assert len(trained_on) == 8
    assert {line["messages"][-1]["content"] for line in trained_on} == {TEACHER}  # not PINEAPPLE-42
    assert all(line["messages"][:-1] == [{"role": "user", "content": line["messages"][0]["content"]}]
               for line in trained_on)  # the student's prompt is the plain one  # fmt: skip

    # 3. The student is evaluated next to the base ladder and its teacher.
    run = job.run
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.split == Split.TEST
    arms = {(a.endpoint.name, a.strategy.name) for a in run.arms.select_related("endpoint", "strategy")}
    assert ("big-teacher", "system") in arms and (job.endpoint.name, "plain") in arms

    # 4. The decision: the teacher is the prompting arm, the student the fine-tune, labelling is paid.
    decision = suite_decision(version.suite)
    assert decision.run.pk == run.pk  # the labelling run is never a decision's evidence
    be = decision.decision.break_even
    assert be["prompting_arm"] == "big-teacher · system"
    assert be["fine_tuned_arm"] == f"{job.endpoint.name} · plain"
    assert be["distilled"] is True and be["data_cost"] == pytest.approx(labelling_cost)
    # the endpoint's training cost (the compute, kept to 4 decimals) + the labelling
    assert be["training_cost"] == pytest.approx(float(job.endpoint.training_cost) + labelling_cost)
    client.force_login(UserFactory(username="lead", roles=["admin"]))
    page = client.get(f"/suites/{version.suite.pk}/decision/").content.decode()
    assert (
        "A distilled student" in page and "big-teacher · system" in page and "of which training data" in page
    )
