"""Traffic into a suite: a seeded sample, duplicates removed, a split stable across re-samples, no
expected output, the captured answers as a labelling run (review queue, training source), and
nothing half written."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evaluations.models import AuditEvent, Case, Result, Run, Split, Suite, SuiteVersion
from evaluations.selectors.reviews import review_queue
from evaluations.selectors.traffic import TrafficFilter
from evaluations.selectors.training_data import normalised_input, training_set
from evaluations.services import traffic_suite as service
from evaluations.services.traffic_suite import TrafficSuiteError, split_of, traffic_to_suite
from tests import traffic_rows
from tests.factories import EndpointFactory, strategy
from tests.runs import suite_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def gpt(db):
    strategy("plain")
    return EndpointFactory(name="gpt")


def _traffic(endpoint, n: int, **kwargs):
    return [
        traffic_rows.call(endpoint, question=f"question {i}", answer=f"answer {i}", **kwargs)
        for i in range(n)
    ]


def test_the_sample_is_seeded_and_the_cases_keep_the_messages_and_the_captured_answer(gpt):
    calls = _traffic(gpt, 30, tags=["prod"], cost=0.002)
    first = traffic_to_suite(suite_name="captured", sample_size=10, seed=7, test_share=0.3, user=None)
    again = traffic_to_suite(suite_name="captured-again", sample_size=10, seed=7, test_share=0.3)
    other = traffic_to_suite(suite_name="captured-other", sample_size=10, seed=8, test_share=0.3)
    assert first.call_ids == again.call_ids and set(first.call_ids) != set(other.call_ids)
    assert first.sampled == 10 and first.train + first.test == 10 and first.matched == 30
    case = first.version.cases.order_by("position").first()
    call = next(c for c in calls if c.call_id == case.metadata["captured"]["call_id"])
    assert case.input == call.request["messages"] and case.input[0]["role"] == "system"
    assert case.expected is None and "prod" in case.tags and "traffic" in case.tags
    assert case.metadata["captured"] == {"call_id": call.call_id, "endpoint": "gpt", "output": call.response[
        "choices"][0]["message"]["content"]}  # fmt: skip
    assert first.suite.name == "captured" and first.version.number == 1


def test_the_split_follows_the_input_whatever_the_seed_or_the_size(gpt):
    _traffic(gpt, 60)
    small = traffic_to_suite(suite_name="a", sample_size=15, seed=1, test_share=0.25)
    large = traffic_to_suite(suite_name="b", sample_size=50, seed=99, test_share=0.25)
    splits_small = {normalised_input(c.input): c.split for c in small.version.cases.all()}
    splits_large = {normalised_input(c.input): c.split for c in large.version.cases.all()}
    shared = set(splits_small) & set(splits_large)
    assert len(shared) >= 5
    assert all(splits_small[k] == splits_large[k] for k in shared)
    assert all(splits_large[k] == split_of(k, 0.25) for k in splits_large)
    assert 0 < large.test < large.train  # about a quarter of the inputs test
    assert traffic_to_suite(suite_name="c", sample_size=10, seed=1, test_share=0.0).test == 0


def test_duplicates_are_removed_in_the_sample_and_against_the_suite(gpt):
    for _ in range(3):
        traffic_rows.call(gpt, question="Where is my  PARCEL?", answer="shipping")
    traffic_rows.call(gpt, question="where is my parcel?", answer="shipping")  # the same, normalised
    traffic_rows.call(gpt, question="refund please", answer="billing")
    first = traffic_to_suite(suite_name="dedup", sample_size=10, seed=0, test_share=0.0)
    assert first.sampled == 2 and first.duplicates == 3
    traffic_rows.call(gpt, question="cancel my order", answer="orders")
    second = traffic_to_suite(suite=first.suite, sample_size=10, seed=0, test_share=0.0)
    assert second.version.number == 2 and second.sampled == 1  # the two known inputs are skipped
    assert second.version.cases.count() == 3  # v1's cases copied, unchanged
    with pytest.raises(TrafficSuiteError, match="no new input"):
        traffic_to_suite(suite=first.suite, sample_size=10, seed=0)


def test_only_successful_chat_calls_matching_the_filters_are_sampled(gpt):
    other = EndpointFactory(name="other")
    _traffic(gpt, 3, tags=["prod"])
    traffic_rows.call(gpt, question="boom", status=500, error="upstream failed")
    traffic_rows.call(gpt, question="embed me", kind="embeddings", response={"data": []})
    traffic_rows.call(other, question="elsewhere")
    traffic_rows.call(gpt, question="old", days_ago=40, tags=["prod"])
    outcome = traffic_to_suite(
        suite_name="filtered",
        filters=TrafficFilter(endpoint="gpt", tag="prod"),
        sample_size=100,
        test_share=0.0,
    )
    assert outcome.sampled == 4 and outcome.matched == 4
    from datetime import timedelta

    from django.utils import timezone

    recent = TrafficFilter(endpoint="gpt", date_from=timezone.localdate() - timedelta(days=1))
    assert traffic_to_suite(suite_name="recent", filters=recent, sample_size=100).matched == 3
    with pytest.raises(TrafficSuiteError, match="no successful chat call"):
        traffic_to_suite(suite_name="none", filters=TrafficFilter(endpoint="nope"), sample_size=5)
    assert not Suite.objects.filter(name="none").exists()


def test_the_captured_run_holds_the_answers_unscored_in_its_review_queue(gpt):
    _traffic(gpt, 12, cost=0.003, latency_ms=250.0, prompt_tokens=40, completion_tokens=4)
    outcome = traffic_to_suite(suite_name="teacher", sample_size=12, seed=3, test_share=0.25)
    run = outcome.run
    assert run.status == "succeeded" and run.split == Split.TRAIN
    arm = run.arms.get()
    assert arm.endpoint == gpt and arm.strategy.name == "plain"
    results = list(Result.objects.filter(arm=arm).select_related("case"))
    assert len(results) == outcome.train == run.expected_results
    for r in results:
        assert r.case.split == Split.TRAIN and r.answer == r.output == r.case.metadata["captured"]["output"]
        assert r.passed is None and r.cost == 0.003 and r.latency_ms == 250.0 and r.prompt_tokens == 40
    assert arm.summary  # the arm's summary is stored, as a finished run's
    queue = review_queue(run)
    assert queue.total == outcome.train and queue.left == outcome.train
    # All captured answers train a student: `run:RUN:ARM:all`; the passing ones: none (unscored).
    examples = training_set(outcome.version, f"run:{run.pk}:{arm.pk}:all")
    assert sorted(r.answer for r in examples.rows) == sorted(r.answer for r in results)
    # production paid for the captured answers already: they add nothing to the training data's cost
    assert examples.teacher[0] == gpt and examples.data_cost == 0
    assert training_set(outcome.version, f"run:{run.pk}:gpt").rows == []
    assert AuditEvent.objects.filter(action="traffic.to_suite").exists()


def test_reviewed_captured_answers_train_with_reviewed_run(gpt, user):
    from evaluations.services.reviews import review_save

    _traffic(gpt, 6)
    outcome = traffic_to_suite(suite_name="reviewed", sample_size=6, seed=0, test_share=0.0)
    first = Result.objects.filter(arm__run=outcome.run).order_by("case__position").first()
    review_save(result=first, reviewer=user, verdict="corrected", corrected_output="the right answer")
    rows = training_set(outcome.version, f"reviewed:{outcome.run.pk}").rows
    assert [r.answer for r in rows] == ["the right answer"]


def test_one_arm_per_live_endpoint(gpt):
    other = EndpointFactory(name="other")
    _traffic(gpt, 3)
    traffic_rows.call(other, question="something else entirely", answer="x")
    outcome = traffic_to_suite(suite_name="two", sample_size=10, test_share=0.0)
    assert sorted(a.endpoint.name for a in outcome.run.arms.all()) == ["gpt", "other"]


def test_nothing_is_half_written_when_a_step_fails(gpt, monkeypatch):
    _traffic(gpt, 5)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(service, "_captured_run", broken)
    with pytest.raises(RuntimeError):
        traffic_to_suite(suite_name="broken", sample_size=5, test_share=0.0)
    assert not Suite.objects.filter(name="broken").exists()
    assert not SuiteVersion.objects.exists() and not Case.objects.exists() and not Run.objects.exists()


def test_an_existing_suite_gets_a_new_version_with_its_cases(gpt):
    version = suite_version(test_cases=2, train_cases=1, name="tickets")
    _traffic(gpt, 4)
    outcome = traffic_to_suite(suite=version.suite, sample_size=4, test_share=0.0)
    assert outcome.version.number == version.number + 1
    assert outcome.version.cases.count() == 3 + 4
    assert outcome.version.cases.filter(key="t0000").exists()


@pytest.mark.parametrize(
    "kwargs, message",
    [({"sample_size": 0}, "sample_size"), ({"test_share": 1.5}, "test_share"),
     ({"suite_name": " "}, "suite:")],
)  # fmt: skip
def test_bad_arguments_say_which(gpt, kwargs, message):
    args = {"suite_name": "x", "sample_size": 5, **kwargs}
    with pytest.raises(TrafficSuiteError, match=message):
        traffic_to_suite(**args)


@given(
    texts=st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=30, unique=True),
    share=st.floats(min_value=0.0, max_value=1.0),
)
def test_an_input_s_split_depends_on_the_input_and_the_share_alone(texts, share):
    for text in texts:
        norm = normalised_input(text)
        assert split_of(norm, 0.0) == Split.TRAIN and split_of(norm, 1.0) == Split.TEST
        if split_of(norm, share) == Split.TEST:  # a larger share never moves a test input back to train
            assert split_of(norm, min(1.0, share + 0.1)) == Split.TEST
