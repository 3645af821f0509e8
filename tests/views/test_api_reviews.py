"""API v1: a run's reviews (GET lists them, POST saves the caller's review)."""

from __future__ import annotations

import pytest

from evaluations.models import AuditEvent, Result, Review
from evaluations.services.reviews import review_save
from evaluations.services.tokens import api_token_create
from tests.factories import EndpointFactory, UserFactory
from tests.runs import ArmSpec, finished_run, suite_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def run():
    version = suite_version(test_cases=3)
    return finished_run(version, [ArmSpec(EndpointFactory(name="m1"), "zero-shot", [1.0, 0.0, 0.5])])


def auth(username: str, role: str) -> dict:
    _, token = api_token_create(user=UserFactory(username=username, roles=[role]), name="t")
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def url(run) -> str:
    return f"/api/v1/runs/{run.pk}/reviews/"


def test_a_reviewer_saves_then_replaces_a_review_and_a_viewer_lists_it(client, run):
    result = Result.objects.filter(arm__run=run).order_by("case__position").first()
    rita = auth("rita", "reviewer")

    created = client.post(url(run), {"result": result.pk, "verdict": "correct"}, "application/json", **rita)
    replaced = client.post(
        url(run),
        {"result": result.pk, "verdict": "corrected", "corrected_output": "better", "comment": "close"},
        "application/json",
        **rita,
    )
    listed = client.get(url(run), **auth("vic", "viewer"))

    assert (created.status_code, replaced.status_code, listed.status_code) == (201, 200, 200)
    assert created.json()["id"] == replaced.json()["id"]
    assert (listed.json()["count"], listed.json()["next"]) == (1, None)
    [item] = listed.json()["results"]
    assert (item["reviewer"], item["verdict"], item["corrected_output"], item["result"]) == (
        "rita",
        "corrected",
        "better",
        result.pk,
    )
    assert AuditEvent.objects.filter(action="review.save").count() == 2


def test_the_list_is_paginated_newest_first(client, run):
    results = list(Result.objects.filter(arm__run=run).order_by("case__position"))
    for i, username in enumerate(["r1", "r2", "r3", "r4"]):
        review_save(result=results[i % 3], reviewer=UserFactory(username=username), verdict="correct")
    vic = auth("vic", "viewer")

    first = client.get(url(run), {"page_size": 3}, **vic).json()
    second = client.get(url(run), {"page_size": 3, "page": 2}, **vic).json()

    assert first["count"] == second["count"] == 4
    assert [r["reviewer"] for r in first["results"]] == ["r4", "r3", "r2"]
    assert [r["reviewer"] for r in second["results"]] == ["r1"]
    assert first["next"].endswith("page=2&page_size=3") and second["next"] is None
    assert client.get(url(run), {"page": 3, "page_size": 3}, **vic).status_code == 404


def test_a_viewer_may_not_post_a_review(client, run):
    result = Result.objects.filter(arm__run=run).first()

    response = client.post(url(run), {"result": result.pk, "verdict": "correct"}, "application/json",
                           **auth("vic", "viewer"))  # fmt: skip

    assert response.status_code == 403
    assert "evaluations.add_review" in response.json()["detail"]
    assert not Review.objects.exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"verdict": "corrected", "corrected_output": ""}, "corrected_output"),
        ({"verdict": "comment"}, "comment"),
        ({"verdict": "great"}, "verdict"),
    ],
)
def test_an_incomplete_review_is_a_400_naming_the_field(client, run, payload, field):
    result = Result.objects.filter(arm__run=run).first()

    response = client.post(url(run), {"result": result.pk, **payload}, "application/json",
                           **auth("rita", "reviewer"))  # fmt: skip

    assert response.status_code == 400
    assert response.json()["detail"].startswith(f"{field}:")


def test_a_result_of_another_run_is_refused(client, run):
    other = finished_run(run.suite_version, [ArmSpec(EndpointFactory(name="m2"), "zero-shot", [1.0] * 3)])
    result = Result.objects.filter(arm__run=other).first()

    response = client.post(url(run), {"result": result.pk, "verdict": "correct"}, "application/json",
                           **auth("rita", "reviewer"))  # fmt: skip

    assert response.status_code == 400
    assert f"is not a result of run #{run.pk}" in response.json()["detail"]
    assert client.get("/api/v1/runs/999999/reviews/", **auth("vic", "viewer")).status_code == 404
