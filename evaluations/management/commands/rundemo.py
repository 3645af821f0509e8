"""`make demo`: set up the embedded installation, tell the whole story with one local worker (a
ticket-routing suite, its prompting ladder, a LoRA fine-tune trained here, the decision), and serve
the dashboard while it happens."""

from __future__ import annotations

import os
import secrets
import signal
import socketserver
import subprocess
import sys
import threading
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.core.servers.basehttp import WSGIRequestHandler, WSGIServer, get_internal_wsgi_application

from evaluations.demo import DemoSize, demo_cancel, demo_setup, demo_story
from evaluations.roles import roles_bootstrap
from evaluations.selectors.decisions import suite_decision


class QuietRequestHandler(WSGIRequestHandler):
    """Logs failed requests only: the terminal is for the demo's progress."""

    def log_message(self, format, *args):
        status = str(args[1]) if len(args) > 1 else ""
        if status[:1] in ("4", "5"):
            super().log_message(format, *args)


class Command(BaseCommand):
    help = (
        "Migrate, create the demo admin, suites and local endpoint, start a worker, fine-tune the local "
        "model, evaluate it against its prompting ladder, and serve the dashboard."
    )

    def add_arguments(self, parser):
        parser.add_argument("--addr", default=os.environ.get("FTVP_DEMO_ADDR", "127.0.0.1:8000"))
        parser.add_argument(
            "--proxy-addr",
            default=os.environ.get("FTVP_DEMO_PROXY_ADDR", "127.0.0.1:8001"),
            help="where the capture proxy listens while the dashboard is served (docs/capture.md)",
        )
        parser.add_argument("--setup-only", action="store_true", help="prepare the data, then exit")
        parser.add_argument("--no-serve", action="store_true", help="tell the story, then exit (benchmarks)")
        parser.add_argument(
            "--train", type=int, default=DemoSize.train, help="train tickets (first run only)"
        )
        parser.add_argument("--test", type=int, default=DemoSize.test, help="test tickets (first run only)")
        parser.add_argument("--epochs", type=int, default=DemoSize.epochs, help="fine-tuning epochs")

    def handle(self, *args, **opts):
        started = time.monotonic()
        size = DemoSize(train=opts["train"], test=opts["test"], epochs=opts["epochs"])
        self._say("1/5 migrating the database")
        call_command("migrate", interactive=False, verbosity=0)
        password = self._demo_user()
        self._say("2/5 demo suites (demo-tickets: support tickets to route to 5 queues) and the local model")
        suite = demo_setup(size=size)
        if opts["setup_only"]:
            self._say("demo data ready")
            return
        from workers import embedded

        log_path = settings.DATA_DIR / "logs" / "demo-worker.log"
        self._say(f"3/5 starting a worker (llm, scoring and training queues, and beat; log in {log_path})")
        # Beat runs inside this worker (the installation's only beat): suites' schedules fire while
        # the demo runs.
        worker = embedded.start_worker(name="demo", log_path=log_path, beat=True)
        server = proxy = None
        # SIGTERM (e.g. from a process manager) ends the demo like Ctrl-C: the worker is stopped too.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            if not embedded.wait_until_ready(worker):
                raise CommandError(f"the worker did not start; see {log_path}")
            url = f"http://{opts['addr']}/"
            if not opts["no_serve"]:
                server = self._serve(opts["addr"])
                self._say(f"    dashboard {url} (user demo, password {password}): watch it happen")
                proxy = self._proxy(opts["proxy_addr"])
            self._say("4/5 fine-tuning and evaluating")
            try:
                _, run = demo_story(say=self._say, size=size)
            except (KeyboardInterrupt, SystemExit):
                demo_cancel(suite)  # a half-trained job would otherwise wait for a worker that is gone
                self._say("interrupted: the fine-tune was cancelled; run make demo again to start over")
                raise SystemExit(130) from None
            decision = suite_decision(suite, run_id=run.pk).decision
            decision_url = f"{url}suites/{suite.pk}/decision/"
            elapsed = time.monotonic() - started
            self._say(f"5/5 decided in {elapsed / 60:.1f} minutes: {decision.title}")
            self._say(f"    {decision.summary}")
            self._say("")
            self._say(f"  log in    user demo, password {password}")
            self._say(f"  decision  {decision_url}")
            if opts["no_serve"]:
                return
            self._say("  stop      Ctrl-C")
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            if server is not None:
                server.shutdown()
            if proxy is not None:  # SIGTERM: the proxy flushes and drains its spool
                proxy.terminate()
                proxy.wait(60)
            embedded.stop_worker(worker)

    def _say(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()

    def _serve(self, addr: str):
        """The dashboard in a thread (the main thread tells the story); request logs stay quiet."""
        host, _, port = addr.rpartition(":")
        server_cls = type("DemoServer", (socketserver.ThreadingMixIn, WSGIServer), {"daemon_threads": True})
        try:
            server = server_cls((host or "127.0.0.1", int(port)), QuietRequestHandler)
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot serve on {addr}: {exc}; set FTVP_DEMO_ADDR=host:port") from None
        server.set_app(get_internal_wsgi_application())
        threading.Thread(target=server.serve_forever, name="demo-web", daemon=True).start()
        return server

    def _proxy(self, addr: str) -> subprocess.Popen:
        """The capture proxy (uvicorn, an ASGI process of its own), as `make proxy` starts it."""
        host, _, port = addr.rpartition(":")
        log_path = settings.DATA_DIR / "logs" / "demo-proxy.log"
        log = open(log_path, "ab")  # noqa: SIM115 - the child process owns it
        command = [
            sys.executable, "-m", "uvicorn", "ftvp_site.proxy_asgi:application",
            "--host", host or "127.0.0.1", "--port", port, "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        proc = subprocess.Popen(command, cwd=settings.BASE_DIR, stdout=log, stderr=subprocess.STDOUT)
        self._say(
            f"    capture proxy http://{addr}/proxy/<endpoint-name>/v1 (docs/capture.md; log in {log_path})"
        )
        return proc

    def _demo_user(self) -> str:
        password = os.environ.get("FTVP_DEMO_PASSWORD") or secrets.token_urlsafe(9)
        user, _ = get_user_model().objects.get_or_create(username="demo", defaults={"is_staff": True})
        user.is_staff = True
        user.is_superuser = True
        user.set_password(password)
        user.save()
        # A superuser may do everything anyway; the admin role makes it show on the Team page too.
        roles_bootstrap()
        user.groups.add(Group.objects.get(name="admin"))
        return password
