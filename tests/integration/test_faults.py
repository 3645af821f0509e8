"""Faults mid-run: the broker restarted (its messages lost), the database connections dropped, the
worker gone for good. Each run still ends with exactly one result per case, arm and sample."""

from __future__ import annotations

import io
import json
import shutil
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import connection
from django.urls import reverse

from evaluations.models import Result, Run, RunStatus
from evaluations.selectors.stalls import run_stall
from evaluations.services.endpoints import endpoint_create
from evaluations.services.runs import run_create
from evaluations.services.suites import suite_import
from tests.conftest import wait_for
from tests.factories import UserFactory, strategy
from tests.fakeopenai import FakeOpenAI, last_user_text

pytestmark = pytest.mark.integration

BROKER_PREFIX = "ftvp-faults:"


def _responder(body: dict) -> str:
    i = int(last_user_text(body).split()[1])
    return ("positive", "negative")[i % 2]


def _suite(cases: int):
    rows = ["id,input,expected"] + [
        f"c{i:03d},review {i} here,{('positive', 'negative')[i % 2]}" for i in range(cases)
    ]
    return suite_import(
        name="faults",
        fileobj=io.BytesIO(("\n".join(rows) + "\n").encode()),
        filename="faults.csv",
        task_type="classification",
    )


@pytest.fixture
def server():
    with FakeOpenAI(responder=_responder) as s:
        s.delay = 0.15
        yield s


def _start_run(server: FakeOpenAI, cases: int) -> tuple[Run, int]:
    suite = _suite(cases)
    endpoint = endpoint_create(
        name="good",
        provider="openai",
        model="good",
        base_url=server.base_url,
        max_concurrency=2,
        timeout_seconds=5,
    )
    run = run_create(
        suite_version=suite,
        arms=[(endpoint, strategy("plain")), (endpoint, strategy("zero-shot"))],
        repeats=2,
    )
    return run, cases * 2 * 2


def _results(run: Run) -> int:
    return Result.objects.filter(arm__run=run).count()


def _assert_one_result_each(run: Run, expected: int, log: str) -> None:
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, f"{run.status}: {run.error}\n{log}"
    results = Result.objects.filter(arm__run=run)
    assert results.count() == expected
    assert len(set(results.values_list("arm_id", "case_id", "sample"))) == expected
    assert not results.exclude(error="").exists(), list(
        results.exclude(error="").values_list("error", flat=True)[:3]
    )
    assert run.batches_scored == run.batches_total
    for arm in run.arms.all():
        assert arm.summary["results"] == expected // 2 and arm.summary["errors"] == 0


# --- the broker restarted mid-run ----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A private redis-server on its own loopback port, without persistence: a restart loses every
    message it held, as a crashed broker without a disk would."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = open(self.dir / f"redis-{self.starts}.log", "wb")  # noqa: SIM115 - the child owns it
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", str(self.dir)]  # fmt: skip
        self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._answers, 10, 0.05, message=f"redis-server on port {self.port}")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.kill()


@pytest.fixture
def private_redis(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not on PATH: install Redis (apt-get install redis-server)")
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@contextmanager
def _celery_broker(url: str, prefix: str):
    """Point this process's Celery app (what `enqueue` sends with) at `url`, then back."""
    from kombu import pools as kombu_pools

    from workers.celery import app

    keys = ("broker_url", "broker_transport", "broker_transport_options")
    saved = {k: app.conf[k] for k in keys}

    def reset_pools() -> None:
        # The app's pool and kombu's process-wide registries (which the producer pool comes from):
        # a pool left closed, or bound to the private broker, would break every later test that sends.
        if app._pool is not None:
            app._pool.force_close_all()
        app._pool = None
        app.amqp._producer_pool = None
        kombu_pools.reset()

    reset_pools()
    app.conf.update(
        broker_url=url,
        broker_transport=None,
        broker_transport_options={"global_keyprefix": prefix, "visibility_timeout": 3600},
    )
    try:
        yield
    finally:
        reset_pools()
        app.conf.update(saved)


def test_a_run_survives_the_broker_restarted_mid_run_with_exactly_one_result_each(
    worker, server, private_redis
):
    worker.env.update(REDIS_URL=private_redis.url, FTVP_BROKER_PREFIX=BROKER_PREFIX)
    with _celery_broker(private_redis.url, BROKER_PREFIX):
        worker.start()
        run, expected = _start_run(server, 40)
        wait_for(lambda: _results(run) >= 24, 60, message="the first results")
        private_redis.kill()  # every queued message is gone with it
        at_kill = _results(run)
        time.sleep(1)
        private_redis.start()
        assert at_kill < expected, "the run finished before the broker went down; slow the server down"
        wait_for(lambda: Run.objects.get(pk=run.pk).is_finished, 90, message="the run to finish")
    assert worker.proc.poll() is None, "the worker died with the broker"
    _assert_one_result_each(run, expected, worker.log_text())
    # Both samples of a case share one call (temperature 0): one call per case and arm, none twice.
    asked = [json.dumps(r, sort_keys=True) for r in server.requests]
    assert len(asked) == len(set(asked)) == expected // 2, "the model was asked the same thing twice"


# --- the database connections dropped mid-run -----------------------------------------------------


def _drop_other_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def test_a_run_survives_its_database_connections_dropped_mid_run_with_exactly_one_result_each(worker, server):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no server connection to drop; CI runs this test on PostgreSQL")
    worker.start()
    run, expected = _start_run(server, 40)
    wait_for(lambda: _results(run) >= 16, 60, message="the first results")
    assert _drop_other_connections() > 0, "the worker held no connection to drop"
    wait_for(lambda: _results(run) >= expected // 2, 60, message="results after the first drop")
    assert _drop_other_connections() > 0
    wait_for(lambda: Run.objects.get(pk=run.pk).is_finished, 90, message="the run to finish")
    assert worker.proc.poll() is None, "the worker died with its connections"
    _assert_one_result_each(run, expected, worker.log_text())
    asked = [json.dumps(r, sort_keys=True) for r in server.requests]
    assert len(asked) == len(set(asked)) == expected // 2, "answers lost with a connection were asked again"


# --- the worker gone for good: the run is stalled until resumed ----------------------------------


def test_a_run_whose_worker_is_gone_for_good_shows_stalled_and_finishes_once_resumed(
    worker, server, client, settings
):
    settings.FTVP_STALL_SECONDS = int(worker.env["FTVP_STALL_SECONDS"])  # as the worker counts
    settings.FTVP_WORKER_BEAT_SECONDS = int(worker.env["FTVP_WORKER_BEAT_SECONDS"])
    client.force_login(UserFactory(username="eddie", roles=["editor"]))
    worker.start()
    run, expected = _start_run(server, 40)
    page = reverse("evaluations:run-detail", args=[run.pk])
    wait_for(lambda: _results(run) >= 16, 60, message="the first results")
    assert "This run is stalled" not in client.get(page).content.decode()
    worker.kill()  # for good: no worker runs until the user starts one
    at_kill = _results(run)
    assert at_kill < expected, "the run finished before the kill; slow the server down"

    stall = wait_for(lambda: run_stall(Run.objects.get(pk=run.pk)), 30, message="the run to show stalled")
    assert stall.reason.startswith("no worker has reported in for")
    html = client.get(page).content.decode()
    assert "This run is stalled" in html and reverse("evaluations:run-resume", args=[run.pk]) in html
    assert _results(run) == at_kill  # nothing moves without a worker

    resumed = client.post(reverse("evaluations:run-resume", args=[run.pk]), follow=True)
    assert f"Run #{run.pk} resumed" in resumed.content.decode()
    worker.start()
    wait_for(lambda: Run.objects.get(pk=run.pk).is_finished, 90, message="the run to finish after the resume")
    _assert_one_result_each(run, expected, worker.log_text())
    assert run_stall(Run.objects.get(pk=run.pk)) is None
