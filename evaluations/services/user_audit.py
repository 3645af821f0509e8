"""Who changed a user's roles or flags, recorded once: the bookkeeping shared by the Team page's
services (services/team.py) and the signal receivers (evaluations/receivers.py).

A change made inside `user_roles_change` or `user_flags_change` is recorded by the service that made
it; any other change (the admin site, a shell) is recorded by the receivers, with the user of the
request being served (`current_actor`, set by middleware.ActorMiddleware) as its actor.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from evaluations.services.audit import audit_record

# The user of the request being served (set by ActorMiddleware), for changes recorded by signals.
current_actor: contextvars.ContextVar = contextvars.ContextVar("ftvp_current_actor", default=None)


# --- role and flag changes -------------------------------------------------------------------------
#
# An m2m change sends pre_<x> then post_<x> in one call: the state before is kept by owner pk from the
# first to the second (the owners of a reverse clear, group.user_set.clear(), are read at pre_clear:
# post_clear has no pk_set). Thread-local, as the two signals of one call run in one thread.
_pending = threading.local()


M2M_ACTIONS = ("pre_add", "pre_remove", "pre_clear", "post_add", "post_remove", "post_clear")


def pending_state() -> dict:
    if not hasattr(_pending, "before"):
        _pending.before, _pending.recorded_by_service = {}, set()
    return _pending.before


def recorded_by_service(kind: str, pk) -> bool:
    pending_state()
    return (kind, pk) in _pending.recorded_by_service


@contextmanager
def _service_records(kind: str, pks: Iterable) -> Iterator[None]:
    """Within it, the signals record nothing of `kind` for these owners: the service does."""
    pending_state()
    keys = {(kind, pk) for pk in pks} - _pending.recorded_by_service
    _pending.recorded_by_service |= keys
    try:
        yield
    finally:
        _pending.recorded_by_service -= keys


def _m2m_owners(kind: str, instance, action: str, reverse: bool, pk_set, members) -> list:
    """The pks whose set changes in this call: the instance, or (reverse) the pks given."""
    if not reverse:
        return [instance.pk]
    key = (kind, "clear", instance.pk)
    if action == "pre_clear":
        pending_state()[key] = list(members(instance))
        return pending_state()[key]
    if action == "post_clear":
        return pending_state().pop(key, [])
    return sorted(pk_set or ())


def m2m_changes(kind: str, instance, action: str, reverse: bool, pk_set, members, names) -> dict:
    """{owner pk: (names before, names after)} of the owners whose names changed in this call, at
    its post_ signal; {} at its pre_ signal (which keeps the names before)."""
    owners = list(_m2m_owners(kind, instance, action, reverse, pk_set, members))
    if not owners:
        return {}
    now = names(owners)
    if action.startswith("pre_"):
        pending_state().update({(kind, pk): now.get(pk, []) for pk in owners})
        return {}
    out = {}
    for pk in owners:
        before = pending_state().pop((kind, pk), None)
        after = now.get(pk, [])
        if before != after and not recorded_by_service(kind, pk):
            out[pk] = (before, after)
    return out


def role_names(user_pks) -> dict:
    rows = get_user_model().groups.through.objects.filter(user_id__in=user_pks)
    out: dict = {}
    for user_id, name in rows.order_by("group__name").values_list("user_id", "group__name"):
        out.setdefault(user_id, []).append(name)
    return out


def record_roles(users, before_after: dict, actor) -> None:
    for user in users:
        before, after = before_after[user.pk]
        audit_record(
            actor=actor,
            action="user.roles",
            obj=user,
            object_repr=user.get_username(),
            before={"roles": before},
            after={"roles": after},
        )


@contextmanager
def user_roles_change(*, actor, user, record: bool = True) -> Iterator[None]:
    """Change `user`'s groups inside it (any number of adds and removes, or a `.set()`): one
    "user.roles" event at its end when their roles differ (none when `record` is False: the caller
    records them, e.g. in "user.create"), with `actor` as its actor."""
    before = role_names([user.pk]).get(user.pk, [])
    token = current_actor.set(actor)
    try:
        with _service_records("roles", [user.pk]):
            yield
    finally:
        current_actor.reset(token)
    after = role_names([user.pk]).get(user.pk, [])
    if record and before != after:
        record_roles([user], {user.pk: (before, after)}, actor)


def permission_names(group_pks) -> dict:
    rows = Group.permissions.through.objects.filter(group_id__in=group_pks)
    out: dict = {}
    for group_id, codename in rows.order_by("permission__codename").values_list(
        "group_id", "permission__codename"
    ):
        out.setdefault(group_id, []).append(codename)
    return out


USER_FLAGS = ("is_active", "is_staff", "is_superuser")


@contextmanager
def user_flags_change(*, user) -> Iterator[None]:
    """Change `user`'s flags inside it when the caller records the change itself (user.deactivate)."""
    with _service_records("flags", [user.pk]):
        yield
