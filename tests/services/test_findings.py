"""Baselines and regressions: a run is compared with its suite's baseline arm by arm, and a significant
drop beyond the tolerance becomes a finding with the cases that flipped."""

from __future__ import annotations

import io
import json
import random

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from evaluations.models import Finding, FindingKind, Result, Run
from evaluations.services.findings import BaselineError, baseline_set
from evaluations.services.runs import run_create
from tests.factories import CaseFactory, EndpointFactory, SuiteVersionFactory, strategy

LABELS = ("positive", "negative")
N = 200


@pytest.fixture
def suite_runs(db, fake_openai, task_queue, settings):
    """Runs of one endpoint on one suite whose right answers the test sets per run."""
    settings.FTVP_BATCH_SIZE = 100
    version = SuiteVersionFactory(
        suite__name="reviews", suite__task_type="classification", labels=list(LABELS)
    )
    for i in range(N):
        CaseFactory(version=version, key=f"r{i:03d}", position=i, input=f"review {i}", expected=LABELS[i % 2])
    endpoint = EndpointFactory(name="model", model="model", base_url=fake_openai.base_url)

    def run_with(right: set[int]) -> Run:
        def answer(body):
            i = int(body["messages"][-1]["content"].split()[1])
            return LABELS[i % 2] if i in right else LABELS[1 - i % 2]

        fake_openai.responder = answer
        # The endpoint may change behind the same name: the run calls it rather than the cache.
        run = run_create(suite_version=version, arms=[(endpoint, strategy("plain"))], use_cache=False)
        task_queue.drain()
        run.refresh_from_db()
        return run

    return version, run_with


def test_a_drop_from_90_to_70_percent_is_a_regression_with_the_flipped_cases(suite_runs):
    version, run_with = suite_runs
    rng = random.Random(4)
    good = set(rng.sample(range(N), 180))  # 90%
    baseline = run_with(good)
    baseline_set(suite=version.suite, run=baseline)
    worse = set(rng.sample(sorted(good), 140))  # 70%, all among the baseline's right ones
    run = run_with(worse)
    (finding,) = Finding.objects.filter(run=run)
    assert finding.kind == FindingKind.REGRESSION and finding.severity == "critical"
    assert finding.baseline_run == baseline and finding.arm.run == run
    d = finding.details
    assert d["baseline"] == pytest.approx(0.9) and d["current"] == pytest.approx(0.7)
    assert d["p_value"] < 0.001 and d["flipped_count"] == 40
    assert d["flipped"] == sorted(f"r{i:03d}" for i in good - worse)[:50]
    assert "fell from 0.900 to 0.700" in finding.title


def test_a_baseline_must_be_a_finished_run_of_the_suite(suite_runs, db):
    version, run_with = suite_runs
    other = SuiteVersionFactory()
    with pytest.raises(BaselineError, match="is not a run of suite"):
        baseline_set(suite=other.suite, run=run_with(set()))
    queued = Run.objects.create(suite_version=version)
    with pytest.raises(BaselineError, match="only a finished run"):
        baseline_set(suite=version.suite, run=queued)


def test_evaluate_fails_on_regression_and_reports_it_in_json(suite_runs, task_queue, monkeypatch):
    version, run_with = suite_runs
    rng = random.Random(6)
    good = set(rng.sample(range(N), 180))
    baseline_set(suite=version.suite, run=run_with(good))
    run_with(set(rng.sample(sorted(good), 140)))  # the endpoint now answers 70% right

    def wait_in_process(self, run, *, timeout):  # the task queue stands in for the worker
        task_queue.drain()
        return Run.objects.get(pk=run.pk)

    monkeypatch.setattr("evaluations.management.commands.evaluate.Command._wait", wait_in_process)
    out = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command(
            "evaluate", "--suite", "reviews", "--arm", "model:plain", "--wait", "--json", "--no-cache",
            "--fail-on-regression", stdout=out, stderr=io.StringIO(),
        )  # fmt: skip
    assert caught.value.returncode == 1 and "fell from 0.900 to 0.700" in str(caught.value)
    payload = json.loads(out.getvalue())
    assert len(payload["regressions"]) == 1 and payload["regressions"][0]["severity"] == "critical"
    # --min-pass-rate alone: 70% is below 0.8.
    with pytest.raises(CommandError, match=r"below 80\.0%") as caught:
        call_command(
            "evaluate", "--suite", "reviews", "--arm", "model:plain", "--wait", "--no-cache",
            "--min-pass-rate", "0.8",
            stdout=io.StringIO(), stderr=io.StringIO(),
        )  # fmt: skip
    assert caught.value.returncode == 1


def test_the_findings_page_lists_and_acknowledges(suite_runs, auth_client):
    version, run_with = suite_runs
    rng = random.Random(7)
    good = set(rng.sample(range(N), 180))
    baseline_set(suite=version.suite, run=run_with(good))
    run_with(set(rng.sample(sorted(good), 140)))
    finding = Finding.objects.get()
    page = auth_client.get(reverse("evaluations:finding-list")).content.decode()
    assert finding.title in page
    suite_page = auth_client.get(
        reverse("evaluations:suite-detail", args=[version.suite.pk])
    ).content.decode()
    assert "Open findings" in suite_page and finding.title in suite_page
    auth_client.post(
        reverse("evaluations:finding-detail", args=[finding.pk]), {"comment": "model update, rolled back"}
    )
    finding.refresh_from_db()
    assert finding.acknowledged_at and finding.comment == "model update, rolled back"
    assert finding.title not in auth_client.get(reverse("evaluations:finding-list")).content.decode()
    suite_page = auth_client.get(
        reverse("evaluations:suite-detail", args=[version.suite.pk])
    ).content.decode()
    assert "Open findings" not in suite_page
    # The run page offers to make a run the baseline; the suite page shows the baseline.
    run_page = auth_client.get(reverse("evaluations:run-detail", args=[finding.run_id])).content.decode()
    assert "Make this run the baseline" in run_page
    response = auth_client.post(reverse("evaluations:run-set-baseline", args=[finding.run_id]))
    version.suite.refresh_from_db()
    assert response.status_code == 302 and version.suite.baseline_run_id == finding.run_id


def test_a_run_without_the_cache_sees_a_changed_model_and_refreshes_the_cache(
    suite_runs, fake_openai, task_queue
):
    version, run_with = suite_runs
    run_with(set(range(N)))  # every answer right, written to the cache
    endpoint = version.runs.first().arms.get().endpoint
    fake_openai.responder = lambda body: "neither"  # the model behind the endpoint changed

    def outputs(**kwargs):
        run = run_create(suite_version=version, arms=[(endpoint, strategy("plain"))], **kwargs)
        task_queue.drain()
        return {r.output for r in Result.objects.filter(arm__run=run)}, run

    seen, cached_run = outputs()
    assert cached_run.use_cache
    assert "neither" not in seen  # served from the cache: the change is invisible
    seen, fresh = outputs(use_cache=False)
    assert seen == {"neither"} and not fresh.use_cache
    seen, _ = outputs()  # the cache now holds what the model answers today
    assert seen == {"neither"}


def test_evaluate_says_when_the_run_could_not_be_compared_and_exits_2(suite_runs, task_queue, monkeypatch):
    version, run_with = suite_runs
    baseline_set(suite=version.suite, run=run_with(set(range(N))))

    def broken(*, run):
        raise RuntimeError("database went away")

    monkeypatch.setattr("evaluations.services.run_analysis.run_compare_with_baseline", broken)

    def wait_in_process(self, run, *, timeout):
        task_queue.drain()
        return Run.objects.get(pk=run.pk)

    monkeypatch.setattr("evaluations.management.commands.evaluate.Command._wait", wait_in_process)
    err = io.StringIO()
    with pytest.raises(CommandError, match="could not be compared with the baseline") as caught:
        call_command(
            "evaluate", "--suite", "reviews", "--arm", "model:plain", "--wait", "--no-cache",
            "--fail-on-regression", stdout=io.StringIO(), stderr=err,
        )  # fmt: skip
    assert caught.value.returncode == 2
    assert "baseline comparison: RuntimeError: database went away" in err.getvalue()


def test_evaluate_without_a_baseline_says_there_is_nothing_to_regress_from(
    suite_runs, task_queue, monkeypatch
):
    def wait_in_process(self, run, *, timeout):
        task_queue.drain()
        return Run.objects.get(pk=run.pk)

    monkeypatch.setattr("evaluations.management.commands.evaluate.Command._wait", wait_in_process)
    err = io.StringIO()
    call_command(
        "evaluate", "--suite", "reviews", "--arm", "model:plain", "--wait", "--no-cache",
        "--fail-on-regression", stdout=io.StringIO(), stderr=err,
    )  # fmt: skip
    assert "has no baseline run to compare with" in err.getvalue()
