"""The Team page: users and their roles; add a user, change roles, deactivate; every change audited."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from evaluations.models import AuditEvent
from evaluations.roles import user_roles
from evaluations.services.audit import audit_verify
from evaluations.services.team import TeamError, user_create, user_roles_set
from evaluations.services.tokens import api_token_create
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
User = get_user_model()
TEAM = "evaluations:team"


def _events(action: str, user) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action, object_id=str(user.pk)).order_by("seq"))


def test_the_page_lists_users_with_their_roles(auth_client, user):
    UserFactory(username="rita", roles=["reviewer", "approver"])
    html = auth_client.get(reverse(TEAM)).content.decode()
    rita = User.objects.get(username="rita")
    row = html[html.index(f'id="user-{rita.pk}"') :].split("</tr>")[0]
    assert re.search(r'value="reviewer" checked', row) and re.search(r'value="approver" checked', row)
    assert 'value="editor" checked' not in row
    assert 'alice <span class="muted">(you)</span>' in html
    assert "alice · admin" in html  # the header shows the current user's roles


def test_adding_a_user_with_a_password_checks_it_and_records_who_did_it(auth_client, user, client):
    url = reverse(TEAM)
    short = auth_client.post(
        url, {"username": "sam", "password1": "abc", "password2": "abc", "roles": ["editor"]}
    )
    assert short.status_code == 400
    assert "too short" in short.content.decode()
    differ = auth_client.post(
        url,
        {"username": "sam", "password1": "a-long-pass-9", "password2": "a-long-pass-8", "roles": ["editor"]},
    )
    assert differ.status_code == 400 and "the two passwords differ" in differ.content.decode()
    assert not User.objects.filter(username="sam").exists()

    ok = auth_client.post(
        url,
        {
            "username": "sam",
            "email": "sam@example.com",
            "password1": "a-long-pass-9",
            "password2": "a-long-pass-9",
            "roles": ["editor"],
        },
    )
    assert ok.status_code == 200
    assert "User sam created" in ok.content.decode()
    sam = User.objects.get(username="sam")
    assert sam.email == "sam@example.com" and user_roles(sam) == ["editor"]
    assert client.login(username="sam", password="a-long-pass-9")
    (created,) = _events("user.create", sam)
    assert created.actor_id == user.pk and created.after["roles"] == ["editor"]
    assert "a-long-pass-9" not in str(created.after)
    assert _events("user.roles", sam) == []  # the roles given are in "user.create": not twice
    assert audit_verify().ok


def test_an_empty_password_is_generated_and_shown_once(auth_client, client):
    response = auth_client.post(reverse(TEAM), {"username": "gen", "roles": ["viewer"]})
    html = response.content.decode()
    assert response.status_code == 200
    password = re.search(r'<code class="token">([^<]+)</code>', html).group(1)
    assert len(password) >= 20
    assert client.login(username="gen", password=password)
    assert password not in auth_client.get(reverse(TEAM)).content.decode()


def test_a_taken_username_is_refused(auth_client):
    UserFactory(username="Taken")
    response = auth_client.post(reverse(TEAM), {"username": "taken"})
    assert response.status_code == 400
    assert "a user named &#x27;taken&#x27; exists already" in response.content.decode()


def test_changing_roles_is_audited_with_the_admin_as_actor(auth_client, user):
    bob = UserFactory(username="bob", roles=["viewer"])
    response = auth_client.post(
        reverse("evaluations:team-roles", args=[bob.pk]), {"roles": ["reviewer", "approver"]}
    )
    assert response.status_code == 302
    assert user_roles(bob) == ["reviewer", "approver"]
    events = _events("user.roles", bob)
    assert events[-1].after == {"roles": ["approver", "reviewer"]}
    assert {e.actor_name for e in events[1:]} == {"alice"}  # the first: the factory giving viewer
    assert (
        auth_client.post(reverse("evaluations:team-roles", args=[bob.pk]), {"roles": ["boss"]}).status_code
        == 302
    )
    assert user_roles(bob) == ["reviewer", "approver"]  # an unknown role changes nothing


def test_an_admin_cannot_take_the_admin_role_from_themselves(auth_client, user):
    response = auth_client.post(
        reverse("evaluations:team-roles", args=[user.pk]), {"roles": ["viewer"]}, follow=True
    )
    assert "you cannot take the admin role from yourself" in response.content.decode()
    assert user_roles(user) == ["admin"]


def test_deactivating_a_user_ends_their_logins_and_tokens(auth_client, user, client):
    bob = UserFactory(username="bob", roles=["editor"])
    _, token = api_token_create(user=bob, name="ci")
    runs = reverse("api-v1:run-list")
    assert client.get(runs, HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    auth_client.post(reverse("evaluations:team-active", args=[bob.pk]), {"active": "0"})
    bob.refresh_from_db()
    assert not bob.is_active
    assert client.get(runs, HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401
    assert not client.login(username="bob", password="pw-for-tests-1")
    (event,) = _events("user.deactivate", bob)
    assert event.actor_id == user.pk and event.after == {"is_active": False}

    auth_client.post(reverse("evaluations:team-active", args=[bob.pk]), {"active": "1"})
    bob.refresh_from_db()
    assert bob.is_active and _events("user.reactivate", bob)


def test_an_admin_cannot_deactivate_themselves(auth_client, user):
    response = auth_client.post(
        reverse("evaluations:team-active", args=[user.pk]), {"active": "0"}, follow=True
    )
    assert "you cannot deactivate yourself" in response.content.decode()
    user.refresh_from_db()
    assert user.is_active


def test_only_admins_see_the_team_link_and_page(client):
    client.force_login(UserFactory(username="ed", roles=["editor"]))
    assert reverse(TEAM) not in client.get(reverse("evaluations:home")).content.decode()
    assert client.get(reverse(TEAM)).status_code == 403
    client.force_login(UserFactory(username="ad", roles=["admin"]))
    assert reverse(TEAM) in client.get(reverse("evaluations:home")).content.decode()


def test_the_services_record_their_actor_when_called_from_a_shell():
    admin = UserFactory(username="root-admin", roles=["admin"])
    carol, generated = user_create(actor=admin, username="carol", role_names=["viewer"])
    assert generated and carol.check_password(generated)
    user_roles_set(actor=admin, user=carol, role_names=["editor"])
    assert {e.actor_name for e in _events("user.roles", carol)} == {"root-admin"}
    assert user_roles(carol) == ["editor"]
    with pytest.raises(TeamError, match="no role 'owner'"):
        user_roles_set(actor=admin, user=carol, role_names=["owner"])


def test_the_demo_user_is_a_superuser_in_the_admin_role(monkeypatch):
    from evaluations.management.commands.rundemo import Command

    monkeypatch.delenv("FTVP_DEMO_PASSWORD", raising=False)
    first = Command()._demo_user()
    second = Command()._demo_user()
    demo = User.objects.get(username="demo")
    assert demo.is_superuser and "admin" in demo.groups.values_list("name", flat=True)
    assert first != second and demo.check_password(second)  # a new random password on every start
    monkeypatch.setenv("FTVP_DEMO_PASSWORD", "chosen-by-the-operator")
    assert Command()._demo_user() == "chosen-by-the-operator"
