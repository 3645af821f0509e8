"""Alerts: findings sent by e-mail and by webhook (JSON, or a Slack-compatible payload), each with a
link to the run and to the finding.

A delivery is one finding on one channel, unique on the pair: notifying a run again (a re-score, a
duplicate task) never sends an alert twice. `alert_send` tries a delivery a few times with backoff
when the failure is transient (timeouts, connection errors, HTTP 429 and 5xx, SMTP 4xx); anything else
(HTTP 4xx, a refused address, a missing variable) fails at once and says why.

A webhook URL can carry a secret (Slack's do), so a channel stores only the NAME of the environment
variable that holds it, read here and nowhere else. The URL is never logged, stored, rendered or put in
an error message: errors are written from what went wrong, and any text from elsewhere (an exception,
a response body) is scrubbed of the URL first. Every delivery error (a receiver's or mail server's
answer included) then has every configured secret masked (services/secrets.py: endpoints' keys,
other channels' URLs, the mail password...) before it is stored, logged or shown.
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from http.client import HTTPException, InvalidURL

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from evaluations.models import (
    AlertChannel,
    AlertDelivery,
    AlertKind,
    Finding,
    Run,
    Severity,
    Suite,
)
from evaluations.services import queue
from evaluations.services.audit import audit_record, audit_update, snapshot, stored_snapshot
from evaluations.services.endpoints import env_name_check, env_reserved
from evaluations.services.secrets import redactor

log = logging.getLogger("ftvp.alerts")

SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}
# Seconds to wait before the 2nd and 3rd attempt of a transient failure (3 attempts in all); a 429's
# or 503's Retry-After is honoured instead, up to MAX_RETRY_AFTER.
RETRY_DELAYS = (2.0, 8.0)
MAX_RETRY_AFTER = 30.0
# Deliveries still pending this long after their send task was enqueued (`queued_at`, the lease) lost
# their message: the sweep enqueues them again, once per lease.
PENDING_STALE = timedelta(minutes=10)
MAX_ERROR_BODY = 200
_sleep: Callable[[float], None] = time.sleep  # replaced in tests


class AlertError(Exception):
    """Why an alert was not sent; `transient` failures are worth another attempt."""

    def __init__(self, message: str, *, transient: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after


# --- channels ---------------------------------------------------------------------------------------


def _clean_channel(*, kind: str, recipients: str, url_env: str, min_severity: str) -> tuple[str, str]:
    """The channel's recipients and variable name, normalised; ValidationError naming the field."""
    if kind not in AlertKind.values:
        raise ValidationError({"kind": f"{kind!r} is not one of {', '.join(AlertKind.values)}"})
    if min_severity not in Severity.values:
        raise ValidationError(
            {"min_severity": f"{min_severity!r} is not one of {', '.join(Severity.values)}"}
        )
    if kind == AlertKind.EMAIL:
        addresses = [a.strip() for a in recipients.replace(";", ",").replace("\n", ",").split(",")]
        addresses = [a for a in addresses if a]
        if not addresses:
            raise ValidationError({"recipients": "an e-mail channel needs at least one address"})
        for address in addresses:
            try:
                validate_email(address)
            except ValidationError:
                raise ValidationError({"recipients": f"{address!r} is not an e-mail address"}) from None
        return ", ".join(addresses), ""
    if not url_env.strip():
        raise ValidationError(
            {"url_env": "a webhook channel needs the NAME of the environment variable holding its URL"}
        )
    # A variable name, never the URL itself (not echoed) nor one of ftvp's own settings.
    return "", env_name_check(url_env, field="url_env")


# What a channel's audit events record: addresses and the NAME of a URL variable, never a URL.
CHANNEL_AUDITED = ("name", "kind", "suite", "recipients", "url_env", "min_severity", "enabled")


@transaction.atomic
def _save_channel(
    channel: AlertChannel,
    *,
    name: str,
    kind: str,
    suite: Suite | None = None,
    recipients: str = "",
    url_env: str = "",
    min_severity: str = Severity.WARNING,
    enabled: bool = True,
    user=None,
) -> AlertChannel:
    """Validate and save a new or existing channel, and record it ("alert_channel.create" or, with
    what changed, "alert_channel.update")."""
    creating = channel.pk is None
    before = None if creating else stored_snapshot(channel, CHANNEL_AUDITED)
    recipients, url_env = _clean_channel(
        kind=kind, recipients=recipients or "", url_env=url_env or "", min_severity=min_severity
    )
    channel.name = name.strip()
    channel.kind = kind
    channel.suite = suite
    channel.recipients = recipients
    channel.url_env = url_env
    channel.min_severity = min_severity
    channel.enabled = bool(enabled)
    channel.full_clean()  # the name's uniqueness, lengths
    channel.save()
    after = snapshot(channel, CHANNEL_AUDITED)
    if creating:
        audit_record(
            actor=user, action="alert_channel.create", obj=channel, suite_id=channel.suite_id, after=after
        )
    else:
        audit_update(
            actor=user,
            action="alert_channel.update",
            obj=channel,
            suite_id=channel.suite_id,
            before=before,
            after=after,
        )
    return channel


def alert_channel_create(*, user=None, **fields) -> AlertChannel:
    """A new channel; `fields` as `_save_channel` takes them (name, kind, suite, recipients, ...)."""
    return _save_channel(AlertChannel(), user=user, **fields)


def alert_channel_update(*, channel: AlertChannel, user=None, **fields) -> AlertChannel:
    """Change a channel: every field is given again, as the form sends them."""
    return _save_channel(channel, user=user, **fields)


@transaction.atomic
def alert_channel_delete(*, channel: AlertChannel, user=None) -> None:
    """Delete a channel and its delivery history."""
    audit_record(
        actor=user,
        action="alert_channel.delete",
        obj=channel,
        suite_id=channel.suite_id,
        before=snapshot(channel, CHANNEL_AUDITED),
    )
    channel.delete()


# --- which findings go where ------------------------------------------------------------------------


def channel_matches(channel: AlertChannel, finding: Finding) -> bool:
    """An enabled channel takes a finding of its suite (or of any suite, without one) at or above its
    minimum severity."""
    return (
        channel.enabled
        and (channel.suite_id is None or channel.suite_id == finding.suite_id)
        and SEVERITY_RANK.get(finding.severity, 0) >= SEVERITY_RANK.get(channel.min_severity, 0)
    )


def findings_notify(*, run: Run) -> list[AlertDelivery]:
    """Make the missing deliveries of the run's open findings on every matching channel, and send
    each (a task, enqueued on commit). Idempotent: the deliveries made before are not made again."""
    findings = list(Finding.objects.filter(run=run, acknowledged_at__isnull=True))
    if not findings:
        return []
    channels = list(AlertChannel.objects.filter(enabled=True))
    if not channels:
        return []
    made: list[AlertDelivery] = []
    with transaction.atomic():
        existing = set(
            AlertDelivery.objects.filter(finding__in=findings).values_list("finding_id", "channel_id")
        )
        for finding in findings:
            for channel in channels:
                if (finding.pk, channel.pk) in existing or not channel_matches(channel, finding):
                    continue
                delivery, created = AlertDelivery.objects.get_or_create(
                    finding=finding, channel=channel, defaults={"queued_at": timezone.now()}
                )
                if created:
                    made.append(delivery)
                    queue.enqueue("send_alert", delivery.pk)
    if made:
        log.info("run #%s: %d alert(s) to send", run.pk, len(made))
    return made


@transaction.atomic
def alert_delivery_retry(*, delivery: AlertDelivery) -> AlertDelivery:
    """Send a failed delivery again (e.g. once its channel's variable is set)."""
    if delivery.status == AlertDelivery.Status.SENT:
        raise AlertError(f"the alert was sent already, on {delivery.sent_at:%Y-%m-%d %H:%M}")
    delivery.status = AlertDelivery.Status.PENDING
    delivery.error = ""
    delivery.queued_at = timezone.now()
    delivery.save(update_fields=["status", "error", "queued_at"])
    queue.enqueue("send_alert", delivery.pk)
    return delivery


def _stale(cutoff) -> Q:
    """Pending deliveries whose lease ran out: enqueued before `cutoff`, or never enqueued and made
    before it."""
    return Q(status=AlertDelivery.Status.PENDING) & (
        Q(queued_at__lt=cutoff) | Q(queued_at__isnull=True, created_at__lt=cutoff)
    )


def alerts_recover() -> int:
    """Re-enqueue deliveries still pending PENDING_STALE after their send task was enqueued (the
    message was lost: a broker that was down at commit, a worker killed mid-send). Run by every
    worker's sweep: each delivery is claimed by renewing its lease (`queued_at`) with a conditional
    UPDATE first, so however many sweeps see it, it is enqueued once per lease."""
    cutoff = timezone.now() - PENDING_STALE
    ids = list(
        AlertDelivery.objects.filter(_stale(cutoff), channel__enabled=True).values_list("id", flat=True)
    )
    enqueued = 0
    for delivery_id in ids:
        # The condition is checked again by the UPDATE itself: a sweep that renewed it first wins.
        if AlertDelivery.objects.filter(_stale(cutoff), pk=delivery_id).update(queued_at=timezone.now()):
            queue.enqueue("send_alert", delivery_id)
            enqueued += 1
    return enqueued


# --- what an alert says -----------------------------------------------------------------------------


def absolute_url(path: str) -> str:
    return f"{settings.FTVP_BASE_URL}{path}"


def run_url(run_id: int) -> str:
    return absolute_url(reverse("evaluations:run-detail", args=[run_id]))


def finding_url(finding_id: int) -> str:
    return absolute_url(reverse("evaluations:finding-detail", args=[finding_id]))


def _key_details(details: dict) -> dict:
    """The finding's figures that read on their own: its scalar details (lists and nested objects,
    e.g. every flipped case, stay on the finding's page)."""
    return {k: v for k, v in (details or {}).items() if isinstance(v, str | int | float | bool) or v is None}


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def finding_payload(finding: Finding) -> dict:
    """The JSON a webhook receives for a finding (documented in docs/alerts.md)."""
    return {
        "event": "finding",
        "finding": {
            "id": finding.pk,
            "kind": finding.kind,
            "severity": finding.severity,
            "title": finding.title,
            "suite": finding.suite.name,
            "suite_id": finding.suite_id,
            "run_id": finding.run_id,
            "arm": finding.arm.label if finding.arm_id else None,
            "arm_id": finding.arm_id,
            "baseline_run_id": finding.baseline_run_id,
            "created_at": finding.created_at.isoformat(),
            "details": _key_details(finding.details),
            "url": finding_url(finding.pk),
        },
        "run_url": run_url(finding.run_id),
    }


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


SLACK_ICON = {
    Severity.CRITICAL: ":rotating_light:",
    Severity.WARNING: ":warning:",
    Severity.INFO: ":information_source:",
}


def slack_payload(finding: Finding) -> dict:
    """A Slack-compatible incoming-webhook message: `text` (the notification) and Block Kit blocks."""
    link_run, link_finding = run_url(finding.run_id), finding_url(finding.pk)
    head = f"{finding.get_severity_display()} · {finding.get_kind_display()} in {finding.suite.name}"
    icon = SLACK_ICON.get(finding.severity, "")
    fields = [f"*Run*\n<{link_run}|#{finding.run_id}>"]
    if finding.arm_id:
        fields.append(f"*Arm*\n{_slack_escape(finding.arm.label)}")
    if finding.baseline_run_id:
        fields.append(f"*Baseline run*\n<{run_url(finding.baseline_run_id)}|#{finding.baseline_run_id}>")
    for key, value in list(_key_details(finding.details).items())[: 10 - len(fields)]:
        fields.append(_cut(f"*{_slack_escape(key)}*\n{_slack_escape(_fmt(value))}", 2000))
    return {
        "text": _cut(_slack_escape(f"{icon} {head}: {finding.title} (run #{finding.run_id})"), 3000),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": _cut(head, 150), "emoji": True}},
            {"type": "section", "text": {"type": "mrkdwn", "text": _cut(_slack_escape(finding.title), 3000)}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": f"<{link_finding}|Open the finding> · <{link_run}|the run>"}
                ],
            },
        ],
    }


def email_message(finding: Finding) -> tuple[str, str]:
    """Subject and plain-text body of a finding's e-mail."""
    subject = (
        f"[ftvp] {finding.get_severity_display()} {finding.get_kind_display().lower()} "
        f"in {finding.suite.name}: {finding.title}"
    )
    subject = _cut(" ".join(subject.split()), 200)  # one line: headers carry no newlines
    lines = [
        finding.title,
        "",
        f"Suite:     {finding.suite.name}",
        f"Run:       #{finding.run_id}  {run_url(finding.run_id)}",
    ]
    if finding.arm_id:
        lines.append(f"Arm:       {finding.arm.label}")
    if finding.baseline_run_id:
        lines.append(f"Baseline:  run #{finding.baseline_run_id}  {run_url(finding.baseline_run_id)}")
    lines.append(f"Severity:  {finding.get_severity_display()} ({finding.get_kind_display()})")
    details = _key_details(finding.details)
    if details:
        lines += ["", "Details:"] + [f"  {k}: {_fmt(v)}" for k, v in details.items()]
    flipped = (finding.details or {}).get("flipped")
    if isinstance(flipped, list) and flipped:
        shown = ", ".join(str(k) for k in flipped[:20])
        lines.append(f"  flipped cases: {shown}{' …' if len(flipped) > 20 else ''}")
    lines += [
        "",
        f"Open the finding (acknowledge it there): {finding_url(finding.pk)}",
        f"Open the run: {run_url(finding.run_id)}",
        "",
        "-- ",
        f"Sent by ftvp. Alert channels: {absolute_url(reverse('evaluations:alert-list'))}",
    ]
    return subject, "\n".join(lines) + "\n"


# --- sending ----------------------------------------------------------------------------------------


def _recipients(channel: AlertChannel) -> list[str]:
    return [a.strip() for a in channel.recipients.split(",") if a.strip()]


def _send_email(channel: AlertChannel, subject: str, body: str) -> None:
    recipients = _recipients(channel)
    if not recipients:
        raise AlertError(f"channel {channel.name!r} has no recipients; add addresses on the Alerts page")
    try:
        send_mail(subject, body, None, recipients, fail_silently=False)
    except smtplib.SMTPAuthenticationError as exc:
        raise AlertError(
            f"the mail server refused the login ({exc.smtp_code}); check EMAIL_HOST_USER and "
            "EMAIL_HOST_PASSWORD"
        ) from None
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        raise AlertError(
            f"the mail server refused {', '.join(sorted(exc.recipients))} ({', '.join(map(str, codes))})",
            transient=any(400 <= c < 500 for c in codes),
        ) from None
    except smtplib.SMTPResponseException as exc:
        said = exc.smtp_error
        text = said.decode(errors="replace") if isinstance(said, bytes) else str(said)
        raise AlertError(
            f"the mail server answered {exc.smtp_code}: {_cut(text, MAX_ERROR_BODY)}",
            transient=400 <= exc.smtp_code < 500,
        ) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise AlertError(
            f"could not send through the mail server {settings.EMAIL_HOST}:{settings.EMAIL_PORT} "
            f"({type(exc).__name__}: {exc}); check EMAIL_HOST, EMAIL_PORT and EMAIL_USE_TLS",
            transient=True,
        ) from None


def webhook_url(channel: AlertChannel) -> str:
    """The channel's URL from the environment; AlertError naming the variable (never the URL)."""
    if not channel.url_env:
        raise AlertError(f"channel {channel.name!r} names no environment variable for its URL")
    if env_reserved(channel.url_env):  # a row saved before the rule: never posted to
        raise AlertError(
            f"{channel.url_env} is one of ftvp's own settings, never a webhook URL; give channel "
            f"{channel.name!r} a variable of its own"
        )
    url = os.environ.get(channel.url_env, "").strip()
    if not url:
        raise AlertError(
            f"environment variable {channel.url_env} is not set in this process; set it to the "
            f"webhook URL of channel {channel.name!r} in the workers' (and web's) environment"
        )
    if any(c.isspace() or not c.isprintable() for c in url):
        # http.client would refuse it with the URL's repr in its message (secret path and all).
        raise AlertError(
            f"environment variable {channel.url_env} holds spaces or control characters (tabs, line "
            "breaks) inside the URL; set it to the URL alone"
        )
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 (a port out of range or not a number raises ValueError)
    except ValueError:
        raise AlertError(f"environment variable {channel.url_env} does not hold a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise AlertError(f"environment variable {channel.url_env} does not hold an http(s) URL")
    return url


def _scrub(text: str, url: str) -> str:
    """Text from elsewhere (an exception, a response body) without the URL or its secret parts."""
    parts = urllib.parse.urlsplit(url)
    secrets_ = [url, url.rstrip("/"), parts.path, parts.query, parts.username or "", parts.password or ""]
    for secret in sorted({s for s in secrets_ if len(s) > 1}, key=len, reverse=True):
        text = text.replace(secret, "…").replace(urllib.parse.quote(secret, safe=""), "…")
    return text


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect turns a POST into a GET (or leads elsewhere): refuse it, the URL should be final."""

    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: the backoff applies


def _post_json(url: str, payload: dict, *, env: str) -> None:
    timeout = settings.FTVP_WEBHOOK_TIMEOUT
    late = f"the webhook in {env} did not answer within {timeout} s (FTVP_WEBHOOK_TIMEOUT)"
    try:
        # webhook_url() admits http(s) URLs only.
        request = urllib.request.Request(  # noqa: S310
            url,
            data=json.dumps(payload).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "ftvp-alerts/1"},
        )
        with _opener.open(request, timeout=timeout) as response:
            response.read(64 * 1024)
    except urllib.error.HTTPError as exc:
        status = exc.code
        try:
            body = exc.read(MAX_ERROR_BODY).decode(errors="replace").strip()
        except OSError:
            body = ""
        what = f"the webhook in {env} answered HTTP {status}"
        if 300 <= status < 400:
            what += " (a redirect: set the variable to the final URL)"
        if body:
            what += f": {_scrub(body, url)}"
        raise AlertError(
            what,
            transient=status == 429 or status >= 500,
            retry_after=_retry_after(exc.headers.get("Retry-After")) if exc.headers else None,
        ) from None
    except TimeoutError:
        raise AlertError(late, transient=True) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            raise AlertError(late, transient=True) from None
        raise AlertError(
            f"could not reach the webhook in {env}: {_scrub(str(reason), url)}", transient=True
        ) from None
    except (InvalidURL, ValueError):
        # Their text quotes the URL (as a repr, which _scrub cannot match): never pass it on.
        raise AlertError(
            f"the URL in {env} is not a valid http(s) URL (check the host, port and path)"
        ) from None
    except (HTTPException, OSError) as exc:
        raise AlertError(
            f"could not reach the webhook in {env}: {type(exc).__name__}: {_scrub(str(exc), url)}",
            transient=True,
        ) from None


@dataclass
class _Outbound:
    """What to send on a channel: an e-mail (subject, body) or a JSON payload."""

    subject: str = ""
    body: str = ""
    payload: dict | None = None


def _deliver(channel: AlertChannel, outbound: _Outbound) -> None:
    """Send `outbound` on the channel; AlertError with every configured secret masked otherwise."""
    try:
        if channel.kind == AlertKind.EMAIL:
            _send_email(channel, outbound.subject, outbound.body)
        else:
            _post_json(webhook_url(channel), outbound.payload or {}, env=channel.url_env)
    except AlertError as exc:
        message = str(exc)
        masked = redactor()(message)
        if masked == message:
            raise
        raise AlertError(masked, transient=exc.transient, retry_after=exc.retry_after) from None


def _outbound(channel: AlertChannel, finding: Finding) -> _Outbound:
    if channel.kind == AlertKind.EMAIL:
        subject, body = email_message(finding)
        return _Outbound(subject=subject, body=body)
    if channel.kind == AlertKind.SLACK:
        return _Outbound(payload=slack_payload(finding))
    return _Outbound(payload=finding_payload(finding))


def alert_send(*, delivery_id: int) -> AlertDelivery | None:
    """Send one pending delivery: up to 1 + len(RETRY_DELAYS) attempts while failures are transient;
    marks it sent or failed with its attempts and error. Any other delivery is left alone."""
    delivery = (
        AlertDelivery.objects.select_related(
            "channel", "finding__suite", "finding__arm__endpoint", "finding__arm__strategy"
        )
        .filter(pk=delivery_id)
        .first()
    )
    if delivery is None or delivery.status != AlertDelivery.Status.PENDING:
        return delivery  # sent, or failed (sent again only through alert_delivery_retry)
    channel, finding = delivery.channel, delivery.finding
    if not channel.enabled:
        return _finish(delivery, error=f"channel {channel.name!r} was disabled before the alert was sent")
    outbound = _outbound(channel, finding)
    error: AlertError | None = None
    for attempt in range(len(RETRY_DELAYS) + 1):
        # Claim the attempt: a duplicate message running at the same moment finds it taken and stops.
        claimed = AlertDelivery.objects.filter(
            pk=delivery.pk, attempts=delivery.attempts, status=AlertDelivery.Status.PENDING
        ).update(attempts=delivery.attempts + 1)
        if not claimed:
            return AlertDelivery.objects.get(pk=delivery.pk)
        delivery.attempts += 1
        try:
            _deliver(channel, outbound)
        except AlertError as exc:
            error = exc
            if not exc.transient or attempt == len(RETRY_DELAYS):
                break
            delay = exc.retry_after if exc.retry_after is not None else RETRY_DELAYS[attempt]
            _sleep(min(delay, MAX_RETRY_AFTER))
        else:
            error = None
            break
    return _finish(delivery, error=str(error) if error else None)


def _finish(delivery: AlertDelivery, *, error: str | None) -> AlertDelivery:
    if error is None:
        delivery.status, delivery.error, delivery.sent_at = AlertDelivery.Status.SENT, "", timezone.now()
        log.info(
            "alert for finding #%s sent on channel %r (attempt %d)",
            delivery.finding_id, delivery.channel.name, delivery.attempts,
        )  # fmt: skip
    else:
        delivery.status, delivery.error = AlertDelivery.Status.FAILED, error
        log.warning(
            "alert for finding #%s on channel %r failed after %d attempt(s): %s",
            delivery.finding_id, delivery.channel.name, delivery.attempts, error,
        )  # fmt: skip
    delivery.save(update_fields=["status", "error", "sent_at", "attempts"])
    return delivery


def alert_channel_test(*, channel: AlertChannel) -> None:
    """Send a test message on the channel now (one attempt); AlertError says what went wrong."""
    alerts_page = absolute_url(reverse("evaluations:alert-list"))
    text = (
        f"Test alert from ftvp channel {channel.name!r}: findings of "
        f"{channel.suite.name if channel.suite_id else 'every suite'} at or above "
        f"{channel.get_min_severity_display().lower()} will arrive here."
    )
    if channel.kind == AlertKind.EMAIL:
        outbound = _Outbound(
            subject=f"[ftvp] Test alert from channel {channel.name}",
            body=f"{text}\n\nAlert channels: {alerts_page}\n",
        )
    elif channel.kind == AlertKind.SLACK:
        outbound = _Outbound(
            payload={
                "text": text,
                "blocks": [
                    {
                        "type": "section",
                        "text": {
                            "type": "mrkdwn",
                            "text": f"{_slack_escape(text)}\n<{alerts_page}|Alert channels>",
                        },
                    }
                ],
            }
        )
    else:
        outbound = _Outbound(
            payload={"event": "test", "channel": channel.name, "text": text, "url": alerts_page}
        )
    _deliver(channel, outbound)
    log.info("test alert sent on channel %r", channel.name)
