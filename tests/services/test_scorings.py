from __future__ import annotations

import pytest

from evaluations.models import Result, RunStatus, Scoring
from evaluations.services.runs import run_create
from evaluations.services.scorings import RescoreError, run_rescore
from evaluations.services.suites import suite_update_settings
from tests.factories import CaseFactory, EndpointFactory, SuiteVersionFactory, strategy
from tests.fakeopenai import answers_responder


@pytest.fixture
def finished_run(db, fake_openai, task_queue):
    fake_openai.responder = answers_responder({"q0": "Paris is the capital", "q1": "Lyon", "q2": "PARIS"})
    version = SuiteVersionFactory()
    for i in range(3):
        CaseFactory(version=version, key=f"c{i}", position=i, input=f"q{i}", expected="Paris")
    endpoint = EndpointFactory(base_url=fake_openai.base_url)
    run = run_create(suite_version=version, arms=[(endpoint, strategy("plain"))])
    task_queue.drain()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    return run


def test_the_first_scoring_records_its_scorers_and_embedder(finished_run):
    scoring = finished_run.scorings.get()
    assert (scoring.number, scoring.trigger) == (1, "run")
    assert scoring.scorer_versions == {"similar": 1} and scoring.embedder == "hashing-test"
    arm = finished_run.arms.get()
    assert scoring.summaries[str(arm.pk)]["mean_score"] == arm.summary["mean_score"]
    assert set(Result.objects.values_list("scoring", flat=True)) == {scoring.pk}


def test_rescoring_applies_new_assertions_without_calling_the_model(finished_run, fake_openai, task_queue):
    calls = len(fake_openai.requests)
    suite = finished_run.suite_version.suite
    suite.default_assertions = [{"type": "icontains", "value": "paris"}]
    suite.save()
    scoring = run_rescore(run_id=finished_run.pk)
    assert task_queue.sent == [("rescore_run", (scoring.pk,))]
    task_queue.drain()
    scoring.refresh_from_db()
    assert scoring.finished_at is not None and scoring.scorer_versions == {"icontains": 1}
    assert len(fake_openai.requests) == calls
    passed = dict(Result.objects.values_list("case__key", "passed"))
    assert passed == {"c0": True, "c1": False, "c2": True}
    arm = finished_run.arms.get()
    assert arm.summary["pass_rate"] == pytest.approx(2 / 3)
    # The first scoring keeps its own figures: the run has a history.
    first = finished_run.scorings.get(number=1)
    assert first.summaries[str(arm.pk)] != scoring.summaries[str(arm.pk)]
    assert finished_run.scorings.count() == 2


def test_a_running_run_cannot_be_rescored(db, fake_openai, task_queue):
    version = SuiteVersionFactory()
    CaseFactory(version=version)
    run = run_create(
        suite_version=version, arms=[(EndpointFactory(base_url=fake_openai.base_url), strategy("plain"))]
    )
    with pytest.raises(RescoreError, match="once it has finished"):
        run_rescore(run_id=run.pk)
    assert Scoring.objects.filter(run=run).count() == 1


def test_case_assertions_combine_with_the_suite_defaults(db, fake_openai, task_queue):
    fake_openai.responder = answers_responder({"q": '{"city": "Paris"}'})
    version = SuiteVersionFactory()
    checks = [{"type": "is-json"}, {"type": "json-field", "value": {"path": "city", "equals": "Rome"}}]
    CaseFactory(version=version, input="q", expected=None, assertions=checks)
    suite_update_settings(suite=version.suite, description="", quality_target=0.8, pass_threshold=0.8,
                          monthly_volume=10)  # fmt: skip
    run = run_create(
        suite_version=version, arms=[(EndpointFactory(base_url=fake_openai.base_url), strategy("plain"))]
    )
    task_queue.drain()
    result = Result.objects.get()
    assert [a["passed"] for a in result.scores["assertions"]] == [True, False]
    assert result.score == pytest.approx(0.5) and result.passed is False
    assert run.scorings.get().scorer_versions == {"is-json": 1, "json-field": 1}


def test_rescoring_embeds_only_texts_it_has_not_seen(finished_run, task_queue, monkeypatch):
    from evaluations.scoring.embeddings import HashingEmbedder
    from evaluations.services import result_scores as scoring_service

    seen: list[str] = []

    class Counting(HashingEmbedder):
        def embed(self, texts):
            seen.extend(texts)
            return super().embed(texts)

    monkeypatch.setattr(scoring_service, "get_embedder", lambda: Counting())
    Result.objects.filter(case__key="c1").update(answer="Lyon, new answer")
    scoring = run_rescore(run_id=finished_run.pk)
    task_queue.drain()
    scoring.refresh_from_db()
    assert scoring.finished_at is not None
    # The expected output and the unchanged answers were embedded by the first scoring already.
    assert seen == ["Lyon, new answer"]
