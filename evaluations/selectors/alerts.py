"""Reads for the alerts page and for the deliveries shown on a finding's page."""

from __future__ import annotations

from django.db.models import Count, Prefetch, Q

from evaluations.models import AlertChannel, AlertDelivery, Finding

RECENT_DELIVERIES = 5


def channels_with_recent_deliveries(limit: int = RECENT_DELIVERIES) -> list[AlertChannel]:
    """Every channel with its delivery counts by status and its last `limit` deliveries (`recent`),
    in three queries however many channels and deliveries there are."""
    status = AlertDelivery.Status
    recent = AlertDelivery.objects.select_related("finding__suite").order_by("-created_at", "-id")[:limit]
    return list(
        AlertChannel.objects.select_related("suite")
        .annotate(
            sent_count=Count("deliveries", filter=Q(deliveries__status=status.SENT)),
            failed_count=Count("deliveries", filter=Q(deliveries__status=status.FAILED)),
            pending_count=Count("deliveries", filter=Q(deliveries__status=status.PENDING)),
        )
        .prefetch_related(Prefetch("deliveries", queryset=recent, to_attr="recent"))
        .order_by("name")
    )


def finding_deliveries(finding: Finding) -> list[AlertDelivery]:
    return list(finding.deliveries.select_related("channel").order_by("channel__name"))
