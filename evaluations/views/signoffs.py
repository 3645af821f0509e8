"""Sign-off pages: request a sign-off of a run, approve or reject it, withdraw it, the list approvers
work from; and deleting a run (refused for locked runs). The run page shows the sign-off section
(templates/evaluations/_signoff_panel.html, with `signoff_panel` in the run page's context)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from evaluations import roles
from evaluations.access import role_required
from evaluations.models import Result, Run, SignOff, SignOffStatus
from evaluations.selectors.signoffs import signoffs_list
from evaluations.services.runs import RunError, run_delete
from evaluations.services.signoffs import SignOffError, signoff_decide, signoff_request, signoff_withdraw
from evaluations.views.pages import _page


def _run_page(run_id: int):
    return redirect(reverse("evaluations:run-detail", args=[run_id]) + "#signoff")


@require_safe
@role_required(roles.READ)
def signoff_list(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", "")
    if status not in SignOffStatus.values:
        status = ""
    return render(
        request,
        "evaluations/signoff_list.html",
        {
            "page": _page(request, signoffs_list(status=status), 25),
            "status": status,
            "statuses": SignOffStatus.values,
        },
    )


@role_required(roles.REQUEST_SIGNOFF)
@require_POST
def run_signoff_request(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(Run, pk=pk)
    try:
        signoff = signoff_request(run=run, user=request.user, note=request.POST.get("note", ""))
    except SignOffError as exc:
        messages.error(request, f"Sign-off not requested: {exc}")
    else:
        messages.success(
            request,
            f"Sign-off of run #{run.pk} requested: {signoff.approvals_required} approval"
            f"{'s' if signoff.approvals_required != 1 else ''} needed. Approvers find it under Sign-offs.",
        )
    return _run_page(run.pk)


@role_required(roles.APPROVE)
@require_POST
def signoff_decide_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Approve or reject. Self-approval raises SelfApprovalError, a PermissionDenied: a 403 saying why."""
    signoff = get_object_or_404(SignOff, pk=pk)
    decision = request.POST.get("decision", "")
    try:
        signoff = signoff_decide(
            signoff=signoff, user=request.user, decision=decision, comment=request.POST.get("comment", "")
        )
    except SignOffError as exc:
        messages.error(request, f"Not recorded: {exc}")
    else:
        if signoff.status == SignOffStatus.APPROVED:
            messages.success(
                request, f"Run #{signoff.run_id} is signed off: it is now the baseline and locked."
            )
        elif signoff.status == SignOffStatus.REJECTED:
            messages.info(request, f"Sign-off of run #{signoff.run_id} rejected.")
        else:
            messages.success(request, f"Your approval of run #{signoff.run_id} is recorded; more are needed.")
    return _run_page(signoff.run_id)


@role_required(roles.REQUEST_SIGNOFF)
@require_POST
def signoff_withdraw_view(request: HttpRequest, pk: int) -> HttpResponse:
    signoff = get_object_or_404(SignOff, pk=pk)
    try:
        signoff_withdraw(signoff=signoff, user=request.user)
    except (SignOffError, PermissionDenied) as exc:  # not theirs: a matter of who asked, not of role
        messages.error(request, f"Not withdrawn: {exc}")
    else:
        messages.info(request, f"Sign-off request of run #{signoff.run_id} withdrawn.")
    return _run_page(signoff.run_id)


@role_required(roles.DELETE_RUN)
def run_delete_view(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(Run.objects.select_related("suite_version__suite", "created_by"), pk=pk)
    if request.method == "POST":
        try:
            run_delete(run=run, user=request.user)
        except RunError as exc:
            messages.error(request, f"Run not deleted: {exc}")
            return _run_page(run.pk)
        messages.success(request, f"Run #{pk} deleted.")
        return redirect("evaluations:run-list")
    return render(
        request,
        "evaluations/run_confirm_delete.html",
        {"run": run, "results": Result.objects.filter(arm__run=run).count()},
    )
