"""The admin site leaves what the audited services change read-only, and never edits the audit log."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.utils import timezone

from evaluations import models
from evaluations.models import AuditEvent
from tests.factories import EndpointFactory, UserFactory
from tests.runs import ArmSpec, finished_run, suite_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    root = UserFactory(username="root", roles=["admin"])
    root.is_staff = root.is_superuser = True
    root.save()
    client.force_login(root)
    return client


def _change(client, obj, data: dict):
    url = f"/admin/evaluations/{obj._meta.model_name}/{obj.pk}/change/"
    return client.post(url, data)


def test_the_run_change_form_ignores_a_posted_sign_off_and_creator(staff):
    version = suite_version(test_cases=2)
    run = finished_run(version, [ArmSpec(EndpointFactory(), "zero-shot", [1.0, 0.0])])
    arm = run.arms.get()
    mallory = UserFactory(username="mallory")
    page = staff.get(f"/admin/evaluations/run/{run.pk}/change/")
    assert "signed_off_at" not in page.context["adminform"].form.fields
    response = _change(
        staff,
        run,
        {
            "status": run.status, "trigger": run.trigger, "repeats": 1, "use_cache": "on",
            "expected_results": run.expected_results, "batches_total": run.batches_total,
            "batches_scored": run.batches_scored, "error": "edited in the admin", "analysis_error": "",
            "signed_off_at_0": "2030-01-01", "signed_off_at_1": "10:00:00", "created_by": mallory.pk,
            "arms-TOTAL_FORMS": 1, "arms-INITIAL_FORMS": 1, "arms-MIN_NUM_FORMS": 0,
            "arms-MAX_NUM_FORMS": 1000, "arms-0-id": arm.pk, "arms-0-run": run.pk,
        },
    )  # fmt: skip
    assert response.status_code == 302, response.context["adminform"].form.errors
    run.refresh_from_db()
    assert run.error == "edited in the admin"  # the form was saved...
    assert run.signed_off_at is None and run.created_by_id is None  # ...without what a sign-off sets


def test_suite_policy_baseline_and_endpoint_connection_are_read_only(staff):
    version = suite_version(test_cases=2)
    endpoint = EndpointFactory(base_url="https://llm.example/v1")
    suite_form = staff.get(f"/admin/evaluations/suite/{version.suite_id}/change/").context["adminform"].form
    assert not {"baseline_run", "approvals_required", "quality_target", "pass_threshold"} & set(
        suite_form.fields
    )
    endpoint_form = staff.get(f"/admin/evaluations/endpoint/{endpoint.pk}/change/").context["adminform"].form
    assert not {"base_url", "api_key_env", "provider", "model", "params"} & set(endpoint_form.fields)
    assert staff.get("/admin/evaluations/endpoint/add/").status_code == 403  # the Endpoints page checks it


def test_the_audit_log_and_the_decisions_are_not_editable_in_the_admin(staff):
    for model in (models.AuditEvent, models.AuditHead, models.Review, models.SignOff, models.Approval):
        model_admin = admin.site._registry.get(model)
        if model_admin is not None:  # registered read-only, or not at all
            assert not model_admin.has_add_permission(None)
            assert not model_admin.has_change_permission(None)
            assert not model_admin.has_delete_permission(None)
    assert staff.get("/admin/evaluations/auditevent/").status_code == 404


def test_changing_a_users_groups_in_the_admin_is_one_event_by_the_admin(staff):
    dave = UserFactory(username="dave", roles=["viewer", "reviewer"])
    editor = Group.objects.get(name="editor")
    viewer = Group.objects.get(name="viewer")
    joined = timezone.localtime(dave.date_joined)
    response = staff.post(
        f"/admin/auth/user/{dave.pk}/change/",
        {
            "username": "dave", "is_active": "on", "is_staff": "on", "groups": [viewer.pk, editor.pk],
            "date_joined_0": joined.strftime("%Y-%m-%d"), "date_joined_1": joined.strftime("%H:%M:%S"),
        },
    )  # fmt: skip
    assert response.status_code == 302, response.context["adminform"].form.errors
    events = AuditEvent.objects.filter(object_type="user", object_id=str(dave.pk)).order_by("seq")
    latest = [(e.action, e.actor_name, e.before, e.after) for e in events][-2:]
    assert latest == [
        ("user.flags", "root", {"is_staff": False}, {"is_staff": True}),
        ("user.roles", "root", {"roles": ["reviewer", "viewer"]}, {"roles": ["editor", "viewer"]}),
    ]
