from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from evaluations.models import Batch, Result, Run, RunStatus
from evaluations.services import generation, recovery, runs
from evaluations.services.runs import MAX_REMOTE_BATCH, RunError, batch_size, run_cancel, run_create
from tests.factories import CaseFactory, EndpointFactory, SuiteVersionFactory, strategy
from tests.fakeopenai import answers_responder


def _suite(n: int, task_type: str = "generation", labels=None):
    version = SuiteVersionFactory(suite__task_type=task_type, labels=labels or [])
    for i in range(n):
        CaseFactory(version=version, key=f"c{i:03d}", position=i, input=f"q{i}", expected=f"answer {i}")
    return version


def test_it_creates_arms_and_batches_and_starts_on_commit(
    endpoint, task_queue, django_capture_on_commit_callbacks
):
    version = _suite(10)
    with django_capture_on_commit_callbacks(execute=True):
        run = run_create(
            suite_version=version, arms=[(endpoint, strategy("zero-shot")), (endpoint, strategy("cot"))]
        )
    assert run.arms.count() == 2
    assert run.batches_total == 2 * 3  # 10 cases in batches of 4
    assert run.expected_results == 20
    assert task_queue.sent == [("start_run", (run.pk,))]


def test_a_remote_endpoints_batches_hold_twice_its_concurrency(endpoint, settings):
    """One batch alone keeps the endpoint busy; a local model's batches keep FTVP_BATCH_SIZE."""
    version = _suite(40)
    settings.FTVP_BATCH_SIZE = 4
    wide = EndpointFactory(name="wide", base_url=endpoint.base_url, max_concurrency=8)
    local = EndpointFactory(name="local", provider="local", model="smollm2", base_url="", max_concurrency=8)
    huge = EndpointFactory(name="huge", base_url=endpoint.base_url, max_concurrency=1000)

    run = run_create(
        suite_version=version,
        arms=[(endpoint, strategy("plain")), (wide, strategy("plain")), (local, strategy("plain"))],
    )

    sizes = {
        arm.endpoint.name: sorted({len(b.case_ids) for b in arm.batches.all()})
        for arm in run.arms.select_related("endpoint")
    }
    assert sizes == {"fake": [4], "wide": [8, 16], "local": [4]}  # 40 = 16 + 16 + 8
    assert run.batches_total == 10 + 3 + 10
    assert sorted(c for b in run.arms.get(endpoint=wide).batches.all() for c in b.case_ids) == sorted(
        version.cases.values_list("id", flat=True)
    )
    assert batch_size(huge) == MAX_REMOTE_BATCH
    assert batch_size(EndpointFactory(name="one", max_concurrency=1)) == 4


def test_it_refuses_a_run_without_arms_or_with_a_duplicate_arm(endpoint):
    version = _suite(2)
    with pytest.raises(RunError, match="at least one arm"):
        run_create(suite_version=version, arms=[])
    with pytest.raises(RunError, match="twice"):
        run_create(suite_version=version, arms=[(endpoint, strategy("plain"))] * 2)
    assert not Run.objects.exists()


def test_a_run_goes_from_queued_to_succeeded_with_one_result_per_case_arm_and_sample(
    endpoint, fake_openai, task_queue
):
    fake_openai.responder = answers_responder(
        {f"q{i}": f"answer {i}" if i % 2 == 0 else "wrong" for i in range(6)}
    )
    version = _suite(6)
    run = run_create(suite_version=version, arms=[(endpoint, strategy("plain"))], repeats=2)
    task_queue.drain()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert Result.objects.filter(arm__run=run).count() == 12
    summary = run.arms.get().summary
    assert summary["cases"] == 6
    assert summary["pass_rate"] == pytest.approx(0.5)
    assert summary["errors"] == 0
    # Usage tokens from the server x the endpoint's prices ($1 / $2 per 1M).
    result = Result.objects.filter(arm__run=run).first()
    assert result.cost == pytest.approx((result.prompt_tokens * 1 + result.completion_tokens * 2) / 1e6)


def test_running_a_batch_twice_writes_no_duplicate_and_counts_it_once(endpoint, fake_openai, task_queue):
    version = _suite(4)
    run = run_create(suite_version=version, arms=[(endpoint, strategy("plain"))])
    task_queue.drain()
    batch = Batch.objects.get(run=run)
    calls = len(fake_openai.requests)
    # A redelivered message after the run finished: nothing changes.
    generation.batch_generate(batch_id=batch.pk)
    runs.batch_score(batch_id=batch.pk)
    run.refresh_from_db()
    assert run.batches_scored == 1
    assert Result.objects.filter(arm__run=run).count() == 4
    assert len(fake_openai.requests) == calls


def test_a_batch_killed_halfway_resumes_with_only_the_missing_cases(endpoint, fake_openai, task_queue):
    version = _suite(4)
    run = run_create(suite_version=version, arms=[(endpoint, strategy("plain"))])
    task_queue.drain(limit=1)  # start_run only
    batch = Batch.objects.get(run=run)
    first_case = version.cases.order_by("position").first()
    Result.objects.create(arm=run.arms.get(), case=first_case, sample=0, output="answer 0")
    # The dead worker's lease went stale.
    Batch.objects.filter(pk=batch.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    generation.batch_generate(batch_id=batch.pk)
    assert len(fake_openai.requests) == 3
    assert Result.objects.filter(arm__run=run).count() == 4


def test_a_live_lease_keeps_a_second_delivery_off_the_batch(endpoint, fake_openai, task_queue):
    version = _suite(4)
    run = run_create(suite_version=version, arms=[(endpoint, strategy("plain"))])
    task_queue.drain(limit=1)
    batch = Batch.objects.get(run=run)
    Batch.objects.filter(pk=batch.pk).update(heartbeat_at=timezone.now())
    generation.batch_generate(batch_id=batch.pk)
    assert fake_openai.requests == []
    assert not Result.objects.exists()


def test_recovery_requeues_stale_batches_only(endpoint, task_queue):
    version = _suite(8)
    run = run_create(suite_version=version, arms=[(endpoint, strategy("plain"))])
    task_queue.drain(limit=1)
    task_queue.sent.clear()
    stale, live = Batch.objects.filter(run=run).order_by("index")
    Batch.objects.filter(pk=stale.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    Batch.objects.filter(pk=live.pk).update(heartbeat_at=timezone.now())
    recovery.runs_recover()
    assert task_queue.sent == [("run_batch", (stale.pk,))]


def test_recovery_on_worker_start_also_requeues_batches_never_started(endpoint, task_queue):
    version = _suite(8)
    run_create(suite_version=version, arms=[(endpoint, strategy("plain"))])
    task_queue.drain(limit=1)
    task_queue.sent.clear()
    recovery.runs_recover(startup=True)
    assert sorted(task_queue.names()) == ["run_batch", "run_batch"]


def test_a_cancelled_run_stops_calling_the_model(endpoint, fake_openai, task_queue):
    version = _suite(8)
    run = run_create(suite_version=version, arms=[(endpoint, strategy("plain"))])
    task_queue.drain(limit=1)
    assert run_cancel(run_id=run.pk)
    task_queue.drain()
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert fake_openai.requests == []
    assert not run_cancel(run_id=run.pk)


def test_a_run_cancelled_mid_batch_stops_at_its_next_save_and_keeps_what_it_got(
    db, fake_openai, task_queue, settings, monkeypatch
):
    from evaluations.services import generation

    settings.FTVP_BATCH_SIZE = 200  # one batch: the cancel lands while its calls are under way
    fake_openai.delay = 0.02
    endpoint = EndpointFactory(name="slow", base_url=fake_openai.base_url, max_concurrency=1)
    version = _suite(100)
    run = run_create(suite_version=version, arms=[(endpoint, strategy("plain"))])
    save = generation._save

    def save_then_cancel(*args) -> None:  # someone presses Cancel once the first answers are stored
        save(*args)
        if Result.objects.filter(arm__run=run).exists():
            run_cancel(run_id=run.pk)

    monkeypatch.setattr(generation, "_save", save_then_cancel)
    monkeypatch.setattr(generation, "FLUSH_SECONDS", 60.0)  # saves every 32 answers, however slow the machine
    task_queue.drain()

    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    calls = len(fake_openai.requests)
    assert 32 <= calls < 50  # answers are saved 32 at a time; calls went on during that save
    assert Result.objects.filter(arm__run=run).count() == calls  # every answer received was kept


def test_http_failures_become_error_results_not_a_failed_run(endpoint, fake_openai, task_queue):
    fake_openai.fail_next(401, count=100, body={"error": {"message": "invalid api key"}})
    version = _suite(3)
    run = run_create(suite_version=version, arms=[(endpoint, strategy("plain"))])
    task_queue.drain()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    summary = run.arms.get().summary
    assert summary["errors"] == 3 and summary["pass_rate"] == 0.0
    assert "401" in Result.objects.first().error


def test_a_missing_api_key_variable_is_reported_on_every_result(db, fake_openai, task_queue, monkeypatch):
    monkeypatch.delenv("FTVP_TEST_MISSING_KEY", raising=False)
    endpoint = EndpointFactory(base_url=fake_openai.base_url, api_key_env="FTVP_TEST_MISSING_KEY")
    version = _suite(2)
    run = run_create(suite_version=version, arms=[(endpoint, strategy("plain"))])
    task_queue.drain()
    errors = set(Result.objects.filter(arm__run=run).values_list("error", flat=True))
    assert errors == {
        f"endpoint {endpoint.name!r}: environment variable FTVP_TEST_MISSING_KEY is not set in the worker"
    }
    assert fake_openai.requests == []


def test_identical_prompts_at_temperature_zero_are_served_from_the_cache(endpoint, fake_openai, task_queue):
    version = _suite(3)
    run_create(suite_version=version, arms=[(endpoint, strategy("plain"))])
    task_queue.drain()
    second = run_create(suite_version=version, arms=[(endpoint, strategy("plain"))])
    task_queue.drain()
    assert len(fake_openai.requests) == 3
    assert all(Result.objects.filter(arm__run=second).values_list("cached", flat=True))


def test_classification_runs_report_accuracy_and_macro_f1(db, fake_openai, task_queue):
    endpoint = EndpointFactory(base_url=fake_openai.base_url)
    version = SuiteVersionFactory(suite__task_type="classification", labels=["negative", "positive"])
    truth = ["positive", "negative", "positive", "negative"]
    for i, label in enumerate(truth):
        CaseFactory(version=version, key=f"k{i}", position=i, input=f"review {i}", expected=label)
    answers = {
        "review 0": "Positive.",
        "review 1": "It is negative",
        "review 2": "negative",
        "review 3": "no idea",
    }
    fake_openai.responder = answers_responder(answers)
    run = run_create(suite_version=version, arms=[(endpoint, strategy("plain"))])
    task_queue.drain()
    summary = run.arms.get().summary
    assert summary["accuracy"] == pytest.approx(0.5)
    # positive: P=1, R=0.5, F1=2/3; negative: P=1/2... predicted negative for 1 and 2, only 1 right:
    # P=0.5, R=0.5, F1=0.5. Macro = (2/3 + 0.5) / 2.
    assert summary["macro_f1"] == pytest.approx((2 / 3 + 0.5) / 2)


def test_a_batch_that_keeps_crashing_fails_its_run_instead_of_retrying_forever(endpoint, task_queue):
    version = _suite(4)
    run = run_create(suite_version=version, arms=[(endpoint, strategy("plain"))])
    task_queue.drain(limit=1)
    batch = Batch.objects.get(run=run)
    Batch.objects.filter(pk=batch.pk).update(attempts=runs.MAX_ATTEMPTS, heartbeat_at=None)
    generation.batch_generate(batch_id=batch.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert f"failed {runs.MAX_ATTEMPTS} times while generating" in run.error
    assert not Result.objects.exists()


def test_an_unusable_local_model_becomes_error_results(db, task_queue):
    endpoint = EndpointFactory(provider="local", model="/no/such/model/folder", base_url="")
    version = _suite(2)
    run = run_create(suite_version=version, arms=[(endpoint, strategy("plain"))])
    task_queue.drain()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    errors = set(Result.objects.filter(arm__run=run).values_list("error", flat=True))
    assert len(errors) == 1 and "neither a packaged model" in errors.pop()


def test_repeats_at_temperature_zero_call_the_model_once_per_case(endpoint, fake_openai, task_queue):
    version = _suite(3)
    run = run_create(suite_version=version, arms=[(endpoint, strategy("plain"))], repeats=3)
    task_queue.drain()
    assert len(fake_openai.requests) == 3
    assert Result.objects.filter(arm__run=run).count() == 9
    summary = run.arms.get().summary
    # Identical samples add no evidence: the interval is over the 3 cases, not 9 samples.
    assert summary["results"] == 9 and summary["cases"] == 3


def test_recovery_resends_batches_whose_messages_were_lost_once_the_workers_sit_idle(endpoint, task_queue):
    version = _suite(8)
    run = run_create(suite_version=version, arms=[(endpoint, strategy("plain"))])
    task_queue.drain(limit=1)
    task_queue.sent.clear()  # the run_batch messages were lost
    recovery.runs_recover()
    assert task_queue.sent == []  # just started: the messages may still be on their way
    Run.objects.filter(pk=run.pk).update(started_at=timezone.now() - timedelta(hours=1))
    recovery.runs_recover()
    assert sorted(task_queue.names()) == ["run_batch", "run_batch"]
    task_queue.drain()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED


def test_recovery_leaves_waiting_batches_alone_while_a_worker_is_busy(endpoint, task_queue):
    version = _suite(8)
    run = run_create(suite_version=version, arms=[(endpoint, strategy("plain"))])
    task_queue.drain(limit=1)
    task_queue.sent.clear()
    Run.objects.filter(pk=run.pk).update(started_at=timezone.now() - timedelta(hours=1))
    first = Batch.objects.filter(run=run).order_by("index").first()
    Batch.objects.filter(pk=first.pk).update(heartbeat_at=timezone.now())
    recovery.runs_recover()
    assert task_queue.sent == []


def test_a_run_whose_start_message_was_lost_is_started_by_the_sweep(endpoint, task_queue):
    version = _suite(2)
    run = run_create(suite_version=version, arms=[(endpoint, strategy("plain"))])
    task_queue.sent.clear()
    Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(hours=1))
    recovery.runs_recover()
    assert task_queue.sent == [("start_run", (run.pk,))]


def test_a_succeeded_run_is_analysed_after_finalize_in_its_own_task(endpoint, task_queue):
    version = _suite(4)
    run = run_create(suite_version=version, arms=[(endpoint, strategy("plain"))])
    while "analyse_run" not in task_queue.names():  # everything up to the analysis
        assert task_queue.drain(limit=1) == 1
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.analysed_at is None
    assert not run.trend_points.exists()
    task_queue.drain()
    run.refresh_from_db()
    assert run.analysed_at is not None and run.trend_points.count() == 1


def test_recovery_analyses_a_succeeded_run_whose_analysis_was_lost_once_per_lease(endpoint, task_queue):
    version = _suite(4)
    run = run_create(suite_version=version, arms=[(endpoint, strategy("plain"))])
    while "analyse_run" not in task_queue.names():
        task_queue.drain(limit=1)
    task_queue.sent.clear()  # the analyse_run message was lost
    recovery.runs_recover()
    assert task_queue.names() == []  # sent just now: maybe still on its way
    hour_ago = timezone.now() - timedelta(hours=1)
    Run.objects.filter(pk=run.pk).update(analysis_sent_at=hour_ago, finished_at=hour_ago)
    recovery.runs_recover()
    recovery.runs_recover()  # a second sweep (another worker's) while the first message is on its way
    assert task_queue.sent == [("analyse_run", (run.pk,))]
    Run.objects.filter(pk=run.pk).update(analysis_sent_at=hour_ago)  # that one was lost too
    recovery.runs_recover()
    assert task_queue.sent == [("analyse_run", (run.pk,))] * 2
    task_queue.drain()
    run.refresh_from_db()
    assert run.analysed_at is not None and run.trend_points.count() == 1
    Run.objects.filter(pk=run.pk).update(analysis_sent_at=hour_ago)
    recovery.runs_recover()
    assert task_queue.names() == []  # analysed: nothing to recover


def test_a_rescore_analyses_the_run_again_and_the_sweep_does_not_duplicate_it(endpoint, task_queue):
    from evaluations.services.scorings import run_rescore

    version = _suite(4)
    run = run_create(suite_version=version, arms=[(endpoint, strategy("plain"))])
    task_queue.drain()
    hour_ago = timezone.now() - timedelta(hours=1)
    Run.objects.filter(pk=run.pk).update(finished_at=hour_ago, analysis_sent_at=hour_ago)
    run_rescore(run_id=run.pk)
    while "analyse_run" not in task_queue.names():
        task_queue.drain(limit=1)
    run.refresh_from_db()
    assert run.analysed_at is None
    recovery.runs_recover()
    assert task_queue.names() == ["analyse_run"]  # only the re-score's own
    task_queue.drain()
    run.refresh_from_db()
    assert run.analysed_at is not None


def test_a_failing_analysis_step_keeps_its_error_and_the_other_steps_still_run(
    endpoint, task_queue, monkeypatch
):
    def broken(*, run):
        raise RuntimeError("embedder out of memory")

    monkeypatch.setattr("evaluations.services.run_analysis.run_drift", broken)
    sent = []
    monkeypatch.setattr(
        "evaluations.services.run_analysis.findings_notify", lambda *, run: sent.append(run.pk) or []
    )
    version = _suite(4)
    run = run_create(suite_version=version, arms=[(endpoint, strategy("plain"))])
    task_queue.drain()
    run.refresh_from_db()
    assert run.analysed_at is not None and run.trend_points.count() == 1
    assert run.analysis_error == "drift: RuntimeError: embedder out of memory"
    assert sent == [run.pk]  # the findings of the other steps are still sent


def test_runs_finished_before_the_upgrade_are_not_analysed_again(db):
    from importlib import import_module

    from django.apps import apps

    migration = import_module("evaluations.migrations.0011_run_analysis")
    version = _suite(1)
    done = Run.objects.create(
        suite_version=version, status=RunStatus.SUCCEEDED, finished_at=timezone.now() - timedelta(days=3)
    )
    failed = Run.objects.create(suite_version=version, status=RunStatus.FAILED, finished_at=timezone.now())
    migration.runs_already_analysed(apps, None)
    done.refresh_from_db()
    failed.refresh_from_db()
    assert done.analysed_at == done.finished_at and failed.analysed_at is None
