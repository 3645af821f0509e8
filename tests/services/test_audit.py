"""The audit trail: the services record who changed what (before and after), in the change's own
transaction; the hash chain verifies, and any edit, removal or truncation made behind the app's back
is found by `verify_audit`, which names the event."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from evaluations.importers import SourceFile
from evaluations.models import AuditEvent, AuditHead, Endpoint, Run
from evaluations.services.alerts import alert_channel_create, alert_channel_delete, alert_channel_update
from evaluations.services.audit import audit_record, audit_update, audit_verify, event_hash, stored_snapshot
from evaluations.services.endpoints import endpoint_create, endpoint_update, endpoint_update_costs
from evaluations.services.findings import baseline_set
from evaluations.services.runs import run_cancel, run_create
from evaluations.services.schedules import schedule_create, schedule_delete, schedule_update
from evaluations.services.suites import suite_import, suite_update_profile
from evaluations.services.tokens import api_token_create, api_token_revoke
from tests.factories import EndpointFactory, UserFactory, strategy
from tests.runs import ArmSpec, finished_run, suite_version

PROMPTFOO = b"""
prompts:
  - "Say it like a pirate: {{body}}"
tests:
  - vars: {body: hello}
    assert:
      - type: icontains
        value: arr
"""


@pytest.fixture
def editor(db):
    return UserFactory(username="eddie", roles=["editor"])


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("seq"))


def test_an_upload_records_the_version_its_cases_and_the_strategies_it_made(editor):
    version = suite_import(
        name="greet",
        fileobj=io.BytesIO(b"input,expected\nhi,hello\nbye,ciao\n"),
        filename="cases.csv",
        user=editor,
    )
    [upload] = events("suite.upload")
    assert (upload.actor_id, upload.actor_name, upload.suite_id) == (editor.pk, "eddie", version.suite_id)
    assert (upload.object_type, upload.object_id) == ("suiteversion", str(version.pk))
    assert upload.after["version"] == 1 and upload.after["cases"] == 2
    assert (upload.after["source_name"], upload.after["source_format"]) == ("cases.csv", "csv")
    assert upload.after["new_suite"] is True

    suite_import(name="pirates", files=[SourceFile("promptfooconfig.yaml", PROMPTFOO)], user=editor)
    [made] = events("strategy.create")
    assert made.after["kind"] == "template" and made.after["name"].startswith("pirates: ")
    assert made.after["params"] == {"template": "Say it like a pirate: {{body}}"}


def test_endpoint_changes_record_before_and_after_and_never_a_key(editor, monkeypatch):
    monkeypatch.setenv("ACME_KEY", "sk-secret-value-123")
    endpoint = endpoint_create(
        name="acme", provider="openai", model="m1", base_url="https://acme.example/v1",
        api_key_env="ACME_KEY", price_in="1.5", user=editor,
    )  # fmt: skip
    [created] = events("endpoint.create")
    assert created.after["api_key_env"] == "ACME_KEY" and created.after["price_in"] == "1.500000"

    endpoint_update(endpoint=endpoint, model="m2", params={"temperature": 0.2}, user=editor)
    endpoint_update(endpoint=endpoint, model="m2", user=editor)  # no change: no event
    endpoint_update_costs(
        endpoint=endpoint, price_in="2", price_out="0", price_hour="0", hosting_monthly="0", user=editor
    )
    updates = events("endpoint.update")
    assert [(u.before, u.after) for u in updates] == [
        ({"model": "m1", "params": {}}, {"model": "m2", "params": {"temperature": 0.2}}),
        ({"price_in": "1.500000"}, {"price_in": "2.000000"}),
    ]
    everything = str(list(AuditEvent.objects.values_list("before", "after", "object_repr")))
    assert "sk-secret-value-123" not in everything


def test_runs_baselines_schedules_channels_and_tokens_are_recorded(editor, task_queue):
    version = suite_version(test_cases=3)
    endpoint = EndpointFactory(name="m")
    run = run_create(suite_version=version, arms=[(endpoint, strategy("zero-shot"))], user=editor)
    [created] = events("run.create")
    assert created.after["trigger"] == "manual" and created.after["arms"] == ["m · zero-shot"]
    assert created.suite_id == version.suite_id and created.actor_name == "eddie"
    assert run_cancel(run_id=run.pk, user=editor)
    assert not run_cancel(run_id=run.pk, user=editor)  # already cancelled: nothing happened, no event
    assert len(events("run.cancel")) == 1

    done = finished_run(version, [ArmSpec(endpoint, "zero-shot", [1.0, 0.0, 1.0])])
    baseline_set(suite=version.suite, run=done, user=editor)
    baseline_set(suite=version.suite, run=done, user=editor)  # unchanged: not recorded twice
    [baseline] = events("suite.baseline")
    assert (baseline.before, baseline.after) == ({"baseline_run": None}, {"baseline_run": done.pk})

    schedule = schedule_create(
        suite=version.suite, name="nightly", arms=[(endpoint, strategy("zero-shot"))], user=editor
    )
    schedule_update(schedule=schedule, cron="0 3 * * *", user=editor)
    schedule_delete(schedule=schedule, user=editor)
    assert [e.action for e in AuditEvent.objects.filter(action__startswith="schedule.").order_by("seq")] == [
        "schedule.create", "schedule.update", "schedule.delete",
    ]  # fmt: skip
    assert events("schedule.update")[0].before == {"cron": "0 2 * * *"}

    channel = alert_channel_create(name="ops", kind="email", recipients="ops@example.com", user=editor)
    alert_channel_update(
        channel=channel, name="ops", kind="email", recipients="oncall@example.com", user=editor
    )
    alert_channel_delete(channel=channel, user=editor)
    assert events("alert_channel.update")[0].after == {"recipients": "oncall@example.com"}
    assert len(events("alert_channel.delete")) == 1

    row, token = api_token_create(user=editor, name="CI")
    api_token_revoke(token=row, user=editor)
    [made], [revoked] = events("token.create"), events("token.revoke")
    assert made.after["prefix"] == row.prefix and revoked.after["name"] == "CI"
    assert token not in str(list(AuditEvent.objects.values_list("before", "after", "object_repr")))

    profile = {
        "quality_target": 0.9, "monthly_volume": 10_000, "horizon_months": 12, "retrains_per_year": 0,
        "examples_available": None, "training_price_per_1m": "3.00", "training_epochs": 3, "urgency": "soon",
    }  # fmt: skip
    suite_update_profile(suite=version.suite, **profile, user=editor)
    [changed] = events("suite.profile")
    assert (changed.before, changed.after) == ({"quality_target": 0.8}, {"quality_target": 0.9})

    check = audit_verify()
    assert check.ok, check.problems
    assert check.checked == AuditEvent.objects.count()


def _some_events(n: int = 5) -> list[AuditEvent]:
    version = suite_version(test_cases=2)
    endpoint = EndpointFactory()
    runs = [finished_run(version, [ArmSpec(endpoint, "zero-shot", [1.0, 1.0])]) for _ in range(n)]
    for run in runs:
        baseline_set(suite=version.suite, run=run, user=None)
    return list(AuditEvent.objects.order_by("seq"))


def test_the_chain_verifies(db, capsys):
    _some_events()
    call_command("verify_audit")
    assert "audit log intact: 5 events" in capsys.readouterr().out


def test_editing_a_row_in_the_database_makes_verify_audit_fail_and_name_the_event(db, capsys):
    chain = _some_events()
    target = chain[2]
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE evaluations_auditevent SET actor_name = %s WHERE seq = %s", ["mallory", target.seq]
        )
    with pytest.raises(CommandError, match="tampered with"):
        call_command("verify_audit")
    err = capsys.readouterr().err
    assert f"event #{target.seq} " in err and "content was changed" in err
    assert f"event #{chain[1].seq} " not in err and f"event #{chain[3].seq} " not in err


def test_rewriting_the_values_of_a_row_is_found_too(db, capsys):
    chain = _some_events()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE evaluations_auditevent SET after = %s WHERE seq = %s",
            ['{"baseline_run": 1}', chain[1].seq],
        )
    with pytest.raises(CommandError):
        call_command("verify_audit")
    assert f"event #{chain[1].seq} " in capsys.readouterr().err


def test_removing_a_middle_row_is_found(db):
    chain = _some_events()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM evaluations_auditevent WHERE seq = %s", [chain[2].seq])
    check = audit_verify()
    assert not check.ok
    assert any(f"event #{chain[3].seq} " in p and "missing" in p for p in check.problems)
    assert any(f"event #{chain[3].seq} " in p and "does not link" in p for p in check.problems)


def test_removing_the_last_row_is_found(db, capsys):
    chain = _some_events()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM evaluations_auditevent WHERE seq = %s", [chain[-1].seq])
    with pytest.raises(CommandError):
        call_command("verify_audit")
    assert (
        f"the log ends at event #{chain[-2].seq} but its head says #{chain[-1].seq}"
        in capsys.readouterr().err
    )


def test_the_log_cannot_be_changed_through_the_orm(db):
    event = _some_events(1)[0]
    with pytest.raises(TypeError, match="append-only"):
        AuditEvent.objects.update(actor_name="mallory")
    with pytest.raises(TypeError, match="append-only"):
        AuditEvent.objects.filter(pk=event.pk).delete()
    with pytest.raises(TypeError, match="append-only"):
        event.delete()
    event.actor_name = "mallory"
    with pytest.raises(TypeError, match="append-only"):
        event.save()
    assert AuditEvent.objects.get(pk=event.pk).actor_name == "system"
    assert AuditHead.objects.get(pk=1).seq == event.seq
    assert audit_verify().ok


def test_an_event_outlives_the_run_it_names(db):
    version = suite_version(test_cases=2)
    run = finished_run(version, [ArmSpec(EndpointFactory(), "zero-shot", [1.0, 1.0])])
    baseline_set(suite=version.suite, run=run, user=None)
    baseline_set(suite=version.suite, run=None, user=None)
    Run.objects.filter(pk=run.pk).delete()
    assert [e.after for e in events("suite.baseline")] == [{"baseline_run": run.pk}, {"baseline_run": None}]
    assert audit_verify().ok


# --- secrets never reach an event -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "named"),
    [
        ({"params": {"api_key": "sk-live-123"}}, "params", "params.api_key"),
        ({"params": {"extra_headers": {"Authorization": "Bearer sk-live-123"}}}, "params", "Authorization"),
        ({"params": {"hfToken": "sk-live-123"}}, "params", "params.hfToken"),
        ({"base_url": "https://bob:sk-live-123@llm.example/v1"}, "base_url", "user:password@"),
        ({"base_url": "https://llm.example/v1?api-version=1&api-key=sk-live-123"}, "base_url", "?api-key="),
        ({"base_url": "https://fn.example/api?code=sk-live-123"}, "base_url", "?code="),
    ],
)
def test_an_endpoint_that_would_store_a_secret_is_refused_and_the_secret_never_echoed(
    editor, fields, field, named
):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as err:
        endpoint_create(name="acme", provider="openai", model="m1", user=editor, **fields)
    message = " ".join(err.value.message_dict[field])
    assert named in message and "api_key_env" in message and "environment variable" in message
    assert "sk-live-123" not in message
    endpoint = endpoint_create(name="acme", provider="openai", model="m1", user=editor)
    with pytest.raises(ValidationError) as err:
        endpoint_update(endpoint=endpoint, api_key_env="", user=editor, **fields)
    assert named in " ".join(err.value.message_dict[field])
    assert "sk-live-123" not in str(list(AuditEvent.objects.values_list("before", "after", "object_repr")))


def test_generation_params_named_like_tokens_are_not_secrets(editor):
    params = {"max_tokens": 64, "stop_token_ids": [2], "top_k": 5, "prompt_cache_key": "suite-1"}
    endpoint = endpoint_create(
        name="acme", provider="openai", model="m1", base_url="https://llm.example/v1?api-version=2024-06-01",
        params=params, user=editor,
    )  # fmt: skip
    assert endpoint.params == params
    [created] = events("endpoint.create")
    assert created.after["params"] == params
    assert created.after["base_url"] == "https://llm.example/v1?api-version=2024-06-01"


def test_the_endpoints_page_and_the_api_refuse_a_key_in_the_url_without_echoing_it(user, client):
    from django.urls import reverse

    client.force_login(user)
    page = client.post(
        reverse("evaluations:endpoint-list"),
        {"name": "acme", "provider": "openai", "model": "m1", "base_url": "https://bob:sk-live-123@llm.example/v1",
         "kind": "base", "price_in": 0, "price_out": 0, "price_hour": 0, "max_concurrency": 4},
    )  # fmt: skip
    assert page.status_code == 400 and "user:password@" in page.content.decode()
    assert "sk-live-123" not in page.content.decode()
    api = client.post(
        "/api/v1/endpoints/",
        {"name": "acme", "provider": "openai", "model": "m1", "params": {"x-api-key": "sk-live-123"}},
        content_type="application/json",
    )
    assert api.status_code == 400 and "params.x-api-key" in api.content.decode()
    assert "sk-live-123" not in api.content.decode()
    assert not Endpoint.objects.exists()


def test_audit_record_redacts_secret_looking_keys_and_urls(db):
    event = audit_record(
        actor=None,
        action="test.secrets",
        object_type="thing",
        object_repr="posted to https://hooks.example/x?token=sk-live-1",
        before={
            "params": {"api_key": "sk-live-2", "headers": {"X-API-Key": "sk-live-3"}, "max_tokens": 5},
            "api_key_env": "ACME_KEY",
            "token": "",
        },
        after={
            "base_url": "https://bob:sk-live-4@llm.example/v1?api-version=1&key=sk-live-5",
            "note": "see https://llm.example/v1 and https://ann@llm.example",
        },
    )
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.before == {
        "params": {"api_key": "***", "headers": {"X-API-Key": "***"}, "max_tokens": 5},
        "api_key_env": "ACME_KEY",  # a variable's name, not a secret
        "token": "",  # nothing to hide
    }
    assert stored.after == {
        "base_url": "https://***@llm.example/v1?api-version=1&key=***",
        "note": "see https://llm.example/v1 and https://***@llm.example",
    }
    assert stored.object_repr == "posted to https://hooks.example/x?token=***"
    assert "sk-live" not in str((stored.before, stored.after, stored.object_repr))
    assert audit_verify().ok


def test_a_key_stored_before_the_rule_is_redacted_when_the_endpoint_changes(editor):
    endpoint = endpoint_create(name="acme", provider="openai", model="m1", params={"top_p": 1}, user=editor)
    Endpoint.objects.filter(pk=endpoint.pk).update(params={"top_p": 1, "api_key": "sk-legacy-1"})
    endpoint_update(endpoint=endpoint, params={"top_p": 1}, user=editor)  # takes the key out
    [update] = events("endpoint.update")
    assert update.before == {"params": {"top_p": 1, "api_key": "***"}} and update.after == {
        "params": {"top_p": 1}
    }


# --- one way to record an update ---------------------------------------------------------------------


def test_audit_update_records_only_what_changed_as_stored(editor):
    endpoint = endpoint_create(name="acme", provider="openai", model="m1", price_in="1.5", user=editor)
    before = stored_snapshot(endpoint, ["price_in", "model"])
    endpoint.price_in = Decimal("1.50")  # the same value as stored: no change
    endpoint.save()
    assert (
        audit_update(actor=editor, action="test.update", obj=endpoint, before=before, fields=["price_in"])
        is None
    )
    endpoint.model = "m2"
    endpoint.save()
    event = audit_update(
        actor=editor, action="test.update", obj=endpoint, before=before, fields=["price_in", "model"]
    )
    assert (event.before, event.after, event.actor_name) == ({"model": "m1"}, {"model": "m2"}, "eddie")


def test_an_upload_records_the_suite_fields_it_changed_before_and_after(editor):
    csv = b"input,expected\nhi,hello\n"
    suite_import(name="greet", fileobj=io.BytesIO(csv), filename="a.csv", quality_target=0.7, user=editor)
    suite_import(
        name="greet", fileobj=io.BytesIO(csv), filename="b.csv", quality_target=0.9, description="hi",
        monthly_volume=None, user=editor,
    )  # fmt: skip
    suite_import(name="greet", fileobj=io.BytesIO(csv), filename="c.csv", quality_target=0.9, user=editor)
    first, second, third = events("suite.upload")
    assert first.before is None and first.after["suite"]["quality_target"] == 0.7
    assert second.before == {"suite": {"quality_target": 0.7, "description": ""}}
    assert second.after["suite"] == {"quality_target": 0.9, "description": "hi"}
    assert third.before is None and "suite" not in third.after  # same values: nothing changed


def test_cancelling_a_fine_tune_is_recorded_once(editor, monkeypatch, task_queue):
    from evaluations.services.finetune import finetune_cancel, finetune_create

    version = suite_version(test_cases=2, train_cases=4)
    local = EndpointFactory(name="smol", provider="local", model="smollm2-135m-instruct", base_url="")
    job = finetune_create(suite_version=version, base_endpoint=local, user=editor)
    assert finetune_cancel(job_id=job.pk, user=editor)
    assert not finetune_cancel(job_id=job.pk, user=editor)  # already cancelled: no second event
    [cancel] = events("finetune.cancel")
    assert (cancel.actor_name, cancel.suite_id, cancel.object_id) == ("eddie", version.suite_id, str(job.pk))
    assert (cancel.before, cancel.after) == ({"status": "queued"}, {"status": "cancelled"})


# --- canonical values: what is hashed is what the database gives back ---------------------------------


def test_values_are_hashed_as_the_database_returns_them(db):
    event = audit_record(
        actor=None,
        action="test.\ud800values",
        object_type="thing",
        object_repr="lone \udc00 surrogate",
        before={"neg_zero": -0.0, "big": 1e16, "huge": 1.5e300, "small": 1e-7, "int": 2**60 + 1},
        after={"lone": "a\ud800b", "pair": "\ud83d\ude00", "\udfffname": 1, "nul": "a\x00b"},
    )
    assert event.before == {
        "neg_zero": 0.0, "big": 10**16, "huge": 15 * 10**299, "small": 1e-7, "int": 2**60 + 1,
    }  # fmt: skip
    assert event.after == {"lone": "a\ufffdb", "pair": "😀", "\ufffdname": 1, "nul": "ab"}
    assert repr(event.before["neg_zero"]) == "0.0" and type(event.before["big"]) is int
    assert (event.action, event.object_repr) == ("test.\ufffdvalues", "lone \ufffd surrogate")
    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.before, stored.after) == (event.before, event.after)
    assert event_hash(stored) == stored.hash and audit_verify().ok


# --- verify_audit and a head kept elsewhere ----------------------------------------------------------


def test_verify_audit_prints_the_head_and_checks_an_expected_one(db, capsys):
    chain = _some_events(3)
    call_command("verify_audit")
    out = capsys.readouterr().out
    assert f"head: event #{chain[-1].seq} {chain[-1].hash}" in out and "--expect-head" in out
    call_command("verify_audit", "--expect-head", chain[1].hash.upper())
    assert f"is event #{chain[1].seq}" in capsys.readouterr().out
    with pytest.raises(CommandError):
        call_command("verify_audit", "--expect-head", "f" * 64)
    assert "no event of the intact chain has the hash" in capsys.readouterr().err


def test_a_log_rewritten_with_every_hash_recomputed_fails_against_a_kept_head(db, capsys):
    chain = _some_events(3)
    kept = chain[-1].hash
    with connection.cursor() as cursor:  # mallory edits event 2 and recomputes every hash after it
        cursor.execute(
            "UPDATE evaluations_auditevent SET actor_name = 'mallory' WHERE seq = %s", [chain[1].seq]
        )
        prev = chain[0].hash
        for event in AuditEvent.objects.filter(seq__gte=chain[1].seq).order_by("seq"):
            event.prev_hash = prev
            prev = event_hash(event)
            cursor.execute(
                "UPDATE evaluations_auditevent SET prev_hash = %s, hash = %s WHERE id = %s",
                [event.prev_hash, prev, event.pk],
            )
        cursor.execute("UPDATE evaluations_audithead SET hash = %s", [prev])
    call_command("verify_audit")  # the rewritten chain is consistent in itself...
    capsys.readouterr()
    with pytest.raises(CommandError, match="tampered with"):
        call_command("verify_audit", "--expect-head", kept)  # ...but not with the head kept elsewhere
    assert "rewritten" in capsys.readouterr().err
