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


def _role_events(user) -> list[tuple]:
    events = AuditEvent.objects.filter(action="user.roles", object_id=str(user.pk)).order_by("seq")
    return [(e.before, e.after) for e in events]


def test_a_change_from_the_group_side_records_each_user_with_their_roles_before():
    viewer, editor = Group.objects.get(name="viewer"), Group.objects.get(name="editor")
    ann = UserFactory(username="ann", roles=["viewer"])
    ben = UserFactory(username="ben")
    editor.user_set.add(ann, ben)
    assert _role_events(ann)[-1] == ({"roles": ["viewer"]}, {"roles": ["editor", "viewer"]})
    assert _role_events(ben) == [({"roles": []}, {"roles": ["editor"]})]
    viewer.user_set.remove(ann)
    assert _role_events(ann)[-1] == ({"roles": ["editor", "viewer"]}, {"roles": ["editor"]})


def test_clearing_a_group_records_every_member():
    editor = Group.objects.get(name="editor")
    ann = UserFactory(username="ann", roles=["editor", "viewer"])
    ben = UserFactory(username="ben", roles=["editor"])
    editor.user_set.clear()
    assert _role_events(ann)[-1] == ({"roles": ["editor", "viewer"]}, {"roles": ["viewer"]})
    assert _role_events(ben)[-1] == ({"roles": ["editor"]}, {"roles": []})
    ann.groups.clear()
    assert _role_events(ann)[-1] == ({"roles": ["viewer"]}, {"roles": []})


def test_a_set_records_true_states_and_inside_user_roles_change_one_event():
    from evaluations.services.user_audit import user_roles_change

    dave = UserFactory(username="dave", roles=["viewer", "reviewer"])
    start = len(_role_events(dave))
    dave.groups.set(Group.objects.filter(name__in=["viewer", "editor"]))  # Django: remove, then add
    assert _role_events(dave)[start:] == [
        ({"roles": ["reviewer", "viewer"]}, {"roles": ["viewer"]}),
        ({"roles": ["viewer"]}, {"roles": ["editor", "viewer"]}),
    ]
    admin = UserFactory(username="root", roles=["admin"])
    with user_roles_change(actor=admin, user=dave):
        dave.groups.set(Group.objects.filter(name__in=["approver"]))
    [last] = AuditEvent.objects.filter(action="user.roles", object_id=str(dave.pk)).order_by("-seq")[:1]
    assert (last.before, last.after, last.actor_name) == (
        {"roles": ["editor", "viewer"]},
        {"roles": ["approver"]},
        "root",
    )
    assert len(_role_events(dave)) == start + 3


def test_the_team_service_records_one_event_per_change_and_roles_given_at_creation_once():
    from evaluations.services.team import user_create, user_roles_set

    admin = UserFactory(username="root", roles=["admin"])
    carol, _ = user_create(actor=admin, username="carol", role_names=["viewer", "reviewer"])
    assert _role_events(carol) == []  # in "user.create"
    created = AuditEvent.objects.get(action="user.create", object_id=str(carol.pk))
    assert sorted(created.after["roles"]) == ["reviewer", "viewer"]
    user_roles_set(actor=admin, user=carol, role_names=["editor"])  # two removed, one added
    assert _role_events(carol) == [({"roles": ["reviewer", "viewer"]}, {"roles": ["editor"]})]


def test_a_role_permission_change_from_the_permission_side_is_recorded():
    from django.contrib.auth.models import Permission

    viewer = Group.objects.get(name="viewer")
    perm = Permission.objects.get(codename="delete_run")
    perm.group_set.add(viewer)
    event = AuditEvent.objects.filter(action="role.permissions").order_by("-seq").first()
    assert event.object_repr == "viewer"
    assert "delete_run" not in event.before["permissions"] and "delete_run" in event.after["permissions"]


def test_changes_of_superuser_staff_and_active_flags_are_recorded(django_assert_num_queries):
    User = UserFactory._meta.model
    root = User.objects.create_superuser("root", password="pw-for-tests-1")
    [made] = AuditEvent.objects.filter(action="user.flags", object_id=str(root.pk))
    assert (made.before, made.after) == (
        {"is_staff": False, "is_superuser": False},
        {"is_staff": True, "is_superuser": True},
    )
    erin = UserFactory(username="erin")
    assert not AuditEvent.objects.filter(action="user.flags", object_id=str(erin.pk)).exists()
    erin.is_superuser = True
    erin.save()
    erin.is_active = False
    erin.save(update_fields=["is_active"])
    flags = AuditEvent.objects.filter(action="user.flags", object_id=str(erin.pk)).order_by("seq")
    assert [(e.before, e.after) for e in flags] == [
        ({"is_superuser": False}, {"is_superuser": True}),
        ({"is_active": True}, {"is_active": False}),
    ]
    with django_assert_num_queries(1):  # a login's last_login: no look-up of the flags, no event
        erin.save(update_fields=["last_login"])


def test_deactivating_on_the_team_page_is_one_event():
    from evaluations.services.team import user_deactivate

    admin = UserFactory(username="root", roles=["admin"])
    fred = UserFactory(username="fred", roles=["viewer"])
    user_deactivate(actor=admin, user=fred)
    actions = list(
        AuditEvent.objects.filter(object_type="user", object_id=str(fred.pk))
        .exclude(action="user.roles")
        .values_list("action", flat=True)
    )
    assert actions == ["user.deactivate"]
