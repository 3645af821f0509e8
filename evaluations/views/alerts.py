"""Alert channels: list them with their last deliveries, create, edit, delete, send a test message,
and send a failed delivery again."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST, require_safe

from evaluations import roles
from evaluations.access import role_required
from evaluations.forms import AlertChannelForm
from evaluations.models import AlertChannel, AlertDelivery
from evaluations.selectors.alerts import channels_with_recent_deliveries
from evaluations.services.alerts import (
    AlertError,
    alert_channel_create,
    alert_channel_delete,
    alert_channel_test,
    alert_channel_update,
    alert_delivery_retry,
)


@role_required(roles.READ)
@require_safe
def alert_list(request: HttpRequest) -> HttpResponse:
    return render(request, "evaluations/alert_list.html", {"channels": channels_with_recent_deliveries()})


def _initial(channel: AlertChannel) -> dict:
    return {
        "name": channel.name,
        "kind": channel.kind,
        "suite": channel.suite_id,
        "recipients": channel.recipients,
        "url_env": channel.url_env,
        "min_severity": channel.min_severity,
        "enabled": channel.enabled,
    }


def _channel_form(request: HttpRequest, channel: AlertChannel | None) -> HttpResponse:
    form = AlertChannelForm(request.POST or None, initial=_initial(channel) if channel else None)
    if request.method == "POST" and form.is_valid():
        try:
            if channel is None:
                saved = alert_channel_create(**form.cleaned_data, user=request.user)
            else:
                saved = alert_channel_update(channel=channel, **form.cleaned_data, user=request.user)
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                for error in errors:
                    form.add_error(field if field in form.fields else None, error)
        else:
            messages.success(request, f"Alert channel {saved.name} saved.")
            return redirect("evaluations:alert-list")
    if form.has_error("url_env"):
        # What was typed there may be the webhook URL itself: never echo it back into the page.
        form.data = form.data.copy()
        form.data[form.add_prefix("url_env")] = ""
    return render(
        request,
        "evaluations/alert_form.html",
        {"form": form, "channel": channel},
        status=400 if request.method == "POST" else 200,
    )


@role_required(roles.ALERTS)
def alert_channel_new(request: HttpRequest) -> HttpResponse:
    return _channel_form(request, None)


@role_required(roles.ALERTS)
def alert_channel_edit(request: HttpRequest, pk: int) -> HttpResponse:
    return _channel_form(request, get_object_or_404(AlertChannel, pk=pk))


@role_required(roles.ALERTS)
def alert_channel_delete_view(request: HttpRequest, pk: int) -> HttpResponse:
    channel = get_object_or_404(AlertChannel.objects.select_related("suite"), pk=pk)
    if request.method == "POST":
        alert_channel_delete(channel=channel, user=request.user)
        messages.success(request, f"Alert channel {channel.name} deleted.")
        return redirect("evaluations:alert-list")
    return render(
        request,
        "evaluations/alert_confirm_delete.html",
        {"channel": channel, "deliveries": channel.deliveries.count()},
    )


@role_required(roles.ALERTS)
@require_POST
def alert_channel_test_view(request: HttpRequest, pk: int) -> HttpResponse:
    channel = get_object_or_404(AlertChannel.objects.select_related("suite"), pk=pk)
    try:
        alert_channel_test(channel=channel)
    except AlertError as exc:
        messages.error(request, f"Test alert on {channel.name} not sent: {exc}")
    else:
        messages.success(request, f"Test alert sent on {channel.name}.")
    return redirect("evaluations:alert-list")


@role_required(roles.ALERTS)
@require_POST
def alert_delivery_retry_view(request: HttpRequest, pk: int) -> HttpResponse:
    delivery = get_object_or_404(AlertDelivery.objects.select_related("channel"), pk=pk)
    try:
        alert_delivery_retry(delivery=delivery)
    except AlertError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"The alert on {delivery.channel.name} will be sent again.")
    back = request.POST.get("next", "")
    if back and url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(back)
    return redirect("evaluations:alert-list")
