"""`rag` through the real pipeline: a model that can answer only from a fact in its prompt scores
close to 0 zero-shot and close to 1 with retrieval; each result records its chunks, and the arm
reports recall@k and MRR against the cases' gold documents."""

from __future__ import annotations

import re

import numpy as np
import pytest

from evaluations import retrieval, strategies
from evaluations.models import Arm, KnowledgeChunk, KnowledgeDoc, Result, Strategy
from evaluations.selectors.runs import arm_summaries
from evaluations.services.runs import RunError, run_create
from tests.factories import CaseFactory, EndpointFactory, SuiteVersionFactory, strategy
from tests.fakeopenai import last_user_text

TOPICS = ("apple", "river", "guitar", "planet", "castle", "violin", "harbor", "lantern", "meadow", "copper")
FACT = re.compile(r"registry code of the (\w+) is (code-\w+-\d+)")


def fact_model(body: dict) -> str:
    """Answers right only when its prompt holds the fact about the question's topic."""
    question = last_user_text(body)
    prompt = "\n".join(str(m.get("content")) for m in body["messages"])
    facts = dict(FACT.findall(prompt))
    for topic in TOPICS:
        if topic in question.split() and topic in facts:
            return facts[topic]
    return "unknown"


def add_knowledge(version, docs: dict[str, str]) -> None:
    for position, (doc_id, text) in enumerate(docs.items()):
        doc = KnowledgeDoc.objects.create(version=version, doc_id=doc_id, text=text, position=position)
        for n, chunk in enumerate(retrieval.chunk_text(text)):
            KnowledgeChunk.objects.create(version=version, doc=doc, position=n, text=chunk)


@pytest.fixture
def fact_suite(db):
    version = SuiteVersionFactory(suite__name="facts")
    docs = {
        f"{topic}.md": f"# The {topic}\n\nThe registry code of the {topic} is code-{topic}-{i}. "
        f"It was filed in the year 19{i}0."
        for i, topic in enumerate(TOPICS)
    }
    docs["filler.txt"] = "Registry codes are assigned by the office on weekdays only."
    add_knowledge(version, docs)
    for position, topic in enumerate(TOPICS):
        CaseFactory(version=version, key=f"t-{topic}", position=position,
                    input=f"What is the registry code of the {topic} ?",
                    expected=f"code-{topic}-{position}", metadata={"gold_docs": [f"{topic}.md"]})  # fmt: skip
    return version


def pass_rate(run, name: str) -> float:
    results = Result.objects.filter(arm__run=run, arm__strategy__name=name).select_related("case")
    return sum(r.output == r.case.expected for r in results) / results.count()


def test_retrieval_answers_what_only_the_knowledge_holds(fact_suite, fake_openai, task_queue):
    fake_openai.responder = fact_model
    endpoint = EndpointFactory(name="reader", base_url=fake_openai.base_url, price_in=1.0, price_out=2.0)
    run = run_create(
        suite_version=fact_suite,
        arms=[(endpoint, strategy("zero-shot")), (endpoint, strategy("rag"))],
        use_cache=False,
    )
    task_queue.drain()

    run.refresh_from_db()
    assert run.status == "succeeded"
    assert pass_rate(run, "zero-shot") == 0.0
    assert pass_rate(run, "rag") == 1.0
    results = Result.objects.filter(arm__run=run, arm__strategy__name="rag").select_related("case")
    for result in results:
        assert len(result.retrieved) == 3
        assert result.retrieved[0]["doc"] == result.case.metadata["gold_docs"][0]  # the fact ranks first
        assert [h["score"] for h in result.retrieved] == sorted(
            (h["score"] for h in result.retrieved), reverse=True
        )
        system = result.prompt[0]
        assert system["role"] == "system" and f"[{result.retrieved[0]['doc']}]" in system["content"]
    rag_arm = Arm.objects.get(run=run, strategy__name="rag")
    zero_arm = Arm.objects.get(run=run, strategy__name="zero-shot")
    # The context is part of the prompt: its tokens are counted and priced.
    rag_summary, zero_summary = rag_arm.summary, zero_arm.summary
    assert rag_summary["prompt_tokens_mean"] > zero_summary["prompt_tokens_mean"] + 30
    assert rag_summary["cost_per_request"] > zero_summary["cost_per_request"]
    assert rag_summary["retrieval"] == {
        "k": 3, "cases": 10, "cases_with_gold": 10, "recall_at_k": 1.0, "mrr": 1.0, "hit_rate": 1.0,
    }  # fmt: skip
    assert "retrieval" not in zero_summary


def test_rag_with_nearest_examples_shows_both(fact_suite, fake_openai, task_queue):
    for position, topic in enumerate(TOPICS):
        CaseFactory(version=fact_suite, key=f"x-{topic}", position=100 + position, split="train",
                    input=f"Which year was the {topic} filed?", expected=f"19{position}0")  # fmt: skip
    fake_openai.responder = fact_model
    endpoint = EndpointFactory(name="reader", base_url=fake_openai.base_url)
    run = run_create(
        suite_version=fact_suite, arms=[(endpoint, strategy("rag+few-shot-nearest"))], use_cache=False
    )
    task_queue.drain()

    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert pass_rate(run, "rag+few-shot-nearest") == 1.0
    result = Result.objects.filter(arm__run=run, case__key="t-apple").get()
    roles = [m["role"] for m in result.prompt]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user", "assistant", "user"]
    assert "Context:" in result.prompt[0]["content"]
    shown = [m["content"] for m in result.prompt[1:-1] if m["role"] == "user"]
    assert all(text.startswith("Which year was the") for text in shown)  # train cases only
    assert Arm.objects.get(run=run).summary["retrieval"]["recall_at_k"] == 1.0


def test_retrieval_without_knowledge_is_refused_before_anything_runs(db, fake_openai):
    version = SuiteVersionFactory(suite__name="bare")
    CaseFactory(version=version, key="c1", position=0)
    endpoint = EndpointFactory(name="reader", base_url=fake_openai.base_url)
    with pytest.raises(
        RunError, match=r"reader:rag retrieve from the suite's knowledge documents, and bare v\d+ has none"
    ):
        run_create(suite_version=version, arms=[(endpoint, strategy("rag"))])


def test_a_frozen_optimised_strategy_shows_its_examples_in_order(fact_suite, fake_openai, task_queue):
    CaseFactory(version=fact_suite, key="a", position=200, split="train", input="q-a", expected="o-a")
    CaseFactory(version=fact_suite, key="b", position=201, split="train",
                input=[{"role": "user", "content": "q-b"}], expected="o-b")  # fmt: skip
    frozen = Strategy.objects.create(
        name="few-shot-optimized-facts", kind="few-shot-optimized",
        params={"k": 2, "examples": [
            {"key": "a", "input": "q-a", "output": "o-a"},
            {"key": "b", "input": [{"role": "user", "content": "q-b"}], "output": "o-b"},
        ]},
    )  # fmt: skip
    endpoint = EndpointFactory(name="reader", base_url=fake_openai.base_url)
    run = run_create(suite_version=fact_suite, arms=[(endpoint, frozen)], use_cache=False)
    task_queue.drain()

    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    for result in Result.objects.filter(arm__run=run):
        assert result.prompt[:4] == [
            {"role": "user", "content": "q-a"}, {"role": "assistant", "content": "o-a"},
            {"role": "user", "content": "q-b"}, {"role": "assistant", "content": "o-b"},
        ]  # fmt: skip
        assert result.retrieved == []


def test_frozen_demonstrations_that_are_test_cases_fail_the_run_and_are_not_put_on_a_ladder(
    fact_suite, fake_openai, task_queue
):
    from evaluations.selectors.strategies import optimized_strategy

    apple = fact_suite.cases.get(key="t-apple")
    leaky = Strategy.objects.create(
        name="few-shot-optimized-facts", kind="few-shot-optimized",
        params={"k": 1, "examples": [{"key": "t-apple", "input": apple.input, "output": apple.expected}],
                "search": {"suite": "facts"}},
    )  # fmt: skip
    endpoint = EndpointFactory(name="reader", base_url=fake_openai.base_url)
    run = run_create(suite_version=fact_suite, arms=[(endpoint, leaky)], use_cache=False)
    task_queue.drain()

    run.refresh_from_db()
    assert run.status == "failed" and fake_openai.requests == []
    assert "its demonstrations t-apple are not train cases of facts v" in run.error
    assert run.error.endswith(", then run again")
    assert optimized_strategy(fact_suite) is None  # a fine-tune's ladder does not take it either


def test_retrieval_k_is_bounded(fact_suite, fake_openai, task_queue):
    greedy = Strategy.objects.create(name="rag", version=2, kind="rag", params={"k": 500})
    endpoint = EndpointFactory(name="reader", base_url=fake_openai.base_url)
    run = run_create(suite_version=fact_suite, arms=[(endpoint, greedy)], use_cache=False)
    task_queue.drain()

    run.refresh_from_db()
    assert run.status == "failed" and "k must be between 1 and 50 passages; got 500" in run.error


def test_an_optimised_strategy_without_examples_fails_the_run_with_the_reason(
    fact_suite, fake_openai, task_queue
):
    broken = Strategy.objects.create(name="few-shot-optimized-x", kind="few-shot-optimized", params={"k": 2})
    endpoint = EndpointFactory(name="reader", base_url=fake_openai.base_url)
    run = run_create(suite_version=fact_suite, arms=[(endpoint, broken)], use_cache=False)
    task_queue.drain()

    run.refresh_from_db()
    assert run.status == "failed"
    assert "its params hold no `examples` list; make it with `optimize_fewshot`" in run.error
    assert fake_openai.requests == []


def test_live_summaries_carry_the_retrieval_metrics_with_partial_gold(fact_suite, fake_openai, task_queue):
    case = fact_suite.cases.get(key="t-river")
    case.metadata = {}
    case.save()
    fake_openai.responder = fact_model
    endpoint = EndpointFactory(name="reader", base_url=fake_openai.base_url)
    run = run_create(suite_version=fact_suite, arms=[(endpoint, strategy("rag"))], use_cache=False)
    task_queue.drain()

    (metrics,) = [s["retrieval"] for s in arm_summaries(run).values()]
    assert metrics["cases"] == 10 and metrics["cases_with_gold"] == 9


# --- the pure parts ----------------------------------------------------------------------------


def test_chunking_keeps_paragraphs_and_overlaps_long_ones() -> None:
    assert retrieval.chunk_text("") == []
    assert retrieval.chunk_text("one two\n\nthree", max_words=3, overlap=1) == ["one two three"]
    assert retrieval.chunk_text("a b\n\nc d", max_words=3, overlap=1) == ["a b", "c d"]
    words = " ".join(f"w{i}" for i in range(10))
    assert retrieval.chunk_text(words, max_words=4, overlap=1) == [
        "w0 w1 w2 w3",
        "w3 w4 w5 w6",
        "w6 w7 w8 w9",
    ]
    with pytest.raises(ValueError):
        retrieval.chunk_text("x", max_words=3, overlap=3)


def test_fusion_lets_either_signal_lift_a_chunk() -> None:
    texts = [
        "refunds take fourteen days",
        "parcels ship from the warehouse",
        "opening hours are nine to five",
    ]
    vectors = np.eye(3)
    index = retrieval.Index(texts, vectors)
    # The words point at chunk 0 and the embedding at chunk 2: both outrank chunk 1.
    hits = index.search("refunds", [0, 0, 1], 3)
    assert {hits[0].index, hits[1].index} == {0, 2} and hits[2].index == 1
    assert hits[0].index == 0  # in both rankings' top: BM25 first, embedding second
    # No word in common: the embedding alone ranks.
    assert [h.index for h in index.search("zzz", [0, 1, 0], 2)] == [1, 0]
    assert retrieval.Index([], np.zeros((0, 3))).search("x", [1, 0, 0], 3) == []


def test_recall_and_reciprocal_rank() -> None:
    assert retrieval.recall_at_k(["a", "b", "a"], ["a", "c"]) == 0.5
    assert retrieval.reciprocal_rank(["b", "b", "a"], ["a"]) == 0.5  # documents, not chunks, are ranked
    assert retrieval.reciprocal_rank(["b"], ["a"]) == 0.0
    assert retrieval.gold_docs({"gold_docs": "a.md"}) == ["a.md"]
    assert retrieval.gold_docs({"gold_docs": 3}) == [] and retrieval.gold_docs(None) == []
    metrics = retrieval.retrieval_metrics([(["a"], ["a"]), (["b", "a"], ["a"]), (["b"], [])], k=2)
    assert metrics == {
        "k": 2,
        "cases": 3,
        "cases_with_gold": 2,
        "recall_at_k": 1.0,
        "mrr": 0.75,
        "hit_rate": 1.0,
    }
    assert retrieval.retrieval_metrics([(["b"], [])], k=2)["recall_at_k"] is None


def test_rag_renders_the_passages_in_the_system_message() -> None:
    ctx = strategies.RenderContext(
        task_type="classification", labels=("a", "b"), passages=(strategies.Passage("d1", "fact one"),)
    )
    messages = strategies.render("rag", "q", ctx)
    assert messages[-1] == {"role": "user", "content": "q"}
    assert messages[0]["role"] == "system"
    assert messages[0]["content"].startswith("Answer with exactly one of these labels: a, b.")
    assert "[d1] fact one" in messages[0]["content"]
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "q"}]
    merged = strategies.render("rag", chat, ctx)
    assert [m["role"] for m in merged] == ["system", "user"]  # one system message, first
    assert merged[0]["content"].startswith("Be brief.\n\nAnswer with exactly one of these labels")
    empty = strategies.render("rag", "q", strategies.RenderContext())
    assert "(no passage was found)" in empty[0]["content"]
    assert strategies.ladder_rank("cot") < strategies.ladder_rank("rag") < strategies.ladder_rank("plain")


def test_text_without_spaces_is_cut_by_characters_and_counted_in_character_pairs() -> None:
    chunks = retrieval.chunk_text("退款政策说明。" * 2000)
    assert len(chunks) > 10 and max(len(c) for c in chunks) == retrieval.CHUNK_CHARS
    # consecutive windows overlap by a fifth, so a sentence cut at one boundary is whole in the next
    assert chunks[0][-retrieval.CHUNK_CHARS // 5 :] == chunks[1][: retrieval.CHUNK_CHARS // 5]
    assert retrieval.tokens("退款政策 Refund") == ["退款", "款政", "政策", "refund"]
    index = retrieval.Index(["运费说明：订单满五十元免运费。", "退款政策：收货后十四天内可退款。"], np.eye(2))
    assert index.search("怎么退款", [0.5, 0.5], 1)[0].index == 1  # the shared pair 退款 decides


def test_the_run_page_shows_each_retrieval_arms_recall_and_mrr(
    fact_suite, fake_openai, task_queue, admin_client
):
    fake_openai.responder = fact_model
    endpoint = EndpointFactory(name="reader", base_url=fake_openai.base_url)
    run = run_create(
        suite_version=fact_suite,
        arms=[(endpoint, strategy("zero-shot")), (endpoint, strategy("rag"))],
        use_cache=False,
    )
    task_queue.drain()

    html = admin_client.get(f"/runs/{run.pk}/").content.decode()
    assert "<h3>Retrieval" in html
    row = html.split("<h3>Retrieval")[1].split("</table>")[0]
    assert "reader · rag" in row and "reader · zero-shot" not in row
    assert "10 of 10" in row and row.count("1.000") == 3  # recall@3, MRR and hit rate
    results = admin_client.get(f"/runs/{run.pk}/results/").content.decode()
    assert "retrieved: <code" in results and "apple.md#0" in results
