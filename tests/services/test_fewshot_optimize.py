"""The optimised few-shot search through the real service, against a loopback OpenAI-compatible
server that answers right only when the demonstration of train case "golden" is in the prompt."""

from __future__ import annotations

import io
import json
import re

import pytest
from django.core.management import CommandError, call_command

from evaluations import strategies
from evaluations.analysis.costs import token_cost
from evaluations.models import AuditEvent, Result, Strategy
from evaluations.services.fewshot_optimize import (
    OptimizeError,
    SearchFailed,
    default_name,
    strategy_optimize,
)
from evaluations.services.runs import run_create
from tests.factories import CaseFactory, EndpointFactory, SuiteVersionFactory
from tests.fakeopenai import _content_text, last_user_text

MAGIC = "the magic word is please"


def golden_model(body: dict) -> str:
    """a + b when an earlier turn (a demonstration) holds the magic word, else a shrug."""
    earlier = " ".join(_content_text(m.get("content")) for m in body["messages"][:-1])
    numbers = [int(n) for n in re.findall(r"\d+", last_user_text(body))]
    if MAGIC in earlier and len(numbers) >= 2:
        return str(numbers[0] + numbers[1])
    return "no idea"


def sums_suite(name: str = "sums", *, train: int = 12, golden_at: int = 5):
    """A generation suite checked with `equals`: train cases "what is a plus b?" (one of them the
    golden one, with the magic word) and two test cases."""
    version = SuiteVersionFactory(suite__name=name, suite__default_assertions=[{"type": "equals"}])
    for i in range(train):
        a, b = i + 1, 2 * i + 3
        key, text = (f"x{i:02d}", f"what is {a} plus {b}?")
        if i == golden_at:
            key, text = "golden", f"what is {a} plus {b}? ({MAGIC})"
        CaseFactory(version=version, key=key, position=i, split="train", input=text, expected=str(a + b))
    for j in range(2):
        CaseFactory(version=version, key=f"t{j}", position=100 + j, input=f"what is {j} plus 40?",
                    expected=str(j + 40))  # fmt: skip
    return version


@pytest.fixture
def endpoint(fake_openai):
    fake_openai.responder = golden_model
    return EndpointFactory(name="golden-model", base_url=fake_openai.base_url, price_in=1, price_out=2)


def test_the_search_finds_the_golden_demonstration_and_freezes_it(db, fake_openai, endpoint):
    version = sums_suite()
    seen = []
    strategy = strategy_optimize(
        suite=version.suite, endpoint=endpoint, k=3, candidates=8, dev_size=20, seed=0,
        progress=lambda i, n, score: seen.append((i, n, score)),
    )  # fmt: skip

    assert strategy.name == "few-shot-optimized-sums" and strategy.version == 1
    assert strategy.kind == "few-shot-optimized"
    found = strategy.params["search"]
    assert "golden" not in found["dev_keys"]  # the seed leaves it in the pool: the premise of the test
    keys = [e["key"] for e in strategy.params["examples"]]
    assert "golden" in keys and len(keys) == 3 and strategy.params["k"] == 3
    assert found["winner_dev_score"] == 1.0
    assert min(found["scores"]) == 0.0  # candidates without it got nothing right
    assert found["candidates"] == 8 and len(found["scores"]) == 8
    assert found["dev_cases"] == 4 and len(found["dev_keys"]) == 4  # 30% of 12, rounded
    assert found["endpoint"] == "golden-model" and found["suite_version"] == version.number
    assert found["seed"] == 0 and found["errors"] == 0
    assert [(i, n) for i, n, _ in seen] == [(i, 8) for i in range(1, 9)]
    assert [s for *_, s in seen] == found["scores"]

    # every demonstration in the shape the run pipeline reads, from the train split only
    train = {c.key: c for c in version.cases.filter(split="train")}
    for example in strategy.params["examples"]:
        case = train[example["key"]]
        assert example == {"key": case.key, "input": case.input, "output": case.expected}
    assert not set(keys) & set(found["dev_keys"])

    # the cost: one call per candidate and dev case, tokens as the server counted them, USD by price
    assert found["calls"] == 8 * 4 == len(fake_openai.requests)
    prompt_words = sum(
        len(_content_text(m["content"]).split()) for body in fake_openai.requests for m in body["messages"]
    )
    assert found["prompt_tokens"] == prompt_words
    assert found["completion_tokens"] > 0
    assert found["cost_usd"] == pytest.approx(token_cost(prompt_words, found["completion_tokens"], 1.0, 2.0))
    assert found["seconds"] >= 0
    assert "frozen demonstration" in strategy.description and "golden" in strategy.description

    event = AuditEvent.objects.get(action="strategy.optimize")
    assert event.object_id == str(strategy.pk) and event.suite_id == version.suite_id
    assert event.after["examples"] == keys and event.after["search"]["calls"] == 32


def test_the_frozen_prompt_is_the_one_the_search_scored(db, fake_openai, endpoint):
    version = sums_suite()
    strategy = strategy_optimize(suite=version.suite, endpoint=endpoint, k=3, candidates=8, seed=0)
    examples = tuple(strategies.Example(e["input"], e["output"]) for e in strategy.params["examples"])
    dev_case = version.cases.get(key=strategy.params["search"]["dev_keys"][0])
    ctx = strategies.RenderContext(
        task_type=version.task_type, labels=tuple(version.labels), examples=examples
    )
    rendered = strategies.render("few-shot-optimized", dev_case.input, ctx)
    assert rendered in [body["messages"] for body in fake_openai.requests]


def test_runs_use_the_frozen_examples_without_searching_again(db, fake_openai, endpoint, task_queue):
    version = sums_suite()
    strategy = strategy_optimize(suite=version.suite, endpoint=endpoint, k=3, candidates=8, seed=0)
    fake_openai.reset()
    run = run_create(suite_version=version, arms=[(endpoint, strategy)], use_cache=False)
    task_queue.drain()

    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert len(fake_openai.requests) == 2  # the two test cases, nothing more
    results = Result.objects.filter(arm__run=run)
    assert all(r.passed for r in results)
    frozen = [e["input"] for e in strategy.params["examples"]]
    for r in results:
        assert [m["content"] for m in r.prompt if m["role"] == "user"][:-1] == frozen


def test_the_same_seed_freezes_the_same_examples_as_the_next_version(db, fake_openai, endpoint):
    version = sums_suite()
    first = strategy_optimize(suite=version.suite, endpoint=endpoint, k=3, candidates=8, seed=0)
    second = strategy_optimize(suite=version.suite, endpoint=endpoint, k=3, candidates=8, seed=0)
    assert (first.name, first.version, second.version) == (second.name, 1, 2)
    assert second.params["examples"] == first.params["examples"]
    same = {k: v for k, v in first.params["search"].items() if k != "seconds"}
    assert {k: v for k, v in second.params["search"].items() if k != "seconds"} == same
    other = strategy_optimize(suite=version.suite, endpoint=endpoint, k=3, candidates=8, seed=1)
    assert other.version == 3
    assert other.params["search"]["dev_keys"] != first.params["search"]["dev_keys"]


def test_a_train_split_too_small_is_refused_naming_the_numbers(db, endpoint, fake_openai):
    version = sums_suite("tiny", train=4, golden_at=0)
    with pytest.raises(
        OptimizeError, match=r"has 4 labelled train case\(s\); a search with k=3 needs at least 5"
    ):
        strategy_optimize(suite=version.suite, endpoint=endpoint, k=3)
    assert strategy_optimize(suite=version.suite, endpoint=endpoint, k=2, candidates=2).version == 1
    assert not Strategy.objects.filter(name="few-shot-optimized-tiny", version=2).exists()
    assert len(fake_openai.requests) == 2 * 1  # k=2: one dev case of 4, two candidates


def test_unlabelled_train_cases_do_not_count(db, endpoint):
    version = sums_suite("unlabelled", train=5, golden_at=0)
    version.cases.filter(key="x01").update(expected=None)
    with pytest.raises(OptimizeError, match=r"has 4 labelled train case"):
        strategy_optimize(suite=version.suite, endpoint=endpoint, k=3)


@pytest.mark.parametrize(
    "field, value, message",
    [("k", 0, "k must be"), ("candidates", 0, "candidates must be"), ("dev_size", 0, "dev_size must be"),
     ("seed", -1, "seed must be"), ("k", 1000, "k must be a whole number from 1 to 32")],
)  # fmt: skip
def test_numbers_out_of_range_are_refused(db, endpoint, field, value, message):
    version = sums_suite()
    with pytest.raises(OptimizeError, match=message):
        strategy_optimize(suite=version.suite, endpoint=endpoint, **{field: value})


def test_a_name_taken_by_another_kind_is_refused(db, endpoint):
    version = sums_suite()
    Strategy.objects.get_or_create(name="few-shot", version=1, defaults={"kind": "few-shot"})
    with pytest.raises(OptimizeError, match="taken by strategy few-shot of kind few-shot"):
        strategy_optimize(suite=version.suite, endpoint=endpoint, name="few-shot")


def test_the_default_name_is_slug_safe_and_fits():
    class Suite:
        pk = 7
        name = "Tickets: EU / DE " + "x" * 200

    name = default_name(Suite())
    assert name.startswith("few-shot-optimized-tickets-eu-de-x") and len(name) <= 100
    Suite.name = "???"
    assert default_name(Suite()) == "few-shot-optimized-suite-7"


def test_an_endpoint_without_prices_has_no_usd_cost(db, fake_openai):
    fake_openai.responder = golden_model
    free = EndpointFactory(name="free", base_url=fake_openai.base_url, price_in=0, price_out=0)
    version = sums_suite()
    found = strategy_optimize(suite=version.suite, endpoint=free, candidates=2).params["search"]
    assert found["cost_usd"] is None and found["calls"] == 8 and found["prompt_tokens"] > 0


def test_an_endpoint_that_fails_every_call_freezes_nothing(db, fake_openai, endpoint):
    fake_openai.fail_next(400, 1000)
    version = sums_suite()
    with pytest.raises(SearchFailed, match="every call to endpoint 'golden-model' failed"):
        strategy_optimize(suite=version.suite, endpoint=endpoint, candidates=2)
    assert not Strategy.objects.filter(kind="few-shot-optimized").exists()


def test_a_classification_suite_is_scored_with_its_labels_and_tries_a_balanced_set(db, fake_openai):
    labels = ["billing", "bug", "other"]
    version = SuiteVersionFactory(suite__name="tickets", suite__task_type="classification", labels=labels)
    for i in range(15):
        label = labels[i % 3]
        CaseFactory(version=version, key=f"c{i:02d}", position=i, split="train",
                    input=f"ticket {i} about {label}", expected=label)  # fmt: skip

    def labeller(body: dict) -> str:  # right only when every label is demonstrated
        shown = {_content_text(m["content"]) for m in body["messages"] if m["role"] == "assistant"}
        word = last_user_text(body).split(" about ")[1].split()[0]
        return word if shown == set(labels) else "other"

    fake_openai.responder = labeller
    endpoint = EndpointFactory(name="labeller", base_url=fake_openai.base_url)
    strategy = strategy_optimize(suite=version.suite, endpoint=endpoint, k=3, candidates=4, seed=5)
    found = strategy.params["search"]
    first = found["candidate_keys"][0]
    outputs = {c.key: c.expected for c in version.cases.all()}
    assert {outputs[key] for key in first} == set(labels)  # the label-balanced candidate comes first
    assert found["scores"][0] == 1.0 and found["winner_dev_score"] == 1.0
    assert {e["output"] for e in strategy.params["examples"]} == set(labels)


# --- the command -----------------------------------------------------------------------------------


def run_command(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("optimize_fewshot", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_the_command_prints_the_frozen_strategy_as_json(db, endpoint):
    sums_suite()
    out, err = run_command("--suite", "sums", "--endpoint", "golden-model", "--candidates", "8", "--json")
    d = json.loads(out)
    assert d["strategy"] == "few-shot-optimized-sums" and d["kind"] == "few-shot-optimized"
    assert "golden" in d["examples"] and d["winner_dev_score"] == 1.0
    assert 0 <= d["candidates_mean_dev_score"] < 1.0
    assert d["calls"] == 32 and d["cost_usd"] > 0 and d["prompt_tokens"] > 0 and d["completion_tokens"] > 0
    assert "candidate 1/8: dev score" in err and "candidate 8/8" in err


def test_the_command_in_words(db, endpoint):
    sums_suite()
    out, _ = run_command("--suite", "sums", "--endpoint", "golden-model", "--name", "sums-demos", "--k", "2")
    assert "Frozen sums-demos (few-shot-optimized, k=2)" in out
    assert "Dev score 1.000 on 4 dev case(s) of sums" in out
    assert "Search cost: 32 call(s) to golden-model (0 failed)" in out and "$0.00" in out


@pytest.mark.parametrize(
    "args, message",
    [(["--suite", "nope", "--endpoint", "golden-model"], "--suite 'nope': no such suite (known: sums)"),
     (["--suite", "sums", "--endpoint", "nope"], "--endpoint 'nope': no such endpoint (known: golden-model)"),
     (["--suite", "sums", "--endpoint", "golden-model", "--k", "11"], "has 12 labelled train case(s); a search with k=11 needs at least 13"),  # noqa: E501
     (["--suite", "sums", "--endpoint", "golden-model", "--candidates", "0"], "candidates must be")],
)  # fmt: skip
def test_the_command_exits_2_on_usage_errors(db, endpoint, args, message):
    sums_suite()
    with pytest.raises(CommandError) as caught:
        run_command(*args)
    assert message in str(caught.value) and caught.value.returncode == 2
