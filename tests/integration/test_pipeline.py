"""A real Celery worker process, the configured broker (Redis in CI, else the filesystem one) and DB,
and an OpenAI-compatible server answering on loopback."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from evaluations.models import Batch, Result, Run, RunStatus
from evaluations.services.endpoints import endpoint_create
from evaluations.services.runs import run_create
from evaluations.services.suites import suite_import
from tests.conftest import ROOT, wait_for
from tests.factories import strategy
from tests.fakeopenai import FakeOpenAI, last_user_text

pytestmark = pytest.mark.integration

LABELS = ("positive", "negative")


def _truth(i: int) -> str:
    return LABELS[i % 2]


def _suite_csv(n: int) -> bytes:
    rows = ["id,input,expected"] + [f"r{i:03d},review number {i} is here,{_truth(i)}" for i in range(n)]
    return ("\n".join(rows) + "\n").encode()


def _wrong(label: str) -> str:
    return LABELS[1 - LABELS.index(label)]


def _responder(body: dict) -> str:
    """model "good" is right unless i % 10 == 0; model "coin" is right when i % 4 < 2."""
    i = int(last_user_text(body).split()[2])
    right = i % 10 != 0 if body["model"] == "good" else i % 4 < 2
    return _truth(i) if right else _wrong(_truth(i))


@pytest.fixture
def server():
    with FakeOpenAI(responder=_responder) as s:
        yield s


def test_evaluate_json_reports_correct_figures_for_200_cases_and_two_arms(worker, server):
    worker.start()
    suite_import(
        name="reviews",
        fileobj=io.BytesIO(_suite_csv(200)),
        filename="reviews.csv",
        task_type="classification",
    )
    for name, model in (("good", "good"), ("coin", "coin")):
        endpoint_create(name=name, provider="openai", model=model, base_url=server.base_url,
                        price_in="2", price_out="10", max_concurrency=8)  # fmt: skip
    out, err = io.StringIO(), io.StringIO()
    call_command("evaluate", "--suite", "reviews", "--arm", "good:plain", "--arm", "coin:plain",
                 "--wait", "--json", "--timeout", "240", stdout=out, stderr=err)  # fmt: skip
    report = json.loads(out.getvalue())
    assert report["status"] == "succeeded", worker.log_text()
    good, coin = report["arms"]
    assert (good["endpoint"], good["strategy"], coin["endpoint"]) == ("good", "plain", "coin")
    assert good["cases"] == coin["cases"] == 200
    assert good["accuracy"] == pytest.approx(0.9) and good["pass_rate"] == pytest.approx(0.9)
    assert good["mean_score"] == pytest.approx(0.9)
    assert coin["accuracy"] == pytest.approx(0.5) and coin["mean_score"] == pytest.approx(0.5)
    low, high = good["score_ci"]
    assert low < 0.9 < high and high - low < 0.1
    assert good["errors"] == coin["errors"] == 0
    # The plain strategy sends the input as is: 5 words in, 1 word out, at $2 and $10 per 1M tokens.
    assert good["prompt_tokens_mean"] == 5 and good["completion_tokens_mean"] == 1
    assert good["cost_per_request"] == pytest.approx((5 * 2 + 1 * 10) / 1e6)
    assert good["cost_total"] == pytest.approx(200 * (5 * 2 + 1 * 10) / 1e6)
    assert good["latency_p50_ms"] > 0 and good["latency_p95_ms"] >= good["latency_p50_ms"]
    assert len(server.requests) == 400
    assert Result.objects.count() == 400


def test_a_run_survives_a_worker_killed_midway_with_exactly_one_result_each(worker, server):
    server.delay = 0.2
    suite = suite_import(
        name="reviews", fileobj=io.BytesIO(_suite_csv(48)), filename="r.csv", task_type="classification"
    )
    endpoint = endpoint_create(
        name="good",
        provider="openai",
        model="good",
        base_url=server.base_url,
        max_concurrency=2,
        timeout_seconds=5,
    )
    worker.start()
    run = run_create(
        suite_version=suite,
        arms=[(endpoint, strategy("plain")), (endpoint, strategy("zero-shot"))],
        repeats=2,
    )
    expected = 48 * 2 * 2
    wait_for(lambda: Result.objects.filter(arm__run=run).count() >= 20, 120, message="the first results")
    worker.kill()
    done_at_kill = Result.objects.filter(arm__run=run).count()
    assert done_at_kill < expected, "the run finished before the kill; slow the server down"
    assert Batch.objects.filter(run=run, generated_at__isnull=True).exists()
    worker.start()
    wait_for(
        lambda: Run.objects.get(pk=run.pk).is_finished, 240, message="the run to finish after the restart"
    )
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, worker.log_text()
    results = Result.objects.filter(arm__run=run)
    assert results.count() == expected
    assert len(set(results.values_list("arm_id", "case_id", "sample"))) == expected
    assert run.batches_scored == run.batches_total
    for arm in run.arms.all():
        assert arm.summary["results"] == 96 and arm.summary["errors"] == 0


def test_evaluate_wait_starts_its_own_worker_on_embedded_defaults(tmp_path: Path, server):
    """No Redis, no PostgreSQL, no worker running: `evaluate --wait` brings up a worker and exits 0."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "FTVP_SQLITE_PATH"}}
    env.update(FTVP_DATA_DIR=str(tmp_path / "data"), FTVP_EMBEDDER="hashing", FTVP_BATCH_SIZE="8")
    suite_file = tmp_path / "reviews.csv"
    suite_file.write_bytes(_suite_csv(24))

    def manage(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=300, check=check)  # fmt: skip

    manage("migrate", "-v0")
    manage("import_suite", str(suite_file), "--name", "reviews", "--task-type", "classification")
    manage("add_endpoint", "good", "--provider", "openai", "--model", "good", "--base-url", server.base_url)
    done = manage("evaluate", "--suite", "reviews", "--arm", "good:plain", "--wait", "--json", check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "succeeded"
    assert report["arms"][0]["accuracy"] == pytest.approx(21 / 24)  # wrong on 0, 10, 20
    assert "starting one" in done.stderr
    # A bad arm is a clear one-line error with exit code 2.
    bad = manage("evaluate", "--suite", "reviews", "--arm", "nope:plain", check=False)
    assert bad.returncode == 2
    assert "no endpoint named 'nope'" in bad.stderr
