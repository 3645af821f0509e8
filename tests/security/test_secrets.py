"""An endpoint's API key never shows: a whole evaluation with a key set, then every page, API
response, export, log line and database row is searched for it.

The run goes through the real pipeline (start_run, run_batch, score_batch, finalize_run,
analyse_run, in-process through the `task_queue` fixture) against loopback fake OpenAI servers: one
that requires `Authorization: Bearer <key>`, and one that refuses it with a 401 whose body echoes
the key back, as OpenAI's "Incorrect API key provided: sk-..." does.

The second test is issue 18's gateway: it echoes the request's Authorization header inside its
answers (as it came, percent-encoded and in base64), the LLM judge's gateway puts its own key in the
verdict's reason, a third server's error quotes the key in base64 where the error message is cut off,
and an alert receiver's error quotes it too. Every form of each key is then searched for in every row
of every table, every page, API answer (as an admin and as a viewer), export and log record.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
from urllib.parse import urlencode

import pytest
from django.apps import apps
from django.contrib import admin
from django.db import connection
from django.urls import reverse

from evaluations.models import AlertDelivery, Case, CompletionCache, Finding, Result, Run, RunStatus
from evaluations.redaction import MASK, secret_forms
from evaluations.services.alerts import alert_channel_create, findings_notify
from evaluations.services.endpoints import endpoint_create
from evaluations.services.runs import run_create
from tests.factories import UserFactory, strategy
from tests.fakeopenai import AUTHORIZATION, FakeOpenAI, echo_responder
from tests.runs import suite_version
from tests.views.test_role_matrix import ROUTES, _kwargs, _request, project_routes
from tests.views.test_role_matrix import world as matrix_world  # noqa: F401 (the fixture `world`)

KEY_VAR = "LEAK_TEST_API_KEY"
JUDGE_KEY_VAR = "LEAK_TEST_JUDGE_KEY"
HOOK_VAR = "LEAK_TEST_HOOK_URL"


@pytest.fixture
def key(monkeypatch):
    value = f"sk-leaktest-{secrets.token_hex(20)}"
    monkeypatch.setenv(KEY_VAR, value)
    return value


@pytest.fixture
def judge_key(monkeypatch):
    value = f"sk-judge-{secrets.token_urlsafe(30)}"  # "-" and "_": other percent and base64 forms
    monkeypatch.setenv(JUDGE_KEY_VAR, value)
    return value


def _fragments(key: str) -> list[str]:
    """What would give a key away: each form `redact` masks (raw, percent-encoded, JSON-escaped,
    base64 at each alignment) and every 16 characters in a row of the key itself (a cut-off copy)."""
    return [*secret_forms(key), *(key[i : i + 16] for i in range(len(key) - 15))]


def _leaks(text: str, keys: list[str]) -> list[str]:
    return [f for key in keys for f in _fragments(key) if f in text]


def _body(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode("utf-8", "replace")
    return response.content.decode("utf-8", "replace")


def _every_table() -> dict[str, list[tuple]]:
    """Every row of every table in the database, the audit log's and celery beat's included."""
    dump = {}
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608 (introspected)
            dump[table] = cursor.fetchall()
    return dump


def _run_to_the_end(task_queue, capture, **run_fields) -> Run:
    """Create a run and drain the task queue until nothing is left, as a worker would."""
    with capture(execute=True):
        run = run_create(**run_fields)
    for _ in range(8):
        with capture(execute=True):
            task_queue.drain()
        if not task_queue.sent:
            break
    run.refresh_from_db()
    return run


def _every_page(client, world, *, user, run, version, endpoints) -> dict[str, str]:
    """Every page and API GET of the project as `user` (an admin), with this run's rows behind the ids,
    plus its compare view, filtered results, exports, endpoint details and the admin's pages."""
    result = Result.objects.filter(arm__run=run).order_by("pk").first()
    world.update(
        suite=version.suite, version=version, endpoint=endpoints[0], run=run, result=result,
        strategy=result.arm.strategy, token=world["member"],
    )  # fmt: skip
    client.force_login(user)
    seen: dict[str, str] = {}
    for name, _, converters, _ in project_routes():
        if "GET" not in ROUTES.get(name, {}):
            continue
        url = reverse(name, kwargs=_kwargs(name, converters, world))
        response = _request(client, "GET", url)
        assert response.status_code in (200, 302), (url, response.status_code)
        seen[url] = _body(response)
    arm_ids = list(run.arms.values_list("pk", flat=True))
    extra = [
        reverse("evaluations:compare") + "?" + urlencode([("arm", a) for a in arm_ids], doseq=True),
        reverse("evaluations:run-results", args=[run.pk]) + "?outcome=error",
        *(reverse("evaluations:run-results", args=[run.pk]) + f"?arm={arm}" for arm in arm_ids),
        reverse("api-v1:run-results", args=[run.pk]) + "?page_size=500",
        *(reverse("api-v1:endpoint-detail", args=[e.pk]) for e in endpoints),
        reverse("evaluations:audit-list"),
        reverse("evaluations:suite-detail", args=[version.suite.pk]),
        "/api/schema/",
    ]
    for export in ("run-export-csv", "run-export-jsonl", "run-export-finetune", "run-export-reviewed"):
        for arm in ("", *arm_ids):
            extra.append(reverse(f"evaluations:{export}", args=[run.pk]) + (f"?arm={arm}" if arm else ""))
    # The admin: every registered model's list, and the change page of its first row.
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        extra.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        first = model.objects.order_by("pk").first()
        if first is not None and model_admin.has_view_permission:
            extra.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[first.pk]))
    for url in extra:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        seen[url] = _body(response)
    return seen


def _viewer_pages(client, viewer, run) -> dict[str, str]:
    """What a viewer reads of the run: its page, results (every page of them), the API's results,
    the compare view and the exports."""
    client.force_login(viewer)
    arm_ids = list(run.arms.values_list("pk", flat=True))
    urls = [
        reverse("evaluations:run-detail", args=[run.pk]),
        reverse("evaluations:run-results", args=[run.pk]),
        *(reverse("evaluations:run-results", args=[run.pk]) + f"?arm={arm}" for arm in arm_ids),
        reverse("api-v1:run-results", args=[run.pk]) + "?page_size=500",
        reverse("api-v1:run-detail", args=[run.pk]),
        reverse("evaluations:compare") + "?" + urlencode([("arm", a) for a in arm_ids], doseq=True),
        reverse("evaluations:run-export-csv", args=[run.pk]),
        reverse("evaluations:run-export-jsonl", args=[run.pk]),
    ]
    seen = {}
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        seen[url] = _body(response)
    return seen


@pytest.mark.django_db
def test_an_api_key_appears_in_no_page_response_export_log_or_row(
    client,
    key,
    task_queue,
    caplog,
    django_capture_on_commit_callbacks,
    matrix_world,  # noqa: F811
):
    caplog.set_level(logging.DEBUG)
    good = FakeOpenAI(api_key=key)
    echoing = FakeOpenAI(api_key="not-the-key")
    # The refusing server puts the key it was sent in its error message (OpenAI does, truncated).
    echoing.fail_next(
        401,
        100,
        body={"error": {"message": f"Incorrect API key provided: {key}.", "type": "invalid_api_key"}},
    )
    try:
        admin_user = UserFactory(username="leak-admin", roles=["admin"], is_staff=True, is_superuser=True)
        keyed = endpoint_create(
            name="keyed", provider="openai", model="fake-model", base_url=good.base_url,
            api_key_env=KEY_VAR, user=admin_user, params={"temperature": 0, "max_tokens": 32},
        )  # fmt: skip
        refused = endpoint_create(
            name="refused", provider="openai", model="fake-model", base_url=echoing.base_url,
            api_key_env=KEY_VAR, user=admin_user, params={"temperature": 0, "max_tokens": 32},
        )  # fmt: skip
        version = suite_version(test_cases=6, train_cases=4, name="leak-suite")
        arms = [
            (keyed, strategy("zero-shot")),
            (keyed, strategy("few-shot")),
            (refused, strategy("zero-shot")),
        ]
        with django_capture_on_commit_callbacks(execute=True):
            run = run_create(suite_version=version, arms=arms, user=admin_user)
        for _ in range(5):
            with django_capture_on_commit_callbacks(execute=True):
                task_queue.drain()
            if not task_queue.sent:
                break
        run.refresh_from_db()
    finally:
        good.stop()
        echoing.stop()

    # The evaluation really ran with the key: sent to the right server, refused by the other.
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert good.requests and all(h["authorization"] == f"Bearer {key}" for h in good.request_headers)
    assert echoing.requests and all(h["authorization"] == f"Bearer {key}" for h in echoing.request_headers)
    ok = Result.objects.filter(arm__run=run, arm__endpoint=keyed)
    assert ok.count() == 12 and not ok.exclude(error="").exists()
    errors = list(Result.objects.filter(arm__run=run, arm__endpoint=refused).values_list("error", flat=True))
    assert len(errors) == 6 and all("401" in e or "API key" in e for e in errors), errors
    assert all(key not in e for e in errors)

    # Every page and API GET of the project as an admin, with this run's rows behind the ids.
    seen = _every_page(
        client, matrix_world, user=admin_user, run=run, version=version, endpoints=[keyed, refused]
    )
    leaks = [url for url, body in seen.items() if key in body]
    assert not leaks, f"the API key shows on: {leaks}"
    assert len(seen) > 80
    assert any("refused" in body and "401" in body for body in seen.values())  # the errors are shown

    # Every log line (DEBUG and up, tracebacks included).
    assert caplog.records
    logged = [r for r in caplog.records if key in r.getMessage() or key in (r.exc_text or "")]
    assert not logged, [r.getMessage() for r in logged]
    assert key not in caplog.text

    # Every row of every table.
    dump = _every_table()
    assert {"evaluations_auditevent", "evaluations_result", "django_celery_beat_periodictask"} <= set(dump)
    assert dump["evaluations_auditevent"] and dump["evaluations_result"]
    leaking = [table for table, rows in dump.items() if key in repr(rows)]
    assert not leaking, f"the API key is stored in: {leaking}"
    # Not vacuous: the variable's name is stored (that is what an endpoint keeps), the key is not.
    assert KEY_VAR in repr(dump["evaluations_endpoint"])
    assert Run.objects.filter(pk=run.pk, analysed_at__isnull=False).exists()
    assert len(apps.get_models()) > 20


@pytest.mark.django_db
def test_a_gateway_that_echoes_the_authorization_header_leaks_no_key_anywhere(
    client,
    key,
    judge_key,
    task_queue,
    caplog,
    django_capture_on_commit_callbacks,
    matrix_world,  # noqa: F811
    monkeypatch,
    settings,
    webhook,
):
    """Issue 18: the key came back in the answers of a gateway echoing the Authorization header, and
    was stored in every result, the completion cache, the judge's reasons and an alert's error."""
    caplog.set_level(logging.DEBUG)

    def respond(body):
        if body["model"] == "judge":  # the judge's gateway puts the header in the verdict's reason
            return json.dumps({"score": 0.9, "reason": f"graded; the request sent {AUTHORIZATION}"})
        return echo_responder(body)

    gateway = FakeOpenAI(api_key=key, echo_authorization=True, responder=respond)
    judge_gateway = FakeOpenAI(api_key=judge_key, echo_authorization=True, responder=respond)
    # An error that quotes the header in base64 where the message is cut (at 300 characters): the
    # stored error ends with the start of the key's encoding.
    header64 = base64.b64encode(f"Bearer {key}".encode()).decode()
    message = "x" * (300 - len("HTTP 400: ") - 40) + " your header: " + header64
    cutting = FakeOpenAI()
    cutting.fail_next(400, 100, body={"error": {"message": message, "type": "invalid_request_error"}})
    monkeypatch.setenv(HOOK_VAR, webhook.url)
    webhook.fail_next(400, body=f"refused; you are not Authorization: Bearer {key}".encode())
    try:
        admin_user = UserFactory(username="leak-admin", roles=["admin"], is_staff=True, is_superuser=True)
        params = {"temperature": 0, "max_tokens": 64}  # temperature 0: answers go to the cache
        echoing = endpoint_create(
            name="echoing", provider="openai", model="fake-model", base_url=gateway.base_url,
            api_key_env=KEY_VAR, user=admin_user, params=params,
        )  # fmt: skip
        cut = endpoint_create(
            name="cut", provider="openai", model="fake-model", base_url=cutting.base_url,
            api_key_env=KEY_VAR, user=admin_user, params=params,
        )  # fmt: skip
        endpoint_create(
            name="judge", provider="openai", model="judge", base_url=judge_gateway.base_url,
            api_key_env=JUDGE_KEY_VAR, user=admin_user, params=params,
        )  # fmt: skip
        settings.FTVP_JUDGE_ENDPOINT = "judge"
        version = suite_version(test_cases=6, train_cases=4, name="echo-suite")
        Case.objects.filter(version=version, split="test").update(
            assertions=[{"type": "llm-rubric", "value": "Does it answer the question?"}]
        )
        arms = [
            (echoing, strategy("zero-shot")),
            (echoing, strategy("few-shot")),
            (cut, strategy("zero-shot")),
        ]
        capture = django_capture_on_commit_callbacks
        run = _run_to_the_end(task_queue, capture, suite_version=version, arms=arms, user=admin_user)
        # Again: this time the echoing arms' answers come from the completion cache.
        again = _run_to_the_end(task_queue, capture, suite_version=version, arms=arms[:2], user=admin_user)
        # An alert for the run, to a receiver whose error quotes the key.
        alert_channel_create(name="hook", kind="webhook", url_env=HOOK_VAR, min_severity="info")
        Finding.objects.create(suite=version.suite, run=run, kind="regression", title="score dropped")
        with capture(execute=True):
            findings_notify(run=run)
            task_queue.drain()
    finally:
        gateway.stop()
        judge_gateway.stop()
        cutting.stop()
    keys = [key, judge_key]

    # The evaluation really ran, and each remote answer really carried a key, now masked.
    assert run.status == again.status == RunStatus.SUCCEEDED, (run.error, again.error)
    assert gateway.requests and all(h["authorization"] == f"Bearer {key}" for h in gateway.request_headers)
    assert len(judge_gateway.requests) == 24  # each run's 12 outputs graded (the cut arm's failed)
    outputs = list(Result.objects.filter(arm__endpoint=echoing).values_list("output", "answer", "cached"))
    assert len(outputs) == 24 and sum(cached for _, _, cached in outputs) == 12
    for output, answer, _ in outputs:
        assert f"Authorization: Bearer {MASK} | url-encoded: Bearer%20{MASK} | base64: " in output
        assert output.endswith(MASK) or output.endswith("=")  # the key's base64 masked
        assert answer == output.strip()
    assert CompletionCache.objects.count() == 12  # 6 cases x 2 prompts (zero- and few-shot)
    assert all(MASK in o for o in CompletionCache.objects.values_list("output", flat=True))
    verdicts = [
        check["reason"]
        for scores in Result.objects.filter(arm__endpoint=echoing).values_list("scores", flat=True)
        for check in scores["assertions"]
        if check["type"] == "llm-rubric"
    ]
    assert len(verdicts) == 24 and all(
        v == f"judge 0.90: graded; the request sent Bearer {MASK}" for v in verdicts
    )
    errors = list(Result.objects.filter(arm__endpoint=cut).values_list("error", flat=True))
    assert len(errors) == 6 and all(
        e.startswith("HTTP 400: xxx") and e.endswith(f"{MASK}...") for e in errors
    )
    (delivery,) = AlertDelivery.objects.filter(finding__run=run, channel__name="hook")
    assert delivery.status == "failed" and f"Authorization: Bearer {MASK}" in delivery.error

    # Every row of every table (raw SQL over all of them), in any form of either key.
    dump = _every_table()
    leaking = {table: _leaks(repr(rows), keys) for table, rows in dump.items()}
    assert not {t: f for t, f in leaking.items() if f}, "a key is stored"
    assert {"evaluations_result", "evaluations_completioncache", "evaluations_alertdelivery"} <= set(dump)

    # Every page and API answer as an admin, and what a viewer reads: run, results, API, exports.
    seen = _every_page(
        client, matrix_world, user=admin_user, run=run, version=version, endpoints=[echoing, cut]
    )
    viewer = UserFactory(username="leak-viewer", roles=["viewer"])
    for number in (run, again):
        seen.update({f"viewer {url}": body for url, body in _viewer_pages(client, viewer, number).items()})
    leaks = {url: _leaks(body, keys) for url, body in seen.items()}
    assert not {url: f for url, f in leaks.items() if f}, "a key shows"
    results_page = seen[f"viewer {reverse('evaluations:run-results', args=[run.pk])}"]
    assert f"Bearer {MASK}" in results_page  # the echoed header is shown, masked
    csv = seen[f"viewer {reverse('evaluations:run-export-csv', args=[run.pk])}"]
    assert f"Bearer {MASK}" in csv

    # Every log record, tracebacks included.
    assert caplog.records
    assert not _leaks(caplog.text, keys)
    for record in caplog.records:
        assert not _leaks(record.getMessage() + (record.exc_text or ""), keys), record.getMessage()
