"""The read API (/api/runs/) and its OpenAPI schema, through the Django test client."""

from __future__ import annotations

import base64
import json

import pytest
from django.urls import reverse

from evaluations.models import RunStatus
from evaluations.services.runs import run_create
from tests.factories import CaseFactory, EndpointFactory, SuiteVersionFactory, strategy
from tests.fakeopenai import answers_responder


@pytest.fixture(autouse=True)
def _fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _suite(n: int):
    version = SuiteVersionFactory(suite__name="capitals")
    for i in range(n):
        CaseFactory(version=version, key=f"c{i:03d}", position=i, input=f"q{i}", expected=f"answer {i}")
    return version


@pytest.fixture
def runs(db, fake_openai, task_queue):
    """A finished run with two arms, then a queued one."""
    fake_openai.responder = answers_responder({f"q{i}": f"answer {i}" if i < 2 else "nope" for i in range(4)})
    endpoint = EndpointFactory(name="fake", base_url=fake_openai.base_url)
    version = _suite(4)
    done = run_create(
        suite_version=version, arms=[(endpoint, strategy("plain")), (endpoint, strategy("cot"))]
    )
    task_queue.drain()
    queued = run_create(suite_version=version, arms=[(endpoint, strategy("plain"))])
    done.refresh_from_db()
    assert done.status == RunStatus.SUCCEEDED
    return done, queued


@pytest.mark.parametrize(
    "url",
    [
        "/api/runs/",
        "/api/runs/1/",
        "/api/schema/",
        "/api/schema/?format=json",
    ],
)
def test_the_api_refuses_an_anonymous_user(client, db, url):
    response = client.get(url)
    assert response.status_code in (401, 403)
    assert b'"results"' not in response.content and b"openapi" not in response.content


def test_the_api_refuses_bad_basic_credentials(client, user):
    response = client.get("/api/runs/", HTTP_AUTHORIZATION="Basic YWxpY2U6d3Jvbmc=")  # alice:wrong
    # 403, not 401: SessionAuthentication comes first, so DRF sends no WWW-Authenticate challenge
    assert response.status_code in (401, 403)
    assert "Invalid username/password" in response.json()["detail"]


def test_basic_auth_works_for_scripts(client, user, runs):
    token = base64.b64encode(b"alice:pw-for-tests-1").decode()
    response = client.get("/api/runs/", HTTP_AUTHORIZATION=f"Basic {token}")
    assert response.status_code == 200
    assert response.json()["count"] == 2


def test_the_run_list_has_each_run_with_its_arms_summaries(auth_client, runs):
    done, queued = runs
    response = auth_client.get(reverse("api:run-list"))
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert [r["id"] for r in body["results"]] == [queued.pk, done.pk]  # newest first
    first = body["results"][1]
    assert first["suite"] == "capitals" and first["suite_version"] == done.suite_version.number
    assert first["status"] == "succeeded" and first["trigger"] == "manual"
    assert first["progress"]["results_done"] == 8 and first["progress"]["finished"] is True
    assert [(a["endpoint"], a["strategy"]) for a in first["arms"]] == [("fake", "plain"), ("fake", "cot")]
    for arm_json, arm in zip(first["arms"], done.arms.order_by("position"), strict=True):
        assert arm_json["cases"] == 4 and arm_json["errors"] == 0
        assert arm_json["mean_score"] == pytest.approx(arm.summary["mean_score"])
        assert arm_json["pass_rate"] == pytest.approx(arm.summary["pass_rate"])
        assert len(arm_json["score_ci"]) == 2
    second = body["results"][0]
    assert second["status"] == "queued" and second["progress"]["results_done"] == 0
    assert second["arms"][0]["endpoint"] == "fake"


def test_the_run_detail(auth_client, runs):
    done, _ = runs
    response = auth_client.get(reverse("api:run-detail", args=[done.pk]))
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == done.pk and body["status"] == "succeeded"
    assert body["started_at"] and body["finished_at"]
    assert len(body["arms"]) == 2
    assert auth_client.get(reverse("api:run-detail", args=[done.pk + 1000])).status_code == 404


def test_the_api_is_read_only(auth_client, runs):
    done, _ = runs
    assert auth_client.post(reverse("api:run-list"), {}).status_code == 405
    assert auth_client.delete(reverse("api:run-detail", args=[done.pk])).status_code == 405


def test_the_schema_is_an_openapi_document_listing_the_run_endpoints(auth_client, db):
    response = auth_client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "ftvp API"
    assert "/api/runs/" in schema["paths"] and "/api/runs/{id}/" in schema["paths"]
    assert "get" in schema["paths"]["/api/runs/"]
    yaml = auth_client.get("/api/schema/")
    assert yaml.status_code == 200 and b"openapi:" in yaml.content
