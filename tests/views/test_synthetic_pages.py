"""Synthetic examples on the pages, in the API and on the command line: who may do what, the review
forms, promotion, validation errors as 400s naming the field."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.urls import reverse

from evaluations.models import SyntheticGeneration
from evaluations.services.synthetic import synthetic_create
from tests.factories import EndpointFactory, UserFactory
from tests.services.test_synthetic import UNIQUE, Planted, version  # noqa: F401 (a fixture)


@pytest.fixture
def endpoint(fake_openai, db):
    fake_openai.responder = Planted()
    return EndpointFactory(name="writer", base_url=fake_openai.base_url)


@pytest.fixture
def generated(version, endpoint, task_queue):  # noqa: F811
    generation = synthetic_create(
        suite_version=version, endpoint=endpoint, seed_keys=["seed-1", "seed-2"], n=12
    )
    task_queue.drain()
    generation.refresh_from_db()
    return generation


def login(client, role: str):
    client.force_login(UserFactory(username=f"syn-{role}", roles=[role]))
    return client


# --- pages ------------------------------------------------------------------------------------------


def test_an_editor_starts_a_generation_from_the_suite_page(client, version, endpoint, task_queue):  # noqa: F811
    login(client, "editor")
    suite_page = client.get(reverse("evaluations:suite-detail", args=[version.suite.pk])).content.decode()
    assert reverse("evaluations:suite-synthetic", args=[version.suite.pk]) in suite_page
    url = reverse("evaluations:suite-synthetic", args=[version.suite.pk])
    form = client.get(url)
    assert form.status_code == 200 and "seed-1" in form.content.decode()  # the train keys to choose from
    strategy = form.context["form"].fields["strategy"].initial
    response = client.post(url, {
        "suite_version": version.pk, "seeds": "seed-1, seed-2", "n": 12, "endpoint": endpoint.pk,
        "strategy": strategy, "threshold": 0.92,
    })  # fmt: skip
    generation = SyntheticGeneration.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("evaluations:synthetic-detail", args=[generation.pk])
    assert generation.seed_keys == ["seed-1", "seed-2"] and task_queue.names() == ["synthesize"]


def test_the_start_form_shows_the_services_reason(client, version, endpoint, task_queue):  # noqa: F811
    login(client, "editor")
    url = reverse("evaluations:suite-synthetic", args=[version.suite.pk])
    strategy = client.get(url).context["form"].fields["strategy"].initial
    response = client.post(url, {
        "suite_version": version.pk, "seeds": "test-1", "n": 5, "endpoint": endpoint.pk, "strategy": strategy,
        "threshold": 0.92,
    })  # fmt: skip
    assert response.status_code == 400
    assert "test cases; seeds must be train cases" in response.content.decode()
    assert not SyntheticGeneration.objects.exists()


def test_a_viewer_reads_but_cannot_start_review_or_promote(client, generated):
    login(client, "viewer")
    suite_url = reverse("evaluations:suite-synthetic", args=[generated.suite_version.suite.pk])
    assert client.get(suite_url).status_code == 200
    page = client.get(reverse("evaluations:synthetic-detail", args=[generated.pk]))
    assert page.status_code == 200
    assert "Accept all" not in page.content.decode()
    assert client.post(suite_url, {}).status_code == 403
    for name in ("synthetic-review", "synthetic-accept-all", "synthetic-promote", "synthetic-cancel"):
        assert client.post(reverse(f"evaluations:{name}", args=[generated.pk])).status_code == 403
    assert generated.candidates.filter(status="pending").count() == 8


def test_anonymous_users_are_sent_to_the_login(client, generated):
    response = client.get(reverse("evaluations:synthetic-detail", args=[generated.pk]))
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_the_review_page_lists_pending_first_and_takes_verdicts_edits_and_promotion(client, generated):
    login(client, "editor")
    url = reverse("evaluations:synthetic-detail", args=[generated.pk])
    html = client.get(url).content.decode()
    assert "Dropped as near-duplicates" in html and "Dropped as copies of test cases" in html
    page = client.get(url).context["page"]
    assert [c.status for c in page.object_list][:8] == ["pending"] * 8
    assert [c.status for c in page.object_list][8:] == ["dropped"] * 4
    first, second = page.object_list[0], page.object_list[1]

    review = reverse("evaluations:synthetic-review", args=[generated.pk])
    client.post(review, {"candidate": first.pk, "action": "reject"})
    response = client.post(review, {
        "candidate": second.pk, "action": "accept", "input": second.input, "expected": "billing",
    })  # fmt: skip
    assert response.status_code == 302
    second.refresh_from_db()
    assert (second.status, second.expected, second.edited) == ("accepted", "billing", True)
    client.post(reverse("evaluations:synthetic-accept-all", args=[generated.pk]))
    response = client.post(reverse("evaluations:synthetic-promote", args=[generated.pk]))
    generated.refresh_from_db()
    new = generated.promoted_version
    assert response.status_code == 302
    assert response["Location"] == reverse("evaluations:suite-detail", args=[new.suite_id])
    assert new.cases.filter(key__startswith="syn-", split="train").count() == 7
    assert not new.cases.filter(key__startswith="syn-", split="test").exists()
    html = client.get(url).content.decode()
    assert "Promoted into" in html and "Promote to a new suite version" not in html


# --- API --------------------------------------------------------------------------------------------


def test_the_api_starts_reviews_and_promotes(client, version, endpoint, task_queue):  # noqa: F811
    login(client, "editor")
    url = reverse("api-v1:suite-synthetic", args=[version.suite.pk])
    response = client.post(
        url,
        {"seeds": ["seed-1", "seed-2"], "n": 12, "endpoint": endpoint.pk},
        content_type="application/json",
    )
    assert response.status_code == 201, response.json()
    created = response.json()
    assert created["status"] == "queued" and created["suite_version"] == version.number
    assert created["strategy"]["name"] == "synthesize"
    task_queue.drain()

    detail_url = reverse("api-v1:synthetic-detail", args=[created["id"]])
    detail = client.get(detail_url).json()
    assert detail["status"] == "succeeded"
    assert (detail["dropped_duplicates"], detail["dropped_test_copies"]) == (2, 2)
    assert detail["counts"] == {"pending": 8, "accepted": 0, "rejected": 0, "dropped": 4}
    assert detail["cost"] > 0
    assert [c["status"] for c in detail["candidates"]][:8] == ["pending"] * 8
    pending = detail["candidates"][0]

    review = reverse("api-v1:synthetic-review", args=[created["id"]])
    answer = client.post(review, {"candidate": pending["id"], "action": "accept", "expected": ["a", "b"]},
                         content_type="application/json")  # fmt: skip
    assert answer.status_code == 200
    reviewed = next(c for c in answer.json()["candidates"] if c["id"] == pending["id"])
    assert (reviewed["status"], reviewed["expected"], reviewed["edited"]) == ("accepted", ["a", "b"], True)
    assert answer.json()["candidates"][0]["status"] == "pending"  # pending first
    bad = client.post(
        review, {"candidate": pending["id"], "action": "maybe"}, content_type="application/json"
    )
    assert bad.status_code == 400 and "action" in bad.json()["detail"]
    listed = client.get(reverse("api-v1:suite-synthetic", args=[version.suite.pk])).json()
    assert [g["id"] for g in listed["results"]] == [created["id"]]

    promoted = client.post(reverse("api-v1:synthetic-promote", args=[created["id"]]))
    assert promoted.status_code == 200
    assert promoted.json()["promoted_version"] == version.number + 1
    again = client.post(reverse("api-v1:synthetic-promote", args=[created["id"]]))
    assert again.status_code == 400 and "promoted" in again.json()["detail"]
    cancel = client.post(reverse("api-v1:synthetic-cancel", args=[created["id"]]))
    assert cancel.status_code == 409


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"seeds": [], "n": 5}, "seeds"),
        ({"seeds": ["seed-1"], "n": 0}, "n"),
        ({"seeds": ["seed-1"], "n": 1001}, "n"),
        ({"seeds": ["test-1"], "n": 5}, "seeds: test-1 are test cases"),
        ({"seeds": ["seed-1"], "n": 5, "suite_version": 99}, "suite_version"),
        ({"seeds": ["seed-1"], "n": 5, "threshold": 0}, "threshold"),
    ],
)
def test_the_api_refuses_a_generation_it_cannot_make(client, version, endpoint, task_queue, payload, field):  # noqa: F811
    login(client, "editor")
    url = reverse("api-v1:suite-synthetic", args=[version.suite.pk])
    response = client.post(url, {"endpoint": endpoint.pk} | payload, content_type="application/json")
    assert response.status_code == 400
    assert field in response.json()["detail"]
    assert not SyntheticGeneration.objects.exists()


def test_the_api_refuses_writes_to_a_viewer_and_anonymous_callers(client, version, endpoint, generated):  # noqa: F811
    url = reverse("api-v1:suite-synthetic", args=[version.suite.pk])
    payload = {"seeds": ["seed-1"], "n": 5, "endpoint": endpoint.pk}
    assert client.post(url, payload, content_type="application/json").status_code == 401
    login(client, "viewer")
    assert client.get(reverse("api-v1:synthetic-detail", args=[generated.pk])).status_code == 200
    assert client.post(url, payload, content_type="application/json").status_code == 403
    assert client.post(reverse("api-v1:synthetic-accept-all", args=[generated.pk])).status_code == 403
    assert SyntheticGeneration.objects.count() == 1


# --- the command ------------------------------------------------------------------------------------


def test_the_command_generates_and_reports_as_json(version, endpoint, capsys, task_queue):  # noqa: F811
    call_command(
        "synthesize", "--suite", version.suite.name, "--endpoint", endpoint.name, "--seeds", "seed-1,seed-2",
        "--n", "12", "--wait", "--json",
    )  # fmt: skip
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "succeeded"
    assert (data["generated"], data["dropped_duplicates"], data["dropped_test_copies"], data["pending"]) == (
        12, 2, 2, len(UNIQUE))  # fmt: skip
    assert data["cost_usd"] > 0


def test_the_command_names_what_is_wrong(version, endpoint, task_queue):  # noqa: F811
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="test cases"):
        call_command("synthesize", "--suite", version.suite.name, "--endpoint", endpoint.name,
                     "--seeds", "test-1", "--n", "3")  # fmt: skip
    with pytest.raises(CommandError, match="no endpoint"):
        call_command("synthesize", "--suite", version.suite.name, "--endpoint", "nope", "--seeds", "seed-1",
                     "--n", "3")  # fmt: skip


def test_an_editor_saves_the_prompt_as_the_next_synthesize_version(client, db):
    from evaluations.models import AuditEvent, Strategy
    from evaluations.services.synthetic import synthesize_strategy

    base = synthesize_strategy()
    url = reverse("evaluations:synthetic-prompt")
    login(client, "viewer")
    assert client.get(url).status_code == 200
    assert client.post(url, {"system": "x", "instruction": "{n}", "per_call": 5}).status_code == 403
    login(client, "editor")
    bad = client.post(url, {"system": "Be terse.", "instruction": "Write {count}", "per_call": 5})
    assert bad.status_code == 400 and "placeholders" in bad.content.decode()
    response = client.post(url, {
        "system": "Be terse.", "instruction": "Like these:\n{examples}\nWrite {n} more.", "per_call": 5,
    })  # fmt: skip
    new = Strategy.objects.get(name="synthesize", version=base.version + 1)
    assert response.status_code == 302
    assert response["Location"] == reverse("evaluations:strategy-detail", args=[new.pk])
    assert new.kind == "synthesize" and new.params["per_call"] == 5 and new.params["system"] == "Be terse."
    assert synthesize_strategy() == new
    assert client.get(response["Location"]).status_code == 200  # the strategy page shows it, with its diff
    assert AuditEvent.objects.filter(action="strategy.create", object_id=str(new.pk)).exists()
    same = client.post(url, {
        "system": "Be terse.", "instruction": "Like these:\n{examples}\nWrite {n} more.", "per_call": 5,
    })  # fmt: skip
    assert same.status_code == 400 and "nothing to save" in same.content.decode()
