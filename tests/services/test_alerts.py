"""Alerts: which channel takes which finding, sending once, e-mail content, webhook and Slack payloads
received by a real loopback server, retries of transient failures, and a webhook URL that never leaks."""

from __future__ import annotations

import logging
import smtplib
import socket
from datetime import timedelta
from http.client import InvalidURL

import pytest
from django.core import mail
from django.core.exceptions import ValidationError

from evaluations.models import AlertChannel, AlertDelivery, Finding, FindingKind, Severity
from evaluations.services import alerts
from evaluations.services.alerts import (
    AlertError,
    alert_channel_create,
    alert_channel_test,
    alert_channel_update,
    alert_delivery_retry,
    alert_send,
    alerts_recover,
    findings_notify,
)
from tests.factories import EndpointFactory
from tests.runs import ArmSpec, finished_run, suite_version

SECRET = "s3cr3t-token-xyz"  # in the receiver's URL path, as in a Slack webhook URL


@pytest.fixture(autouse=True)
def slept(monkeypatch):
    """The backoff waits, recorded instead of slept."""
    waits: list[float] = []
    monkeypatch.setattr(alerts, "_sleep", waits.append)
    return waits


@pytest.fixture
def base_url(settings):
    settings.FTVP_BASE_URL = "https://ftvp.example.org"
    return settings.FTVP_BASE_URL


def _run(name: str):
    version = suite_version(test_cases=4, name=name)
    endpoint = EndpointFactory(name=f"{name}-model")
    return finished_run(version, [ArmSpec(endpoint, "plain", [1.0, 1.0, 0.0, 0.0])])


def _finding(run, *, kind=FindingKind.REGRESSION, severity=Severity.CRITICAL, **extra) -> Finding:
    return Finding.objects.create(
        suite=run.suite_version.suite,
        run=run,
        arm=run.arms.get(),
        kind=kind,
        severity=severity,
        title=extra.pop("title", f"model · plain: mean score fell from 0.900 to 0.700 ({kind})"),
        details=extra.pop(
            "details",
            {
                "metric": "score",
                "baseline": 0.9,
                "current": 0.7,
                "diff": -0.2,
                "p_value": 1e-5,
                "flipped": ["t0002", "t0003"],
                "flipped_count": 2,
                "score": {"nested": True},
            },
        ),
        **extra,
    )


@pytest.fixture
def run(db):
    return _run("reviews")


@pytest.fixture
def hook_channel(webhook, monkeypatch):
    def make(kind="webhook", env="FTVP_TEST_HOOK", **fields):
        monkeypatch.setenv(env, webhook.url)
        return alert_channel_create(name=fields.pop("name", f"{kind}-hook"), kind=kind, url_env=env, **fields)

    return make


def _delivery(finding: Finding, channel: AlertChannel) -> AlertDelivery:
    return AlertDelivery.objects.create(finding=finding, channel=channel)


# --- which findings go where -------------------------------------------------------------------------


def test_a_channel_takes_its_suite_or_every_suite_at_or_above_its_minimum_severity(run, task_queue):
    other_run = _run("tickets")
    suite, other = run.suite_version.suite, other_run.suite_version.suite
    critical = _finding(run, severity=Severity.CRITICAL)
    warning = _finding(run, kind=FindingKind.DRIFT, severity=Severity.WARNING)
    info = _finding(run, kind=FindingKind.TREND, severity=Severity.INFO)
    elsewhere = _finding(other_run, severity=Severity.CRITICAL)
    every = alert_channel_create(name="all", kind="email", recipients="team@example.org")
    only_critical = alert_channel_create(
        name="oncall", kind="email", recipients="oncall@example.org", suite=suite, min_severity="critical"
    )
    everything_here = alert_channel_create(
        name="suite-owner", kind="email", recipients="o@example.org", suite=suite, min_severity="info"
    )
    alert_channel_create(name="off", kind="email", recipients="x@example.org", enabled=False)
    tickets_only = alert_channel_create(name="tickets", kind="email", recipients="t@example.org", suite=other)

    made = findings_notify(run=run) + findings_notify(run=other_run)

    pairs = {(d.finding_id, d.channel_id) for d in made}
    assert pairs == {
        (critical.pk, every.pk),
        (warning.pk, every.pk),
        (critical.pk, only_critical.pk),
        (critical.pk, everything_here.pk),
        (warning.pk, everything_here.pk),
        (info.pk, everything_here.pk),
        (elsewhere.pk, every.pk),
        (elsewhere.pk, tickets_only.pk),
    }
    assert sorted(args[0] for name, args in task_queue.sent if name == "send_alert") == sorted(
        d.pk for d in made
    )


def test_notifying_again_sends_nothing_twice_and_skips_acknowledged_findings(run, task_queue):
    channel = alert_channel_create(name="all", kind="email", recipients="team@example.org")
    first = _finding(run)
    assert len(findings_notify(run=run)) == 1
    assert findings_notify(run=run) == []  # e.g. a re-score: the delivery exists
    acknowledged = _finding(run, kind=FindingKind.DRIFT, acknowledged_at=first.created_at)
    assert findings_notify(run=run) == []
    assert not AlertDelivery.objects.filter(finding=acknowledged).exists()
    task_queue.drain()
    assert len(mail.outbox) == 1 and AlertDelivery.objects.get().status == "sent"
    assert findings_notify(run=run) == [] and task_queue.sent == []
    assert AlertDelivery.objects.filter(channel=channel).count() == 1


def test_a_sent_delivery_is_not_sent_again(run, hook_channel, webhook):
    delivery = _delivery(_finding(run), hook_channel())
    alert_send(delivery_id=delivery.pk)
    alert_send(delivery_id=delivery.pk)  # a duplicate message
    assert len(webhook.received) == 1
    delivery.refresh_from_db()
    assert delivery.status == "sent" and delivery.attempts == 1 and delivery.sent_at


# --- e-mail -------------------------------------------------------------------------------------------


def test_the_email_names_severity_and_suite_and_links_the_run_and_the_finding(run, base_url):
    channel = alert_channel_create(name="team", kind="email", recipients="a@example.org; b@example.org")
    finding = _finding(run)
    delivery = alert_send(delivery_id=_delivery(finding, channel).pk)
    assert delivery.status == "sent" and delivery.attempts == 1
    (message,) = mail.outbox
    assert message.to == ["a@example.org", "b@example.org"]
    assert message.subject.startswith("[ftvp] Critical regression in reviews: model · plain: mean score")
    assert finding.title in message.body
    assert f"{base_url}/runs/{run.pk}/" in message.body
    assert f"{base_url}/findings/{finding.pk}/" in message.body
    assert "diff: -0.2" in message.body and "flipped cases: t0002, t0003" in message.body
    assert "nested" not in message.body  # nested details stay on the finding's page


@pytest.mark.parametrize(
    ("error", "transient", "says"),
    [
        (smtplib.SMTPServerDisconnected("Connection unexpectedly closed"), True, "could not send through"),
        (TimeoutError("timed out"), True, "could not send through"),
        (smtplib.SMTPRecipientsRefused({"a@example.org": (550, b"no such user")}), False, "refused a@"),
        (smtplib.SMTPRecipientsRefused({"a@example.org": (450, b"mailbox busy")}), True, "refused a@"),
        (smtplib.SMTPAuthenticationError(535, b"bad credentials"), False, "EMAIL_HOST_PASSWORD"),
    ],
)
def test_mail_server_failures_are_retried_only_when_transient(
    run, monkeypatch, slept, error, transient, says
):
    def refuse(*args, **kwargs):
        raise error

    monkeypatch.setattr(alerts, "send_mail", refuse)
    channel = alert_channel_create(name="team", kind="email", recipients="a@example.org")
    delivery = alert_send(delivery_id=_delivery(_finding(run), channel).pk)
    assert delivery.status == "failed" and says in delivery.error
    assert delivery.attempts == (3 if transient else 1)
    assert slept == ([2.0, 8.0] if transient else [])


# --- webhooks -----------------------------------------------------------------------------------------


def test_a_webhook_receives_the_documented_json_with_the_run_link(run, hook_channel, webhook, base_url):
    finding = _finding(run)
    delivery = alert_send(delivery_id=_delivery(finding, hook_channel()).pk)
    assert delivery.status == "sent"
    (received,) = webhook.received
    assert received.headers["content-type"] == "application/json"
    body = received.json
    assert body["event"] == "finding"
    assert body["run_url"] == f"{base_url}/runs/{run.pk}/"
    assert body["finding"] == {
        "id": finding.pk,
        "kind": "regression",
        "severity": "critical",
        "title": finding.title,
        "suite": "reviews",
        "suite_id": run.suite_version.suite_id,
        "run_id": run.pk,
        "arm": "reviews-model · plain",
        "arm_id": finding.arm_id,
        "baseline_run_id": None,
        "created_at": finding.created_at.isoformat(),
        "details": {
            "metric": "score",
            "baseline": 0.9,
            "current": 0.7,
            "diff": -0.2,
            "p_value": 1e-5,
            "flipped_count": 2,
        },
        "url": f"{base_url}/findings/{finding.pk}/",
    }


def test_a_slack_channel_receives_a_slack_compatible_message(run, hook_channel, webhook, base_url):
    finding = _finding(run, title="a <b> & c dropped")
    alert_send(delivery_id=_delivery(finding, hook_channel(kind="slack")).pk)
    body = webhook.bodies[0]
    assert set(body) == {"text", "blocks"}
    assert "Critical · Regression in reviews" in body["text"] and "a &lt;b&gt; &amp; c" in body["text"]
    header, title, facts, links = body["blocks"]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Critical · Regression in reviews", "emoji": True},
    }
    assert title["text"] == {"type": "mrkdwn", "text": "a &lt;b&gt; &amp; c dropped"}
    assert facts["fields"][0]["text"] == f"*Run*\n<{base_url}/runs/{run.pk}/|#{run.pk}>"
    assert len(facts["fields"]) <= 10 and all(f["type"] == "mrkdwn" for f in facts["fields"])
    assert f"<{base_url}/findings/{finding.pk}/|Open the finding>" in links["elements"][0]["text"]


def test_a_missing_variable_fails_at_once_naming_it(run, monkeypatch, slept):
    monkeypatch.delenv("FTVP_NOT_SET_HOOK", raising=False)
    channel = alert_channel_create(name="hook", kind="webhook", url_env="FTVP_NOT_SET_HOOK")
    delivery = alert_send(delivery_id=_delivery(_finding(run), channel).pk)
    assert delivery.status == "failed" and delivery.attempts == 1 and slept == []
    assert "environment variable FTVP_NOT_SET_HOOK is not set" in delivery.error


def test_a_variable_that_holds_no_http_url_is_refused(run, monkeypatch):
    monkeypatch.setenv("FTVP_TEST_HOOK", f"file:///etc/{SECRET}")
    channel = alert_channel_create(name="hook", kind="webhook", url_env="FTVP_TEST_HOOK")
    delivery = alert_send(delivery_id=_delivery(_finding(run), channel).pk)
    assert delivery.status == "failed" and "does not hold an http(s) URL" in delivery.error
    assert SECRET not in delivery.error


def test_a_500_is_retried_with_backoff_and_then_sent(run, hook_channel, webhook, slept):
    webhook.fail_next(500)
    delivery = alert_send(delivery_id=_delivery(_finding(run), hook_channel()).pk)
    assert delivery.status == "sent" and delivery.attempts == 2 and delivery.error == ""
    assert [r.status for r in webhook.received] == [500, 200] and slept == [2.0]


def test_a_429_waits_as_long_as_retry_after_says(run, hook_channel, webhook, slept):
    webhook.fail_next(429, headers={"Retry-After": "3"})
    delivery = alert_send(delivery_id=_delivery(_finding(run), hook_channel()).pk)
    assert delivery.status == "sent" and slept == [3.0]


def test_transient_failures_give_up_after_three_attempts(run, hook_channel, webhook, slept):
    webhook.fail_next(503, count=5)
    delivery = alert_send(delivery_id=_delivery(_finding(run), hook_channel()).pk)
    assert delivery.status == "failed" and delivery.attempts == 3 and len(webhook.received) == 3
    assert "answered HTTP 503" in delivery.error and "FTVP_TEST_HOOK" in delivery.error
    assert slept == [2.0, 8.0]


def test_a_400_is_permanent_and_says_what_the_receiver_said(run, hook_channel, webhook, slept):
    webhook.fail_next(400, body=b"invalid_payload")
    delivery = alert_send(delivery_id=_delivery(_finding(run), hook_channel(kind="slack")).pk)
    assert delivery.status == "failed" and delivery.attempts == 1 and slept == []
    assert delivery.error == "the webhook in FTVP_TEST_HOOK answered HTTP 400: invalid_payload"


def test_a_redirect_is_not_followed(run, hook_channel, webhook):
    webhook.fail_next(302, headers={"Location": "http://127.0.0.1:9/elsewhere"})
    delivery = alert_send(delivery_id=_delivery(_finding(run), hook_channel()).pk)
    assert delivery.status == "failed" and "HTTP 302 (a redirect" in delivery.error
    assert len(webhook.received) == 1


def test_a_silent_receiver_times_out_and_counts_as_transient(run, monkeypatch, settings, slept):
    settings.FTVP_WEBHOOK_TIMEOUT = 1
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)  # accepts connections, never answers
    monkeypatch.setattr(alerts, "RETRY_DELAYS", (0.5,))
    monkeypatch.setenv("FTVP_TEST_HOOK", f"http://127.0.0.1:{silent.getsockname()[1]}/{SECRET}")
    channel = alert_channel_create(name="hook", kind="webhook", url_env="FTVP_TEST_HOOK")
    try:
        delivery = alert_send(delivery_id=_delivery(_finding(run), channel).pk)
    finally:
        silent.close()
    assert delivery.status == "failed" and delivery.attempts == 2 and slept == [0.5]
    assert "did not answer within 1 s" in delivery.error


def test_the_url_never_reaches_an_error_the_database_or_the_logs(
    run, hook_channel, webhook, monkeypatch, caplog
):
    caplog.set_level(logging.DEBUG)
    # A receiver that echoes the URL back in its error, then an address where nothing listens.
    webhook.fail_next(404, body=f"no such hook: {webhook.url}".encode())
    first = alert_send(delivery_id=_delivery(_finding(run), hook_channel()).pk)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    monkeypatch.setenv("FTVP_TEST_HOOK", f"http://user:{SECRET}@127.0.0.1:{port}/hooks/{SECRET}")
    second = alert_send(delivery_id=_delivery(_finding(run, kind=FindingKind.DRIFT), first.channel).pk)
    assert first.status == second.status == "failed"
    assert "answered HTTP 404: no such hook" in first.error
    assert "could not reach the webhook in FTVP_TEST_HOOK" in second.error
    stored = [
        str(v)
        for model in (AlertChannel, AlertDelivery)
        for row in model.objects.values()
        for v in row.values()
    ]
    for text in [first.error, second.error, caplog.text, *stored]:
        assert SECRET not in text and "/hooks/" not in text


# --- channels ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "says"),
    [
        ({"kind": "email"}, "recipients", "at least one address"),
        ({"kind": "email", "recipients": "a@example.org, nope"}, "recipients", "'nope' is not an e-mail"),
        ({"kind": "webhook"}, "url_env", "needs the NAME"),
        ({"kind": "slack", "url_env": f"https://hooks.example.org/{SECRET}"}, "url_env", "never the URL"),
        ({"kind": "webhook", "url_env": "X", "min_severity": "huge"}, "min_severity", "'huge' is not one"),
    ],
)
def test_a_channel_is_refused_with_what_to_fix(db, fields, field, says):
    with pytest.raises(ValidationError) as caught:
        alert_channel_create(name="c", **fields)
    assert says in " ".join(caught.value.message_dict[field])
    assert SECRET not in str(caught.value.message_dict)
    assert not AlertChannel.objects.exists()


def test_a_channel_keeps_only_what_its_kind_uses(db):
    channel = alert_channel_create(name="c", kind="email", recipients=" a@example.org ,b@example.org ")
    assert channel.recipients == "a@example.org, b@example.org" and channel.url_env == ""
    alert_channel_update(
        channel=channel, name="c", kind="slack", recipients="a@example.org", url_env="SLACK_URL"
    )
    channel.refresh_from_db()
    assert (channel.kind, channel.recipients, channel.url_env) == ("slack", "", "SLACK_URL")
    with pytest.raises(ValidationError, match="already exists"):
        alert_channel_create(name="c", kind="webhook", url_env="OTHER")


def test_a_test_message_goes_out_on_every_kind(db, hook_channel, webhook, base_url):
    alert_channel_test(channel=alert_channel_create(name="mail", kind="email", recipients="a@example.org"))
    assert mail.outbox[0].subject == "[ftvp] Test alert from channel mail"
    alert_channel_test(channel=hook_channel())
    alert_channel_test(channel=hook_channel(kind="slack", env="FTVP_TEST_SLACK"))
    plain, slack = webhook.bodies
    assert plain["event"] == "test" and plain["url"] == f"{base_url}/alerts/"
    assert "every suite" in plain["text"] and set(slack) == {"text", "blocks"}
    webhook.fail_next(403, body=b"invalid_token")
    with pytest.raises(AlertError, match="HTTP 403: invalid_token"):
        alert_channel_test(channel=AlertChannel.objects.get(name="webhook-hook"))


def test_a_failed_delivery_can_be_sent_again(run, monkeypatch, webhook, task_queue):
    monkeypatch.delenv("FTVP_TEST_HOOK", raising=False)
    channel = alert_channel_create(name="hook", kind="webhook", url_env="FTVP_TEST_HOOK")
    delivery = alert_send(delivery_id=_delivery(_finding(run), channel).pk)
    assert delivery.status == "failed"
    monkeypatch.setenv("FTVP_TEST_HOOK", webhook.url)  # the operator sets the variable
    alert_delivery_retry(delivery=delivery)
    assert task_queue.names() == ["send_alert"]
    task_queue.drain()
    delivery.refresh_from_db()
    assert delivery.status == "sent" and delivery.attempts == 2 and len(webhook.bodies) == 1
    with pytest.raises(AlertError, match="sent already"):
        alert_delivery_retry(delivery=delivery)


def test_a_disabled_channel_does_not_send_what_was_queued(run, hook_channel, webhook):
    channel = hook_channel()
    delivery = _delivery(_finding(run), channel)
    AlertChannel.objects.filter(pk=channel.pk).update(enabled=False)
    delivery = alert_send(delivery_id=delivery.pk)
    assert delivery.status == "failed" and "disabled" in delivery.error and webhook.received == []


def test_recovery_sends_deliveries_whose_message_was_lost(run, task_queue):
    channel = alert_channel_create(name="mail", kind="email", recipients="a@example.org")
    old = _delivery(_finding(run), channel)
    fresh = _delivery(_finding(run, kind=FindingKind.DRIFT), channel)
    AlertDelivery.objects.filter(pk=old.pk).update(created_at=old.created_at - timedelta(minutes=11))
    assert alerts_recover() == 1
    assert task_queue.sent == [("send_alert", (old.pk,))]
    task_queue.drain()
    assert AlertDelivery.objects.get(pk=old.pk).status == "sent"
    assert AlertDelivery.objects.get(pk=fresh.pk).status == "pending"


def test_a_duplicate_running_at_the_same_moment_finds_the_attempt_claimed(run, hook_channel, webhook):
    delivery = _delivery(_finding(run), hook_channel())
    real_filter = AlertDelivery.objects.filter

    def other_worker_claims_first(*args, **kwargs):
        if "attempts" in kwargs:  # this worker's claim: the other worker's landed just before
            real_filter(pk=delivery.pk).update(attempts=1)
        return real_filter(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(AlertDelivery.objects, "filter", other_worker_claims_first)
        result = alert_send(delivery_id=delivery.pk)
    assert webhook.received == [] and result.status == "pending" and result.attempts == 1


def test_the_task_sends_through_the_service(run, hook_channel, webhook):
    from workers import tasks

    delivery = _delivery(_finding(run), hook_channel())
    tasks.send_alert.run(delivery.pk)
    assert AlertDelivery.objects.get(pk=delivery.pk).status == "sent" and len(webhook.bodies) == 1
    tasks.send_alert.run(delivery.pk + 1000)  # a deleted delivery: nothing to do, no error


# --- variables a channel may name, and URLs that never leak -------------------------------------------


@pytest.mark.parametrize(
    "name", ["FTVP_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "FTVP_BASE_URL", "EMAIL_HOST_PASSWORD"]
)
def test_ftvps_own_settings_are_never_a_webhook_url_variable(db, name):
    with pytest.raises(ValidationError) as caught:
        alert_channel_create(name="c", kind="webhook", url_env=name)
    assert "one of ftvp's own settings" in " ".join(caught.value.message_dict["url_env"])
    channel = alert_channel_create(name="c", kind="webhook", url_env="FTVP_TEAM_HOOK")
    with pytest.raises(ValidationError, match="one of ftvp's own settings"):
        alert_channel_update(channel=channel, name="c", kind="slack", url_env=name)
    assert AlertChannel.objects.get().url_env == "FTVP_TEAM_HOOK"


def test_a_reserved_variable_saved_before_the_rule_is_never_posted_to(db, webhook, monkeypatch):
    monkeypatch.setenv("REDIS_URL", webhook.url)  # any variable holding an http URL would do
    channel = alert_channel_create(name="hook", kind="webhook", url_env="FTVP_TEAM_HOOK")
    AlertChannel.objects.filter(pk=channel.pk).update(url_env="REDIS_URL")
    channel.refresh_from_db()
    with pytest.raises(AlertError, match="REDIS_URL is one of ftvp's own settings"):
        alert_channel_test(channel=channel)
    assert webhook.received == []


@pytest.mark.parametrize("inside", ["\t", "\n", " ", "\x01", "\u200b"])
def test_a_url_with_whitespace_or_control_characters_is_refused_without_showing_it(
    run, monkeypatch, webhook, slept, caplog, inside
):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("FTVP_TEST_HOOK", f"{webhook.url}/services/T0/B0/{SECRET}{inside}x")
    channel = alert_channel_create(name="hook", kind="webhook", url_env="FTVP_TEST_HOOK")
    delivery = alert_send(delivery_id=_delivery(_finding(run), channel).pk)
    assert delivery.status == "failed" and delivery.attempts == 1 and slept == []
    assert "FTVP_TEST_HOOK holds spaces or control characters" in delivery.error
    with pytest.raises(AlertError) as caught:
        alert_channel_test(channel=channel)
    for text in (delivery.error, str(caught.value), caplog.text):
        assert SECRET not in text and "/services/" not in text
    assert webhook.received == []


@pytest.mark.parametrize("port", ["99999", "abc"])
def test_a_url_with_a_bad_port_is_refused_without_showing_it(run, monkeypatch, port):
    monkeypatch.setenv("FTVP_TEST_HOOK", f"http://127.0.0.1:{port}/hooks/{SECRET}")
    channel = alert_channel_create(name="hook", kind="webhook", url_env="FTVP_TEST_HOOK")
    delivery = alert_send(delivery_id=_delivery(_finding(run), channel).pk)
    assert (
        delivery.status == "failed"
        and delivery.error == "environment variable FTVP_TEST_HOOK does not hold a valid URL"
    )


@pytest.mark.parametrize(
    "error",
    [
        lambda url: InvalidURL(f"URL can't contain control characters. {url!r}"),
        lambda url: ValueError(f"unknown url type: {url!r}"),
        lambda url: UnicodeEncodeError("ascii", repr(url), 0, 1, "ordinal not in range(128)"),
    ],
)
def test_an_invalid_url_error_never_carries_the_exceptions_text(
    run, hook_channel, webhook, monkeypatch, slept, error
):
    channel = hook_channel()

    def refuse(request, timeout):
        raise error(request.full_url.replace("/hooks", f"/hooks\t{SECRET}"))

    monkeypatch.setattr(alerts._opener, "open", refuse)
    delivery = alert_send(delivery_id=_delivery(_finding(run), channel).pk)
    assert delivery.status == "failed" and delivery.attempts == 1 and slept == []  # permanent
    assert delivery.error == (
        "the URL in FTVP_TEST_HOOK is not a valid http(s) URL (check the host, port and path)"
    )


# --- recovery ------------------------------------------------------------------------------------------


def test_recovery_enqueues_a_lost_delivery_once_per_lease(run, task_queue):
    alert_channel_create(name="mail", kind="email", recipients="a@example.org")
    _finding(run)
    (delivery,) = findings_notify(run=run)
    assert delivery.queued_at is not None  # leased when it was enqueued
    task_queue.sent.clear()  # its message is lost
    assert alerts_recover() == 0  # the lease still runs
    AlertDelivery.objects.filter(pk=delivery.pk).update(queued_at=delivery.queued_at - timedelta(minutes=11))
    assert alerts_recover() == 1
    assert alerts_recover() == 0  # the next sweep (another worker's, or this one's) finds it leased
    assert task_queue.sent == [("send_alert", (delivery.pk,))]
    # The message is lost again: after the lease, once more.
    renewed = AlertDelivery.objects.get(pk=delivery.pk).queued_at
    AlertDelivery.objects.filter(pk=delivery.pk).update(queued_at=renewed - timedelta(minutes=11))
    assert alerts_recover() == 1 and alerts_recover() == 0
    assert task_queue.names() == ["send_alert", "send_alert"]
    task_queue.drain()
    assert AlertDelivery.objects.get(pk=delivery.pk).status == "sent" and len(mail.outbox) == 1
    assert alerts_recover() == 0


def test_two_sweeps_at_the_same_moment_enqueue_a_delivery_once(run, task_queue):
    channel = alert_channel_create(name="mail", kind="email", recipients="a@example.org")
    delivery = _delivery(_finding(run), channel)
    AlertDelivery.objects.filter(pk=delivery.pk).update(
        created_at=delivery.created_at - timedelta(minutes=11)
    )
    real_filter = AlertDelivery.objects.filter
    other: list[int] = []

    def other_worker_sweeps_first(*args, **kwargs):
        # Both sweeps listed the delivery; the other worker claims and enqueues it just before this one.
        if "pk" in kwargs and not other:
            other.append(-1)
            other[0] = alerts_recover()
        return real_filter(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(AlertDelivery.objects, "filter", other_worker_sweeps_first)
        mine = alerts_recover()
    assert (other, mine) == ([1], 0)
    assert task_queue.sent == [("send_alert", (delivery.pk,))]


def test_a_retry_renews_the_lease(run, task_queue):
    channel = alert_channel_create(name="mail", kind="email", recipients="a@example.org")
    delivery = _delivery(_finding(run), channel)
    AlertDelivery.objects.filter(pk=delivery.pk).update(
        status="failed", created_at=delivery.created_at - timedelta(hours=1)
    )
    delivery.refresh_from_db()
    alert_delivery_retry(delivery=delivery)
    assert AlertDelivery.objects.get(pk=delivery.pk).queued_at is not None
    assert alerts_recover() == 0 and task_queue.names() == ["send_alert"]
