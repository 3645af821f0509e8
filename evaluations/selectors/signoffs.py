"""Reads for sign-offs: a run's requests with their decisions, what the current user may do on the run
page, and the list approvers work from. Each in a fixed number of queries."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Case, Count, IntegerField, Prefetch, Q, QuerySet, Value, When

from evaluations import roles
from evaluations.models import Approval, Run, RunStatus, SignOff, SignOffStatus
from evaluations.selectors.runs import run_delete_refusal

NOT_REQUESTED = "not_requested"


def run_signoffs(run: Run) -> list[SignOff]:
    """The run's sign-off requests, newest first, each with `decision_list` (its approvals and
    rejections, oldest first, voided ones included) and `live_approvals` (those that count)."""
    signoffs = list(
        run.signoffs.select_related("requested_by")
        .prefetch_related(
            Prefetch(
                "approvals", queryset=Approval.objects.select_related("approver").order_by("created_at", "id")
            )
        )
        .order_by("-created_at", "-id")
    )
    for signoff in signoffs:
        signoff.decision_list = list(signoff.approvals.all())
        signoff.live_approvals = live_approvals(signoff.decision_list)
    return signoffs


def run_signoff_state(run: Run) -> dict:
    """What the API's GET /runs/{id}/signoff/ answers."""
    signoffs = run_signoffs(run)
    return {
        "run": run.pk,
        "signed_off_at": run.signed_off_at,
        "status": signoffs[0].status if signoffs else NOT_REQUESTED,
        "signoffs": signoffs,
    }


def signoff_with_counts(signoff: SignOff) -> SignOff:
    """One request with `decision_list` and `live_approvals`, as `run_signoffs` gives them."""
    return next(s for s in run_signoffs(signoff.run) if s.pk == signoff.pk)


def signoff_panel(run: Run, user) -> dict:
    """The run page's sign-off section: the requests, and what `user` may do (with the reason when
    they may not)."""
    signoffs = run_signoffs(run)
    pending = next((s for s in signoffs if s.status == SignOffStatus.PENDING), None)
    approved = next((s for s in signoffs if s.status == SignOffStatus.APPROVED), None)
    current = pending or approved or (signoffs[0] if signoffs else None)
    can_request = (
        user.has_perm(roles.REQUEST_SIGNOFF)
        and run.status == RunStatus.SUCCEEDED
        and run.signed_off_at is None
        and pending is None
    )
    may_decide, why_not = False, ""
    if pending is not None and user.has_perm(roles.APPROVE):
        why_not = self_approval_reason(pending, user)
        mine = next(
            (a for a in pending.decision_list if a.approver_id == user.pk and a.voided_at is None), None
        )
        if not why_not and mine is not None:
            why_not = f"you already {'approved' if mine.decision == 'approve' else 'rejected'} this request"
        may_decide = not why_not
    return {
        "signoffs": signoffs,
        "pending": pending,
        "approved": approved,
        "current": current,
        "history": [s for s in signoffs if s is not current],
        "can_request": can_request,
        "may_decide": may_decide,
        "why_not": why_not,
        "may_withdraw": pending is not None and may_withdraw(pending, user),
        "may_delete": user.has_perm(roles.DELETE_RUN) and run_deletable(run),
    }


def run_deletable(run: Run) -> bool:
    """False for a locked run (services.runs.run_delete refuses it and says why)."""
    return run_delete_refusal(run) is None


def signoffs_list(*, status: str = "") -> QuerySet[SignOff]:
    """Every request, pending ones first, then the rest, newest first within each;
    `approvals_count` counts live approvals."""
    qs = SignOff.objects.select_related("run__suite_version__suite", "run__created_by", "requested_by")
    if status:
        qs = qs.filter(status=status)
    return qs.annotate(  # approvals_count: selectors.signoffs.live_approvals, counted in SQL
        approvals_count=Count(
            "approvals",
            filter=Q(approvals__voided_at__isnull=True, approvals__decision=Approval.Decision.APPROVE),
        ),
        open_first=Case(
            When(status=SignOffStatus.PENDING, then=Value(0)), default=Value(1), output_field=IntegerField()
        ),
    ).order_by("open_first", "-created_at", "-id")


def own_work_reason(*, run: Run, user, signoff: SignOff | None = None) -> str:
    """Why the run is `user`'s own work ("you started this run", ...), or "" when it is not: they
    started it or requested a sign-off of it, `signoff` or any other one."""
    if user is None or user.pk is None:
        return ""
    if run.created_by_id == user.pk:
        return "you started this run"
    if signoff is not None and signoff.requested_by_id == user.pk:
        return "you requested this sign-off"
    earlier = run.signoffs.filter(requested_by_id=user.pk).order_by("created_at", "id").first()
    if earlier is not None:
        return f"you requested sign-off #{earlier.pk} of this run"
    return ""


def self_approval_reason(signoff: SignOff, user) -> str:
    """Why `user` may not decide on `signoff` because it is their own work, or "" when they may."""
    reason = own_work_reason(run=signoff.run, user=user, signoff=signoff)
    return f"{reason}: someone else must approve it" if reason else ""


def may_withdraw(signoff: SignOff, user) -> bool:
    """Who may withdraw a request: someone who may request sign-offs (the page's permission too) and is
    its requester or an admin (by permission: setting baselines or managing users)."""
    if user is None or not user.has_perm(roles.REQUEST_SIGNOFF):
        return False
    is_admin = user.has_perm(roles.SET_BASELINE) or user.has_perm(roles.MANAGE_USERS)
    return is_admin or signoff.requested_by_id == user.pk


def live_approvals(approvals: Iterable[Approval]) -> int:
    """How many of the approvals count towards the policy: approvals (not rejections), not voided."""
    return sum(1 for a in approvals if a.voided_at is None and a.decision == Approval.Decision.APPROVE)
