"""Reviewed outputs as OpenAI chat fine-tuning JSONL, and their round trip through the suite importer."""

from __future__ import annotations

import io
import json

import pytest
from django.urls import reverse

from evaluations import exports
from evaluations.models import Case, Result, Run, Split, Strategy
from evaluations.services.reviews import review_save
from evaluations.services.suites import suite_import
from evaluations.strategies import DEFAULT_SYSTEM_PROMPT
from tests.factories import CaseFactory, EndpointFactory, SuiteVersionFactory, UserFactory
from tests.runs import ArmSpec, finished_run

pytestmark = pytest.mark.django_db

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of Peru?"}]


@pytest.fixture
def run() -> Run:
    version = SuiteVersionFactory(suite__name="Reviewed export")
    for i in range(6):
        CaseFactory(version=version, key=f"c{i}", position=i, input=CHAT if i == 1 else f"question {i}")
    Strategy.objects.create(
        name="fr-system", version=1, kind="system", params={"system_prompt": "Answer in French."}
    )
    a, b = EndpointFactory(name="ep-a"), EndpointFactory(name="ep-b")
    return finished_run(
        version, [ArmSpec(a, "fr-system", [1.0, 0.0, 0.0, 1.0, 0.0, 1.0]), ArmSpec(b, "zero-shot", [1.0] * 6)]
    )


@pytest.fixture
def reviewed(run, user) -> list:
    """Reviews of arm A (and one of arm B); returns what the export must hold: (input, answer) in
    case, then arm order."""
    bob = UserFactory(username="bob", roles=["reviewer"])
    arm_a, arm_b = run.arms.order_by("position")
    r = {
        (res.arm_id, res.case.key): res for res in Result.objects.filter(arm__run=run).select_related("case")
    }
    review_save(result=r[arm_a.pk, "c0"], reviewer=user, verdict="correct")
    review_save(result=r[arm_a.pk, "c1"], reviewer=user, verdict="corrected", corrected_output="Lima.")
    review_save(result=r[arm_a.pk, "c2"], reviewer=user, verdict="incorrect")
    review_save(result=r[arm_a.pk, "c3"], reviewer=user, verdict="comment", comment="not sure")
    review_save(result=r[arm_a.pk, "c4"], reviewer=user, verdict="incorrect")
    review_save(result=r[arm_a.pk, "c4"], reviewer=bob, verdict="correct")  # later: it counts
    review_save(result=r[arm_a.pk, "c5"], reviewer=user, verdict="correct")
    review_save(result=r[arm_a.pk, "c5"], reviewer=bob, verdict="incorrect")  # later: it counts
    review_save(result=r[arm_a.pk, "c3"], reviewer=bob, verdict="comment", comment="a comment is no verdict")
    review_save(result=r[arm_b.pk, "c2"], reviewer=bob, verdict="corrected", corrected_output="B's answer")
    return [("question 0", "out 0"), (CHAT, "Lima."), ("question 2", "B's answer"), ("question 4", "out 4")]


def download(client, run, **params) -> str:
    response = client.get(reverse("evaluations:run-export-reviewed", args=[run.pk]), params)
    assert response.status_code == 200, response
    assert response["Content-Type"].startswith("application/jsonl")
    return b"".join(response.streaming_content).decode()


@pytest.fixture
def viewer_client(client):
    client.force_login(UserFactory(username="vic", roles=["viewer"]))
    return client


def as_messages(case_input) -> list[dict]:
    return case_input if isinstance(case_input, list) else [{"role": "user", "content": case_input}]


def test_the_exported_jsonl_imports_back_as_the_reviewed_correct_and_corrected_cases(
    viewer_client, run, reviewed
):
    body = download(viewer_client, run, system="0")

    version = suite_import(name="from reviews", fileobj=io.BytesIO(body.encode()), filename="reviewed.jsonl")

    cases = list(Case.objects.filter(version=version).order_by("position"))
    assert len(cases) == len(reviewed) == 4
    assert [(c.input, c.expected) for c in cases] == [(as_messages(i), answer) for i, answer in reviewed]
    assert {c.split for c in cases} == {Split.TEST}
    # incorrect (c2 of arm A, c5's latest) and comment-only (c3) reviews are left out
    assert "out 2" not in body and "question 3" not in body and "question 5" not in body


def test_the_export_is_in_case_then_arm_order(viewer_client, run, reviewed):
    lines = [json.loads(line) for line in download(viewer_client, run).splitlines()]

    assert [line["messages"][-1]["content"] for line in lines] == [answer for _, answer in reviewed]
    assert all(line["messages"][-1]["role"] == "assistant" for line in lines)


def test_with_the_system_prompt_the_strategys_comes_first_and_replaces_the_inputs_own(
    viewer_client, run, reviewed
):
    arm_a, arm_b = run.arms.order_by("position")

    a_lines = [json.loads(x) for x in download(viewer_client, run, system="1", arm=arm_a.pk).splitlines()]
    b_lines = [json.loads(x) for x in download(viewer_client, run, system="1", arm=arm_b.pk).splitlines()]

    assert [x["messages"] for x in a_lines] == [
        [
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": "question 0"},
            {"role": "assistant", "content": "out 0"},
        ],
        [
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": "Capital of Peru?"},
            {"role": "assistant", "content": "Lima."},
        ],
        [
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": "question 4"},
            {"role": "assistant", "content": "out 4"},
        ],
    ]
    # zero-shot has no system prompt: it adds none.
    assert [x["messages"] for x in b_lines] == [
        [{"role": "user", "content": "question 2"}, {"role": "assistant", "content": "B's answer"}]
    ]
    imported = suite_import(
        name="with system", fileobj=io.BytesIO("".join(json.dumps(x) + "\n" for x in a_lines).encode()),
        filename="a.jsonl",
    )  # fmt: skip
    assert [c.input[0] for c in Case.objects.filter(version=imported)] == [
        {"role": "system", "content": "Answer in French."}
    ] * 3


def test_an_unknown_arm_is_not_found_and_the_filename_names_the_run(viewer_client, run, reviewed):
    url = reverse("evaluations:run-export-reviewed", args=[run.pk])

    assert viewer_client.get(url, {"arm": "999999"}).status_code == 404
    response = viewer_client.get(url, {"system": "1"})
    stem = f"Reviewed-export-v{run.suite_version.number}-run{run.pk}"
    assert response["Content-Disposition"] == f'attachment; filename="{stem}-system-reviewed.jsonl"'


def test_a_run_without_reviews_exports_nothing(viewer_client, run):
    assert download(viewer_client, run) == ""


def test_the_export_streams_with_a_bounded_number_of_queries(
    viewer_client, run, reviewed, django_assert_max_num_queries
):
    with django_assert_max_num_queries(6):
        lines = list(exports.finetune_lines(exports.reviewed_pairs(run, system=True)))

    assert len(lines) == 4


def test_the_system_prompt_of_each_strategy_kind():
    assert exports.strategy_system_prompt("system", {}) == DEFAULT_SYSTEM_PROMPT
    assert exports.strategy_system_prompt("system", {"system_prompt": "Be terse."}) == "Be terse."
    assert (
        exports.strategy_system_prompt("system", {}, task_type="classification", labels=["yes", "no"])
        == f"{DEFAULT_SYSTEM_PROMPT} Answer with exactly one of these labels: yes, no."
    )
    assert exports.strategy_system_prompt("zero-shot", {}) is None
    assert exports.strategy_system_prompt("few-shot", {"k": 3}) is None
    assert exports.strategy_system_prompt("template", {"system_prompt": "Custom."}) == "Custom."
