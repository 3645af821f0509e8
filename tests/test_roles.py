"""The role groups: made by migrate, idempotent, and holding what evaluations/roles.py says."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError

from evaluations import roles
from evaluations.models import AuditEvent
from evaluations.roles import roles_bootstrap, user_roles
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_migrate_made_every_role_group():
    assert set(Group.objects.values_list("name", flat=True)) >= set(roles.ROLE_NAMES)


ALL = [roles.READ, roles.UPLOAD, roles.RUN, roles.REVIEW, roles.APPROVE, roles.ENDPOINT_CONNECTION]
ALL += [roles.ADD_ENDPOINT, roles.SET_BASELINE, roles.ALERTS, roles.MANAGE_USERS]
EDITS = [roles.READ, roles.UPLOAD, roles.RUN, roles.SCHEDULE, roles.EDIT_ENDPOINT, roles.REQUEST_SIGNOFF]
NOT_EDITS = [roles.REVIEW, roles.APPROVE, roles.ENDPOINT_CONNECTION, roles.ADD_ENDPOINT, roles.MANAGE_USERS]


@pytest.mark.parametrize(
    ("role", "allowed", "refused"),
    [
        ("viewer", [roles.READ], [roles.UPLOAD, roles.RUN, roles.REVIEW, roles.APPROVE, roles.ADD_ENDPOINT]),
        ("editor", EDITS, NOT_EDITS),
        ("reviewer", [roles.READ, roles.REVIEW], [roles.UPLOAD, roles.RUN, roles.APPROVE]),
        (
            "approver",
            [roles.READ, roles.APPROVE],
            [roles.UPLOAD, roles.RUN, roles.REVIEW, roles.SET_BASELINE],
        ),
        ("admin", ALL, []),
    ],
)
def test_each_role_holds_what_the_table_says(role, allowed, refused):
    user = UserFactory(roles=[role])
    for perm in allowed:
        assert user.has_perm(perm), f"{role} should have {perm}"
    for perm in refused:
        assert not user.has_perm(perm), f"{role} should not have {perm}"


def test_no_role_may_write_the_audit_log_by_hand():
    admin = UserFactory(roles=["admin"])
    assert admin.has_perm("evaluations.view_auditevent")
    for code in ("add_auditevent", "change_auditevent", "delete_auditevent"):
        assert not admin.has_perm(f"evaluations.{code}")


def test_bootstrap_is_idempotent_and_restores_a_tampered_role():
    viewer = Group.objects.get(name="viewer")
    before = set(viewer.permissions.values_list("pk", flat=True))
    viewer.permissions.clear()
    first = roles_bootstrap()
    second = roles_bootstrap()
    assert first == second
    assert set(viewer.permissions.values_list("pk", flat=True)) == before


def test_bootstrap_roles_command_gives_a_user_a_role(capsys):
    UserFactory(username="carol")
    call_command("bootstrap_roles", "--user", "carol", "--role", "reviewer", "--role", "approver")
    out = capsys.readouterr().out
    assert "carol now has: reviewer, approver" in out
    carol = UserFactory._meta.model.objects.get(username="carol")
    assert user_roles(carol) == ["reviewer", "approver"]


def test_bootstrap_roles_command_names_a_missing_user():
    with pytest.raises(CommandError, match="no user 'nobody'"):
        call_command("bootstrap_roles", "--user", "nobody", "--role", "viewer")


def test_a_role_change_is_an_audit_event_with_before_and_after():
    dave = UserFactory(username="dave", roles=["viewer"])
    dave.groups.add(Group.objects.get(name="editor"))
    dave.groups.remove(Group.objects.get(name="viewer"))
    events = list(AuditEvent.objects.filter(action="user.roles", object_id=str(dave.pk)).order_by("seq"))
    assert [(e.before, e.after) for e in events] == [
        ({"roles": []}, {"roles": ["viewer"]}),
        ({"roles": ["viewer"]}, {"roles": ["editor", "viewer"]}),
        ({"roles": ["editor", "viewer"]}, {"roles": ["editor"]}),
    ]
    assert all(e.actor_name == "system" for e in events)  # no request: nobody signed in made it


def test_bootstrap_itself_records_no_role_change():
    count = AuditEvent.objects.filter(action="role.permissions").count()
    Group.objects.get(name="viewer").permissions.clear()
    assert AuditEvent.objects.filter(action="role.permissions").count() == count + 1  # a person's change
    roles_bootstrap()
    assert AuditEvent.objects.filter(action="role.permissions").count() == count + 1
