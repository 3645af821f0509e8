"""Reviewed outputs as OpenAI chat fine-tuning JSONL, and their round trip through the suite importer."""

from __future__ import annotations

import io
import json

import pytest
from django.urls import reverse

from evaluations import strategies
from evaluations.models import Case, Result, Run, Split, Strategy
from evaluations.selectors import exports
from evaluations.services.reviews import review_save
from evaluations.services.runs import run_create
from evaluations.services.suites import suite_import
from evaluations.strategies import DEFAULT_SYSTEM_PROMPT
from tests.factories import CaseFactory, EndpointFactory, SuiteVersionFactory, UserFactory, strategy
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
    run = finished_run(
        version, [ArmSpec(a, "fr-system", [1.0, 0.0, 0.0, 1.0, 0.0, 1.0]), ArmSpec(b, "zero-shot", [1.0] * 6)]
    )
    store_prompts_as_sent(run)
    return run


def store_prompts_as_sent(run: Run) -> None:
    """Each result's stored prompt as the runner writes it: what strategies.render sent."""
    version = run.suite_version
    for result in Result.objects.filter(arm__run=run).select_related("case", "arm__strategy"):
        ctx = strategies.RenderContext(
            task_type=version.task_type, labels=tuple(version.labels), params=result.arm.strategy.params
        )
        result.prompt = strategies.render(result.arm.strategy.kind, result.case.input, ctx)
        result.save(update_fields=["prompt"])


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

    other = finished_run(run.suite_version, [ArmSpec(EndpointFactory(name="ep-c"), "plain", [1.0] * 6)])
    for arm in ("999999", "x", str(other.arms.get().pk)):
        assert viewer_client.get(url, {"arm": arm}).status_code == 404, arm
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


def test_the_system_messages_are_those_the_model_was_sent_not_the_strategys_params(
    viewer_client, run, reviewed
):
    arm_a, arm_b = run.arms.order_by("position")
    chat = Result.objects.get(arm=arm_b, case__key="c1")
    review_save(result=chat, reviewer=UserFactory(username="cy"), verdict="correct")
    # arm B's strategy names a system_prompt that zero-shot never sends; its chat input's own was sent.
    Strategy.objects.filter(pk=arm_b.strategy_id).update(params={"system_prompt": "never sent"})
    # what arm A's model was sent for c0, stored with the result, wins over the strategy's params.
    Result.objects.filter(arm=arm_a, case__key="c0").update(
        prompt=[{"role": "system", "content": "Sent then."}, {"role": "user", "content": "question 0"}]
    )

    lines = [json.loads(x)["messages"] for x in download(viewer_client, run, system="1").splitlines()]

    assert [m for m in lines[0] if m["role"] == "system"] == [{"role": "system", "content": "Sent then."}]
    french = {"role": "system", "content": "Answer in French."}
    assert lines[1][0] == french  # arm A (system strategy), c1: it replaced the input's "Be brief."
    assert lines[2] == [  # arm B (zero-shot), c1: the chat input's own system message, as it was sent
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of Peru?"},
        {"role": "assistant", "content": "out 1"},
    ]
    assert "never sent" not in json.dumps(lines)


def test_without_a_stored_prompt_the_system_messages_are_rendered_again(viewer_client, run, reviewed):
    arm_a, _ = run.arms.order_by("position")
    Result.objects.filter(arm__run=run).update(prompt=[])

    lines = [json.loads(x) for x in download(viewer_client, run, system="1", arm=arm_a.pk).splitlines()]

    assert [x["messages"][0] for x in lines] == [{"role": "system", "content": "Answer in French."}] * 3


def test_the_rendered_system_messages_of_each_strategy_kind():
    def rendered(kind, params=None, case_input="q", **kw):
        return exports.rendered_system_messages(kind, params, case_input, **kw)

    assert rendered("system", {}) == [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}]
    assert rendered("system", {"system_prompt": "Be terse."}) == [{"role": "system", "content": "Be terse."}]
    assert rendered("system", {}, CHAT, task_type="classification", labels=["yes", "no"]) == [
        {
            "role": "system",
            "content": f"{DEFAULT_SYSTEM_PROMPT} Answer with exactly one of these labels: yes, no.",
        }
    ]
    assert rendered("zero-shot", {"system_prompt": "never sent"}) == []
    assert rendered("zero-shot", {}, CHAT) == [{"role": "system", "content": "Be brief."}]  # the input's own
    assert rendered("few-shot", {"k": 3}) == []
    assert rendered("few-shot", {"k": 3}, task_type="json") == [
        {"role": "system", "content": "Answer with valid JSON only."}
    ]
    assert rendered("template", {"template": "Q: {{input}}", "system_prompt": "Custom."}) == []
    assert rendered("no-such-kind", {}) == []


def test_the_system_messages_of_a_stored_prompt():
    assert exports.sent_system_messages([]) is None
    assert exports.sent_system_messages([{"role": "user", "content": "q"}]) == []
    assert exports.sent_system_messages(
        [
            {"role": "system", "content": "a"},
            {"role": "user", "content": "q"},
            {"role": "system", "content": "b"},
        ]
    ) == [{"role": "system", "content": "a"}, {"role": "system", "content": "b"}]


# --- a real run: the export's system messages are those the model received ------------------------------


def test_a_real_runs_export_with_system_messages_imports_back_with_what_the_model_saw(
    viewer_client, user, fake_openai, task_queue
):
    version = SuiteVersionFactory(
        suite__name="Real run", suite__task_type="classification", labels=["yes", "no"]
    )
    CaseFactory(version=version, key="c0", position=0, input="Is water wet?", expected="yes")
    CaseFactory(version=version, key="c1", position=1, input=CHAT, expected="no")
    template = Strategy.objects.create(
        name="tpl-sys", version=1, kind="template",
        params={"template": "Q: {{input}}", "system_prompt": "a param render() never sends"},
    )  # fmt: skip
    endpoints = {name: EndpointFactory(name=name, model=name, base_url=fake_openai.base_url)
                 for name in ("m-few", "m-sys", "m-tpl")}  # fmt: skip
    run = run_create(
        suite_version=version,
        arms=[(endpoints["m-few"], strategy("few-shot")), (endpoints["m-sys"], strategy("system")),
              (endpoints["m-tpl"], template)],
    )  # fmt: skip
    task_queue.drain()
    results = list(Result.objects.filter(arm__run=run, error=""))
    assert len(results) == 6
    for result in results:
        review_save(result=result, reviewer=user, verdict="correct")
    seen: dict[tuple[str, str], list[dict]] = {}  # (model, last user message) -> the system messages sent
    for body in fake_openai.requests:
        users = [m["content"] for m in body["messages"] if m["role"] == "user"]
        seen[body["model"], users[-1]] = [m for m in body["messages"] if m["role"] == "system"]

    for arm in run.arms.select_related("endpoint"):
        model = arm.endpoint.model
        body = download(viewer_client, run, system="1", arm=arm.pk)
        imported = suite_import(name=f"back {model}", fileobj=io.BytesIO(body.encode()), filename="r.jsonl")

        cases = list(Case.objects.filter(version=imported).order_by("position"))
        assert len(cases) == 2, model
        sent = {
            user_text: system for (m, user_text), system in seen.items() if m == model
        }  # the prompts the fake server received for this arm, one per case
        assert len(sent) == 2, model
        assert sorted(json.dumps([m for m in c.input if m["role"] == "system"]) for c in cases) == sorted(
            json.dumps(system) for system in sent.values()
        ), model
        if model == "m-tpl":  # template sends no system message: its system_prompt param is not added
            assert all(m["role"] != "system" for c in cases for m in c.input)
        else:  # few-shot's instruction and the system strategy's prompt are there, as sent
            assert all(
                any("Answer with exactly one of these labels: yes, no." in m["content"] for m in c.input
                    if m["role"] == "system")
                for c in cases
            ), model  # fmt: skip
