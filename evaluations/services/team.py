"""The team: create users, set their roles, deactivate and reactivate them (the Team page's writes).

Every change is an audit event: "user.create" (with the roles given), "user.deactivate" and
"user.reactivate" are recorded here; a change of roles is one "user.roles" event, recorded at the
end of `user_roles_change` (evaluations/receivers.py), with `actor` as its actor whichever way the
service is called (page, shell, command).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from evaluations.roles import ROLE_NAMES, user_roles
from evaluations.services.audit import audit_record
from evaluations.services.user_audit import user_flags_change, user_roles_change

GENERATED_PASSWORD_BYTES = 15  # 20 URL-safe characters


class TeamError(ValueError):
    """A change the team service refuses; `field` names the form field, the message what to do."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


def _role_groups(role_names: Iterable[str]) -> list[Group]:
    names = sorted(set(role_names), key=lambda n: ROLE_NAMES.index(n) if n in ROLE_NAMES else -1)
    unknown = [n for n in names if n not in ROLE_NAMES]
    if unknown:
        raise TeamError("roles", f"no role {', '.join(map(repr, unknown))}; roles: {', '.join(ROLE_NAMES)}")
    groups = list(Group.objects.filter(name__in=names))
    if len(groups) != len(names):
        raise TeamError("roles", "the role groups are missing: run `python manage.py bootstrap_roles`")
    return groups


@transaction.atomic
def user_create(
    *,
    actor,
    username: str,
    email: str = "",
    password: str = "",
    role_names: Iterable[str] = (),
) -> tuple[AbstractBaseUser, str | None]:
    """A new active user with the given roles. Without `password` one is generated and returned
    (to show once); a given one must pass the password validators. Returns (user, generated)."""
    User = get_user_model()
    username = (username or "").strip()
    email = (email or "").strip()
    if not username:
        raise TeamError("username", "give a username")
    try:
        User.username_validator(username)
    except ValidationError as exc:
        raise TeamError("username", " ".join(exc.messages)) from None
    if User.objects.filter(username__iexact=username).exists():
        raise TeamError("username", f"a user named {username!r} exists already")
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise TeamError("email", f"{email!r} is not an e-mail address") from None
    groups = _role_groups(role_names)
    generated = None
    if not password:
        password = generated = secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)
    else:
        try:
            validate_password(password, user=User(username=username, email=email))
        except ValidationError as exc:
            raise TeamError("password1", " ".join(exc.messages)) from None
    user = User.objects.create_user(username=username, email=email, password=password)
    audit_record(
        actor=actor,
        action="user.create",
        obj=user,
        object_repr=username,
        after={
            "username": username,
            "email": email,
            "roles": [g.name for g in groups],
            "login": "generated password" if generated else "password chosen by the admin",
        },
    )
    if groups:
        with user_roles_change(actor=actor, user=user, record=False):  # "user.create" has them
            user.groups.add(*groups)
    return user, generated


@transaction.atomic
def user_roles_set(*, actor, user, role_names: Iterable[str]) -> list[str]:
    """Make `user`'s roles exactly `role_names` (other groups stay). An admin cannot take the admin
    role from themselves: another admin must (so the team never locks itself out by a click)."""
    groups = _role_groups(role_names)
    wanted = {g.name for g in groups}
    current = {g.name: g for g in user.groups.filter(name__in=ROLE_NAMES)}
    if actor is not None and actor.pk == user.pk and "admin" in current and "admin" not in wanted:
        raise TeamError("roles", "you cannot take the admin role from yourself; ask another admin")
    remove = [g for name, g in current.items() if name not in wanted]
    add = [g for g in groups if g.name not in current]
    with user_roles_change(actor=actor, user=user):  # one event, not one per add and remove
        if remove:
            user.groups.remove(*remove)
        if add:
            user.groups.add(*add)
    return user_roles(user)


def _set_active(*, actor, user, active: bool, action: str):
    if user.is_active == active:
        return user
    user.is_active = active
    with user_flags_change(user=user):  # recorded below as user.deactivate/reactivate
        user.save(update_fields=["is_active"])
    audit_record(
        actor=actor,
        action=action,
        obj=user,
        object_repr=user.get_username(),
        before={"is_active": not active},
        after={"is_active": active},
    )
    return user


@transaction.atomic
def user_deactivate(*, actor, user):
    """The user can no longer log in, and their API tokens are refused; their history stays."""
    if actor is not None and actor.pk == user.pk:
        raise TeamError(None, "you cannot deactivate yourself; ask another admin")
    return _set_active(actor=actor, user=user, active=False, action="user.deactivate")


@transaction.atomic
def user_reactivate(*, actor, user):
    return _set_active(actor=actor, user=user, active=True, action="user.reactivate")
