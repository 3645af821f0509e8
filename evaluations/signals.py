"""Signal receivers, connected in EvaluationsConfig.ready().

A schedule owns its django-celery-beat entry (services/schedules.py), but a schedule is also deleted
without that service: with its suite or its pinned version (CASCADE), in the admin, from a shell.
Its beat entry goes with it in every case, or beat would keep sending `scheduled_run` for a schedule
that no longer exists.
"""

from __future__ import annotations

from django.db.models.signals import post_delete
from django.dispatch import receiver
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from evaluations.models import Schedule


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
