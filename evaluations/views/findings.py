"""Baselines and findings: set a suite's baseline run; list, read and acknowledge findings."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST, require_safe

from evaluations import roles
from evaluations.access import role_required
from evaluations.models import Finding, Run
from evaluations.selectors.alerts import finding_deliveries
from evaluations.services.findings import BaselineError, baseline_set, finding_acknowledge
from evaluations.views.pages import _page


@role_required(roles.SET_BASELINE)
@require_POST
def run_set_baseline(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(Run.objects.select_related("suite_version__suite"), pk=pk)
    suite = run.suite_version.suite
    try:
        baseline_set(suite=suite, run=run, user=request.user, override=True)
    except (BaselineError, PermissionDenied) as exc:  # PermissionDenied: the user's own run
        messages.error(request, f"Baseline not changed: {exc}")
    else:
        messages.success(
            request, f"Run #{run.pk} is now the baseline of {suite.name}: later runs are compared with it."
        )
    return redirect("evaluations:run-detail", pk=run.pk)


@role_required(roles.READ)
@require_safe
def finding_list(request: HttpRequest) -> HttpResponse:
    show = request.GET.get("show", "open")
    findings = Finding.objects.select_related(
        "suite", "run", "arm__endpoint", "arm__strategy", "acknowledged_by"
    )
    if show == "open":
        findings = findings.filter(acknowledged_at__isnull=True)
    return render(
        request, "evaluations/finding_list.html", {"page": _page(request, findings, 25), "show": show}
    )


@role_required(roles.READ, post=roles.ACK_FINDING)
def finding_detail(request: HttpRequest, pk: int) -> HttpResponse:
    finding = get_object_or_404(Finding.objects.select_related("suite", "run", "arm", "baseline_run"), pk=pk)
    if request.method == "POST":
        finding_acknowledge(
            finding=finding, user=request.user, comment=request.POST.get("comment", "")[:2000]
        )
        messages.success(request, "Finding acknowledged.")
        return redirect("evaluations:finding-detail", pk=finding.pk)
    return render(
        request,
        "evaluations/finding_detail.html",
        {"finding": finding, "deliveries": finding_deliveries(finding)},
    )
