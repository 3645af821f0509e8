"""An endpoint's API key never shows: a whole evaluation with a key set, then every page, API
response, export, log line and database row is searched for it.

The run goes through the real pipeline (start_run, run_batch, score_batch, finalize_run,
analyse_run, in-process through the `task_queue` fixture) against loopback fake OpenAI servers: one
that requires `Authorization: Bearer <key>`, and one that refuses it with a 401 whose body echoes
the key back, as OpenAI's "Incorrect API key provided: sk-..." does.
"""

from __future__ import annotations

import logging
import secrets
from urllib.parse import urlencode

import pytest
from django.apps import apps
from django.contrib import admin
from django.db import connection
from django.urls import reverse

from evaluations.models import Result, Run, RunStatus
from evaluations.services.endpoints import endpoint_create
from evaluations.services.runs import run_create
from tests.factories import UserFactory, strategy
from tests.fakeopenai import FakeOpenAI
from tests.runs import suite_version
from tests.views.test_role_matrix import ROUTES, _kwargs, _request, project_routes
from tests.views.test_role_matrix import world as matrix_world  # noqa: F401 (the fixture `world`)

KEY_VAR = "LEAK_TEST_API_KEY"


@pytest.fixture
def key(monkeypatch):
    value = f"sk-leaktest-{secrets.token_hex(20)}"
    monkeypatch.setenv(KEY_VAR, value)
    return value


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
    world = matrix_world
    result = Result.objects.filter(arm__run=run).order_by("pk").first()
    world.update(
        suite=version.suite, version=version, endpoint=keyed, run=run, result=result,
        strategy=result.arm.strategy, token=world["member"],
    )  # fmt: skip
    client.force_login(admin_user)
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
        reverse("evaluations:run-results", args=[run.pk]) + f"?arm={arm_ids[-1]}",
        reverse("api-v1:run-results", args=[run.pk]) + "?page_size=500",
        reverse("api-v1:endpoint-detail", args=[refused.pk]),
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
