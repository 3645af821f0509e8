"""Synthetic examples, the pure half: the prompt, reading the model's answer, the near-duplicate filter."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evaluations.analysis import synthetic as s
from evaluations.scoring.embeddings import HashingEmbedder

SEEDS = [s.Pair("my invoice is wrong", "billing"), s.Pair("the app crashes", "technical")]


def test_the_prompt_shows_the_seeds_as_json_lines_and_asks_for_n_pairs():
    messages = s.render_prompt(SEEDS, 7, task_type="classification", labels=("billing", "technical"))
    assert messages[0] == {"role": "system", "content": s.DEFAULT_SYSTEM}
    user = messages[1]["content"]
    assert json.dumps({"input": "my invoice is wrong", "expected": "billing"}) in user
    assert "Write 7 new examples" in user
    assert "one of these labels: billing, technical" in user
    assert "set " not in user  # one call: no set number


def test_each_call_of_several_rotates_the_seeds_and_names_its_set():
    first = s.render_prompt(SEEDS, 10, batch=0, batches=3)[1]["content"]
    second = s.render_prompt(SEEDS, 10, batch=1, batches=3)[1]["content"]
    assert first.index("my invoice") < first.index("the app crashes")
    assert second.index("the app crashes") < second.index("my invoice")
    assert "This is set 2 of 3" in second


def test_an_edited_instruction_with_an_unknown_placeholder_is_refused():
    with pytest.raises(ValueError, match="placeholders"):
        s.render_prompt(SEEDS, 3, {"instruction": "Write {count} examples"})
    custom = s.render_prompt(
        SEEDS, 3, {"instruction": "Give {n} more like:\n{examples}", "system": "Be brief."}
    )
    assert custom == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Give 3 more like:\n" + "\n".join(
            json.dumps({"input": p.input, "expected": p.expected}) for p in SEEDS)},
    ]  # fmt: skip


def test_per_call_and_the_calls_planned():
    assert s.per_call({}) == 10
    assert s.per_call({"per_call": 20}) == 20
    for bad in (0, 21, "5", True):
        with pytest.raises(ValueError, match="per_call"):
            s.per_call({"per_call": bad})
    assert s.plan_calls(25, 10) == [10, 10, 5]
    assert s.plan_calls(3, 10) == [3]


def test_the_answer_is_read_robustly_and_what_cannot_be_read_is_counted():
    answer = "\n".join([
        "Sure! Here are the examples:",
        "```json",
        '{"input": "a", "expected": "x"}',
        '1. {"input": "b", "expected": ["y", "z"]},',
        '- {"Input": "c", "output": 3}',
        '{"input": "", "expected": "x"}',  # empty input
        '{"input": "d"}',  # no expected
        '{"input": "e", "expected": "x"',  # cut off
        '{"input": [{"role": "user", "content": "f"}], "expected": "w"}',
        "```",
    ])  # fmt: skip
    pairs, bad = s.parse_pairs(answer)
    assert pairs == [
        s.Pair("a", "x"), s.Pair("b", ["y", "z"]), s.Pair("c", "3"),
        s.Pair([{"role": "user", "content": "f"}], "w"),
    ]  # fmt: skip
    assert bad == 3
    assert s.parse_pairs('[{"input": "a", "expected": "x"}, {"nope": 1}]') == ([s.Pair("a", "x")], 1)
    assert s.parse_pairs("") == ([], 0)
    assert s.parse_pairs("I cannot help with that.") == ([], 0)


def ref(label: str, text: str, is_test: bool) -> s.Reference:
    return s.Reference(label=label, normalised=text, is_test=is_test)


def test_near_duplicates_and_test_copies_are_told_apart():
    embed = HashingEmbedder().embed
    references = [
        ref("seed:s1", "my invoice is wrong", False),
        ref("test:t1", "how do i reset my password", True),
    ]
    candidates = [
        "printer fails after the update",  # kept
        "printer fails after the update",  # same text as the kept one
        "my invoice is wrong",  # a seed's text
        "how do i reset my password",  # a test case's text
        "How do I reset my password?",  # a test case, by embedding only (normalised text differs)
        "after the update, printer fails",  # #0's words reordered: a near-duplicate by embedding
        "cannot export my reports",  # kept
    ]
    verdicts = s.filter_near_duplicates(
        candidates, embed(candidates), references, embed([r.normalised for r in references]), 0.92
    )
    assert [(v.kept, v.reason, v.nearest) for v in verdicts] == [
        (True, "", verdicts[0].nearest),
        (False, "duplicate", "#0"),
        (False, "duplicate", "seed:s1"),
        (False, "test-copy", "test:t1"),
        (False, "test-copy", "test:t1"),
        (False, "duplicate", "#0"),
        (True, "", verdicts[6].nearest),
    ]
    assert verdicts[3].similarity == 1.0
    assert verdicts[6].similarity < 0.92


def test_a_lower_threshold_drops_more_and_a_dropped_candidate_is_never_a_reference():
    vectors = np.array([[1, 0], [0.8, 0.6], [0.6, 0.8]], dtype=np.float32)
    texts = ["a", "b", "c"]
    strict = s.filter_near_duplicates(texts, vectors, [], np.zeros((0, 2)), 0.9)
    assert [v.kept for v in strict] == [True, True, False]  # b is 0.8 from a; c is 0.96 from b
    loose = s.filter_near_duplicates(texts, vectors, [], np.zeros((0, 2)), 0.7)
    # b (0.8 from a) is dropped; c is compared with a only (0.6): kept
    assert [v.kept for v in loose] == [True, False, True]
    with pytest.raises(ValueError, match="threshold"):
        s.filter_near_duplicates(texts, vectors, [], np.zeros((0, 2)), 0)
