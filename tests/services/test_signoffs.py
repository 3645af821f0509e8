"""Sign-off: the suite's policy, nobody approves their own work, rejections close, re-scoring voids
approvals, and a signed-off run is the baseline and locked (no re-score, no delete from anywhere)."""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import PermissionDenied
from django.db import connections, transaction
from django.db.models import ProtectedError

from evaluations.models import Approval, AuditEvent, Run, RunStatus, SignOff, SignOffStatus
from evaluations.services.audit import audit_verify
from evaluations.services.findings import BaselineError, baseline_set
from evaluations.services.runs import RunError, run_delete
from evaluations.services.scorings import RescoreError, run_rescore
from evaluations.services.signoffs import (
    SelfApprovalError,
    SignOffError,
    signoff_decide,
    signoff_request,
    signoff_withdraw,
)
from evaluations.services.suites import suite_update_settings
from tests.factories import EndpointFactory, UserFactory
from tests.runs import ArmSpec, finished_run, suite_version


@pytest.fixture
def people(db):
    return {
        "sam": UserFactory(username="sam", roles=["editor"]),  # starts the runs
        "rita": UserFactory(username="rita", roles=["editor"]),  # requests sign-off
        "ann": UserFactory(username="ann", roles=["approver"]),
        "abe": UserFactory(username="abe", roles=["approver"]),
        "cat": UserFactory(username="cat", roles=["approver"]),
        "ada": UserFactory(username="ada", roles=["admin"]),
    }


def make_run(people, version=None, **suite_fields) -> Run:
    version = version or suite_version(test_cases=4, **suite_fields)
    run = finished_run(version, [ArmSpec(EndpointFactory(), "zero-shot", [1.0, 1.0, 0.0, 1.0])])
    Run.objects.filter(pk=run.pk).update(created_by=people["sam"])
    run.refresh_from_db()
    return run


def actions(suite_id=None) -> list[str]:
    qs = AuditEvent.objects.order_by("seq")
    if suite_id is not None:
        qs = qs.filter(suite_id=suite_id)
    return list(qs.values_list("action", flat=True))


def test_one_approval_signs_the_run_off_and_makes_it_the_baseline(people):
    run = make_run(people)
    suite = run.suite_version.suite
    signoff = signoff_request(run=run, user=people["rita"], note="v2 prompt, checked by hand")
    assert (signoff.status, signoff.approvals_required) == (SignOffStatus.PENDING, 1)

    signoff = signoff_decide(signoff=signoff, user=people["ann"], decision="approve", comment="looks right")

    assert signoff.status == SignOffStatus.APPROVED and signoff.decided_at is not None
    run.refresh_from_db()
    suite.refresh_from_db()
    assert run.signed_off_at is not None
    assert suite.baseline_run_id == run.pk
    assert actions(suite.pk)[-4:] == [
        "signoff.request",
        "signoff.approve",
        "signoff.signed",
        "suite.baseline",
    ]
    baseline_event = AuditEvent.objects.get(action="suite.baseline")
    assert (baseline_event.before, baseline_event.after) == ({"baseline_run": None}, {"baseline_run": run.pk})
    assert baseline_event.actor_name == "ann"
    assert audit_verify().ok


def test_a_policy_of_two_needs_two_different_approvers(people):
    run = make_run(people, approvals_required=2)
    suite = run.suite_version.suite
    signoff = signoff_request(run=run, user=people["rita"])
    assert signoff.approvals_required == 2

    signoff = signoff_decide(signoff=signoff, user=people["ann"], decision="approve")
    assert signoff.status == SignOffStatus.PENDING
    run.refresh_from_db()
    suite.refresh_from_db()
    assert run.signed_off_at is None and suite.baseline_run_id is None

    with pytest.raises(SignOffError, match="already decided"):
        signoff_decide(signoff=signoff, user=people["ann"], decision="approve")
    assert signoff.approvals.count() == 1

    signoff = signoff_decide(signoff=signoff, user=people["abe"], decision="approve")
    assert signoff.status == SignOffStatus.APPROVED
    run.refresh_from_db()
    suite.refresh_from_db()
    assert run.signed_off_at is not None and suite.baseline_run_id == run.pk


def test_the_policy_is_the_one_in_force_when_the_sign_off_was_requested(people):
    run = make_run(people, approvals_required=2)
    suite = run.suite_version.suite
    signoff = signoff_request(run=run, user=people["rita"])
    suite_update_settings(
        suite=suite, description="", quality_target=0.8, pass_threshold=0.8, monthly_volume=10_000,
        approvals_required=1, user=people["ada"],
    )  # fmt: skip
    signoff = signoff_decide(signoff=signoff, user=people["ann"], decision="approve")
    assert signoff.status == SignOffStatus.PENDING  # still needs its 2
    event = AuditEvent.objects.get(action="suite.settings")
    assert (event.before, event.after) == ({"approvals_required": 2}, {"approvals_required": 1})


@pytest.mark.parametrize(
    "who, reason", [("sam", "you started this run"), ("rita", "you requested this sign-off")]
)
@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_whoever_started_the_run_or_requested_the_sign_off_cannot_decide(people, who, reason, decision):
    run = make_run(people)
    people[who].groups.add(*people["ann"].groups.all())  # an editor who is an approver too
    signoff = signoff_request(run=run, user=people["rita"])

    with pytest.raises(SelfApprovalError) as refused:
        signoff_decide(signoff=signoff, user=people[who], decision=decision, comment="mine")

    assert str(refused.value) == f"{reason}: someone else must approve it"
    assert not Approval.objects.exists()
    signoff.refresh_from_db()
    run.refresh_from_db()
    assert signoff.status == SignOffStatus.PENDING and run.signed_off_at is None


def test_only_an_admin_changes_the_policy(people):
    suite = make_run(people).suite_version.suite
    settings = {"description": "", "quality_target": 0.8, "pass_threshold": 0.8, "monthly_volume": 10_000}

    with pytest.raises(PermissionDenied, match="only an admin can change the sign-off policy"):
        suite_update_settings(suite=suite, **settings, approvals_required=2, user=people["rita"])
    suite.refresh_from_db()
    assert suite.approvals_required == 1 and not AuditEvent.objects.filter(action="suite.settings").exists()
    # An editor saves the other settings, with the policy unchanged or left out.
    suite_update_settings(
        suite=suite, **{**settings, "description": "a"}, approvals_required=1, user=people["rita"]
    )
    suite_update_settings(suite=suite, **{**settings, "description": "b"}, user=people["rita"])
    suite_update_settings(suite=suite, **settings, approvals_required=3, user=people["ada"])
    suite.refresh_from_db()
    assert (suite.description, suite.approvals_required) == ("", 3)


@pytest.mark.parametrize("close", ["withdraw", "reject"])
def test_withdrawing_or_rejecting_and_requesting_again_does_not_let_the_first_requester_decide(people, close):
    run = make_run(people)
    rita = people["rita"]
    rita.groups.add(*people["ann"].groups.all())  # an editor who is an approver too
    eve = UserFactory(username="eve", roles=["editor"])
    first = signoff_request(run=run, user=rita)
    if close == "withdraw":
        signoff_withdraw(signoff=first, user=rita)
    else:
        signoff_decide(signoff=first, user=people["ann"], decision="reject", comment="redo case 3")
    second = signoff_request(run=run, user=eve)

    for decision in ("approve", "reject"):
        with pytest.raises(SelfApprovalError) as refused:
            signoff_decide(signoff=second, user=rita, decision=decision, comment="fine now")
        assert (
            str(refused.value)
            == f"you requested sign-off #{first.pk} of this run: someone else must approve it"
        )
    assert not Approval.objects.filter(signoff=second).exists()
    run.refresh_from_db()
    assert run.signed_off_at is None
    assert (
        signoff_decide(signoff=second, user=people["abe"], decision="approve").status
        == SignOffStatus.APPROVED
    )


def test_an_override_of_the_baseline_is_refused_for_ones_own_run(people):
    ada = people["ada"]
    version = suite_version(test_cases=4)
    suite = version.suite
    started = make_run(people, version)
    Run.objects.filter(pk=started.pk).update(created_by=ada)
    started.refresh_from_db()
    requested = make_run(people, version)  # ada asked for its sign-off, withdrew, and overrides instead
    signoff_withdraw(signoff=signoff_request(run=requested, user=ada), user=ada)

    with pytest.raises(SelfApprovalError, match=r"^you started this run: request a sign-off instead"):
        baseline_set(suite=suite, run=started, user=ada, override=True)
    with pytest.raises(
        SelfApprovalError, match=r"^you requested sign-off #\d+ of this run: request a sign-off"
    ):
        baseline_set(suite=suite, run=requested, user=ada, override=True)
    suite.refresh_from_db()
    assert suite.baseline_run_id is None and not AuditEvent.objects.filter(action="suite.baseline").exists()

    others = make_run(people, version)
    baseline_set(suite=suite, run=others, user=ada, override=True)

    suite.refresh_from_db()
    assert suite.baseline_run_id == others.pk
    event = AuditEvent.objects.get(action="suite.baseline")
    assert (event.actor_name, event.after) == ("ada", {"baseline_run": others.pk, "override": True})
    assert audit_verify().ok


def test_an_override_does_not_put_a_run_not_signed_off_in_place_of_a_signed_off_baseline(people):
    version = suite_version(test_cases=4)
    suite = version.suite
    signed, unsigned = make_run(people, version), make_run(people, version)
    signoff_decide(
        signoff=signoff_request(run=signed, user=people["rita"]), user=people["ann"], decision="approve"
    )

    with pytest.raises(BaselineError, match=f"request a sign-off of run #{unsigned.pk} instead"):
        baseline_set(suite=suite, run=unsigned, user=people["ada"], override=True)
    suite.refresh_from_db()
    assert suite.baseline_run_id == signed.pk

    # A sign-off replaces it (no override), and an override may bring back a signed-off run.
    signoff_decide(
        signoff=signoff_request(run=unsigned, user=people["rita"]), user=people["ann"], decision="approve"
    )
    suite.refresh_from_db()
    assert suite.baseline_run_id == unsigned.pk
    baseline_set(suite=suite, run=signed, user=people["ada"], override=True)
    suite.refresh_from_db()
    assert suite.baseline_run_id == signed.pk
    assert [e.after for e in AuditEvent.objects.filter(action="suite.baseline").order_by("seq")] == [
        {"baseline_run": signed.pk},
        {"baseline_run": unsigned.pk},
        {"baseline_run": signed.pk, "override": True},
    ]


def test_a_rejection_needs_a_comment_and_closes_the_request(people):
    run = make_run(people, approvals_required=2)
    signoff = signoff_request(run=run, user=people["rita"])
    signoff_decide(signoff=signoff, user=people["ann"], decision="approve")

    with pytest.raises(SignOffError) as no_comment:
        signoff_decide(signoff=signoff, user=people["abe"], decision="reject", comment="  ")
    assert no_comment.value.field == "comment"

    signoff = signoff_decide(signoff=signoff, user=people["abe"], decision="reject", comment="case 3 fails")
    assert signoff.status == SignOffStatus.REJECTED
    with pytest.raises(SignOffError, match="is rejected; nothing to decide"):
        signoff_decide(signoff=signoff, user=people["cat"], decision="approve")
    run.refresh_from_db()
    assert run.signed_off_at is None
    assert "signoff.reject" in actions()
    # A fixed run may be put forward again.
    again = signoff_request(run=run, user=people["rita"], note="re-checked case 3")
    assert again.pk != signoff.pk and again.status == SignOffStatus.PENDING


def test_a_sign_off_is_requested_only_for_a_succeeded_run_without_one_pending(people):
    run = make_run(people)
    Run.objects.filter(pk=run.pk).update(status=RunStatus.FAILED)
    run.refresh_from_db()
    with pytest.raises(SignOffError, match="only a succeeded run"):
        signoff_request(run=run, user=people["rita"])
    Run.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
    signoff_request(run=run, user=people["rita"])
    with pytest.raises(SignOffError, match="pending sign-off request"):
        signoff_request(run=run, user=people["sam"])
    assert SignOff.objects.count() == 1


def test_the_requester_may_withdraw_a_pending_request(people):
    run = make_run(people)
    signoff = signoff_request(run=run, user=people["rita"])
    with pytest.raises(PermissionDenied):
        signoff_withdraw(signoff=signoff, user=people["sam"])
    signoff = signoff_withdraw(signoff=signoff, user=people["rita"])
    assert signoff.status == SignOffStatus.WITHDRAWN
    with pytest.raises(SignOffError):
        signoff_decide(signoff=signoff, user=people["ann"], decision="approve")


def test_a_requester_without_the_editor_role_no_longer_withdraws(people):
    run = make_run(people)
    rob = UserFactory(username="rob", roles=["editor"])
    signoff = signoff_request(run=run, user=rob)
    rob.groups.remove(Group.objects.get(name="editor"))

    with pytest.raises(PermissionDenied, match="only the requester"):
        signoff_withdraw(signoff=signoff, user=get_user_model().objects.get(pk=rob.pk))
    signoff.refresh_from_db()
    assert signoff.status == SignOffStatus.PENDING


@pytest.mark.parametrize("perm", [("evaluations", "set_baseline"), ("auth", "change_user")])
def test_an_admin_by_permission_withdraws_any_request(people, perm):
    """Admin means the permission, not the group's name: an editor given it directly may withdraw."""
    run = make_run(people)
    signoff = signoff_request(run=run, user=people["rita"])
    kim = UserFactory(username="kim", roles=["editor"])
    with pytest.raises(PermissionDenied):
        signoff_withdraw(signoff=signoff, user=kim)
    kim.user_permissions.add(Permission.objects.get(content_type__app_label=perm[0], codename=perm[1]))

    signoff = signoff_withdraw(signoff=signoff, user=get_user_model().objects.get(pk=kim.pk))

    assert signoff.status == SignOffStatus.WITHDRAWN
    assert AuditEvent.objects.get(action="signoff.withdraw").actor_name == "kim"


def test_re_scoring_voids_the_approvals_of_a_pending_sign_off(people, task_queue):
    run = make_run(people, approvals_required=2)
    signoff = signoff_request(run=run, user=people["rita"])
    signoff_decide(signoff=signoff, user=people["ann"], decision="approve", comment="ok")

    run_rescore(run_id=run.pk, user=people["sam"])

    approval = Approval.objects.get()
    assert approval.voided_at is not None
    void = AuditEvent.objects.get(action="signoff.void")
    assert void.before["approvals"] == [approval.pk] and void.actor_name == "sam"
    # No decisions while the re-score is in flight; once done, the approvals start again from zero.
    with pytest.raises(SignOffError, match="being re-scored"):
        signoff_decide(signoff=signoff, user=people["abe"], decision="approve")
    task_queue.drain()
    signoff = signoff_decide(signoff=signoff, user=people["abe"], decision="approve")
    assert signoff.status == SignOffStatus.PENDING  # ann's approval no longer counts: 1 of 2
    signoff = signoff_decide(signoff=signoff, user=people["ann"], decision="approve", comment="still ok")
    assert signoff.status == SignOffStatus.APPROVED


def test_a_signed_off_run_cannot_be_re_scored(people, task_queue):
    run = make_run(people)
    signoff_decide(
        signoff=signoff_request(run=run, user=people["rita"]), user=people["ann"], decision="approve"
    )
    with pytest.raises(RescoreError, match="signed off and locked"):
        run_rescore(run_id=run.pk, user=people["sam"])
    assert task_queue.sent == []
    assert not run.scorings.exists()


def test_a_signed_off_run_cannot_be_deleted_from_anywhere(people):
    run = make_run(people)
    signoff_decide(
        signoff=signoff_request(run=run, user=people["rita"]), user=people["ann"], decision="approve"
    )
    run.refresh_from_db()
    suite = run.suite_version.suite
    baseline_set(suite=suite, run=None, user=None)  # even when it is no longer the baseline

    with pytest.raises(RunError, match="signed off"):
        run_delete(run=run, user=people["sam"])
    # Each in a savepoint: Django deletes inside the caller's transaction, which the refusal breaks.
    with pytest.raises(ProtectedError, match="signed off"), transaction.atomic():
        Run.objects.filter(pk=run.pk).delete()
    with pytest.raises(ProtectedError, match="signed off"), transaction.atomic():
        run.delete()
    with pytest.raises(ProtectedError), transaction.atomic():
        suite.versions.get().runs.all().delete()
    assert Run.objects.filter(pk=run.pk).exists()
    assert run.arms.exists()


def test_run_delete_removes_a_finished_run_and_refuses_the_baseline_and_unfinished_runs(people):
    version = suite_version(test_cases=4)
    keep, drop = make_run(people, version), make_run(people, version)
    suite = version.suite
    baseline_set(suite=suite, run=keep, user=people["rita"])
    with pytest.raises(RunError, match="baseline"):
        run_delete(run=keep, user=people["sam"])
    queued = make_run(people, version)
    Run.objects.filter(pk=queued.pk).update(status=RunStatus.QUEUED)
    with pytest.raises(RunError, match="cancel it first"):
        run_delete(run=queued, user=people["sam"])

    run_delete(run=drop, user=people["sam"])

    assert not Run.objects.filter(pk=drop.pk).exists()
    event = AuditEvent.objects.get(action="run.delete")
    assert (event.object_id, event.actor_name, event.suite_id) == (str(drop.pk), "sam", suite.pk)
    assert event.before["status"] == "succeeded" and len(event.before["arms"]) == 1
    assert audit_verify().ok


@pytest.mark.django_db(transaction=True)
def test_two_approvers_at_once_cannot_both_be_the_last_one():
    from tests.factories import strategy

    strategy("zero-shot")
    people = {
        "sam": UserFactory(username="sam", roles=["editor"]),
        "rita": UserFactory(username="rita", roles=["editor"]),
        "ann": UserFactory(username="ann", roles=["approver"]),
        "abe": UserFactory(username="abe", roles=["approver"]),
        "cat": UserFactory(username="cat", roles=["approver"]),
    }
    run = make_run(people, approvals_required=2)
    signoff = signoff_request(run=run, user=people["rita"])
    signoff_decide(signoff=signoff, user=people["ann"], decision="approve")
    start = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def approve(name: str) -> None:
        try:
            start.wait()
            signoff_decide(signoff=signoff, user=people[name], decision="approve")
            outcomes[name] = "approved"
        except SignOffError as exc:
            outcomes[name] = str(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=approve, args=(name,)) for name in ("abe", "cat")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(outcomes.values())[0] == "approved"
    assert "is approved; nothing to decide" in sorted(outcomes.values())[1]
    assert Approval.objects.count() == 2
    assert AuditEvent.objects.filter(action="signoff.signed").count() == 1
    assert AuditEvent.objects.filter(action="suite.baseline").count() == 1
