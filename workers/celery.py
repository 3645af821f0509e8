"""The Celery app. Start a worker with `celery -A workers worker -Q llm,scoring`."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ftvp_site.settings")

app = Celery("ftvp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers"])

# Wire the worker lifecycle hooks (heartbeat, stalled-batch recovery).
from workers import lifecycle  # noqa: E402, F401
