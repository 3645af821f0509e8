"""Signal receivers, connected in EvaluationsConfig.ready().

Roles: the role groups are made to match evaluations/roles.py after every `migrate`; a change of a
user's roles (or of a role's permissions), made anywhere (the Team page, the admin site, a shell), is
an audit event, its actor the user of the request that made it (see `ActorMiddleware`): one event per
user per call ("user.roles"), or per logical change when made inside `user_roles_change` (the Team
page, the admin site's user form). A change of a user's is_active, is_staff or is_superuser is a
"user.flags" event.

Runs: a signed-off run can no longer be deleted, whichever way the delete comes.

A schedule owns its django-celery-beat entry (services/schedules.py), but a schedule is also deleted
without that service: with its suite or its pinned version (CASCADE), in the admin, from a shell.
Its beat entry goes with it in every case, or beat would keep sending `scheduled_run` for a schedule
that no longer exists.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import ProtectedError
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete, pre_save
from django.dispatch import receiver
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from evaluations.models import Run, Schedule

# The user of the request being served (set by ActorMiddleware), for changes recorded by signals.
current_actor: contextvars.ContextVar = contextvars.ContextVar("ftvp_current_actor", default=None)


class ActorMiddleware:
    """Makes the request's user the actor of audit events that signals record (role changes)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = current_actor.set(getattr(request, "user", None))
        try:
            return self.get_response(request)
        finally:
            current_actor.reset(token)


def roles_after_migrate(sender, using="default", apps=None, **kwargs) -> None:
    """Connected in EvaluationsConfig.ready() for the evaluations app only."""
    from evaluations.roles import roles_bootstrap

    roles_bootstrap(using=using)


# --- role and flag changes -------------------------------------------------------------------------
#
# An m2m change sends pre_<x> then post_<x> in one call: the state before is kept by owner pk from the
# first to the second (the owners of a reverse clear, group.user_set.clear(), are read at pre_clear:
# post_clear has no pk_set). Thread-local, as the two signals of one call run in one thread.
_pending = threading.local()
M2M_ACTIONS = ("pre_add", "pre_remove", "pre_clear", "post_add", "post_remove", "post_clear")


def _state() -> dict:
    if not hasattr(_pending, "before"):
        _pending.before, _pending.recorded_by_service = {}, set()
    return _pending.before


def _recorded_by_service(kind: str, pk) -> bool:
    _state()
    return (kind, pk) in _pending.recorded_by_service


@contextmanager
def _service_records(kind: str, pks: Iterable) -> Iterator[None]:
    """Within it, the signals record nothing of `kind` for these owners: the service does."""
    _state()
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
        _state()[key] = list(members(instance))
        return _state()[key]
    if action == "post_clear":
        return _state().pop(key, [])
    return sorted(pk_set or ())


def _m2m_changes(kind: str, instance, action: str, reverse: bool, pk_set, members, names) -> dict:
    """{owner pk: (names before, names after)} of the owners whose names changed in this call, at
    its post_ signal; {} at its pre_ signal (which keeps the names before)."""
    owners = list(_m2m_owners(kind, instance, action, reverse, pk_set, members))
    if not owners:
        return {}
    now = names(owners)
    if action.startswith("pre_"):
        _state().update({(kind, pk): now.get(pk, []) for pk in owners})
        return {}
    out = {}
    for pk in owners:
        before = _state().pop((kind, pk), None)
        after = now.get(pk, [])
        if before != after and not _recorded_by_service(kind, pk):
            out[pk] = (before, after)
    return out


def _role_names(user_pks) -> dict:
    rows = get_user_model().groups.through.objects.filter(user_id__in=user_pks)
    out: dict = {}
    for user_id, name in rows.order_by("group__name").values_list("user_id", "group__name"):
        out.setdefault(user_id, []).append(name)
    return out


def _record_roles(users, before_after: dict, actor) -> None:
    from evaluations.services.audit import audit_record

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


@receiver(m2m_changed, sender=get_user_model().groups.through, dispatch_uid="evaluations.audit_user_roles")
def audit_user_roles(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    """A user's groups changed (user.groups.add/remove/clear/set, group.user_set.*): one event per
    user and call, with their role names before and after."""
    if action not in M2M_ACTIONS:
        return
    changed = _m2m_changes(
        "roles",
        instance,
        action,
        reverse,
        pk_set,
        lambda g: g.user_set.values_list("pk", flat=True),
        _role_names,
    )
    if changed:
        users = [instance] if not reverse else get_user_model().objects.filter(pk__in=changed).order_by("pk")
        _record_roles(users, changed, current_actor.get())


@contextmanager
def user_roles_change(*, actor, user, record: bool = True) -> Iterator[None]:
    """Change `user`'s groups inside it (any number of adds and removes, or a `.set()`): one
    "user.roles" event at its end when their roles differ (none when `record` is False: the caller
    records them, e.g. in "user.create"), with `actor` as its actor."""
    before = _role_names([user.pk]).get(user.pk, [])
    token = current_actor.set(actor)
    try:
        with _service_records("roles", [user.pk]):
            yield
    finally:
        current_actor.reset(token)
    after = _role_names([user.pk]).get(user.pk, [])
    if record and before != after:
        _record_roles([user], {user.pk: (before, after)}, actor)


def _permission_names(group_pks) -> dict:
    rows = Group.permissions.through.objects.filter(group_id__in=group_pks)
    out: dict = {}
    for group_id, codename in rows.order_by("permission__codename").values_list(
        "group_id", "permission__codename"
    ):
        out.setdefault(group_id, []).append(codename)
    return out


@receiver(m2m_changed, sender=Group.permissions.through, dispatch_uid="evaluations.audit_role_permissions")
def audit_role_permissions(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    """A role's permissions changed (outside roles_bootstrap, which makes them match the code)."""
    from evaluations.services.audit import audit_record

    if action not in M2M_ACTIONS or getattr(instance, "_ftvp_bootstrap", False):
        return
    changed = _m2m_changes(
        "permissions",
        instance,
        action,
        reverse,
        pk_set,
        lambda p: p.group_set.values_list("pk", flat=True),
        _permission_names,
    )
    groups = [instance] if not reverse else Group.objects.filter(pk__in=changed).order_by("pk")
    for group in groups if changed else ():
        before, after = changed[group.pk]
        audit_record(
            actor=current_actor.get(),
            action="role.permissions",
            obj=group,
            object_repr=group.name,
            before={"permissions": before},
            after={"permissions": after},
        )


USER_FLAGS = ("is_active", "is_staff", "is_superuser")


@contextmanager
def user_flags_change(*, user) -> Iterator[None]:
    """Change `user`'s flags inside it when the caller records the change itself (user.deactivate)."""
    with _service_records("flags", [user.pk]):
        yield


@receiver(pre_save, sender=get_user_model(), dispatch_uid="evaluations.user_flags_before")
def user_flags_before(sender, instance, raw=False, update_fields=None, **kwargs) -> None:
    if raw or instance._state.adding or instance.pk is None:
        return
    if update_fields is not None and not set(update_fields) & set(USER_FLAGS):
        return  # e.g. the last_login of every login: no query
    _state()[("flags", instance.pk)] = sender.objects.filter(pk=instance.pk).values(*USER_FLAGS).first()


@receiver(post_save, sender=get_user_model(), dispatch_uid="evaluations.audit_user_flags")
def audit_user_flags(sender, instance, created, raw=False, update_fields=None, **kwargs) -> None:
    """is_superuser, is_staff or is_active changed (the admin site, a shell, createsuperuser): a
    "user.flags" event with the flags before and after. A new user is compared with the defaults."""
    from evaluations.services.audit import audit_record, changes

    if raw:
        return
    before = _state().pop(("flags", instance.pk), None)
    if update_fields is not None and not set(update_fields) & set(USER_FLAGS):
        return
    if created:
        before = {name: sender._meta.get_field(name).get_default() for name in USER_FLAGS}
    if before is None or _recorded_by_service("flags", instance.pk):
        return
    old, new = changes(before, {name: getattr(instance, name) for name in USER_FLAGS})
    if new:
        audit_record(
            actor=current_actor.get(),
            action="user.flags",
            obj=instance,
            object_repr=instance.get_username(),
            before=old,
            after=new,
        )


@receiver(pre_delete, sender=Run, dispatch_uid="evaluations.signed_off_run_kept")
def signed_off_run_kept(sender, instance: Run, **kwargs) -> None:
    if instance.signed_off_at is not None:
        raise ProtectedError(f"run #{instance.pk} is signed off and can no longer be deleted", {instance})


@receiver(post_delete, sender=Schedule, dispatch_uid="evaluations.schedule_beat_entry_delete")
def schedule_beat_entry_delete(sender, instance: Schedule, **kwargs) -> None:
    """Delete the schedule's PeriodicTask, and its CrontabSchedule unless another task uses it."""
    if instance.periodic_task_id is None:
        return
    task = PeriodicTask.objects.filter(pk=instance.periodic_task_id).first()
    if task is None:  # deleted by hand already
        return
    crontab_id = task.crontab_id
    task.delete()  # an instance delete: django-celery-beat tells beat its entries changed
    if crontab_id is not None and not PeriodicTask.objects.filter(crontab_id=crontab_id).exists():
        CrontabSchedule.objects.filter(pk=crontab_id).delete()
