"""Sign-off in the UI and the API: who sees which button, self-approval refused by the server, the
policy of two approvals, locked runs, deleting runs."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from evaluations.models import Approval, AuditEvent, Run, RunStatus, SignOff, SignOffStatus
from evaluations.services.signoffs import signoff_decide, signoff_request
from evaluations.services.tokens import api_token_create
from tests.factories import EndpointFactory, UserFactory
from tests.runs import ArmSpec, finished_run, suite_version

V1 = "/api/v1"


@pytest.fixture
def people(db):
    return {
        # sam starts runs and may approve too: the rule, not the role, must stop him
        "sam": UserFactory(username="sam", roles=["editor", "approver"]),
        "rita": UserFactory(username="rita", roles=["editor"]),
        "ann": UserFactory(username="ann", roles=["approver"]),
        "abe": UserFactory(username="abe", roles=["approver"]),
        "vic": UserFactory(username="vic", roles=["viewer"]),
    }


@pytest.fixture
def run(people) -> Run:
    version = suite_version(test_cases=3, name="capitals")
    run = finished_run(version, [ArmSpec(EndpointFactory(), "zero-shot", [1.0, 0.0, 1.0])])
    Run.objects.filter(pk=run.pk).update(created_by=people["sam"])
    run.refresh_from_db()
    return run


def as_user(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page(user, run: Run) -> str:
    response = as_user(user).get(reverse("evaluations:run-detail", args=[run.pk]))
    assert response.status_code == 200
    return response.content.decode()


def api(user) -> Client:
    client = Client()
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {api_token_create(user=user, name='t')[1]}"
    return client


# --- pages ------------------------------------------------------------------------------------------


def test_an_editor_requests_sign_off_from_the_run_page(people, run):
    assert "Request sign-off" in page(people["rita"], run)
    assert "Request sign-off" not in page(people["vic"], run)  # a viewer may not

    response = as_user(people["rita"]).post(
        reverse("evaluations:run-signoff-request", args=[run.pk]), {"note": "ready <b>now</b>"}, follow=True
    )

    signoff = SignOff.objects.get()
    assert (signoff.status, signoff.requested_by, signoff.note) == (
        "pending",
        people["rita"],
        "ready <b>now</b>",
    )
    html = response.content.decode()
    assert "0 of 1 approval so far" in html and "ready &lt;b&gt;now&lt;/b&gt;" in html
    refused = as_user(people["vic"]).post(reverse("evaluations:run-signoff-request", args=[run.pk]))
    assert refused.status_code == 403


def test_the_starter_sees_no_approve_button_and_the_server_refuses_his_approval(people, run):
    signoff = signoff_request(run=run, user=people["rita"])
    html = page(people["sam"], run)
    assert 'value="approve"' not in html
    assert "you started this run: someone else must approve it" in html
    html = page(people["rita"], run)  # the requester is no approver, and no buttons either way
    assert 'value="approve"' not in html

    response = as_user(people["sam"]).post(
        reverse("evaluations:signoff-decide", args=[signoff.pk]), {"decision": "approve", "comment": "mine"}
    )

    assert response.status_code == 403
    assert "you started this run: someone else must approve it" in response.content.decode()
    assert not Approval.objects.exists()
    run.refresh_from_db()
    assert run.signed_off_at is None


def test_an_approver_signs_off_and_the_run_is_locked(people, run):
    signoff = signoff_request(run=run, user=people["rita"])
    assert 'value="approve"' in page(people["ann"], run)
    assert "Delete run" not in page(people["rita"], run)  # not while a request is pending

    response = as_user(people["ann"]).post(
        reverse("evaluations:signoff-decide", args=[signoff.pk]),
        {"decision": "approve", "comment": "verified"},
        follow=True,
    )

    html = response.content.decode()
    assert "is signed off: it is now the baseline and locked" in html
    assert "signed off" in html and "verified" in html
    run.refresh_from_db()
    assert run.signed_off_at is not None and run.suite_version.suite.baseline_run_id == run.pk
    html = page(people["rita"], run)
    assert "Delete run" not in html and "Request sign-off" not in html
    assert ">Re-score</button>" not in html
    refused = as_user(people["rita"]).post(reverse("evaluations:run-delete", args=[run.pk]), follow=True)
    assert "Run not deleted: run #" in refused.content.decode()
    assert Run.objects.filter(pk=run.pk).exists()
    rescore = as_user(people["rita"]).post(reverse("evaluations:run-rescore", args=[run.pk]), follow=True)
    assert "signed off and locked" in rescore.content.decode()


def test_a_rejection_without_a_comment_is_refused_with_a_message(people, run):
    signoff = signoff_request(run=run, user=people["rita"])
    url = reverse("evaluations:signoff-decide", args=[signoff.pk])
    response = as_user(people["ann"]).post(url, {"decision": "reject"}, follow=True)
    assert "comment: say why you reject it" in response.content.decode()
    assert not Approval.objects.exists()
    as_user(people["ann"]).post(url, {"decision": "reject", "comment": "case 2 is wrong"})
    signoff.refresh_from_db()
    assert signoff.status == SignOffStatus.REJECTED
    html = page(people["rita"], run)
    assert "case 2 is wrong" in html and "Request sign-off" in html  # it may be requested again


def test_the_sign_off_list_shows_pending_requests_first(people, run):
    older = finished_run(run.suite_version, [ArmSpec(EndpointFactory(), "zero-shot", [1.0, 1.0, 1.0])])
    done = signoff_request(run=older, user=people["rita"])
    signoff_decide(signoff=done, user=people["ann"], decision="reject", comment="no")
    signoff_request(run=run, user=people["rita"], note="please check")
    response = as_user(people["vic"]).get(reverse("evaluations:signoff-list"))
    html = response.content.decode()
    assert response.status_code == 200
    assert html.index(f"Run #{run.pk}<") < html.index(f"Run #{older.pk}<")
    assert "please check" in html
    only = as_user(people["vic"]).get(reverse("evaluations:signoff-list"), {"status": "rejected"})
    assert f"Run #{run.pk}<" not in only.content.decode()


def test_an_editor_deletes_an_unlocked_run_after_confirming(people, run):
    assert "Delete run" in page(people["rita"], run)
    assert "Delete run" not in page(people["ann"], run)  # approvers may not delete
    url = reverse("evaluations:run-delete", args=[run.pk])
    confirm = as_user(people["rita"]).get(url)
    assert confirm.status_code == 200 and "3 results" in confirm.content.decode()
    assert as_user(people["ann"]).post(url).status_code == 403

    response = as_user(people["rita"]).post(url)

    assert response.status_code == 302 and response["Location"] == reverse("evaluations:run-list")
    assert not Run.objects.filter(pk=run.pk).exists()
    assert AuditEvent.objects.filter(action="run.delete", actor_name="rita").exists()


def test_the_suite_policy_is_set_in_the_suite_settings(people, run, user, client):
    suite = run.suite_version.suite
    client.force_login(user)
    data = {"description": "", "quality_target": "0.8", "pass_threshold": "0.8", "monthly_volume": "10000"}
    client.post(reverse("evaluations:suite-settings", args=[suite.pk]), {**data, "approvals_required": "2"})
    suite.refresh_from_db()
    assert suite.approvals_required == 2
    bad = client.post(
        reverse("evaluations:suite-settings", args=[suite.pk]),
        {**data, "approvals_required": "11"},
        follow=True,
    )
    assert "approvals_required" in bad.content.decode()
    suite.refresh_from_db()
    assert suite.approvals_required == 2
    event = AuditEvent.objects.get(action="suite.settings")
    assert (event.before, event.after, event.actor_name) == (
        {"approvals_required": 1},
        {"approvals_required": 2},
        "alice",
    )


def test_withdrawing_and_requesting_again_does_not_let_the_first_requester_approve(people, run):
    rita = people["rita"]
    rita.groups.add(*people["ann"].groups.all())  # an editor who is an approver too
    eve = UserFactory(username="eve", roles=["editor"])
    first = signoff_request(run=run, user=rita)
    as_user(rita).post(reverse("evaluations:signoff-withdraw", args=[first.pk]))
    as_user(eve).post(reverse("evaluations:run-signoff-request", args=[run.pk]), {"note": "mine now"})
    second = SignOff.objects.get(status=SignOffStatus.PENDING)
    reason = f"you requested sign-off #{first.pk} of this run: someone else must approve it"

    html = page(rita, run)
    assert 'value="approve"' not in html and reason in html
    refused = as_user(rita).post(
        reverse("evaluations:signoff-decide", args=[second.pk]), {"decision": "approve", "comment": "ok"}
    )
    assert refused.status_code == 403 and reason in refused.content.decode()
    by_api = api(rita).post(f"{V1}/runs/{run.pk}/signoff/approve/", {}, content_type="application/json")
    assert (by_api.status_code, by_api.json()) == (403, {"detail": reason})
    assert not Approval.objects.exists()
    run.refresh_from_db()
    assert run.signed_off_at is None


def test_an_admin_cannot_make_their_own_run_the_baseline_without_a_sign_off(people, run, user):
    own = finished_run(run.suite_version, [ArmSpec(EndpointFactory(), "zero-shot", [1.0, 1.0, 1.0])])
    Run.objects.filter(pk=own.pk).update(created_by=user)
    suite = run.suite_version.suite

    response = as_user(user).post(reverse("evaluations:run-set-baseline", args=[own.pk]), follow=True)
    assert (
        "Baseline not changed: you started this run: request a sign-off instead" in response.content.decode()
    )
    by_api = api(user).post(f"{V1}/runs/{own.pk}/baseline/")
    assert by_api.status_code == 403 and by_api.json()["detail"].startswith("you started this run: request")
    suite.refresh_from_db()
    assert suite.baseline_run_id is None

    allowed = as_user(user).post(reverse("evaluations:run-set-baseline", args=[run.pk]), follow=True)
    assert f"Run #{run.pk} is now the baseline" in allowed.content.decode()
    event = AuditEvent.objects.get(action="suite.baseline")
    assert (event.actor_name, event.after) == ("alice", {"baseline_run": run.pk, "override": True})


def test_a_signed_off_baseline_is_replaced_by_a_sign_off_not_an_override(people, run, user):
    signoff_decide(
        signoff=signoff_request(run=run, user=people["rita"]), user=people["ann"], decision="approve"
    )
    newer = finished_run(run.suite_version, [ArmSpec(EndpointFactory(), "zero-shot", [1.0, 1.0, 1.0])])
    advice = f"request a sign-off of run #{newer.pk} instead"

    response = as_user(user).post(reverse("evaluations:run-set-baseline", args=[newer.pk]), follow=True)
    assert advice in response.content.decode()
    by_api = api(user).post(f"{V1}/runs/{newer.pk}/baseline/")
    assert by_api.status_code == 400 and advice in by_api.json()["detail"]
    suite = run.suite_version.suite
    suite.refresh_from_db()
    assert suite.baseline_run_id == run.pk


def test_an_editor_sees_the_policy_but_only_an_admin_changes_it(people, run, user):
    suite = run.suite_version.suite
    detail = reverse("evaluations:suite-detail", args=[suite.pk])
    settings_url = reverse("evaluations:suite-settings", args=[suite.pk])

    def policy_input(who) -> str:
        html = as_user(who).get(detail).content.decode()
        return re.search(r'<input[^>]*name="approvals_required"[^>]*>', html).group(0)

    assert "disabled" in policy_input(people["rita"]) and "disabled" not in policy_input(user)
    data = {"description": "", "quality_target": "0.8", "pass_threshold": "0.8", "monthly_volume": "10000"}

    refused = as_user(people["rita"]).post(
        settings_url, {**data, "description": "stricter", "approvals_required": "2"}, follow=True
    )

    assert "Settings not saved: approvals_required: only an admin can change the sign-off policy" in (
        refused.content.decode()
    )
    suite.refresh_from_db()
    assert (suite.description, suite.approvals_required) == ("", 1)
    # The browser does not send a disabled field: the editor's other settings are saved, the policy kept.
    as_user(people["rita"]).post(settings_url, {**data, "description": "stricter"})
    suite.refresh_from_db()
    assert (suite.description, suite.approvals_required) == ("stricter", 1)


def test_the_withdraw_button_shows_only_to_who_may_withdraw(people, run, user):
    from django.contrib.auth.models import Group

    rob = UserFactory(username="rob", roles=["editor"])
    signoff_request(run=run, user=rob)
    assert "Withdraw the request" in page(rob, run) and "Withdraw the request" in page(user, run)
    rob.groups.remove(Group.objects.get(name="editor"))
    rob.groups.add(Group.objects.get(name="viewer"))
    assert "Withdraw the request" not in page(rob, run)  # no longer an editor: the server would refuse
    assert "Withdraw the request" not in page(people["rita"], run)  # an editor, not the requester


# --- API --------------------------------------------------------------------------------------------


def test_self_approval_is_refused_by_the_api_with_a_403_naming_why(people, run):
    url = f"{V1}/runs/{run.pk}/signoff/"
    created = api(people["rita"]).post(url, {"note": "ready"}, content_type="application/json")
    assert created.status_code == 201, created.content
    assert created.json()["status"] == "pending" and created.json()["approvals_required"] == 1

    by_starter = api(people["sam"]).post(url + "approve/", {}, content_type="application/json")
    assert by_starter.status_code == 403
    assert by_starter.json() == {"detail": "you started this run: someone else must approve it"}
    rita_approver = people["rita"]
    rita_approver.groups.add(*people["ann"].groups.all())
    by_requester = api(rita_approver).post(url + "approve/", {}, content_type="application/json")
    assert by_requester.status_code == 403
    assert by_requester.json() == {"detail": "you requested this sign-off: someone else must approve it"}
    by_viewer = api(people["vic"]).post(url + "approve/", {}, content_type="application/json")
    assert by_viewer.status_code == 403 and "approve_signoff" in by_viewer.json()["detail"]
    assert not Approval.objects.exists()


def test_two_approvals_through_the_api_sign_the_run_off(people, run):
    suite = run.suite_version.suite
    suite.approvals_required = 2
    suite.save()
    url = f"{V1}/runs/{run.pk}/signoff/"
    assert api(people["vic"]).get(url).json()["status"] == "not_requested"
    api(people["rita"]).post(url, {}, content_type="application/json")

    first = api(people["ann"]).post(url + "approve/", {"comment": "ok"}, content_type="application/json")
    assert first.status_code == 200
    assert (first.json()["status"], first.json()["approvals"]) == ("pending", 1)
    again = api(people["ann"]).post(url + "approve/", {}, content_type="application/json")
    assert again.status_code == 409 and again.json()["detail"].startswith("signoff: you already decided")

    second = api(people["abe"]).post(url + "approve/", {}, content_type="application/json")
    assert (second.status_code, second.json()["status"], second.json()["approvals"]) == (200, "approved", 2)
    state = api(people["vic"]).get(url).json()
    assert state["status"] == "approved" and state["signed_off_at"]
    assert [d["approver"] for d in state["signoffs"][0]["decisions"]] == ["ann", "abe"]
    assert api(people["vic"]).get(f"{V1}/runs/{run.pk}/").json()["is_baseline"] is True

    deleted = api(people["rita"]).delete(f"{V1}/runs/{run.pk}/")
    assert deleted.status_code == 409 and "signed off" in deleted.json()["detail"]
    assert Run.objects.filter(pk=run.pk).exists()


def test_api_reject_needs_a_comment_and_delete_removes_an_unlocked_run(people, run):
    url = f"{V1}/runs/{run.pk}/signoff/"
    no_request = api(people["ann"]).post(url + "reject/", {"comment": "x"}, content_type="application/json")
    assert no_request.status_code == 409 and "no pending sign-off" in no_request.json()["detail"]
    api(people["rita"]).post(url, {}, content_type="application/json")
    bare = api(people["ann"]).post(url + "reject/", {}, content_type="application/json")
    assert bare.status_code == 400 and bare.json()["detail"].startswith("comment: ")
    rejected = api(people["ann"]).post(url + "reject/", {"comment": "no"}, content_type="application/json")
    assert rejected.json()["status"] == "rejected"

    assert api(people["ann"]).delete(f"{V1}/runs/{run.pk}/").status_code == 403  # approvers may not delete
    queued = finished_run(run.suite_version, [ArmSpec(EndpointFactory(), "zero-shot", [1.0, 1.0, 1.0])])
    Run.objects.filter(pk=queued.pk).update(status=RunStatus.RUNNING)
    busy = api(people["rita"]).delete(f"{V1}/runs/{queued.pk}/")
    assert busy.status_code == 409 and "cancel it first" in busy.json()["detail"]
    assert api(people["rita"]).delete(f"{V1}/runs/{run.pk}/").status_code == 204
    assert not Run.objects.filter(pk=run.pk).exists()


def test_only_the_requester_withdraws_a_pending_request_from_the_run_page(people, run):
    signoff = signoff_request(run=run, user=people["rita"])
    assert "Withdraw the request" in page(people["rita"], run)
    assert "Withdraw the request" not in page(people["sam"], run)
    url = reverse("evaluations:signoff-withdraw", args=[signoff.pk])
    refused = as_user(people["sam"]).post(url, follow=True)
    assert "Not withdrawn: only the requester" in refused.content.decode()
    as_user(people["rita"]).post(url)
    signoff.refresh_from_db()
    assert signoff.status == SignOffStatus.WITHDRAWN
    assert AuditEvent.objects.filter(action="signoff.withdraw", actor_name="rita").exists()
