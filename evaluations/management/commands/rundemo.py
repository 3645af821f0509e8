"""`make demo`: set up the embedded installation and serve it with one local worker process."""

from __future__ import annotations

import os
import secrets
import signal
import sys
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from evaluations.models import Endpoint, EndpointKind, Provider, Suite
from evaluations.services.endpoints import endpoint_create
from evaluations.services.suites import suite_import

DEMO_DIR = Path(__file__).resolve().parents[2] / "demo_data"
DEMO_SUITES = [
    ("demo-sentiment", "sentiment.csv", "classification"),
    ("demo-capitals", "capitals.jsonl", "generation"),
]
LOCAL_ENDPOINT = "smollm2-local"


class Command(BaseCommand):
    help = "Migrate, load the demo suites and the local endpoint, start a worker, and serve ftvp."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default=os.environ.get("FTVP_DEMO_ADDR", "127.0.0.1:8000"))
        parser.add_argument("--setup-only", action="store_true", help="prepare everything, then exit")

    def handle(self, *args, **opts):
        call_command("migrate", interactive=False, verbosity=0)
        password = self._demo_user()
        self._demo_data()
        if opts["setup_only"]:
            self.stdout.write("demo data ready")
            return
        from workers import embedded

        log_path = settings.DATA_DIR / "logs" / "demo-worker.log"
        worker = embedded.start_worker(name="demo", log_path=log_path)
        url = f"http://{opts['addr']}/"
        self.stdout.write(
            "\n".join(
                [
                    "",
                    "ftvp demo is starting (embedded: SQLite, filesystem broker, one local worker).",
                    f"  open      {url}",
                    f"  log in    user demo, password {password}",
                    f"  worker    log in {log_path}",
                    "  try       Runs > New run > demo-sentiment, smollm2-local x zero-shot and few-shot,",
                    "            then the suite's page > Is prompting enough?",
                    "  stop      Ctrl-C",
                    "",
                ]
            )
        )
        # SIGTERM (e.g. from a process manager) ends the demo like Ctrl-C: the worker is stopped too.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            call_command("runserver", opts["addr"], use_reloader=False, use_threading=True)
        finally:
            embedded.stop_worker(worker)

    def _demo_user(self) -> str:
        password = os.environ.get("FTVP_DEMO_PASSWORD") or secrets.token_urlsafe(9)
        user, _ = get_user_model().objects.get_or_create(username="demo", defaults={"is_staff": True})
        user.is_staff = True
        user.is_superuser = True
        user.set_password(password)
        user.save()
        return password

    def _demo_data(self) -> None:
        for name, filename, task_type in DEMO_SUITES:
            if not Suite.objects.filter(name=name).exists():
                with (DEMO_DIR / filename).open("rb") as fh:
                    suite_import(name=name, fileobj=fh, filename=filename, task_type=task_type)
        if not Endpoint.objects.filter(name=LOCAL_ENDPOINT).exists():
            endpoint_create(
                name=LOCAL_ENDPOINT,
                provider=Provider.LOCAL,
                model="smollm2-135m-instruct",
                kind=EndpointKind.BASE,
                price_hour="0.10",
                max_concurrency=1,
                params={"temperature": 0, "max_tokens": 64},
            )
