"""Distillation through every entry point (issue [data]): a labelling run from the API, the run form
and `evaluate --split train`; accepting its passing answers from the API and the run page; a fine-tune
with `source` from the API, the page and `finetune --source`; the job page's training data and its
training file."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from evaluations.models import FineTuneJob, Review, Run
from evaluations.services.finetune import finetune_execute
from evaluations.services.tokens import api_token_create
from tests.distillation import labelling_run, support_suite, teacher_endpoint
from tests.factories import EndpointFactory, UserFactory, strategy
from tests.views.test_finetune_pages import _fake_training

V1 = "/api/v1"


@pytest.fixture
def version(db):
    return support_suite(test_cases=1)


@pytest.fixture
def teacher(fake_openai):
    return teacher_endpoint(fake_openai)


@pytest.fixture
def labelling(version, teacher, task_queue):
    return labelling_run(version, teacher, task_queue)


@pytest.fixture
def student(db):
    return EndpointFactory(
        name="small", provider="local", model="smollm2-135m-instruct", base_url="", price_hour=0.5
    )


def _api(client, role: str):
    user = UserFactory(username=f"api-{role}", roles=[role])
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {api_token_create(user=user, name='t')[1]}"
    return client


def test_the_api_starts_a_labelling_run_accepts_its_passing_answers_and_distils_it(
    client,
    version,
    teacher,
    task_queue,
):
    api = _api(client, "admin")
    system = strategy("system").pk
    response = api.post(
        f"{V1}/runs/",
        {
            "suite": version.suite.pk,
            "arms": [{"endpoint": teacher.pk, "strategy": system}],
            "split": "train",
        },
        content_type="application/json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["split"] == "train" and response.json()["expected_results"] == 10
    task_queue.drain()
    run = Run.objects.get()
    arm = run.arms.get()
    accepted = api.post(f"{V1}/runs/{run.pk}/reviews/accept-passing/", {}, content_type="application/json")
    assert accepted.status_code == 200 and accepted.json() == {"accepted": 5}
    wrong_arm = api.post(
        f"{V1}/runs/{run.pk}/reviews/accept-passing/", {"arm": 999999}, content_type="application/json"
    )
    assert wrong_arm.status_code == 400 and "has no arm #999999" in wrong_arm.json()["detail"]
    student = EndpointFactory(name="small", provider="local", model="smollm2-135m-instruct", base_url="")
    response = api.post(
        f"{V1}/finetunes/",
        {"suite": version.suite.pk, "base_endpoint": student.pk, "source": f" run:{run.pk}:{arm.pk} "},
        content_type="application/json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["source"]["spec"] == f"run:{run.pk}:{arm.pk}" and body["examples"] == 5
    assert body["teacher"] == "big-teacher · system" and body["data_cost"] > 0
    assert body["source"]["sample"][0]["answer"] == "ANSWER 0"
    listed = api.get(f"{V1}/finetunes/").json()["results"][0]
    assert (
        listed["source"]["spec"] == f"run:{run.pk}:{arm.pk}" and listed["teacher"] == "big-teacher · system"
    )
    for source, says in [("run:x:1", "source: source 'run:x:1': 'x' is not a run id"),
                         (f"run:{run.pk}:nobody", "has no arm 'nobody'")]:  # fmt: skip
        bad = api.post(
            f"{V1}/finetunes/",
            {"suite": version.suite.pk, "base_endpoint": student.pk, "source": source},
            content_type="application/json",
        )
        assert bad.status_code == 400 and says in bad.json()["detail"], bad.json()
    assert FineTuneJob.objects.count() == 1


def test_a_viewer_may_not_accept_answers(client, labelling):
    api = _api(client, "viewer")
    response = api.post(
        f"{V1}/runs/{labelling.pk}/reviews/accept-passing/", {}, content_type="application/json"
    )
    assert response.status_code == 403 and not Review.objects.exists()


def test_the_run_page_offers_accepting_and_distilling_a_labelling_run(client, labelling):
    user = UserFactory(username="lead", roles=["admin"])
    client.force_login(user)
    card = client.get(f"/runs/{labelling.pk}/review/summary/").content.decode()
    arm = labelling.arms.get()
    assert "labelling run" in card and "Accept every passing answer" in card
    assert f"source=run:{labelling.pk}:{arm.pk}" in card and f"source=reviewed:{labelling.pk}" in card
    response = client.post(f"/runs/{labelling.pk}/review/accept-passing/")
    assert (
        response.status_code == 302 and Review.objects.filter(reviewer=user, verdict="correct").count() == 5
    )
    page = client.get(f"/runs/{labelling.pk}/").content.decode()
    assert "labelling run (train split)" in page
    form = client.get(
        f"/finetunes/?suite_version={labelling.suite_version.pk}&source=run:{labelling.pk}:{arm.pk}"
    )
    assert f'value="run:{labelling.pk}:{arm.pk}"' in form.content.decode()


def test_the_run_form_starts_a_labelling_run(client, version, teacher, task_queue):
    client.force_login(UserFactory(username="lead", roles=["admin"]))
    system = strategy("system")
    response = client.post(
        "/runs/new/",
        {"suite_version": version.pk, "arms": [f"{teacher.pk}:{system.pk}"], "repeats": 1, "split": "train"},
    )
    assert response.status_code == 302
    assert Run.objects.get().split == "train" and Run.objects.get().expected_results == 10


def test_the_page_starts_a_distilled_job_and_shows_its_training_data_and_file(
    client, labelling, student, tmp_path, monkeypatch, settings
):
    _fake_training(tmp_path, monkeypatch, settings)
    client.force_login(UserFactory(username="lead", roles=["admin"]))
    arm = labelling.arms.get()
    response = client.post(
        "/finetunes/",
        {"suite_version": labelling.suite_version.pk, "base_endpoint": student.pk, "backend": "local",
         "source": f"run:{labelling.pk}:{arm.pk}:all", "epochs": 1, "learning_rate": 0.001, "rank": 8,
         "alpha": 16, "target_modules": "q_proj,v_proj", "batch_size": 2, "max_length": 64, "seed": 0},
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:2000]
    job = FineTuneJob.objects.get()
    assert job.examples == 10 and job.teacher_endpoint.name == "big-teacher"
    page = client.get(f"/finetunes/{job.pk}/").content.decode()
    assert "Distilled from the teacher" in page and "big-teacher · system" in page
    assert f"run:{labelling.pk}:{arm.pk}:all" in page and "ANSWER 0" in page and "no idea" in page
    assert "the examples the source gives now" in page  # the file is written when it starts training
    before = client.get(f"/finetunes/{job.pk}/training.jsonl")
    assert before.status_code == 200 and before.content.decode().count("\n") == 10
    finetune_execute(job_id=job.pk)
    assert "what the adapter learnt from" in client.get(f"/finetunes/{job.pk}/").content.decode()
    file = client.get(f"/finetunes/{job.pk}/training.jsonl")
    assert file.status_code == 200
    lines = [json.loads(line) for line in b"".join(file.streaming_content).decode().splitlines()]
    assert [m["messages"][-1]["content"] for m in lines][:3] == ["ANSWER 0", "no idea", "ANSWER 2"]
    job.refresh_from_db()
    assert job.run.arms.filter(endpoint__name="big-teacher", strategy__name="system").exists()
    bad = client.post(
        "/finetunes/",
        {"suite_version": labelling.suite_version.pk, "base_endpoint": student.pk, "source": "everything"},
    )
    assert bad.status_code == 400 and "is not one of: train | run:RUN:ARM" in bad.content.decode()


def _command(name: str, *args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(name, *args, stdout=out, stderr=err)
    except CommandError as exc:
        exc.stdout, exc.stderr = out.getvalue(), err.getvalue()
        raise
    return out.getvalue(), err.getvalue()


def test_the_command_line_labels_then_distils(version, teacher, student, task_queue):
    _, err = _command("evaluate", "--suite", "support", "--arm", "big-teacher:system", "--split", "train")
    run = Run.objects.get()
    assert run.split == "train" and "10 results" in err
    task_queue.drain()
    out, err = _command("finetune", "--suite", "support", "--base", "small", "--source",
                        f"run:{run.pk}:big-teacher", "--json")  # fmt: skip
    payload = json.loads(out)
    job = FineTuneJob.objects.get()
    assert payload["source"]["spec"] == f"run:{run.pk}:big-teacher" and payload["source"]["examples"] == 5
    assert payload["data_cost"] == pytest.approx(job.data_cost) and job.data_cost > 0
    assert f"5 examples from run:{run.pk}:big-teacher, teacher big-teacher · system" in err
    with pytest.raises(CommandError, match="is not one of: train") as failed:
        _command("finetune", "--suite", "support", "--base", "small", "--source", "teacher")
    assert failed.value.returncode == 2
