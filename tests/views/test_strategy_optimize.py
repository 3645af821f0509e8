"""The optimised few-shot search through the API (queued, 202) and the strategy pages."""

from __future__ import annotations

import pytest

from evaluations.models import Strategy
from evaluations.services.fewshot_optimize import strategy_optimize
from evaluations.services.tokens import api_token_create
from tests.factories import EndpointFactory, UserFactory
from tests.services.test_fewshot_optimize import golden_model, sums_suite

URL = "/api/v1/strategies/optimize/"


@pytest.fixture
def endpoint(fake_openai):
    fake_openai.responder = golden_model
    return EndpointFactory(name="golden-model", base_url=fake_openai.base_url, price_in=1, price_out=2)


def bearer(user) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {api_token_create(user=user, name='ci')[1]}"}


def test_a_search_is_queued_with_202_and_its_strategy_appears_when_done(
    client, db, endpoint, fake_openai, task_queue
):
    version = sums_suite()
    editor = UserFactory(username="eddie", roles=["editor"])
    body = {"suite": version.suite_id, "endpoint": endpoint.pk, "k": 3, "candidates": 8, "seed": 0}
    response = client.post(URL, body, content_type="application/json", **bearer(editor))

    assert response.status_code == 202, response.json()
    answer = response.json()
    assert answer["name"] == "few-shot-optimized-sums" and answer["max_calls"] == 32
    assert answer["suite"] == {"id": version.suite_id, "name": "sums"}
    assert answer["endpoint"] == {"id": endpoint.pk, "name": "golden-model"}
    assert "queued" in answer["detail"] and "GET /api/v1/strategies/" in answer["detail"]
    assert task_queue.names() == ["optimize_fewshot"]
    assert fake_openai.requests == [] and not Strategy.objects.filter(kind="few-shot-optimized").exists()

    task_queue.sent.append(task_queue.sent[0])  # delivered twice: searched and frozen once
    task_queue.drain()
    assert len(fake_openai.requests) == 32
    listed = client.get("/api/v1/strategies/", **bearer(editor)).json()["results"]
    frozen = [s for s in listed if s["kind"] == "few-shot-optimized"]
    assert len(frozen) == 1 and frozen[0]["version"] == 1
    params = frozen[0]["params"]
    assert "golden" in [e["key"] for e in params["examples"]]
    assert params["search"]["calls"] == 32 and params["search"]["cost_usd"] > 0
    assert params["search"]["request"] == answer["request"]
    assert Strategy.objects.get(pk=frozen[0]["id"]).params == params


def test_a_queued_search_that_fails_says_why_in_the_audit_log(client, db, endpoint, fake_openai, task_queue):
    from evaluations.models import AuditEvent

    version = sums_suite()
    editor = UserFactory(username="eddie", roles=["editor"])
    body = {"suite": version.suite_id, "endpoint": endpoint.pk, "candidates": 2}
    answer = client.post(URL, body, content_type="application/json", **bearer(editor)).json()
    fake_openai.fail_next(400, 1000)
    task_queue.drain()

    assert not Strategy.objects.filter(kind="few-shot-optimized").exists()
    event = AuditEvent.objects.get(action="strategy.optimize.failed")
    assert event.after["request"] == answer["request"] and event.suite_id == version.suite_id
    assert "every call to endpoint 'golden-model' failed" in event.after["error"]
    assert event.actor_id == editor.pk


def test_the_task_is_routed_to_the_llm_queue(settings):
    assert settings.CELERY_TASK_ROUTES["workers.tasks.optimize_fewshot"] == {"queue": "llm"}


@pytest.mark.parametrize("role", ["viewer", "reviewer", "approver"])
def test_roles_that_may_not_start_runs_are_refused(client, db, endpoint, task_queue, role):
    version = sums_suite()
    user = UserFactory(username=f"u-{role}", roles=[role])
    body = {"suite": version.suite_id, "endpoint": endpoint.pk}
    response = client.post(URL, body, content_type="application/json", **bearer(user))
    assert response.status_code == 403
    assert "evaluations.add_run" in response.json()["detail"]
    assert task_queue.sent == []


@pytest.mark.parametrize(
    "body, detail",
    [({"suite": 999999, "endpoint": "E"}, "suite: no suite #999999"),
     ({"suite": "S", "endpoint": 999999}, "endpoint: no endpoint #999999"),
     ({"suite": "S", "endpoint": "E", "k": 0}, "k: Ensure this value is greater than or equal to 1"),
     ({"suite": "S", "endpoint": "E", "k": 11}, "has 12 labelled train case(s); a search with k=11 needs at "
                                                "least 13")],
)  # fmt: skip
def test_a_search_that_cannot_be_made_is_refused_at_once(client, db, endpoint, task_queue, body, detail):
    version = sums_suite()
    body = {key: {"S": version.suite_id, "E": endpoint.pk}.get(v, v) for key, v in body.items()}
    response = client.post(
        URL, body, content_type="application/json", **bearer(UserFactory(roles=["editor"]))
    )
    assert response.status_code == 400
    assert detail in response.json()["detail"]
    assert task_queue.sent == []


# --- pages -----------------------------------------------------------------------------------------


def test_the_strategies_page_shows_the_frozen_examples_and_the_search_cost(auth_client, db, endpoint):
    version = sums_suite()
    strategy = strategy_optimize(suite=version.suite, endpoint=endpoint, k=3, candidates=8)
    Strategy.objects.get_or_create(name="zero-shot", version=1, defaults={"kind": "zero-shot"})
    html = auth_client.get("/strategies/").content.decode()
    assert "few-shot-optimized-sums" in html and "Zero-shot" in html
    for example in strategy.params["examples"]:
        assert f"<code>{example['key']}</code>" in html
    assert "32 calls" in html and "1.000" in html and "$0.00" in html
    assert f'href="/strategies/{strategy.pk}/"' in html


def test_a_strategy_page_shows_its_search_and_the_diff_against_the_previous_version(
    auth_client, db, endpoint
):
    version = sums_suite()
    first = strategy_optimize(suite=version.suite, endpoint=endpoint, k=3, candidates=8, seed=0)
    second = strategy_optimize(suite=version.suite, endpoint=endpoint, k=2, candidates=4, seed=1)
    html = auth_client.get(f"/strategies/{first.pk}/").content.decode()
    assert "This is the first version" in html and "Frozen demonstrations" in html
    assert "(frozen)" in html and "what is" in html
    html = auth_client.get(f"/strategies/{second.pk}/").content.decode()
    assert f'href="/strategies/{first.pk}/"' in html
    assert 'class="d-added"' in html and 'class="d-missing"' in html
    assert "Search cost: 16 calls" in html


def test_a_strategy_page_of_another_kind(auth_client, db):
    plain = Strategy.objects.create(name="my-system", kind="system", params={"system_prompt": "Be <brief>"})
    html = auth_client.get(f"/strategies/{plain.pk}/").content.decode()
    assert "System prompt" in html and "Be &lt;brief&gt;" in html and "Frozen demonstrations" not in html
