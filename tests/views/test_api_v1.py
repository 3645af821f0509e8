"""API v1 with token authentication: suites, endpoints, strategies, runs, findings, schedules."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from evaluations.models import ApiToken, Endpoint, Finding, Run, RunStatus, Schedule, Trigger
from evaluations.services.findings import baseline_set, run_compare_with_baseline
from evaluations.services.runs import run_create
from evaluations.services.tokens import api_token_create, api_token_revoke, token_hash
from tests.factories import CaseFactory, EndpointFactory, UserFactory, strategy
from tests.fakeopenai import answers_responder
from tests.runs import ArmSpec, finished_run, scores_with_mean, suite_version

V1 = "/api/v1"


@pytest.fixture
def token(user) -> str:
    return api_token_create(user=user, name="CI")[1]


@pytest.fixture
def api(client, token):
    """A client that sends the token on every request (no session)."""
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


@pytest.fixture
def data(db):
    """A suite with two versions (the latest with 6 test and 2 train cases), two endpoints, a finished
    baseline run and a later run that regressed on one arm (a regression finding)."""
    version = suite_version(test_cases=6, train_cases=2, name="capitals")
    newer = version.suite.versions.create(number=version.number + 1, task_type=version.task_type)
    for i in range(6):
        CaseFactory(version=newer, key=f"n{i}", position=i, input=f"new question {i}", expected=f"b{i}")
    CaseFactory(version=newer, key="n-train", position=6, split="train")
    base = EndpointFactory(name="base-model")
    other = EndpointFactory(name="other-model")
    baseline = finished_run(
        version, [ArmSpec(base, "zero-shot", [1.0] * 6), ArmSpec(other, "few-shot", scores_with_mean(6, 3))]
    )
    baseline_set(suite=version.suite, run=baseline)
    worse = finished_run(
        version, [ArmSpec(base, "zero-shot", [0.0] * 6), ArmSpec(other, "few-shot", scores_with_mean(6, 3))]
    )
    findings = run_compare_with_baseline(run=worse)
    assert len(findings) == 1
    return {
        "suite": version.suite, "version": version, "newer": newer, "base": base, "other": other,
        "baseline": baseline, "worse": worse, "finding": findings[0],
    }  # fmt: skip


# --- authentication -----------------------------------------------------------------------------------

GET_URLS = [
    "/suites/", "/suites/1/", "/suites/1/versions/", "/suites/1/versions/1/", "/suites/1/versions/1/cases/",
    "/endpoints/", "/endpoints/1/", "/strategies/", "/strategies/1/", "/runs/", "/runs/1/",
    "/runs/1/summary/", "/runs/1/results/", "/findings/", "/findings/1/", "/schedules/", "/schedules/1/",
]  # fmt: skip


@pytest.mark.parametrize("path", GET_URLS)
def test_every_resource_needs_credentials(client, data, path):
    response = client.get(V1 + path)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert "credentials were not provided" in response.json()["detail"]


@pytest.mark.parametrize(
    "method, path",
    [("post", "/runs/"), ("post", "/runs/1/cancel/"), ("post", "/findings/1/acknowledge/"),
     ("post", "/endpoints/"), ("patch", "/endpoints/1/"), ("post", "/schedules/"),
     ("delete", "/schedules/1/")],
)  # fmt: skip
def test_writes_need_credentials(client, data, method, path):
    response = getattr(client, method)(V1 + path, {}, content_type="application/json")
    assert response.status_code == 401


@pytest.mark.parametrize("keyword", ["Bearer", "Token", "bearer"])
def test_a_token_authenticates(client, data, token, keyword):
    response = client.get(f"{V1}/suites/", HTTP_AUTHORIZATION=f"{keyword} {token}")
    assert response.status_code == 200
    assert response.json()["results"][0]["name"] == "capitals"


def test_only_the_hash_of_a_token_is_stored(user):
    row, token = api_token_create(user=user, name="CI")
    assert token.startswith("ftvp_") and len(token) > 40
    row.refresh_from_db()
    assert row.key_hash == token_hash(token) and row.prefix == token[:12]
    stored = " ".join(str(v) for v in ApiToken.objects.values_list().get(pk=row.pk))
    assert token not in stored


def test_a_revoked_token_is_refused(client, data, user):
    row, token = api_token_create(user=user, name="CI")
    assert client.get(f"{V1}/runs/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    api_token_revoke(token=row)
    response = client.get(f"{V1}/runs/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401
    assert f"API token {row.prefix}… ('CI') was revoked" in response.json()["detail"]
    assert "create a new one" in response.json()["detail"]


def test_an_expired_token_is_refused(client, data, user):
    row, token = api_token_create(user=user, name="nightly", expires_at=timezone.now() + timedelta(days=1))
    ApiToken.objects.filter(pk=row.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client.get(f"{V1}/runs/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401 and "expired" in response.json()["detail"]


def test_a_token_of_an_inactive_user_is_refused(client, data, user, token):
    user.is_active = False
    user.save()
    response = client.get(f"{V1}/runs/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401 and "inactive" in response.json()["detail"]


@pytest.mark.parametrize(
    "header, message",
    [("Bearer ftvp_nosuchtoken", "no such token"), ("Bearer", "give 'Bearer <token>'"),
     ("Bearer a b", "give 'Bearer <token>'")],
)  # fmt: skip
def test_a_bad_token_is_refused_with_a_clear_message(client, data, header, message):
    response = client.get(f"{V1}/runs/", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert message in response.json()["detail"]


def test_last_used_is_written_at_most_once_a_minute(client, data, user):
    row, token = api_token_create(user=user, name="CI")
    client.get(f"{V1}/runs/", HTTP_AUTHORIZATION=f"Bearer {token}")
    row.refresh_from_db()
    first = row.last_used_at
    assert first is not None
    client.get(f"{V1}/runs/", HTTP_AUTHORIZATION=f"Bearer {token}")
    row.refresh_from_db()
    assert row.last_used_at == first
    ApiToken.objects.filter(pk=row.pk).update(last_used_at=first - timedelta(minutes=2))
    client.get(f"{V1}/runs/", HTTP_AUTHORIZATION=f"Bearer {token}")
    row.refresh_from_db()
    assert row.last_used_at > first - timedelta(minutes=2) and row.last_used_at >= first


def test_a_session_still_works_for_the_browser(auth_client, data):
    assert auth_client.get(f"{V1}/runs/").status_code == 200


def test_the_command_prints_a_working_token(client, data, user):
    out, err = io.StringIO(), io.StringIO()
    call_command("api_token", "--user", "alice", "--name", "CI", stdout=out, stderr=err)
    token = out.getvalue().strip()
    assert token.startswith("ftvp_") and "shown once" in err.getvalue()
    assert ApiToken.objects.get(user=user, name="CI").key_hash == token_hash(token)
    assert client.get(f"{V1}/runs/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200


def test_the_command_says_what_is_wrong(db):
    with pytest.raises(CommandError, match="no such user"):
        call_command("api_token", "--user", "nobody", "--name", "CI")
    UserFactory(username="bob")
    with pytest.raises(CommandError, match="expires-days"):
        call_command("api_token", "--user", "bob", "--name", "CI", "--expires-days", "0")


# --- the tokens page ----------------------------------------------------------------------------------


def test_the_tokens_page_needs_a_login(client, db):
    response = client.get("/tokens/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_a_token_is_shown_once_on_the_page(auth_client, user):
    response = auth_client.post("/tokens/", {"name": "dashboard", "expires_in_days": "30"})
    assert response.status_code == 200
    row = ApiToken.objects.get(user=user, name="dashboard")
    page = response.content.decode()
    token = page.split('<code class="token">')[1].split("</code>")[0]
    assert token_hash(token) == row.key_hash
    assert row.expires_at is not None
    assert "no-store" in response["Cache-Control"]
    later = auth_client.get("/tokens/").content.decode()
    assert token not in later and row.prefix in later and "dashboard" in later


def test_the_page_lists_only_my_tokens_and_revokes_them(auth_client, user):
    mine, _ = api_token_create(user=user, name="mine")
    theirs, _ = api_token_create(user=UserFactory(username="bob"), name="bobs-token")
    page = auth_client.get("/tokens/").content.decode()
    assert "mine" in page and "bobs-token" not in page
    assert auth_client.post(f"/tokens/{theirs.pk}/revoke/").status_code == 404
    response = auth_client.post(f"/tokens/{mine.pk}/revoke/")
    assert response.status_code == 302
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.revoked_at is not None and theirs.revoked_at is None


def test_a_token_needs_a_name(auth_client, user):
    response = auth_client.post("/tokens/", {"name": "  "})
    assert response.status_code == 400
    assert not ApiToken.objects.filter(user=user).exists()


# --- suites -------------------------------------------------------------------------------------------


def test_suites_list_and_detail(api, data):
    body = api.get(f"{V1}/suites/").json()
    assert body["count"] == 1
    suite = body["results"][0]
    assert suite["latest_version"] == data["newer"].number and suite["version_count"] == 2
    assert suite["baseline_run"] == data["baseline"].pk
    assert api.get(f"{V1}/suites/{data['suite'].pk}/").json()["name"] == "capitals"
    assert api.get(f"{V1}/suites/{data['suite'].pk + 99}/").status_code == 404


def test_suite_versions_and_their_cases(api, data):
    suite = data["suite"]
    versions = api.get(f"{V1}/suites/{suite.pk}/versions/").json()
    assert [v["number"] for v in versions["results"]] == [data["newer"].number, data["version"].number]
    version = api.get(f"{V1}/suites/{suite.pk}/versions/{data['version'].number}/").json()
    assert version["test_cases"] == 6 and version["train_cases"] == 2
    cases = api.get(f"{V1}/suites/{suite.pk}/versions/{data['version'].number}/cases/", {"page_size": 5})
    body = cases.json()
    assert body["count"] == 8 and len(body["results"]) == 5 and body["next"]
    assert body["results"][0]["key"] == "t0000" and body["results"][0]["input"] == "question 0"
    train = api.get(f"{V1}/suites/{suite.pk}/versions/{data['version'].number}/cases/", {"split": "train"})
    assert [c["key"] for c in train.json()["results"]] == ["x0000", "x0001"]
    assert api.get(f"{V1}/suites/{suite.pk}/versions/99/").status_code == 404
    assert api.get(f"{V1}/suites/{suite.pk}/versions/99/cases/").status_code == 404
    bad = api.get(f"{V1}/suites/{suite.pk}/versions/{data['version'].number}/cases/", {"split": "both"})
    assert bad.status_code == 400 and bad.json()["detail"].startswith("split:")


# --- endpoints and strategies -------------------------------------------------------------------------


def test_endpoints_list_detail_create_and_update(api, data):
    assert [e["name"] for e in api.get(f"{V1}/endpoints/").json()["results"]] == ["base-model", "other-model"]
    created = api.post(
        f"{V1}/endpoints/",
        {"name": "gpt", "provider": "openai", "model": "gpt-4o-mini", "base_url": "https://api.example.com/v1",
         "api_key_env": "OPENAI_API_KEY", "price_in": "0.15", "price_out": 0.6, "params": {"temperature": 0}},
        content_type="application/json",
    )  # fmt: skip
    assert created.status_code == 201, created.content
    endpoint = created.json()
    assert endpoint["api_key_env"] == "OPENAI_API_KEY" and endpoint["price_in"] == 0.15
    assert api.get(f"{V1}/endpoints/{endpoint['id']}/").json()["model"] == "gpt-4o-mini"
    changed = api.patch(
        f"{V1}/endpoints/{endpoint['id']}/",
        {"model": "gpt-4o", "price_out": "1.2"},
        content_type="application/json",
    )
    assert changed.status_code == 200, changed.content
    row = Endpoint.objects.get(pk=endpoint["id"])
    assert row.model == "gpt-4o" and float(row.price_out) == 1.2 and float(row.price_in) == 0.15
    # The price of training a hosted fine-tune of it (USD per 1M training tokens).
    priced = api.patch(
        f"{V1}/endpoints/{endpoint['id']}/", {"price_train": "3"}, content_type="application/json"
    )
    assert priced.status_code == 200 and priced.json()["price_train"] == 3.0


def test_endpoint_errors_name_the_field(api, data):
    def post(payload):
        return api.post(f"{V1}/endpoints/", payload, content_type="application/json")

    dup = post({"name": "base-model", "provider": "openai", "model": "m"})
    assert dup.status_code == 400 and dup.json()["detail"].startswith("name: an endpoint named 'base-model'")
    no_model = post({"name": "x", "provider": "openai", "model": ""})
    assert no_model.status_code == 400 and no_model.json()["detail"].startswith("model:")
    negative = post({"name": "x", "provider": "openai", "model": "m", "price_in": -1})
    assert negative.status_code == 400 and negative.json()["detail"].startswith("price_in:")
    base = post({"name": "x", "provider": "openai", "model": "m", "base_endpoint": data["other"].pk})
    assert base.status_code == 400 and base.json()["detail"].startswith("base_endpoint:")
    provider = api.patch(
        f"{V1}/endpoints/{data['base'].pk}/", {"provider": "local"}, content_type="application/json"
    )
    assert provider.status_code == 400 and provider.json()["detail"].startswith("provider: cannot be changed")
    taken = api.patch(
        f"{V1}/endpoints/{data['base'].pk}/", {"name": "other-model"}, content_type="application/json"
    )
    assert taken.status_code == 400 and "exists already" in taken.json()["detail"]
    assert not Endpoint.objects.filter(name="x").exists()


@pytest.mark.parametrize("field", ["api_key", "apiKey", "secret"])
def test_an_api_key_is_never_accepted(api, data, field):
    secret = "sk-proj-THIS-IS-A-PASTED-KEY-1234567890"
    response = api.post(
        f"{V1}/endpoints/",
        {"name": "leaky", "provider": "openai", "model": "m", field: secret},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json()["detail"].startswith(f"{field}: never send an API key")
    assert secret not in response.content.decode()
    assert not Endpoint.objects.filter(name="leaky").exists()


def test_a_key_pasted_as_the_variable_name_is_refused_and_not_echoed(api, data):
    secret = "sk-proj-pasted-key-value-0987654321"
    ctype = "application/json"
    for response in (
        api.post(f"{V1}/endpoints/", {"name": "leaky", "provider": "openai", "model": "m",
                                      "api_key_env": secret}, content_type=ctype),
        api.patch(f"{V1}/endpoints/{data['base'].pk}/", {"api_key_env": secret}, content_type=ctype),
    ):  # fmt: skip
        assert response.status_code == 400
        assert response.json()["detail"].startswith("api_key_env: give the NAME")
        assert secret not in response.content.decode()
    assert not Endpoint.objects.filter(api_key_env=secret).exists()


def test_an_api_key_in_the_environment_never_reaches_a_response(api, data, monkeypatch, task_queue):
    secret = "sk-live-SECRET-VALUE-abcdef123456"
    monkeypatch.setenv("FTVP_TEST_PROVIDER_KEY", secret)
    Endpoint.objects.filter(pk=data["base"].pk).update(api_key_env="FTVP_TEST_PROVIDER_KEY")
    run = data["worse"]
    suite = data["suite"]
    urls = [f"{V1}{p}" for p in GET_URLS if "/1/" not in p] + [
        f"{V1}/endpoints/{data['base'].pk}/", f"{V1}/runs/{run.pk}/", f"{V1}/runs/{run.pk}/summary/",
        f"{V1}/runs/{run.pk}/results/", f"{V1}/findings/{data['finding'].pk}/", f"{V1}/suites/{suite.pk}/",
        f"{V1}/suites/{suite.pk}/decision", "/api/runs/", "/api/schema/",
    ]  # fmt: skip
    created = api.post(
        f"{V1}/runs/",
        {"suite": suite.pk, "arms": [{"endpoint": data["base"].pk, "strategy": strategy("zero-shot").pk}]},
        content_type="application/json",
    )
    assert created.status_code == 201
    seen = [created.content.decode()]
    for url in urls:
        response = api.get(url)
        assert response.status_code == 200, url
        seen.append(response.content.decode())
    assert "FTVP_TEST_PROVIDER_KEY" in "".join(seen)  # the variable's name is shown...
    assert not any(secret in text for text in seen)  # ...never its value


def test_strategies_list_and_detail(api, data):
    body = api.get(f"{V1}/strategies/").json()
    names = [s["name"] for s in body["results"]]
    assert "zero-shot" in names and "few-shot" in names
    few = strategy("few-shot")
    detail = api.get(f"{V1}/strategies/{few.pk}/").json()
    assert detail["kind"] == "few-shot" and detail["version"] == 1


# --- runs ---------------------------------------------------------------------------------------------


def _create(api, payload):
    return api.post(f"{V1}/runs/", payload, content_type="application/json")


def test_a_run_is_created_and_enqueued(api, data, user, task_queue):
    zero = strategy("zero-shot")
    response = _create(
        api,
        {
            "suite": data["suite"].pk,
            "arms": [{"endpoint": data["base"].pk, "strategy": zero.pk}],
            "repeats": 2,
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    run = Run.objects.get(pk=body["id"])
    assert response["Location"].endswith(f"/api/v1/runs/{run.pk}/")
    assert run.trigger == Trigger.API and run.created_by == user and run.repeats == 2 and run.use_cache
    assert run.suite_version == data["newer"]  # the latest version by default
    assert body["status"] == "queued" and body["trigger"] == "api"
    assert body["progress"]["results_total"] == 12 and body["arms"][0]["endpoint"]["name"] == "base-model"
    assert task_queue.sent == [("start_run", (run.pk,))]


def test_a_run_of_a_pinned_version_without_the_cache(api, data, task_queue):
    response = _create(
        api,
        {"suite": data["suite"].pk, "suite_version": data["version"].number, "use_cache": False,
         "arms": [{"endpoint": data["base"].pk, "strategy": strategy("zero-shot").pk}]},
    )  # fmt: skip
    assert response.status_code == 201
    run = Run.objects.get(pk=response.json()["id"])
    assert run.suite_version == data["version"] and run.use_cache is False


def test_a_run_created_through_the_api_runs_to_the_end(api, data, fake_openai, task_queue):
    fake_openai.responder = answers_responder({f"new question {i}": f"b{i}" for i in range(6)})
    endpoint = EndpointFactory(name="fake", base_url=fake_openai.base_url)
    response = _create(
        api,
        {"suite": data["suite"].pk, "arms": [{"endpoint": endpoint.pk, "strategy": strategy("plain").pk}]},
    )
    run_id = response.json()["id"]
    task_queue.drain()
    detail = api.get(f"{V1}/runs/{run_id}/").json()
    assert detail["status"] == "succeeded" and detail["progress"]["results_done"] == 6
    summary = api.get(f"{V1}/runs/{run_id}/summary/").json()
    assert summary["arms"][0]["summary"]["pass_rate"] == 1.0 and summary["regressions"] == []


@pytest.mark.parametrize(
    "payload, detail",
    [
        ({"suite": 9999, "arms": [{"endpoint": 1, "strategy": 1}]}, "suite: no suite #9999"),
        ({"suite": "SUITE", "arms": [{"endpoint": "BASE", "strategy": 9999}]},
         "arms[0].strategy: no strategy #9999"),
        ({"suite": "SUITE", "arms": [{"endpoint": 9999, "strategy": "ZERO"}]},
         "arms[0].endpoint: no endpoint #9999"),
        ({"suite": "SUITE", "arms": []}, "arms:"),
        ({"suite": "SUITE"}, "arms: This field is required."),
        ({"suite": "SUITE", "arms": [{"endpoint": "BASE", "strategy": "ZERO"}], "repeats": 0}, "repeats:"),
        ({"suite": "SUITE", "suite_version": 42, "arms": [{"endpoint": "BASE", "strategy": "ZERO"}]},
         "suite_version: suite 'capitals' has no version 42 (versions: "),
        ({"suite": "SUITE", "arms": [{"endpoint": "BASE", "strategy": "ZERO"}] * 2}, "is listed twice"),
    ],
)  # fmt: skip
def test_run_create_errors_name_the_field(api, data, task_queue, payload, detail):
    ids = {"SUITE": data["suite"].pk, "BASE": data["base"].pk, "ZERO": strategy("zero-shot").pk}
    resolved = json.loads(
        json.dumps(payload),
        object_hook=lambda d: {k: ids.get(v, v) if isinstance(v, str) else v for k, v in d.items()},
    )
    response = _create(api, resolved)
    assert response.status_code == 400, response.content
    assert detail in response.json()["detail"]
    assert task_queue.sent == [] and Run.objects.count() == 2


def test_run_list_filters(api, data, task_queue):
    other = suite_version(test_cases=2, name="other")
    queued = run_create(suite_version=other, arms=[(data["base"], strategy("zero-shot"))])
    everything = api.get(f"{V1}/runs/").json()
    assert [r["id"] for r in everything["results"]] == [queued.pk, data["worse"].pk, data["baseline"].pk]
    by_suite = api.get(f"{V1}/runs/", {"suite": data["suite"].pk}).json()
    assert {r["id"] for r in by_suite["results"]} == {data["worse"].pk, data["baseline"].pk}
    by_status = api.get(f"{V1}/runs/", {"status": "queued"}).json()
    assert [r["id"] for r in by_status["results"]] == [queued.pk]
    bad = api.get(f"{V1}/runs/", {"status": "done"})
    assert bad.status_code == 400 and bad.json()["detail"].startswith("status:")


def test_run_detail_has_its_progress(api, data):
    body = api.get(f"{V1}/runs/{data['baseline'].pk}/").json()
    assert body["status"] == "succeeded" and body["is_baseline"] is True
    assert body["progress"]["results_done"] == 12 and body["progress"]["finished"] is True
    assert [a["label"] for a in body["arms"]] == ["base-model · zero-shot", "other-model · few-shot"]
    assert api.get(f"{V1}/runs/99999/").status_code == 404


def test_run_summary_has_arm_summaries_and_regressions(api, data):
    body = api.get(f"{V1}/runs/{data['worse'].pk}/summary/").json()
    assert body["run"]["id"] == data["worse"].pk
    assert [a["summary"]["pass_rate"] for a in body["arms"]] == [0.0, 0.5]
    assert body["arms"][0]["summary"]["cases"] == 6
    (regression,) = body["regressions"]
    assert regression["id"] == data["finding"].pk and regression["kind"] == "regression"
    assert regression["arm"]["label"] == "base-model · zero-shot"
    assert regression["details"]["flipped_count"] == 6


def test_run_results_are_paginated_and_filtered(api, data):
    run = data["baseline"]
    url = f"{V1}/runs/{run.pk}/results/"
    first = api.get(url, {"page_size": 5}).json()
    assert first["count"] == 12 and len(first["results"]) == 5 and first["next"] and first["previous"] is None
    third = api.get(url, {"page_size": 5, "page": 3}).json()
    assert len(third["results"]) == 2 and third["next"] is None
    assert api.get(url, {"page": 9}).status_code == 404
    few = run.arms.get(position=1)
    passed = api.get(url, {"arm": few.pk, "outcome": "pass"}).json()
    assert passed["count"] == 3 and {r["arm"] for r in passed["results"]} == {few.pk}
    assert all(r["passed"] for r in passed["results"])
    failed = api.get(url, {"outcome": "fail"}).json()
    assert failed["count"] == 3
    result = first["results"][0]
    assert result["case"]["key"] == "t0000" and result["output"] == "out 0" and "score" in result
    foreign = data["worse"].arms.first()
    bad = api.get(url, {"arm": foreign.pk})
    assert bad.status_code == 400 and bad.json()["detail"].startswith(f"arm: #{foreign.pk} is not an arm")


def test_a_run_is_cancelled_once(api, data, task_queue):
    queued = run_create(suite_version=data["version"], arms=[(data["base"], strategy("zero-shot"))])
    response = api.post(f"{V1}/runs/{queued.pk}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    queued.refresh_from_db()
    assert queued.status == RunStatus.CANCELLED
    again = api.post(f"{V1}/runs/{queued.pk}/cancel/")
    assert again.status_code == 409
    assert again.json()["detail"] == f"run #{queued.pk} had already finished (cancelled): nothing to cancel"


def test_a_finished_run_becomes_the_baseline(api, data, task_queue):
    response = api.post(f"{V1}/runs/{data['worse'].pk}/baseline/")
    assert response.status_code == 200
    assert response.json() == {
        "suite": {"id": data["suite"].pk, "name": "capitals"},
        "baseline_run": data["worse"].pk,
    }
    data["suite"].refresh_from_db()
    assert data["suite"].baseline_run_id == data["worse"].pk
    queued = run_create(suite_version=data["version"], arms=[(data["base"], strategy("zero-shot"))])
    refused = api.post(f"{V1}/runs/{queued.pk}/baseline/")
    assert (
        refused.status_code == 400 and "only a finished run can be the baseline" in refused.json()["detail"]
    )


# --- findings -----------------------------------------------------------------------------------------


def test_findings_list_filters_and_detail(api, data):
    finding = data["finding"]
    Finding.objects.create(
        suite=data["suite"], run=data["worse"], kind="drift", severity="info", title="outputs got longer",
        acknowledged_at=timezone.now(),
    )  # fmt: skip
    assert api.get(f"{V1}/findings/").json()["count"] == 2
    assert [f["id"] for f in api.get(f"{V1}/findings/", {"open": "true"}).json()["results"]] == [finding.pk]
    assert [f["kind"] for f in api.get(f"{V1}/findings/", {"open": "false"}).json()["results"]] == ["drift"]
    assert api.get(f"{V1}/findings/", {"kind": "regression"}).json()["count"] == 1
    assert api.get(f"{V1}/findings/", {"severity": "info"}).json()["count"] == 1
    assert api.get(f"{V1}/findings/", {"suite": data["suite"].pk + 1}).json()["count"] == 0
    assert api.get(f"{V1}/findings/", {"run": data["worse"].pk}).json()["count"] == 2
    assert api.get(f"{V1}/findings/", {"kind": "nope"}).status_code == 400
    detail = api.get(f"{V1}/findings/{finding.pk}/").json()
    assert detail["open"] is True and detail["suite"]["name"] == "capitals" and detail["baseline_run"]


def test_a_finding_is_acknowledged_with_a_comment(api, data, user):
    finding = data["finding"]
    response = api.post(
        f"{V1}/findings/{finding.pk}/acknowledge/", {"comment": "  provider rolled back  "},
        content_type="application/json",
    )  # fmt: skip
    assert response.status_code == 200
    body = response.json()
    assert (
        body["open"] is False
        and body["comment"] == "provider rolled back"
        and body["acknowledged_by"] == "alice"
    )
    finding.refresh_from_db()
    assert finding.acknowledged_by == user and finding.acknowledged_at is not None
    too_long = api.post(
        f"{V1}/findings/{finding.pk}/acknowledge/", {"comment": "x" * 2001}, content_type="application/json"
    )
    assert too_long.status_code == 400 and too_long.json()["detail"].startswith("comment:")
    assert (
        api.post(f"{V1}/findings/99999/acknowledge/", {}, content_type="application/json").status_code == 404
    )


# --- schedules ----------------------------------------------------------------------------------------


def test_schedules_crud(api, data, user):
    zero, few = strategy("zero-shot"), strategy("few-shot")
    created = api.post(
        f"{V1}/schedules/",
        {"suite": data["suite"].pk, "name": "nightly",
         "arms": [{"endpoint": data["base"].pk, "strategy": zero.pk},
                  {"endpoint": data["other"].pk, "strategy": few.pk}]},
        content_type="application/json",
    )  # fmt: skip
    assert created.status_code == 201, created.content
    body = created.json()
    schedule = Schedule.objects.get(pk=body["id"])
    assert body["cron"] == "0 2 * * *" and body["timezone"] == "UTC" and body["enabled"] is True
    assert body["suite_version"] is None and body["next_run_at"] and body["created_by"] == "alice"
    assert [(a["endpoint"]["name"], a["strategy"]["name"]) for a in body["arms"]] == [
        ("base-model", "zero-shot"), ("other-model", "few-shot"),
    ]  # fmt: skip
    assert PeriodicTask.objects.get(pk=schedule.periodic_task_id).enabled is True

    listed = api.get(f"{V1}/schedules/", {"suite": data["suite"].pk}).json()
    assert [s["name"] for s in listed["results"]] == ["nightly"]
    assert api.get(f"{V1}/schedules/", {"suite": data["suite"].pk + 1}).json()["count"] == 0
    assert api.get(f"{V1}/schedules/{schedule.pk}/").json()["name"] == "nightly"

    changed = api.patch(
        f"{V1}/schedules/{schedule.pk}/",
        {"cron": "30 4 * * 1-5", "timezone": "Europe/Paris", "enabled": False,
         "suite_version": data["version"].number,
         "arms": [{"endpoint": data["base"].pk, "strategy": few.pk}]},
        content_type="application/json",
    )  # fmt: skip
    assert changed.status_code == 200, changed.content
    body = changed.json()
    assert body["cron"] == "30 4 * * 1-5" and body["timezone"] == "Europe/Paris" and body["enabled"] is False
    assert body["suite_version"] == data["version"].number and body["next_run_at"] is None
    assert len(body["arms"]) == 1
    task = PeriodicTask.objects.get(pk=schedule.periodic_task_id)
    assert task.enabled is False and task.crontab.hour == "4" and str(task.crontab.timezone) == "Europe/Paris"
    # A PATCH validates partially, the arms too: an arm without its strategy is a 400 naming it.
    half = api.patch(
        f"{V1}/schedules/{schedule.pk}/",
        {"arms": [{"endpoint": data["base"].pk}]},
        content_type="application/json",
    )
    assert half.status_code == 400, half.content
    assert "strategy" in str(half.json()) and "arms" in str(half.json()), half.json()
    unpinned = api.patch(
        f"{V1}/schedules/{schedule.pk}/", {"suite_version": None}, content_type="application/json"
    )
    assert unpinned.json()["suite_version"] is None

    deleted = api.delete(f"{V1}/schedules/{schedule.pk}/")
    assert deleted.status_code == 204
    assert not Schedule.objects.exists() and not PeriodicTask.objects.filter(pk=task.pk).exists()
    assert api.get(f"{V1}/schedules/{schedule.pk}/").status_code == 404


@pytest.mark.parametrize(
    "change, detail",
    [
        ({"cron": "61 2 * * *"}, "cron:"),
        ({"cron": "every night"}, "cron:"),
        ({"timezone": "Mars/Olympus"}, "timezone:"),
        ({"name": ""}, "name:"),
        ({"arms": []}, "arms:"),
        ({"repeats": 0}, "repeats:"),
        ({"suite_version": 42}, "suite_version: suite 'capitals' has no version 42"),
        ({"arms": [{"endpoint": 9999, "strategy": 1}]}, "arms[0].endpoint: no endpoint #9999"),
    ],
)
def test_schedule_errors_name_the_field(api, data, change, detail):
    payload = {
        "suite": data["suite"].pk,
        "name": "nightly",
        "arms": [{"endpoint": data["base"].pk, "strategy": strategy("zero-shot").pk}],
        **change,
    }
    response = api.post(f"{V1}/schedules/", payload, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["detail"].startswith(detail)
    assert not Schedule.objects.exists()


def test_a_schedule_name_is_unique_in_its_suite(api, data):
    payload = {
        "suite": data["suite"].pk,
        "name": "nightly",
        "arms": [{"endpoint": data["base"].pk, "strategy": strategy("zero-shot").pk}],
    }
    assert api.post(f"{V1}/schedules/", payload, content_type="application/json").status_code == 201
    again = api.post(f"{V1}/schedules/", payload, content_type="application/json")
    assert again.status_code == 400 and again.json()["detail"].startswith(
        "name: suite 'capitals' already has"
    )
    unknown = api.post(f"{V1}/schedules/", {**payload, "suite": 9999}, content_type="application/json")
    assert unknown.status_code == 400 and unknown.json()["detail"].startswith("suite: no such suite")


# --- schema and docs ----------------------------------------------------------------------------------


def test_the_schema_validates_and_documents_token_auth(api, db, tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    schema = api.get("/api/schema/", {"format": "json"}).json()
    assert schema["components"]["securitySchemes"]["tokenAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schema["components"]["securitySchemes"]["tokenAuth"]["description"],
    }
    for path in ("/api/v1/runs/", "/api/v1/runs/{id}/results/", "/api/v1/runs/{id}/cancel/",
                 "/api/v1/findings/{id}/acknowledge/", "/api/v1/schedules/{id}/", "/api/v1/endpoints/{id}/",
                 "/api/v1/suites/{id}/versions/{number}/cases/", "/api/v1/strategies/"):  # fmt: skip
        assert path in schema["paths"], path
    create = schema["paths"]["/api/v1/runs/"]["post"]
    assert {"tokenAuth": []} in create["security"]
    assert set(create["responses"]) >= {"201", "400", "401"}
    error = schema["components"]["schemas"]["Error"]
    assert error["required"] == ["detail"]
    endpoint_input = schema["components"]["schemas"]["EndpointInputRequest"]["properties"]
    assert "api_key_env" in endpoint_input and not any(k.startswith("api_key") and k != "api_key_env"
                                                       for k in endpoint_input)  # fmt: skip


def test_the_docs_page_needs_a_login_and_is_served_offline(client, auth_client):
    anonymous = client.__class__().get("/api/docs/")
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]
    page = auth_client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower() and "https://" not in html
    script = auth_client.get("/api/docs/", {"script": ""})
    assert script.status_code == 200 and b"/api/schema/" in script.content


# --- suite upload: fields are checked before anything is stored -----------------------------------------


@pytest.mark.parametrize(
    "fields, detail",
    [
        ({"name": "a\x00b"}, "name: Null characters are not allowed."),
        ({"name": "n" * 201}, "name: Ensure this field has no more than 200 characters."),
        ({"name": "ok", "test_fraction": "nan"}, "test_fraction:"),
        (
            {"name": "ok", "test_fraction": "1.5"},
            "test_fraction: Ensure this value is less than or equal to 1.",
        ),
        ({"name": "ok", "task_type": "poetry"}, 'task_type: "poetry" is not a valid choice.'),
        ({"name": "ok", "seed": "-1"}, "seed:"),
        ({"name": "ok", "format": "excel"}, "format:"),
    ],
)
def test_a_bad_upload_field_is_refused_before_anything_is_stored(api, db, fields, detail):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("cases.csv", b"input,expected\nq,a\nr,b\n")
    response = api.post(f"{V1}/suites/", {**fields, "file": upload})
    assert response.status_code == 400, response.content
    assert response.json()["detail"].startswith(detail)
    from evaluations.models import Suite

    assert not Suite.objects.exists()


def test_an_upload_through_the_api_with_a_token(api, db, user):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("cases.csv", b"input,expected\nq1,a\nq2,b\nq3,c\nq4,d\n")
    response = api.post(f"{V1}/suites/", {"name": "tokened", "file": upload, "task_type": "classification"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["suite"]["name"] == "tokened" and body["version"] == 1
    suite = api.get(f"{V1}/suites/{body['suite']['id']}/").json()
    assert suite["task_type"] == "classification" and suite["owner"] == "alice"


# --- endpoints: where an API key may go ---------------------------------------------------------------


def test_a_new_base_url_through_the_api_needs_the_key_variable_again(api, data):
    ctype = "application/json"
    Endpoint.objects.filter(pk=data["base"].pk).update(
        base_url="https://api.example.com/v1", api_key_env="OPENAI_API_KEY"
    )
    url = f"{V1}/endpoints/{data['base'].pk}/"
    moved = api.patch(url, {"base_url": "https://attacker.example.net/v1"}, content_type=ctype)
    assert moved.status_code == 400
    detail = moved.json()["detail"]
    assert detail.startswith("api_key_env: give api_key_env again when base_url changes")
    assert "OPENAI_API_KEY would be sent to the new host" in detail
    assert Endpoint.objects.get(pk=data["base"].pk).base_url == "https://api.example.com/v1"
    both = api.patch(
        url,
        {"base_url": "https://vllm.internal.example/v1", "api_key_env": "VLLM_API_KEY"},
        content_type=ctype,
    )
    assert both.status_code == 200, both.content
    assert (both.json()["base_url"], both.json()["api_key_env"]) == (
        "https://vllm.internal.example/v1",
        "VLLM_API_KEY",
    )


@pytest.mark.parametrize("name", ["FTVP_SECRET_KEY", "EMAIL_HOST_PASSWORD", "DATABASE_URL", "REDIS_URL"])
def test_ftvps_own_settings_are_refused_as_the_key_variable(api, data, name):
    ctype = "application/json"
    created = api.post(
        f"{V1}/endpoints/",
        {"name": "leaky", "provider": "openai", "model": "m", "base_url": "https://attacker.example.net/v1",
         "api_key_env": name},
        content_type=ctype,
    )  # fmt: skip
    patched = api.patch(f"{V1}/endpoints/{data['base'].pk}/", {"api_key_env": name}, content_type=ctype)
    for response in (created, patched):
        assert response.status_code == 400
        assert response.json()["detail"].startswith(f"api_key_env: {name} is one of ftvp's own settings")
    assert not Endpoint.objects.filter(api_key_env=name).exists()
    assert not Endpoint.objects.filter(name="leaky").exists()
