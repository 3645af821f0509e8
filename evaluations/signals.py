"""Signal receivers, connected in EvaluationsConfig.ready().

Roles: the role groups are made to match evaluations/roles.py after every `migrate`; a change of a
user's roles (or of a role's permissions), made anywhere (the Team page, the admin site, a shell), is
an audit event, its actor the user of the request that made it (see `ActorMiddleware`).

Runs: a signed-off run can no longer be deleted, whichever way the delete comes.

A schedule owns its django-celery-beat entry (services/schedules.py), but a schedule is also deleted
without that service: with its suite or its pinned version (CASCADE), in the admin, from a shell.
Its beat entry goes with it in every case, or beat would keep sending `scheduled_run` for a schedule
that no longer exists.
"""

from __future__ import annotations

import contextvars

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import ProtectedError
from django.db.models.signals import m2m_changed, post_delete, pre_delete
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


@receiver(m2m_changed, sender=get_user_model().groups.through, dispatch_uid="evaluations.audit_user_roles")
def audit_user_roles(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    """A user's groups changed: one event per user, before and after their role names."""
    from evaluations.services.audit import audit_record

    if action not in ("pre_add", "pre_remove", "pre_clear", "post_add", "post_remove", "post_clear"):
        return
    User = get_user_model()
    if reverse:  # group.user_set.add(...): instance is the group, pk_set the users
        users = (
            list(User.objects.filter(pk__in=pk_set or ()))
            if action != "pre_clear"
            else list(instance.user_set.all())
        )
    else:
        users = [instance]
    for user in users:
        if action.startswith("pre_"):
            user._ftvp_roles_before = sorted(user.groups.values_list("name", flat=True))
            continue
        before = getattr(user, "_ftvp_roles_before", None)
        after = sorted(user.groups.values_list("name", flat=True))
        if before == after:
            continue
        audit_record(
            actor=current_actor.get(),
            action="user.roles",
            obj=user,
            object_repr=user.get_username(),
            before={"roles": before},
            after={"roles": after},
        )


@receiver(m2m_changed, sender=Group.permissions.through, dispatch_uid="evaluations.audit_role_permissions")
def audit_role_permissions(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    """A role's permissions changed (outside roles_bootstrap, which makes them match the code)."""
    from evaluations.services.audit import audit_record

    if reverse or action not in (
        "pre_add",
        "pre_remove",
        "pre_clear",
        "post_add",
        "post_remove",
        "post_clear",
    ):
        return
    if getattr(instance, "_ftvp_bootstrap", False):
        return
    if action.startswith("pre_"):
        instance._ftvp_perms_before = sorted(instance.permissions.values_list("codename", flat=True))
        return
    before = getattr(instance, "_ftvp_perms_before", None)
    after = sorted(instance.permissions.values_list("codename", flat=True))
    if before != after:
        audit_record(
            actor=current_actor.get(),
            action="role.permissions",
            obj=instance,
            object_repr=instance.name,
            before={"permissions": before},
            after={"permissions": after},
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
