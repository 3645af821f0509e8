from __future__ import annotations

import collections
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evaluations.demo_data.tickets import LABELS, generate
from evaluations.services.suites import suite_import

ROOT = Path(__file__).resolve().parents[1]


def jsonl_bytes(cases: list[dict]) -> bytes:
    return "".join(json.dumps(case) + "\n" for case in cases).encode("utf-8")


def test_the_labels_are_the_five_queues():
    assert LABELS == ("billing", "technical", "logistics", "access", "refunds")


def test_the_same_arguments_give_the_same_cases_and_another_seed_differs():
    assert generate() == generate()
    assert generate(seed=7) == generate()
    assert generate(seed=8) != generate(seed=7)
    assert [c["input"] for c in generate(seed=8)] != [c["input"] for c in generate(seed=7)]


def test_the_output_does_not_depend_on_the_process_or_its_hash_seed():
    script = (
        "import json; from evaluations.demo_data.tickets import generate; "
        "print(json.dumps(generate(seed=11, train=40, test=20)))"
    )
    outputs = [
        subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            check=True,
            text=True,
        ).stdout
        for hash_seed in ("1", "2")
    ]
    assert outputs[0] == outputs[1]
    assert json.loads(outputs[0]) == generate(seed=11, train=40, test=20)


def test_default_sizes_and_splits_with_train_first_and_sequential_ids():
    cases = generate()
    assert len(cases) == 400
    assert [c["split"] for c in cases] == ["train"] * 300 + ["test"] * 100
    assert [c["id"] for c in cases] == [f"t-{i:04d}" for i in range(1, 401)]
    assert {tuple(sorted(c)) for c in cases} == {("expected", "id", "input", "metadata", "split", "tags")}


@pytest.mark.parametrize(("seed", "train", "test"), [(7, 300, 100), (3, 123, 47), (99, 10, 7)])
def test_labels_are_balanced_within_each_split(seed, train, test):
    cases = generate(seed=seed, train=train, test=test)
    for split, size in (("train", train), ("test", test)):
        counts = collections.Counter(c["expected"] for c in cases if c["split"] == split)
        assert sum(counts.values()) == size
        assert set(counts) <= set(LABELS)
        per_label = [counts.get(label, 0) for label in LABELS]
        assert max(per_label) - min(per_label) <= 2, (split, counts)
        assert all(abs(n - size / len(LABELS)) <= 2 for n in per_label), (split, counts)


def test_every_expected_output_is_a_label_and_both_kinds_of_ticket_occur():
    cases = generate()
    assert all(c["expected"] in LABELS for c in cases)
    tags = collections.Counter(tag for c in cases for tag in c["tags"])
    assert set(tags) == {"plain", "ambiguous"}
    assert tags["ambiguous"] >= 60  # the hard tickets are a real part of the suite, in both splits
    assert {c["split"] for c in cases if "ambiguous" in c["tags"]} == {"train", "test"}


@pytest.mark.parametrize("seed", [7, 1, 2024])
def test_no_input_repeats_not_even_across_splits(seed):
    cases = generate(seed=seed)
    inputs = [c["input"] for c in cases]
    assert len(set(inputs)) == len(inputs)
    lowered = [" ".join(text.lower().split()) for text in inputs]
    assert len(set(lowered)) == len(lowered)


def test_inputs_are_short_non_empty_messages():
    for case in generate():
        text = case["input"]
        assert isinstance(text, str) and text.strip() == text and text
        assert 4 <= len(text.split()) < 60, text
        assert "{" not in text and "}" not in text, text


@pytest.mark.django_db
def test_the_cases_import_as_a_classification_suite():
    cases = generate()
    version = suite_import(
        name="demo-tickets",
        fileobj=io.BytesIO(jsonl_bytes(cases)),
        filename="tickets.jsonl",
        task_type="classification",
    )
    assert version.task_type == "classification"
    assert version.labels == sorted(LABELS)  # the importer sorts the labels it finds
    assert version.cases.filter(split="train").count() == 300
    assert version.cases.filter(split="test").count() == 100
    first = version.cases.get(key="t-0001")
    assert (first.input, first.expected, first.split, first.tags) == (
        cases[0]["input"],
        cases[0]["expected"],
        "train",
        cases[0]["tags"],
    )
    assert first.metadata == {"gold_docs": [cases[0]["expected"]]}
