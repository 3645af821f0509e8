"""The capture proxy's ASGI application (docs/capture.md):

uvicorn ftvp_site.proxy_asgi:application --port 8001
gunicorn ftvp_site.proxy_asgi:application -k uvicorn.workers.UvicornWorker -w 2 -b 0.0.0.0:8001
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ftvp_site.settings")
django.setup()

from evaluations.proxy.app import application  # noqa: E402 (after Django is set up)

__all__ = ["application"]
