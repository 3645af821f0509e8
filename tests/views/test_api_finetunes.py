"""API v1's fine-tuning jobs (issue 21): create, list, detail with events, cancel; roles and audit as
on the fine-tuning page; 400s naming the field."""

from __future__ import annotations

import pytest

from evaluations.models import AuditEvent, FineTuneJob, FineTuneStatus
from evaluations.services.finetune import finetune_create
from evaluations.services.tokens import api_token_create
from tests.factories import CaseFactory, EndpointFactory, SuiteVersionFactory, UserFactory

V1 = "/api/v1"


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
    return EndpointFactory(name="smol", provider="local", model="smollm2-135m-instruct", base_url="")


def _client(client, role: str):
    user = UserFactory(username=f"ft-{role}", roles=[role])
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {api_token_create(user=user, name='ci')[1]}"
    return client, user


@pytest.fixture
def editor(client, db):
    return _client(client, "editor")


def test_an_editor_creates_reads_lists_and_cancels_a_job(editor, version, local, task_queue):
    api, user = editor
    response = api.post(
        f"{V1}/finetunes/",
        {
            "suite": version.suite.pk,
            "base_endpoint": local.pk,
            "hyperparameters": {"epochs": 3, "batch_size": 2},
        },
        content_type="application/json",
    )
    assert response.status_code == 201, response.json()
    job = FineTuneJob.objects.get()
    body = response.json()
    assert response["Location"].endswith(f"/api/v1/finetunes/{job.pk}/")
    assert body["id"] == job.pk and body["status"] == "queued" and body["backend"] == "local"
    assert (
        body["suite"] == {"id": version.suite.pk, "name": "routing"}
        and body["suite_version"] == version.number
    )
    assert body["base_endpoint"] == {"id": local.pk, "name": "smol"} and body["examples"] == 10
    assert body["hyperparameters"]["epochs"] == 3 and body["hyperparameters"]["batch_size"] == 2
    assert body["events"] == [] and body["checkpoints"] == [] and body["trained_tokens"] is None
    assert body["created_by"] == user.username
    assert task_queue.sent == [("finetune", (job.pk,))]

    listed = api.get(f"{V1}/finetunes/").json()
    assert listed["count"] == 1 and listed["results"][0]["id"] == job.pk and "next" in listed
    assert api.get(f"{V1}/finetunes/?status=succeeded").json()["count"] == 0
    assert api.get(f"{V1}/finetunes/?suite={version.suite.pk}&backend=local").json()["count"] == 1
    detail = api.get(f"{V1}/finetunes/{job.pk}/").json()
    assert detail["losses"] == [] and detail["events"] == []

    cancelled = api.post(f"{V1}/finetunes/{job.pk}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = api.post(f"{V1}/finetunes/{job.pk}/cancel/")
    assert again.status_code == 409 and "already finished" in again.json()["detail"]

    # Audited once each, by the services, with the API's user as the actor.
    events = list(AuditEvent.objects.filter(object_type__icontains="finetune").order_by("seq"))
    assert [e.action for e in events] == ["finetune.create", "finetune.cancel"]
    assert {e.actor_name for e in events} == {user.username}


def test_the_detail_carries_the_hosted_fields_when_the_job_has_them(editor, version, local, task_queue):
    api, _ = editor
    job = finetune_create(suite_version=version, base_endpoint=local)
    FineTuneJob.objects.filter(pk=job.pk).update(
        events=[{"message": "Step 1/10: training loss=1.2"}], trained_tokens=1234
    )
    detail = api.get(f"{V1}/finetunes/{job.pk}/").json()
    assert (
        detail["events"] == [{"message": "Step 1/10: training loss=1.2"}] and detail["trained_tokens"] == 1234
    )


def test_a_viewer_reads_but_may_not_create_nor_cancel(client, version, local, task_queue):
    job = finetune_create(suite_version=version, base_endpoint=local)
    api, _ = _client(client, "viewer")
    assert api.get(f"{V1}/finetunes/").status_code == 200
    assert api.get(f"{V1}/finetunes/{job.pk}/").status_code == 200
    refused = api.post(
        f"{V1}/finetunes/",
        {"suite": version.suite.pk, "base_endpoint": local.pk},
        content_type="application/json",
    )
    assert refused.status_code == 403 and "evaluations.add_finetunejob" in refused.json()["detail"]
    assert api.post(f"{V1}/finetunes/{job.pk}/cancel/").status_code == 403
    job.refresh_from_db()
    assert job.status == FineTuneStatus.QUEUED and FineTuneJob.objects.count() == 1


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        ({"suite": 999999}, "suite: no suite #999999"),
        ({"suite_version": 42}, "suite_version: suite 'routing' has no version 42"),
        ({"base_endpoint": 999999}, "base_endpoint: no endpoint #999999"),
        ({"backend": "azure"}, "backend:"),
        ({"hyperparameters": {"epochs": 0}}, "hyperparameters.epochs: 0 is outside 1..50"),
        ({"hyperparameters": {"learning_rate": 3}}, "hyperparameters.learning_rate:"),
        ({"hyperparameters": {"batch_size": "many"}}, "hyperparameters.batch_size: 'many' is not a number"),
        ({"hyperparameters": {"warmup": 3}}, "hyperparameters.warmup: unknown for the local backend"),
        ({"hyperparameters": {"suffix": "x"}}, "hyperparameters.suffix: unknown for the local backend"),
    ],
)
def test_bad_requests_are_400s_naming_the_field(editor, version, local, task_queue, payload, named):
    api, _ = editor
    data = {"suite": version.suite.pk, "base_endpoint": local.pk, **payload}
    response = api.post(f"{V1}/finetunes/", data, content_type="application/json")
    assert response.status_code == 400 and named in response.json()["detail"], response.json()
    assert not FineTuneJob.objects.exists() and task_queue.sent == []


def test_the_backend_must_match_the_base_endpoints_provider(editor, version, local, task_queue):
    api, _ = editor
    hosted = EndpointFactory(name="gpt-mini")
    wrong = api.post(
        f"{V1}/finetunes/",
        {"suite": version.suite.pk, "base_endpoint": hosted.pk},
        content_type="application/json",
    )
    assert wrong.status_code == 400 and wrong.json()["detail"].startswith("base_endpoint: 'gpt-mini' is a")
    also_wrong = api.post(
        f"{V1}/finetunes/",
        {"suite": version.suite.pk, "base_endpoint": local.pk, "backend": "openai"},
        content_type="application/json",
    )
    assert also_wrong.status_code == 400 and "base_endpoint: 'smol' is a" in also_wrong.json()["detail"]
    bad_hosted = api.post(
        f"{V1}/finetunes/",
        {"suite": version.suite.pk, "base_endpoint": hosted.pk, "backend": "openai",
         "hyperparameters": {"learning_rate_multiplier": 0, "suffix": "no spaces", "rank": 8}},
        content_type="application/json",
    )  # fmt: skip
    detail = bad_hosted.json()["detail"]
    assert bad_hosted.status_code == 400
    assert "hyperparameters.learning_rate_multiplier: 0.0 is outside (0, 10]" in detail
    assert (
        "hyperparameters.suffix:" in detail
        and "hyperparameters.rank: unknown for the openai backend" in detail
    )
    assert not FineTuneJob.objects.exists()


def test_a_service_refusal_is_a_400(editor, version, local, task_queue):
    api, _ = editor
    version.cases.filter(split="train").exclude(key="x0").delete()
    response = api.post(
        f"{V1}/finetunes/",
        {"suite": version.suite.pk, "base_endpoint": local.pk},
        content_type="application/json",
    )
    assert response.status_code == 400 and "has 1 train case" in response.json()["detail"]


def test_the_schema_documents_the_fine_tuning_operations(auth_client):
    schema = auth_client.get("/api/schema/", {"format": "json"}).content.decode()
    for operation in ("finetune_create", "finetune_cancel", "finetunes_list", "finetunes_retrieve"):
        assert operation in schema, operation
    assert "learning_rate_multiplier" in schema


def test_an_openai_job_goes_to_the_hosted_backend(editor, version, task_queue, fake_openai):
    api, _ = editor
    hosted = EndpointFactory(name="gpt-mini", base_url=fake_openai.base_url)
    response = api.post(
        f"{V1}/finetunes/",
        {"suite": version.suite.pk, "base_endpoint": hosted.pk, "backend": "openai",
         "hyperparameters": {"epochs": 2, "learning_rate_multiplier": 0.5, "suffix": "routing"}},
        content_type="application/json",
    )  # fmt: skip
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["backend"] == "openai" and body["hyperparameters"]["suffix"] == "routing"
    assert api.get(f"{V1}/finetunes/?backend=openai").json()["count"] == 1
    assert api.get(f"{V1}/finetunes/?backend=local").json()["count"] == 0
    assert AuditEvent.objects.filter(action="finetune.create").count() == 1
