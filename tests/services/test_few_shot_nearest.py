"""`few-shot-nearest` through the real pipeline: a model that can answer only from a demonstration
sharing the case's topic word scores about k/topics with random examples and close to 1.0 with the
nearest ones; the demonstrations come from the train split only."""

from __future__ import annotations

import numpy as np
import pytest

from evaluations import strategies
from evaluations.models import Arm, Result, Strategy
from evaluations.services.runs import run_create
from tests.factories import CaseFactory, EndpointFactory, SuiteVersionFactory, strategy
from tests.fakeopenai import last_user_text

TOPICS = ("apple", "river", "guitar", "planet", "castle", "violin", "harbor", "lantern", "meadow", "copper")


def topic_model(body: dict) -> str:
    """Answers right only when an earlier turn (a demonstration) shows the code of the question's topic."""
    question = last_user_text(body)
    shown = {m["content"] for m in body["messages"][:-1] if m.get("role") == "assistant"}
    for topic in TOPICS:
        if topic in question.split() and f"code-{topic}" in shown:
            return f"code-{topic}"
    return "unknown"


@pytest.fixture
def topic_suite(db):
    version = SuiteVersionFactory(suite__name="topics")
    position = 0
    for topic in TOPICS:
        for i in range(3):
            text = f"a short question about {topic} , example {i}"
            CaseFactory(version=version, key=f"x-{topic}-{i}", position=position, split="train", input=text,
                        expected=f"code-{topic}")  # fmt: skip
            position += 1
    for topic in TOPICS:
        for j in range(2):
            text = f"a short question about {topic} , case {j}"
            CaseFactory(version=version, key=f"t-{topic}-{j}", position=position, input=text,
                        expected=f"code-{topic}")  # fmt: skip
            position += 1
    return version


def pass_rate(run, name: str) -> float:
    arm = Arm.objects.get(run=run, strategy__name=name)
    results = Result.objects.filter(arm=arm)
    return sum(r.output == r.case.expected for r in results) / results.count()


def test_nearest_examples_beat_random_ones_on_a_suite_answerable_only_from_a_similar_example(
    topic_suite, fake_openai, task_queue
):
    fake_openai.responder = topic_model
    endpoint = EndpointFactory(name="topical", base_url=fake_openai.base_url)
    run = run_create(
        suite_version=topic_suite,
        arms=[
            (endpoint, strategy("zero-shot")),
            (endpoint, strategy("few-shot")),
            (endpoint, strategy("few-shot-nearest")),
        ],
        use_cache=False,
    )
    task_queue.drain()

    assert pass_rate(run, "zero-shot") == 0.0
    # 3 random examples of 30, 3 of them on the case's topic: 1 - C(27,3)/C(30,3) = 0.28 expected
    assert 0.05 <= pass_rate(run, "few-shot") <= 0.6
    assert pass_rate(run, "few-shot-nearest") == 1.0
    nearest = Result.objects.filter(arm__run=run, arm__strategy__name="few-shot-nearest")
    for result in nearest.select_related("case"):
        shown = [m["content"] for m in result.prompt if m["role"] == "user"][:-1]
        assert len(shown) == 3 and all(text.startswith("a short question about") for text in shown)
        assert all(", example " in text for text in shown)  # train cases only, never a test case
    run.refresh_from_db()
    assert run.status == "succeeded"


def test_nearest_examples_order_and_exclusion() -> None:
    pool = [strategies.Example(input=f"e{i}", output=f"o{i}") for i in range(4)]
    vectors = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.5, 0.5]], dtype=np.float32)
    query = np.array([1, 0], dtype=np.float32)

    last = strategies.nearest_examples(pool, vectors, query, 2)
    first = strategies.nearest_examples(pool, vectors, query, 2, order="nearest-first")
    without = strategies.nearest_examples(pool, vectors, query, 2, exclude_input="e0")

    assert [e.input for e in last] == ["e1", "e0"]  # the most similar right before the question
    assert [e.input for e in first] == ["e0", "e1"]
    assert [e.input for e in without] == ["e3", "e1"]
    assert strategies.nearest_examples(pool, vectors, query, 0) == ()
    with pytest.raises(ValueError, match="order must be one of"):
        strategies.nearest_examples(pool, vectors, query, 2, order="random")


def test_few_shot_nearest_renders_its_examples_as_earlier_turns() -> None:
    ctx = strategies.RenderContext(examples=(strategies.Example("q1", "a1"),))
    assert strategies.render("few-shot-nearest", "q", ctx) == [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q"},
    ]
    assert strategies.ladder_rank("few-shot") < strategies.ladder_rank("few-shot-nearest")
    assert strategies.ladder_rank("few-shot-nearest") < strategies.ladder_rank("system")


def test_unusable_parameters_fail_the_run_with_the_reason(topic_suite, fake_openai, task_queue):
    fake_openai.responder = topic_model
    endpoint = EndpointFactory(name="topical", base_url=fake_openai.base_url)
    broken = Strategy.objects.create(
        name="few-shot-nearest", version=2, kind="few-shot-nearest", params={"k": 3, "order": "random"}
    )
    run = run_create(suite_version=topic_suite, arms=[(endpoint, broken)], use_cache=False)
    task_queue.drain()

    run.refresh_from_db()
    assert run.status == "failed"
    assert run.error == (
        "strategy few-shot-nearest@v2: order must be one of nearest-last, nearest-first; got 'random'; "
        "fix its parameters, then run again"
    )
    assert fake_openai.requests == []  # nothing was sent with a prompt it could not build
