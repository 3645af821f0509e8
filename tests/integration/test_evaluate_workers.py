"""`manage.py evaluate --wait --json` as real subprocesses on embedded defaults (SQLite and the
filesystem broker in a temporary FTVP_DATA_DIR, the default heartbeat of 5 s), against a loopback
OpenAI-compatible server (issue 18): commands in a row, with pauses, and overlapping each find a live
worker or start their own and finish, asking the model each prompt once. Each command starts a worker
(about 3 s) and stops it (about 2 s): the suites are a few cases."""

from __future__ import annotations

import json
import os
import random
import re
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest

from evaluations.selectors.workers import this_host
from tests.conftest import ROOT
from tests.fakeopenai import FakeOpenAI, last_user_text

pytestmark = pytest.mark.integration

CASES = 4
LABELS = ("positive", "negative")
DELAYS = {"steady": 0.0, "slow": 0.5, "slower": 0.75}  # seconds per answer, by model


def _responder(body: dict) -> str:
    time.sleep(DELAYS.get(body["model"], 0.0))
    return "positive" if "good" in last_user_text(body) else "negative"


def _cases(prefix: str, n: int) -> list[str]:
    return [f"{prefix} review {i} is {'good' if i % 2 == 0 else 'bad'}" for i in range(n)]


def _csv(inputs: list[str]) -> str:
    rows = ["id,input,expected"] + [f"c{i},{text},{LABELS[i % 2]}" for i, text in enumerate(inputs)]
    return "\n".join(rows) + "\n"


# The overlapping commands: "first" runs about 5 s, "second" about 6 s more (one call at a time).
SUITES = {"quick": _cases("quick", CASES), "first": _cases("first", 6), "second": _cases("second", 12)}
ENDPOINTS = {"steady": "steady", "a": "slower", "b": "slow"}  # endpoint -> model

SETUP = """
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
for name, path in {suites!r}.items():
    call_command("import_suite", path, "--name", name, "--task-type", "classification")
for name, model in {endpoints!r}.items():
    call_command("add_endpoint", name, "--provider", "openai", "--model", model, "--base-url", {url!r},
                 "--max-concurrency", "1", "--timeout", "10")
"""


class Installation:
    """A data directory of its own (database, broker, worker logs) and the commands run on it."""

    def __init__(self, root: Path, base_url: str) -> None:
        self.root = root
        self.data = root / "data"
        gone = {"DATABASE_URL", "REDIS_URL", "FTVP_SQLITE_PATH", "FTVP_BROKER_PREFIX"}
        gone |= {"FTVP_WORKER_BEAT_SECONDS", "FTVP_STALL_SECONDS"}  # the defaults, as a user has them
        self.env = {k: v for k, v in os.environ.items() if k not in gone}
        self.env.update(
            FTVP_DATA_DIR=str(self.data), FTVP_EMBEDDER="hashing", FTVP_BATCH_SIZE="2", FTVP_HTTP_RETRIES="1"
        )
        paths = {}
        for name, inputs in SUITES.items():
            paths[name] = str(root / f"{name}.csv")
            Path(paths[name]).write_text(_csv(inputs))
        script = SETUP.format(suites=paths, endpoints=ENDPOINTS, url=base_url)
        env = {**self.env, "DJANGO_SETTINGS_MODULE": "ftvp_site.settings", "PYTHONPATH": str(ROOT)}
        subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True, capture_output=True,
                       timeout=120)  # fmt: skip

    def start(self, arm: str, suite: str) -> subprocess.Popen:
        command = [sys.executable, "manage.py", "evaluate", "--suite", suite, "--arm", arm, "--wait",
                   "--json", "--no-cache", "--timeout", "90"]  # fmt: skip
        return subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip

    def evaluate(self, arm: str = "steady:plain", suite: str = "quick") -> tuple[dict, str, float]:
        started = time.monotonic()
        proc = self.start(arm, suite)
        out, err = proc.communicate(timeout=150)
        took = time.monotonic() - started
        assert proc.returncode == 0, f"exit {proc.returncode} after {took:.1f}s:\n{err}\n{self.worker_log()}"
        return json.loads(out), err, took

    def query(self, sql: str, *args) -> list[tuple]:
        with closing(sqlite3.connect(self.data / "ftvp.sqlite3", timeout=30)) as db, db:
            return db.execute(sql, args).fetchall()

    def beats(self) -> list[tuple]:
        return self.query("SELECT hostname, pid, stopping FROM evaluations_workerbeat")

    def last_run_id(self) -> int:
        return self.query("SELECT COALESCE(MAX(id), 0) FROM evaluations_run")[0][0]

    def run_status(self, run_id: int) -> str | None:
        rows = self.query("SELECT status FROM evaluations_run WHERE id = ?", run_id)
        return rows[0][0] if rows else None

    def worker_log(self) -> str:
        path = self.data / "logs" / "evaluate-worker.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else "(no worker log)"


@pytest.fixture(scope="module")
def server():
    with FakeOpenAI(responder=_responder) as s:
        yield s


@pytest.fixture(scope="module")
def install(tmp_path_factory, server) -> Installation:
    return Installation(tmp_path_factory.mktemp("evaluate-workers"), server.base_url)


def _asked(server: FakeOpenAI, since: int, model: str | None = None) -> list[str]:
    return sorted(
        last_user_text(body) for body in server.requests[since:] if model is None or body["model"] == model
    )


def _check(report: dict, suite: str) -> None:
    assert report["status"] == "succeeded", report
    (arm,) = report["arms"]
    assert arm["cases"] == len(SUITES[suite]) and arm["errors"] == 0
    assert arm["accuracy"] == 1.0


def _in_a_row(install: Installation, server: FakeOpenAI, pauses: list[float]) -> list[float]:
    took = []
    for i, pause in enumerate(pauses):
        time.sleep(pause)
        since = len(server.requests)
        report, err, seconds = install.evaluate()
        took.append(round(seconds, 1))
        _check(report, "quick")
        # With --no-cache each case is asked once, by this command's run and no other.
        assert _asked(server, since) == sorted(SUITES["quick"]), f"command {i + 1}:\n{err}"
        assert "starting one for this command" in err, f"command {i + 1} relied on a gone worker:\n{err}"
        assert install.beats() == [], "the stopped worker left its heartbeat row behind"
    print(f"seconds per command: {took}")
    return took


def test_ten_evaluate_commands_in_a_row_each_start_a_worker_and_finish(install, server):
    """Issue 18: the second of two commands in a row took the first one's stopped worker for a live
    one and waited out its timeout."""
    _in_a_row(install, server, [0.0] * 10)


def test_ten_evaluate_commands_with_pauses_between_them_each_finish(install, server):
    """Whether the defect showed depended on how soon the next command started: pauses of 0.5 to 5 s,
    all within the old heartbeat window (3 x 5 s)."""
    pauses = [0.5 * i for i in range(1, 11)]
    random.Random(18).shuffle(pauses)
    _in_a_row(install, server, pauses)


def test_an_evaluate_started_while_another_runs_finishes_after_the_first_stops_its_worker(install, server):
    """The second command finds the first one's worker live and relies on it (or starts its own); the
    first ends and stops its worker while the second's run is still going: the second still finishes,
    each prompt asked once."""
    since, before = len(server.requests), install.last_run_id()
    first_run, second_run = before + 1, before + 2
    first = install.start("a:plain", "first")
    deadline = time.monotonic() + 60
    while not (install.run_status(first_run) == "running" and install.beats()):
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()[1]
        time.sleep(0.1)
    ((first_worker, _, _),) = install.beats()
    assert first_worker.startswith(f"evaluate-{first_run}@")
    second = install.start("b:plain", "second")
    second_status_then = None  # the second run's, as the first command's worker began to stop
    while first.poll() is None:
        beats = {hostname: stopping for hostname, _, stopping in install.beats()}
        if second_status_then is None and beats.get(first_worker, True):
            second_status_then = install.run_status(second_run)
        time.sleep(0.1)
    out_first, err_first = first.communicate(timeout=150)
    assert first.returncode == 0, err_first
    out_second, err_second = second.communicate(timeout=150)
    assert second.returncode == 0, f"{err_second}\n{install.worker_log()}"

    _check(json.loads(out_first), "first")
    _check(json.loads(out_second), "second")
    assert second_status_then in ("queued", "running"), f"the second run was {second_status_then}"
    assert _asked(server, since, "slower") == sorted(SUITES["first"])
    assert _asked(server, since, "slow") == sorted(SUITES["second"])
    # It found the first command's worker live (or did not: then it started its own at once) ...
    relied = not err_second.splitlines()[1].startswith("no worker running")
    # ... and had a worker of its own once that one had gone.
    assert "starting one for this command" in err_second
    assert install.beats() == []
    print(f"second command (relied on the first's worker: {relied}):\n{err_second}")


def test_evaluate_does_not_wait_on_workers_that_are_gone_or_never_pick_its_run_up(install, server):
    """A fresh row of a worker killed a moment ago (its pid gone), and one of another machine that
    takes nothing: the command starts its own worker after a few seconds and finishes."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    install.query(
        "INSERT INTO evaluations_workerbeat (hostname, queues, last_seen, pid, host, stopping) "
        "VALUES (?, ?, ?, ?, ?, 0), (?, ?, ?, ?, ?, 0)",
        *("killed@here", "llm,scoring,training", now, dead.pid, this_host()),
        *("busy@elsewhere", "llm,scoring,training", now, 1, "elsewhere pid:[1]"),
    )
    since = len(server.requests)
    report, err, took = install.evaluate()
    _check(report, "quick")
    assert _asked(server, since) == sorted(SUITES["quick"])
    assert re.search(rf"no worker has picked up run #{report['run_id']} after \d+s: starting one", err), err
    # The command's worker removed its row; the others are not its to remove.
    assert sorted(hostname for hostname, _, _ in install.beats()) == ["busy@elsewhere", "killed@here"]
    install.query("DELETE FROM evaluations_workerbeat")
    print(f"took {took:.1f}s:\n{err}")
