"""services/secrets.py: which configured values count as secrets, and the writes that mask them that
the whole-run test (tests/security/test_secrets.py) does not reach: an answer cached before answers
were redacted, a run's error, an alert channel's test message."""

from __future__ import annotations

import pytest

from evaluations.models import AlertChannel, CompletionCache, Endpoint, Result, Run
from evaluations.redaction import MASK
from evaluations.services import alerts, generation
from evaluations.services.alerts import AlertError, alert_channel_test
from evaluations.services.runs import run_create, run_fail
from evaluations.services.secrets import configured_secrets, redactor
from tests.factories import CaseFactory, EndpointFactory, SuiteVersionFactory, strategy

KEY = "sk-svc-0123456789abcdefghijKLMNOP"


def test_the_secrets_are_the_values_of_the_variables_endpoints_channels_and_the_judge_name(
    db, monkeypatch, settings
):
    monkeypatch.setenv("SVC_KEY", KEY)
    monkeypatch.setenv("SVC_KEY_FROM_FILE", "from-a-file-0123456\n")
    monkeypatch.setenv("SVC_HOOK", "https://user:hunter2hunter2@hooks.example.org/services/T0/B0/abcdefgh")
    monkeypatch.setenv("FTVP_JUDGE_API_KEY", "judge-key-0123456789")
    monkeypatch.setenv("FTVP_JUDGE_TOKEN_ENV", "SVC_JUDGE_TOKEN")
    monkeypatch.setenv("SVC_JUDGE_TOKEN", "judge-token-0123456789")
    monkeypatch.setenv("FTVP_JUDGE_MODEL", "gpt-judge-not-a-secret")
    settings.EMAIL_HOST_PASSWORD = "mail-password-0123"
    EndpointFactory(name="a", api_key_env="SVC_KEY")
    EndpointFactory(name="b", api_key_env="SVC_KEY_FROM_FILE")
    EndpointFactory(name="c", api_key_env="SVC_UNSET")
    AlertChannel.objects.create(name="hook", kind="slack", url_env="SVC_HOOK")

    found = configured_secrets()
    assert KEY in found
    assert "from-a-file-0123456" in found  # as sent: stripped
    hook = "https://user:hunter2hunter2@hooks.example.org/services/T0/B0/abcdefgh"
    assert {hook, "/services/T0/B0/abcdefgh", "hunter2hunter2"} <= set(found)
    assert {"judge-key-0123456789", "judge-token-0123456789"} <= set(found)
    assert "gpt-judge-not-a-secret" not in found
    assert {settings.SECRET_KEY, "mail-password-0123"} <= set(found)
    masked = redactor()(f"{KEY} {hook} judge-token-0123456789 mail-password-0123 gpt-judge-not-a-secret")
    assert masked == f"{MASK} {MASK} {MASK} {MASK} gpt-judge-not-a-secret"


def test_an_endpoint_without_a_key_or_with_the_placeholder_masks_nothing(db, monkeypatch):
    monkeypatch.setenv("SVC_PLACEHOLDER", "not-needed")
    monkeypatch.setenv("SVC_SHORT", "abc")
    EndpointFactory(name="a", api_key_env="SVC_PLACEHOLDER")
    EndpointFactory(name="b", api_key_env="SVC_SHORT")
    EndpointFactory(name="c", api_key_env="")
    text = "the key is not-needed, abc is fine"
    assert redactor()(text) == text


def test_an_answer_cached_with_a_key_is_served_and_kept_masked(db, fake_openai, task_queue, monkeypatch):
    monkeypatch.setenv("SVC_KEY", KEY)
    fake_openai.responder = lambda body: f"echo with {KEY} inside"
    endpoint = EndpointFactory(name="m", api_key_env="SVC_KEY", base_url=fake_openai.base_url)
    version = SuiteVersionFactory()
    CaseFactory(version=version, key="c0", position=0, input="q0", expected="a")
    # A run before answers were redacted: the key went into the result and the cache.
    with pytest.MonkeyPatch.context() as before:
        before.setattr(generation, "redactor", lambda: lambda text: text)
        run_create(suite_version=version, arms=[(endpoint, strategy("plain"))])
        task_queue.drain()
    assert KEY in CompletionCache.objects.get().output
    calls = len(fake_openai.requests)

    second = run_create(suite_version=version, arms=[(endpoint, strategy("plain"))])
    task_queue.drain()
    result = Result.objects.get(arm__run=second)
    assert result.cached and len(fake_openai.requests) == calls  # served from the cache
    assert result.output == f"echo with {MASK} inside"
    assert CompletionCache.objects.get().output == f"echo with {MASK} inside"


def test_a_runs_error_is_stored_masked(db, monkeypatch):
    monkeypatch.setenv("SVC_KEY", KEY)
    EndpointFactory(name="m", api_key_env="SVC_KEY")
    version = SuiteVersionFactory()
    CaseFactory(version=version)
    run = Run.objects.create(suite_version=version, status="running")
    assert run_fail(run_id=run.pk, error=f"the worker said Bearer {KEY}")
    run.refresh_from_db()
    assert run.error == f"the worker said Bearer {MASK}"


def test_an_alert_error_is_masked_even_from_a_test_message(db, webhook, monkeypatch):
    monkeypatch.setenv("SVC_KEY", KEY)
    monkeypatch.setenv("SVC_HOOK", webhook.url)
    Endpoint.objects.create(name="m", provider="openai", model="m", api_key_env="SVC_KEY")
    channel = AlertChannel.objects.create(name="hook", kind="webhook", url_env="SVC_HOOK")
    webhook.fail_next(401, body=f"bad token {KEY[:20]}".encode())  # a cut-off key too
    with pytest.raises(AlertError) as caught:
        alert_channel_test(channel=channel)
    assert str(caught.value) == f"the webhook in SVC_HOOK answered HTTP 401: bad token {MASK}"
    assert not caught.value.transient
    assert alerts.redactor is redactor
