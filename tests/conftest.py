from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from tests.factories import UserFactory
from tests.fakeopenai import FakeOpenAI

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _fast_settings(settings):
    settings.FTVP_EMBEDDER = "hashing"
    settings.FTVP_HTTP_RETRIES = 1
    settings.FTVP_BATCH_SIZE = 4
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # In-process tests hold the DB in a transaction: keep the lease heartbeat thread from writing.
    settings.FTVP_STALL_SECONDS = 3600
    # Pages show a running run's counts as of now (tests/views/test_live_counts.py covers the reuse).
    settings.FTVP_LIVE_SECONDS = 0
    # Ids are reused between tests (rolled back): no test may see another's cached page figures.
    from django.core.cache import cache

    cache.clear()
    # Failed logins are counted per client address (127.0.0.1 for every test): a fresh count each test.
    settings.CACHES = {
        **settings.CACHES,
        "logins": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": uuid.uuid4().hex},
    }


@pytest.fixture
def user(db):
    """alice holds the admin role: tests of features (not of access) act as someone allowed to."""
    return UserFactory(username="alice", roles=["admin"])


@pytest.fixture
def auth_client(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def fake_openai():
    server = FakeOpenAI()
    yield server
    server.stop()


@pytest.fixture
def webhook():
    """A loopback HTTP server that records webhook POSTs (see tests/webhooks.py)."""
    from tests.webhooks import WebhookReceiver

    receiver = WebhookReceiver()
    yield receiver
    receiver.stop()


class TaskQueue:
    """Collects enqueued task names in unit tests; `drain()` runs them in-process, in order."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, tuple]] = []
        self.countdowns: list[tuple[str, float]] = []  # tasks sent with a countdown (run at once here)

    def __call__(self, task: str, *args, countdown: float | None = None) -> None:
        self.sent.append((task, args))
        if countdown is not None:
            self.countdowns.append((task, countdown))

    def names(self) -> list[str]:
        return [name for name, _ in self.sent]

    def drain(self, limit: int = 10_000) -> int:
        from workers import tasks

        ran = 0
        while self.sent and ran < limit:
            name, args = self.sent.pop(0)
            getattr(tasks, name).run(*args)
            ran += 1
        return ran


@pytest.fixture
def task_queue(monkeypatch):
    queue = TaskQueue()
    monkeypatch.setattr("evaluations.services.queue.enqueue", queue)  # the one dispatch seam
    return queue


# --- integration: a real worker process -----------------------------------------------------------


def _worker_env() -> dict[str, str]:
    from django.db import connection

    env = {
        **os.environ,
        "FTVP_EMBEDDER": "hashing",
        "FTVP_STALL_SECONDS": "6",
        "FTVP_WORKER_BEAT_SECONDS": "1",
        "FTVP_BATCH_SIZE": "8",
        "FTVP_HTTP_RETRIES": "1",
        "FTVP_DATA_DIR": str(settings.DATA_DIR),
    }
    name = connection.settings_dict["NAME"]
    if connection.vendor == "sqlite":
        env["FTVP_SQLITE_PATH"] = str(name)
    else:
        s = connection.settings_dict
        env["DATABASE_URL"] = f"postgres://{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{name}"
        if s.get("PASSWORD"):
            env["DATABASE_URL"] = env["DATABASE_URL"].replace("@", f":{s['PASSWORD']}@", 1)
    if settings.REDIS_URL:
        env["FTVP_BROKER_PREFIX"] = settings.CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"]
    return env


class WorkerProcess:
    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self, wait: bool = True) -> None:
        from workers.embedded import worker_command

        self.starts += 1
        log = open(self.log_dir / f"worker-{self.starts}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            worker_command(name=f"test-{uuid.uuid4().hex[:6]}"),
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        log = self.log_dir / f"worker-{self.starts}.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{log.read_text()[-3000:]}")
            if b"ready." in log.read_bytes() and self._has_heartbeat():
                return
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready after {timeout}s:\n{log.read_text()[-3000:]}")

    @staticmethod
    def _has_heartbeat() -> bool:
        from workers.embedded import live_worker_count

        return live_worker_count() > 0

    def kill(self) -> None:
        """SIGKILL the worker's whole process group, as an OOM killer or a pulled plug would."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def log_text(self) -> str:
        logs = sorted(self.log_dir.glob("worker-*.log"))
        return "\n".join(p.read_text(errors="replace")[-4000:] for p in logs)


def _seed_builtin_strategies() -> None:
    """Transactional tests flush every table, the migration's built-in strategies too: put them back."""
    import importlib

    from django.apps import apps

    for migration in (
        "0002_builtin_strategies", "0015_few_shot_nearest", "0016_knowledge_rag", "0020_synthetic_examples",
    ):  # fmt: skip
        importlib.import_module(f"evaluations.migrations.{migration}").add(apps, None)


@pytest.fixture
def worker(transactional_db, tmp_path, settings):
    """A real Celery worker process on the configured broker (Redis, or the filesystem one) and DB."""
    _seed_builtin_strategies()
    if settings.REDIS_URL:
        import redis

        prefix = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", "")
        assert prefix, "tests must not share queues with a real installation"
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)
        stale = list(client.scan_iter(match=f"{prefix}*", count=500))
        if stale:
            client.delete(*stale)
    else:
        # The embedded broker's folders are shared by the test session: start each test empty.
        queue_dir = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
        shutil.rmtree(queue_dir, ignore_errors=True)
        queue_dir.mkdir(parents=True, exist_ok=True)
    w = WorkerProcess(_worker_env(), tmp_path)
    yield w
    w.stop()


def wait_for(predicate, timeout: float, interval: float = 0.3, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def python() -> str:
    return sys.executable
