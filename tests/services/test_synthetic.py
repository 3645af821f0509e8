"""Synthetic examples through the service and the task, against the loopback OpenAI-compatible server:
planted duplicates and a planted copy of a test case are dropped and counted, accepted candidates
become train cases of a new suite version, nothing becomes a test case; the cost is recorded."""

from __future__ import annotations

import json
import re

import pytest

from evaluations.analysis.costs import token_cost
from evaluations.models import (
    AuditEvent,
    CandidateStatus,
    Case,
    EmbeddingCache,
    KnowledgeDoc,
    Strategy,
    SyntheticGeneration,
)
from evaluations.services.knowledge import knowledge_store
from evaluations.services.runs import RunError, run_create
from evaluations.services.synthetic import (
    SyntheticError,
    candidate_review,
    candidates_accept_all,
    synthesize_strategy,
    synthetic_cancel,
    synthetic_create,
    synthetic_promote,
)
from tests.factories import CaseFactory, EndpointFactory, SuiteVersionFactory
from tests.fakeopenai import last_user_text

SEEDS = [
    ("seed-1", "my invoice shows a double charge for march", "billing"),
    ("seed-2", "the app crashes when I open settings", "technical"),
]
TESTS = [
    ("test-1", "how do I change the email on my account", "account"),
    ("test-2", "refund for the annual plan please", "billing"),
]
UNIQUE = [
    ("printer driver fails after update", "technical"),
    ("cannot log in with two factor code", "account"),
    ("charged twice this month on visa", "billing"),
    ("export button greys out on reports", "technical"),
    ("rename team workspace somewhere", "account"),
    ("discount code rejected at checkout", "billing"),
    ("dark mode flickers on android tablet", "technical"),
    ("delete old avatar picture", "account"),
]
PLANTED = [
    *UNIQUE[:5],
    ("  PRINTER driver fails after UPDATE ", "technical"),  # a copy of an earlier candidate
    ("my invoice shows a double charge for march", "billing"),  # a seed's input
    ("how do I change the email on my account", "account"),  # a test case's input
    *UNIQUE[5:],
    ("Refund for the annual plan, please!", "billing"),  # a test case's input, reworded by punctuation
]


def line(text: str, label: str) -> str:
    return json.dumps({"input": text, "expected": label})


class Planted:
    """Answers call `set k` (calls run concurrently) with PLANTED[10 (k - 1):], as many as it asks for;
    the first set's answer starts with a prose line and a broken one."""

    def __init__(self, per_call: int = 10) -> None:
        self.per_call = per_call
        self.answers: list[str] = []

    def __call__(self, body: dict) -> str:
        text = last_user_text(body)
        n = int(re.search(r"Write (\d+) new examples", text).group(1))
        found = re.search(r"This is set (\d+) of", text)
        first = (int(found.group(1)) - 1) * self.per_call if found else 0
        answer = "\n".join(line(t, lab) for t, lab in PLANTED[first : first + n])
        if first == 0:
            answer = "Here you go:\n{not json at all\n" + answer
        self.answers.append(answer)
        return answer


@pytest.fixture
def version(db):
    version = SuiteVersionFactory(suite__name="tickets", suite__task_type="classification", labels=[
        "billing", "technical", "account"])  # fmt: skip
    position = 0
    for key, text, label in SEEDS:
        CaseFactory(version=version, key=key, position=position, input=text, expected=label, split="train")
        position += 1
    for key, text, label in TESTS:
        CaseFactory(version=version, key=key, position=position, input=text, expected=label, split="test")
        position += 1
    return version


def start(version, endpoint, **kwargs):
    args = {"suite_version": version, "endpoint": endpoint, "seed_keys": ["seed-1", "seed-2"], "n": 12}
    return synthetic_create(**(args | kwargs))


def test_planted_duplicates_and_test_copies_are_dropped_and_accepted_ones_become_train_cases(
    version, endpoint, fake_openai, task_queue, user
):
    fake_openai.responder = responder = Planted()
    generation = start(version, endpoint, user=user)
    assert task_queue.names() == ["synthesize"]
    task_queue.drain()

    generation.refresh_from_db()
    assert generation.status == "succeeded", generation.error
    assert generation.calls == 2  # 12 pairs in calls of 10: 10 and 2
    assert generation.generated == 12
    assert generation.dropped_duplicates == 2
    assert generation.dropped_test_copies == 2
    assert generation.unparseable == 1  # "{not json at all"; the prose line is not counted
    dropped = {c.input.strip().lower(): c for c in generation.candidates.filter(status="dropped")}
    assert dropped["printer driver fails after update"].drop_reason == "duplicate"
    assert dropped["printer driver fails after update"].nearest == "#0"
    assert dropped["my invoice shows a double charge for march"].nearest == "seed:seed-1"
    assert dropped["how do i change the email on my account"].nearest == "test:test-1"
    assert dropped["refund for the annual plan, please!"].drop_reason == "test-copy"
    assert dropped["refund for the annual plan, please!"].nearest == "test:test-2"
    pending = list(generation.candidates.filter(status="pending").order_by("position"))
    assert [c.input for c in pending] == [text for text, _ in UNIQUE]

    # the cost: tokens x the endpoint's prices (1 and 2 USD per 1M), as a run's results compute it
    assert generation.prompt_tokens > 0 and generation.completion_tokens > 0
    expected_cost = token_cost(generation.prompt_tokens, generation.completion_tokens, 1.0, 2.0)
    assert generation.cost == pytest.approx(expected_cost)
    words = sum(len(a.split()) for a in responder.answers)
    assert generation.completion_tokens == words

    # review: one rejected, one edited then accepted, the rest accepted at once
    candidate_review(candidate_id=pending[0].pk, action="reject", user=user)
    edited = candidate_review(candidate_id=pending[1].pk, action="accept", expected="technical", user=user)
    assert edited.edited and edited.status == "accepted"
    assert candidates_accept_all(generation_id=generation.pk, user=user) == 6
    with pytest.raises(SyntheticError, match="dropped"):
        candidate_review(candidate_id=next(iter(dropped.values())).pk, action="accept", user=user)

    new = synthetic_promote(generation_id=generation.pk, user=user)
    generation.refresh_from_db()
    assert generation.promoted_version == new
    assert new.number == version.number + 1
    assert new.cases.filter(split="test").count() == 2  # nothing became a test case
    assert set(new.cases.filter(split="test").values_list("key", flat=True)) == {"test-1", "test-2"}
    synthetic = list(new.cases.filter(key__startswith=f"syn-{generation.pk}-").order_by("position"))
    assert len(synthetic) == 7 and all(c.split == "train" for c in synthetic)
    assert synthetic[0].expected == "technical" and synthetic[0].input == UNIQUE[1][0]
    for case in version.cases.all():  # the source version's cases, unchanged
        copy = new.cases.get(key=case.key)
        assert (copy.input, copy.expected, copy.split, copy.position) == (
            case.input, case.expected, case.split, case.position)  # fmt: skip
    assert version.cases.count() == 4  # the source version is untouched
    assert list(new.synthetic_sources.all()) == [generation]  # the fine-tuning code reads the cost here
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"synthetic.create", "synthetic.succeeded", "synthetic.accept", "synthetic.reject",
            "synthetic.accept_all", "synthetic.promote"} <= actions  # fmt: skip
    with pytest.raises(SyntheticError, match="promoted"):
        synthetic_promote(generation_id=generation.pk, user=user)


def test_candidates_are_embedded_with_the_suites_embedder_and_its_database_cache(
    version, endpoint, fake_openai, task_queue, settings
):
    fake_openai.responder = Planted()
    start(version, endpoint)
    task_queue.drain()
    # the hashing embedder (the tests' FTVP_EMBEDDER) cached every candidate's and case's input
    assert EmbeddingCache.objects.filter(model="hashing-test").count() >= 4 + 10


def test_promotion_carries_the_knowledge_documents(version, endpoint, fake_openai, task_queue, user):
    guide = {"doc_id": "guide", "title": "Guide", "source_name": "guide.md", "text": "routing"}
    knowledge_store(version=version, documents=[guide | {"chunks": ["routing"]}])
    fake_openai.responder = Planted()
    generation = start(version, endpoint, n=2)
    task_queue.drain()
    candidates_accept_all(generation_id=generation.pk, user=user)
    new = synthetic_promote(generation_id=generation.pk, user=user)
    assert list(KnowledgeDoc.objects.filter(version=new).values_list("doc_id", flat=True)) == ["guide"]
    assert new.chunks.count() == 1


def test_an_edit_may_not_turn_a_candidate_into_a_test_case_copy(version, endpoint, fake_openai, task_queue):
    fake_openai.responder = Planted()
    generation = start(version, endpoint, n=2)
    task_queue.drain()
    candidate = SyntheticGeneration.objects.get(pk=generation.pk).candidates.filter(status="pending").first()
    with pytest.raises(SyntheticError, match="test case test-1"):
        candidate_review(
            candidate_id=candidate.pk, action="accept", input="How do I change the EMAIL on my account"
        )
    candidate.refresh_from_db()
    assert candidate.status == CandidateStatus.PENDING


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seed_keys": []}, "at least one seed"),
        ({"seed_keys": ["nope"]}, "has no case nope"),
        ({"seed_keys": ["test-1"]}, "test cases"),
        ({"seed_keys": ["seed-1", "seed-1"]}, "twice"),
        ({"n": 0}, "n must be a whole number from 1 to 1000"),
        ({"n": 1001}, "n must be"),
        ({"n": True}, "n must be"),
        ({"threshold": 0}, "threshold"),
        ({"threshold": 1.5}, "threshold"),
    ],
)
def test_a_generation_that_cannot_be_made_writes_nothing(version, endpoint, task_queue, kwargs, message):
    with pytest.raises(SyntheticError, match=message):
        start(version, endpoint, **kwargs)
    assert not SyntheticGeneration.objects.exists()
    assert not task_queue.sent
    assert not AuditEvent.objects.filter(action__startswith="synthetic").exists()


def test_a_strategy_of_another_kind_or_unusable_params_is_refused(version, endpoint, task_queue):
    zero = Strategy.objects.get_or_create(name="zero-shot", version=1, defaults={"kind": "zero-shot"})[0]
    with pytest.raises(SyntheticError, match="choose a synthesize one"):
        start(version, endpoint, strategy=zero)
    broken = Strategy.objects.create(
        name="synthesize", version=99, kind="synthesize", params={"per_call": 50}
    )
    with pytest.raises(SyntheticError, match="per_call"):
        start(version, endpoint, strategy=broken)
    assert not SyntheticGeneration.objects.exists()


def test_an_edited_strategy_version_is_used_for_the_prompt(version, endpoint, fake_openai, task_queue):
    fake_openai.responder = Planted(per_call=5)
    base = synthesize_strategy(1)
    edited = Strategy.objects.create(
        name="synthesize", version=2, kind="synthesize",
        params=base.params | {"system": "You are a support-ticket writer.", "per_call": 5},
    )  # fmt: skip
    generation = start(version, endpoint, n=6, strategy=edited)
    task_queue.drain()
    generation.refresh_from_db()
    assert generation.calls == 2  # 5 and 1
    assert all(
        r["messages"][0]["content"] == "You are a support-ticket writer." for r in fake_openai.requests
    )
    assert synthesize_strategy() == edited  # the latest version is the default


def test_every_call_failing_fails_the_generation_with_the_reason(version, fake_openai, task_queue):
    endpoint = EndpointFactory(name="down", base_url=fake_openai.base_url)
    fake_openai.fail_next(400, 10)
    generation = start(version, endpoint, n=3)
    task_queue.drain()
    generation.refresh_from_db()
    assert generation.status == "failed"
    assert "every call" in generation.error
    assert generation.cost == 0.0
    assert not generation.candidates.exists()
    with pytest.raises(SyntheticError, match="failed"):
        candidates_accept_all(generation_id=generation.pk)


def test_a_cancelled_generation_keeps_nothing_but_what_it_cost(version, endpoint, fake_openai, task_queue):
    fake_openai.responder = Planted()
    generation = start(version, endpoint, n=3)
    assert synthetic_cancel(generation_id=generation.pk)
    task_queue.drain()  # the task finds it cancelled: no call
    generation.refresh_from_db()
    assert generation.status == "cancelled" and generation.calls == 0
    assert not fake_openai.requests
    assert not synthetic_cancel(generation_id=generation.pk)


def test_a_delivered_twice_generation_runs_once(version, endpoint, fake_openai, task_queue):
    fake_openai.responder = Planted()
    generation = start(version, endpoint, n=3)
    task_queue.sent.append(("synthesize", (generation.pk,)))
    task_queue.drain()
    assert len(fake_openai.requests) == 1
    assert SyntheticGeneration.objects.get(pk=generation.pk).candidates.count() == 3


def test_promotion_needs_an_accepted_candidate(version, endpoint, fake_openai, task_queue):
    fake_openai.responder = Planted()
    generation = start(version, endpoint, n=2)
    task_queue.drain()
    with pytest.raises(SyntheticError, match="no accepted candidate"):
        synthetic_promote(generation_id=generation.pk)
    assert version.suite.versions.count() == 1


def test_a_synthesize_strategy_is_not_a_runs_arm(version, endpoint):
    with pytest.raises(RunError, match="not a run's arm"):
        run_create(suite_version=version, arms=[(endpoint, synthesize_strategy())])
    assert not Case.objects.filter(version__suite=version.suite).exclude(version=version).exists()


def test_the_generation_runs_on_the_llm_queue(settings):
    assert settings.CELERY_TASK_ROUTES["workers.tasks.synthesize"] == {"queue": "llm"}


def test_a_synthesize_strategy_is_not_a_schedules_arm(version, endpoint):
    from evaluations.services.schedules import ScheduleError, schedule_create

    with pytest.raises(ScheduleError, match="not a run's arm"):
        schedule_create(suite=version.suite, name="nightly", arms=[(endpoint, synthesize_strategy())])


def test_a_generation_whose_worker_died_is_claimed_again_and_a_live_one_is_not(
    version, endpoint, fake_openai, task_queue
):
    from datetime import timedelta

    from django.utils import timezone

    from evaluations.services import recovery

    fake_openai.responder = Planted()
    generation = start(version, endpoint, n=3)
    task_queue.sent.clear()
    live = timezone.now()
    SyntheticGeneration.objects.filter(pk=generation.pk).update(
        status="running", started_at=live, heartbeat_at=live
    )
    recovery.runs_recover()
    assert "synthesize" not in task_queue.names()  # a live worker holds it
    from workers.tasks import synthesize

    synthesize.run(generation.pk)  # a duplicate message: its worker is alive, nothing happens
    assert not fake_openai.requests

    dead = timezone.now() - timedelta(hours=2)  # the tests' FTVP_STALL_SECONDS is an hour
    SyntheticGeneration.objects.filter(pk=generation.pk).update(heartbeat_at=dead, started_at=dead)
    counts = recovery.runs_recover()
    assert counts["synthetic"] == 1 and task_queue.names() == ["synthesize"]
    task_queue.drain()
    generation.refresh_from_db()
    assert generation.status == "succeeded" and generation.candidates.count() == 3
    assert generation.heartbeat_at is None


def test_a_queued_generation_whose_message_was_lost_is_sent_again_by_a_starting_worker(
    version, endpoint, task_queue
):
    from evaluations.services import recovery

    generation = start(version, endpoint, n=3)
    task_queue.sent.clear()
    recovery.runs_recover()
    assert "synthesize" not in task_queue.names()  # queued a moment ago: its message is on its way
    recovery.runs_recover(startup=True)
    assert task_queue.sent == [("synthesize", (generation.pk,))]


def test_a_generation_on_an_older_version_is_not_promoted_over_a_newer_one(version, endpoint, fake_openai,
                                                                          task_queue):  # fmt: skip
    fake_openai.responder = Planted()
    generation = start(version, endpoint, n=2)
    task_queue.drain()
    candidates_accept_all(generation_id=generation.pk)
    SuiteVersionFactory(suite=version.suite, number=version.number + 1)  # uploaded meanwhile
    with pytest.raises(SyntheticError, match=r"the suite's latest version is v\d+: a new version built on"):
        synthetic_promote(generation_id=generation.pk)
    assert version.suite.versions.count() == 2
