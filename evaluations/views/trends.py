"""The suite trends page: per arm, score with its CI, pass rate, cost, latency p95 and drift AUC
over 30, 90 or 365 days, with markers where the suite version, a prompt or an endpoint changed."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_safe

from evaluations import roles
from evaluations.access import role_required
from evaluations.analysis.timeline import MAX_POINTS_PER_SERIES
from evaluations.models import Suite
from evaluations.selectors.trends import DEFAULT_DAYS, RANGES, suite_trends


@role_required(roles.READ)
@require_safe
def suite_trends_page(request: HttpRequest, pk: int) -> HttpResponse:
    suite = get_object_or_404(Suite, pk=pk)
    raw = request.GET.get("days", "")
    days = int(raw) if raw.isdigit() and int(raw) in RANGES else DEFAULT_DAYS
    if raw and str(days) != raw:
        messages.error(
            request,
            f"Range {raw!r} is not offered: choose {', '.join(map(str, RANGES))} days. "
            f"Showing the last {DEFAULT_DAYS} days.",
        )
        days = DEFAULT_DAYS
    trends = suite_trends(suite, days=days)
    chart = {
        "days": days,
        "range": trends["range"],
        "series": trends["series"],
        "markers": trends["markers"],
        "run_url": reverse("evaluations:run-detail", args=[0]),
    }
    context = {
        "suite": suite,
        "trends": trends,
        "days": days,
        "ranges": RANGES,
        "chart": chart,
        "has_drift": any(v is not None for s in trends["series"] for v in s["drift_auc"]),
        "max_points": MAX_POINTS_PER_SERIES,
    }
    return render(request, "evaluations/trends.html", context)
