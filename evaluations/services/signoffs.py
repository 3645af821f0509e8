"""Sign-off: an editor asks that a finished run be signed off; approvers approve or reject it.

The suite's policy (`Suite.approvals_required`, 1..10) is copied onto the request when it is made, so
changing the policy later does not change what a pending request needs. Nobody approves their own
work: whoever started the run or requested any sign-off of it (this one or an earlier one: withdrawing
and letting someone else request again changes nothing) cannot decide on it, nor make it the baseline
by an override (services/findings.py baseline_set).
One rejection closes the request. When the live approvals reach the policy the run is signed off
(`Run.signed_off_at`): it becomes the suite's baseline and is locked (no delete, no re-score).
Re-scoring a run voids the approvals of its pending request: the approvers saw other scores.

Every step is an AuditEvent in the same transaction.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils import timezone

from evaluations.models import Approval, Run, RunStatus, SignOff, SignOffStatus, run_is_evidence
from evaluations.selectors.runs import run_rescoring
from evaluations.selectors.signoffs import live_approvals, may_withdraw, self_approval_reason
from evaluations.services.audit import audit_record
from evaluations.services.findings import SelfApprovalError, baseline_set

MAX_NOTE = 5000


class SignOffError(ValueError):
    """A sign-off step cannot be done as asked. `field` names the input at fault; the message says
    what is wrong and what to do."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


def _text(value: str | None, field: str, limit: int = MAX_NOTE) -> str:
    value = (value or "").replace("\x00", "").strip()
    if len(value) > limit:
        raise SignOffError(field, f"at most {limit} characters (got {len(value)})")
    return value


def _close(signoff: SignOff, status: str, *, user, action: str, after: dict | None = None) -> SignOff:
    """Close a pending request (rejected, withdrawn), recorded as `action`. Call under its row lock."""
    signoff.status, signoff.decided_at = status, timezone.now()
    signoff.save(update_fields=["status", "decided_at"])
    audit_record(
        actor=user,
        action=action,
        obj=signoff,
        suite_id=signoff.suite_id,
        before={"status": SignOffStatus.PENDING},
        after={"status": status, "run": signoff.run_id, **(after or {})},
    )
    return signoff


def signoff_request(*, run: Run, user, note: str = "") -> SignOff:
    """Ask that a succeeded run be signed off under its suite's current policy."""
    note = _text(note, "note")
    with transaction.atomic():
        run = Run.objects.select_for_update().select_related("suite_version__suite").get(pk=run.pk)
        suite = run.suite_version.suite
        if run.status != RunStatus.SUCCEEDED:
            raise SignOffError(
                "run", f"run #{run.pk} is {run.status}; only a succeeded run can be signed off"
            )
        if run.signed_off_at is not None:
            raise SignOffError("run", f"run #{run.pk} is signed off already")
        if not run_is_evidence(run):
            raise SignOffError(
                "run",
                f"run #{run.pk} is a labelling run or captured traffic's answers: a sign-off approves an "
                "evaluation as the baseline; review its answers in its review queue instead",
            )
        pending = run.signoffs.filter(status=SignOffStatus.PENDING).first()
        if pending is not None:
            raise SignOffError(
                "run",
                f"run #{run.pk} has a pending sign-off request (#{pending.pk}); wait for its decision "
                "or withdraw it first",
            )
        if run_rescoring(run):
            raise SignOffError("run", f"run #{run.pk} is being re-scored; request sign-off once it is done")
        try:
            with transaction.atomic():
                signoff = SignOff.objects.create(
                    run=run,
                    suite=suite,
                    requested_by=user if getattr(user, "pk", None) else None,
                    note=note,
                    approvals_required=suite.approvals_required,
                )
        except IntegrityError:  # requested concurrently
            raise SignOffError("run", f"run #{run.pk} has a pending sign-off request already") from None
        audit_record(
            actor=user,
            action="signoff.request",
            obj=signoff,
            suite_id=suite.pk,
            after={"run": run.pk, "note": note, "approvals_required": signoff.approvals_required},
        )
    return signoff


def signoff_decide(*, signoff: SignOff, user, decision: str, comment: str = "") -> SignOff:
    """Approve or reject a pending sign-off. A rejection (which needs a comment) closes it; the
    approval that meets the policy signs the run off and makes it the suite's baseline.

    Raises SelfApprovalError (a PermissionDenied) for the run's starter or anyone who requested a
    sign-off of it, SignOffError for anything else that is refused."""
    if decision not in Approval.Decision.values:
        raise SignOffError("decision", f"{decision!r} is not one of {', '.join(Approval.Decision.values)}")
    comment = _text(comment, "comment")
    if decision == Approval.Decision.REJECT and not comment:
        raise SignOffError("comment", "say why you reject it: the requester needs to know what to fix")
    if user is None or not getattr(user, "is_authenticated", False):
        raise SignOffError("user", "only a logged-in approver can decide on a sign-off")
    with transaction.atomic():
        # The row lock serialises decisions on one sign-off: two approvers at once cannot both be
        # the one that meets the policy, and nobody decides on a request that was just closed.
        signoff = (
            SignOff.objects.select_for_update()
            .select_related("run__suite_version__suite", "suite")
            .get(pk=signoff.pk)
        )
        run = signoff.run
        if signoff.status != SignOffStatus.PENDING:
            raise SignOffError("signoff", f"sign-off #{signoff.pk} is {signoff.status}; nothing to decide")
        reason = self_approval_reason(signoff, user)
        if reason:
            raise SelfApprovalError(reason)
        earlier = signoff.approvals.filter(approver=user, voided_at__isnull=True).first()
        if earlier is not None:
            raise SignOffError(
                "signoff",
                f"you already decided on sign-off #{signoff.pk} ({earlier.decision}, "
                f"{earlier.created_at:%Y-%m-%d %H:%M}); another approver must add theirs",
            )
        if run_rescoring(run):
            raise SignOffError("run", f"run #{run.pk} is being re-scored; decide once it is done")
        approval = Approval.objects.create(signoff=signoff, approver=user, decision=decision, comment=comment)
        if decision == Approval.Decision.REJECT:
            after = {"comment": comment}
            return _close(signoff, SignOffStatus.REJECTED, user=user, action="signoff.reject", after=after)
        live = live_approvals(signoff.approvals.all())
        audit_record(
            actor=user,
            action="signoff.approve",
            obj=signoff,
            suite_id=signoff.suite_id,
            after={
                "run": run.pk,
                "approval": approval.pk,
                "comment": comment,
                "approvals": live,
                "approvals_required": signoff.approvals_required,
            },
        )
        if live >= signoff.approvals_required:
            now = timezone.now()
            signoff.status, signoff.decided_at = SignOffStatus.APPROVED, now
            signoff.save(update_fields=["status", "decided_at"])
            Run.objects.filter(pk=run.pk).update(signed_off_at=now)
            run.signed_off_at = now
            audit_record(
                actor=user,
                action="signoff.signed",
                obj=run,
                suite_id=signoff.suite_id,
                before={"signed_off_at": None},
                after={"signed_off_at": now, "signoff": signoff.pk, "approvals": live},
            )
            baseline_set(suite=signoff.suite, run=run, user=user)
    return signoff


def signoff_withdraw(*, signoff: SignOff, user) -> SignOff:
    """The requester (or an admin) withdraws a pending request."""
    with transaction.atomic():
        signoff = SignOff.objects.select_for_update().get(pk=signoff.pk)
        if signoff.status != SignOffStatus.PENDING:
            raise SignOffError(
                "signoff", f"sign-off #{signoff.pk} is {signoff.status}; only a pending one can be withdrawn"
            )
        if not may_withdraw(signoff, user):
            raise PermissionDenied("only the requester of a sign-off (or an admin) can withdraw it")
        return _close(signoff, SignOffStatus.WITHDRAWN, user=user, action="signoff.withdraw")


def approvals_void(*, run: Run, user=None) -> int:
    """Void the live approvals of the run's pending sign-off (the run is being re-scored: the
    approvers judged other scores). Call inside the re-score's transaction. Returns how many."""
    signoff = run.signoffs.select_for_update().filter(status=SignOffStatus.PENDING).first()
    if signoff is None:
        return 0
    live = list(signoff.approvals.filter(voided_at__isnull=True).values_list("pk", "approver_id"))
    if not live:
        return 0
    Approval.objects.filter(pk__in=[pk for pk, _ in live]).update(voided_at=timezone.now())
    audit_record(
        actor=user,
        action="signoff.void",
        obj=signoff,
        suite_id=signoff.suite_id,
        before={"approvals": [pk for pk, _ in live], "approvers": [a for _, a in live]},
        after={"approvals": [], "reason": f"run #{run.pk} re-scored"},
    )
    return len(live)
