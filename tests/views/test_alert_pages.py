"""The Alerts page: channels with their last deliveries, forms to create, edit and delete them, a
"Send test" button, and a finding's deliveries on its page; a webhook URL never reaches a page."""

from __future__ import annotations

import html

import pytest
from django.core import mail
from django.urls import reverse

from evaluations.models import AlertChannel, AlertDelivery, Finding, FindingKind
from evaluations.services import alerts
from evaluations.services.alerts import alert_channel_create
from tests.factories import EndpointFactory
from tests.runs import ArmSpec, finished_run, suite_version

SECRET = "s3cr3t-token-xyz"


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch):
    monkeypatch.setattr(alerts, "_sleep", lambda seconds: None)


@pytest.fixture
def finding(db):
    version = suite_version(test_cases=2, name="reviews")
    run = finished_run(version, [ArmSpec(EndpointFactory(name="model"), "plain", [1.0, 0.0])])
    return Finding.objects.create(
        suite=version.suite,
        run=run,
        arm=run.arms.get(),
        kind=FindingKind.REGRESSION,
        severity="critical",
        title="model · plain: mean score fell from 0.900 to 0.700",
        details={"metric": "score", "diff": -0.2},
    )


@pytest.fixture
def channel(db):
    return alert_channel_create(name="team-mail", kind="email", recipients="team@example.org")


def _form(**fields) -> dict:
    data = {"name": "chat", "kind": "slack", "suite": "", "recipients": "", "url_env": "", "enabled": "on"}
    data["min_severity"] = "warning"
    data.update(fields)
    return data


@pytest.mark.parametrize(
    ("name", "needs_pk", "method"),
    [
        ("evaluations:alert-list", False, "get"),
        ("evaluations:alert-channel-new", False, "get"),
        ("evaluations:alert-channel-new", False, "post"),
        ("evaluations:alert-channel-edit", True, "get"),
        ("evaluations:alert-channel-edit", True, "post"),
        ("evaluations:alert-channel-delete", True, "get"),
        ("evaluations:alert-channel-delete", True, "post"),
        ("evaluations:alert-channel-test", True, "post"),
        ("evaluations:alert-retry", True, "post"),
    ],
)
def test_every_alert_page_sends_an_anonymous_user_to_the_login_page(client, channel, name, needs_pk, method):
    url = reverse(name, args=[channel.pk] if needs_pk else [])
    response = getattr(client, method)(url, _form(name="sneaky") if method == "post" else None)
    assert response.status_code == 302 and response["Location"] == f"{reverse('login')}?next={url}"
    assert list(AlertChannel.objects.values_list("name", flat=True)) == ["team-mail"]
    assert mail.outbox == []


def test_the_nav_links_the_alerts_page_and_it_explains_an_empty_state(auth_client):
    page = auth_client.get(reverse("evaluations:home")).content.decode()
    assert f'href="{reverse("evaluations:alert-list")}"' in page
    page = auth_client.get(reverse("evaluations:alert-list")).content.decode()
    assert "No alert channels yet" in page


def test_the_page_lists_channels_with_their_last_deliveries(auth_client, finding, channel, monkeypatch):
    monkeypatch.setenv("FTVP_CHAT_HOOK", "http://127.0.0.1:9/hooks/" + SECRET)
    hook = alert_channel_create(name="chat", kind="slack", url_env="FTVP_CHAT_HOOK", suite=finding.suite)
    AlertDelivery.objects.create(finding=finding, channel=channel, status="sent", attempts=1)
    AlertDelivery.objects.create(
        finding=finding, channel=hook, status="failed", attempts=3, error="HTTP 500: <script>x</script>"
    )
    page = auth_client.get(reverse("evaluations:alert-list")).content.decode()
    assert "team-mail" in page and "team@example.org" in page and "all suites" in page
    assert "chat" in page and "<code>FTVP_CHAT_HOOK</code>" in page and "reviews" in page
    assert "1 sent · 0 failed · 0 pending" in page and "0 sent · 1 failed · 0 pending" in page
    assert html.escape(finding.title) in page
    assert "HTTP 500: &lt;script&gt;x&lt;/script&gt;" in page and "<script>x" not in page
    assert page.count("Send again") == 1 and page.count("Send test") == 2
    assert SECRET not in page


def test_a_channel_is_created_edited_and_deleted(auth_client, finding):
    response = auth_client.post(
        reverse("evaluations:alert-channel-new"),
        _form(name="chat", url_env="FTVP_CHAT_HOOK", suite=finding.suite_id, min_severity="critical"),
    )
    assert response.status_code == 302 and response["Location"] == reverse("evaluations:alert-list")
    chat = AlertChannel.objects.get(name="chat")
    assert (chat.kind, chat.url_env, chat.suite, chat.min_severity, chat.enabled) == (
        "slack", "FTVP_CHAT_HOOK", finding.suite, "critical", True,
    )  # fmt: skip
    edit_url = reverse("evaluations:alert-channel-edit", args=[chat.pk])
    form = auth_client.get(edit_url).content.decode()
    assert 'value="FTVP_CHAT_HOOK"' in form and "never stored" in form
    data = _form(name="team-mail", kind="email", recipients="a@example.org, b@example.org")
    del data["enabled"]  # unticked
    response = auth_client.post(edit_url, data)
    assert response.status_code == 302
    chat.refresh_from_db()
    assert (chat.name, chat.kind, chat.recipients, chat.url_env, chat.suite, chat.enabled) == (
        "team-mail", "email", "a@example.org, b@example.org", "", None, False,
    )  # fmt: skip
    AlertDelivery.objects.create(finding=finding, channel=chat)
    delete_url = reverse("evaluations:alert-channel-delete", args=[chat.pk])
    confirm = auth_client.get(delete_url).content.decode()
    assert "history of 1 delivery" in confirm
    assert auth_client.post(delete_url).status_code == 302
    assert not AlertChannel.objects.exists() and not AlertDelivery.objects.exists()
    assert Finding.objects.filter(pk=finding.pk).exists()


def test_a_pasted_webhook_url_is_refused_and_never_echoed(auth_client):
    pasted = f"https://hooks.example.org/services/{SECRET}"
    response = auth_client.post(reverse("evaluations:alert-channel-new"), _form(url_env=pasted))
    page = response.content.decode()
    assert response.status_code == 400 and "never the URL itself" in page
    assert SECRET not in page and not AlertChannel.objects.exists()


def test_form_errors_say_what_to_fix(auth_client, channel):
    response = auth_client.post(
        reverse("evaluations:alert-channel-new"), _form(name="team-mail", kind="email", recipients="x")
    )
    page = response.content.decode()
    assert response.status_code == 400 and "&#x27;x&#x27; is not an e-mail address" in page
    response = auth_client.post(
        reverse("evaluations:alert-channel-new"),
        _form(name="team-mail", kind="email", recipients="x@example.org"),
    )
    assert response.status_code == 400 and "already exists" in response.content.decode()
    assert AlertChannel.objects.count() == 1


def test_send_test_reports_success_and_failure(auth_client, webhook, monkeypatch):
    chat = alert_channel_create(name="chat", kind="webhook", url_env="FTVP_CHAT_HOOK")
    test_url = reverse("evaluations:alert-channel-test", args=[chat.pk])
    monkeypatch.delenv("FTVP_CHAT_HOOK", raising=False)
    page = auth_client.post(test_url, follow=True).content.decode()
    assert "Test alert on chat not sent: environment variable FTVP_CHAT_HOOK is not set" in page
    monkeypatch.setenv("FTVP_CHAT_HOOK", webhook.url)
    page = auth_client.post(test_url, follow=True).content.decode()
    assert "Test alert sent on chat." in page
    assert webhook.bodies[0]["event"] == "test" and webhook.bodies[0]["channel"] == "chat"
    assert auth_client.get(test_url).status_code == 405  # a test is sent by POST only


def test_the_finding_page_shows_its_deliveries_and_sends_a_failed_one_again(
    auth_client, finding, channel, task_queue
):
    failed = AlertDelivery.objects.create(
        finding=finding, channel=channel, status="failed", attempts=1, error="the mail server refused x"
    )
    finding_url = reverse("evaluations:finding-detail", args=[finding.pk])
    page = auth_client.get(finding_url).content.decode()
    assert "team-mail" in page and "Failed" in page and "the mail server refused x" in page
    response = auth_client.post(reverse("evaluations:alert-retry", args=[failed.pk]), {"next": finding_url})
    assert response.status_code == 302 and response["Location"] == finding_url
    assert task_queue.names() == ["send_alert"]
    task_queue.drain()
    failed.refresh_from_db()
    assert failed.status == "sent" and mail.outbox[0].to == ["team@example.org"]
    page = auth_client.get(finding_url).content.decode()
    assert "Sent" in page and "Send again" not in page
    # Somewhere else entirely is not a place to go back to.
    response = auth_client.post(
        reverse("evaluations:alert-retry", args=[failed.pk]), {"next": "https://evil.example/"}
    )
    assert response["Location"] == reverse("evaluations:alert-list")


def test_a_finding_sent_nowhere_says_so(auth_client, finding):
    page = auth_client.get(reverse("evaluations:finding-detail", args=[finding.pk])).content.decode()
    assert "Not sent anywhere" in page and "critical findings" in page
