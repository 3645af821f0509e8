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

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import ProtectedError
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete, pre_save
from django.dispatch import receiver
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from evaluations.models import Run, Schedule
from evaluations.services.audit import audit_record, changes
from evaluations.services.user_audit import (
    M2M_ACTIONS,
    USER_FLAGS,
    current_actor,
    m2m_changes,
    pending_state,
    permission_names,
    record_roles,
    recorded_by_service,
    role_names,
)


def roles_after_migrate(sender, using="default", apps=None, **kwargs) -> None:
    """Connected in EvaluationsConfig.ready() for the evaluations app only."""
    from evaluations.roles import roles_bootstrap

    roles_bootstrap(using=using)


@receiver(m2m_changed, sender=get_user_model().groups.through, dispatch_uid="evaluations.audit_user_roles")
def audit_user_roles(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    """A user's groups changed (user.groups.add/remove/clear/set, group.user_set.*): one event per
    user and call, with their role names before and after."""
    if action not in M2M_ACTIONS:
        return
    changed = m2m_changes(
        "roles",
        instance,
        action,
        reverse,
        pk_set,
        lambda g: g.user_set.values_list("pk", flat=True),
        role_names,
    )
    if changed:
        users = [instance] if not reverse else get_user_model().objects.filter(pk__in=changed).order_by("pk")
        record_roles(users, changed, current_actor.get())


@receiver(m2m_changed, sender=Group.permissions.through, dispatch_uid="evaluations.audit_role_permissions")
def audit_role_permissions(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    """A role's permissions changed (outside roles_bootstrap, which makes them match the code)."""
    if action not in M2M_ACTIONS or getattr(instance, "_ftvp_bootstrap", False):
        return
    changed = m2m_changes(
        "permissions",
        instance,
        action,
        reverse,
        pk_set,
        lambda p: p.group_set.values_list("pk", flat=True),
        permission_names,
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


@receiver(pre_save, sender=get_user_model(), dispatch_uid="evaluations.user_flags_before")
def user_flags_before(sender, instance, raw=False, update_fields=None, **kwargs) -> None:
    if raw or instance._state.adding or instance.pk is None:
        return
    if update_fields is not None and not set(update_fields) & set(USER_FLAGS):
        return  # e.g. the last_login of every login: no query
    before = sender.objects.filter(pk=instance.pk).values(*USER_FLAGS).first()
    pending_state()[("flags", instance.pk)] = before


@receiver(post_save, sender=get_user_model(), dispatch_uid="evaluations.audit_user_flags")
def audit_user_flags(sender, instance, created, raw=False, update_fields=None, **kwargs) -> None:
    """is_superuser, is_staff or is_active changed (the admin site, a shell, createsuperuser): a
    "user.flags" event with the flags before and after. A new user is compared with the defaults."""
    if raw:
        return
    before = pending_state().pop(("flags", instance.pk), None)
    if update_fields is not None and not set(update_fields) & set(USER_FLAGS):
        return
    if created:
        before = {name: sender._meta.get_field(name).get_default() for name in USER_FLAGS}
    if before is None or recorded_by_service("flags", instance.pk):
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
