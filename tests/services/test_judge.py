from __future__ import annotations

import json

import pytest

from evaluations.models import Result
from evaluations.services.judge import parse_verdict
from evaluations.services.runs import run_create
from tests.factories import CaseFactory, EndpointFactory, SuiteVersionFactory, strategy


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ('{"score": 0.8, "reason": "ok"}', 0.8),
        ('Sure! {"score": 1, "reason": "x"} done', 1.0),
        ("0.25", 0.25),
    ],
)
def test_it_reads_the_judges_score(reply, score):
    assert parse_verdict(reply)[0] == score


def test_a_reply_without_a_score_is_an_error():
    with pytest.raises(ValueError, match="no score"):
        parse_verdict("I cannot grade this.")


def test_llm_rubric_assertions_are_graded_by_the_judge_endpoint(db, fake_openai, task_queue, settings):
    def respond(body):
        if body["model"] == "judge":
            graded = body["messages"][-1]["content"]
            good = "Answer to grade:\nPolite reply" in graded
            return json.dumps({"score": 0.9 if good else 0.1, "reason": "polite" if good else "rude"})
        return "Polite reply" if "q0" in body["messages"][-1]["content"] else "Go away"

    fake_openai.responder = respond
    EndpointFactory(name="judge", model="judge", base_url=fake_openai.base_url)
    settings.FTVP_JUDGE_ENDPOINT = "judge"
    version = SuiteVersionFactory()
    for i in range(2):
        CaseFactory(version=version, key=f"c{i}", position=i, input=f"q{i}", expected=None,
                    assertions=[{"type": "llm-rubric", "value": "Is the reply polite?"}])  # fmt: skip
    endpoint = EndpointFactory(name="model", model="model", base_url=fake_openai.base_url)
    run_create(suite_version=version, arms=[(endpoint, strategy("plain"))])
    task_queue.drain()
    verdicts = dict(Result.objects.values_list("case__key", "passed"))
    assert verdicts == {"c0": True, "c1": False}
    reasons = {r.case.key: r.scores["reason"] for r in Result.objects.select_related("case")}
    assert reasons["c0"] == "judge 0.90: polite"
    judge_calls = [r for r in fake_openai.requests if r["model"] == "judge"]
    assert len(judge_calls) == 2


def test_without_a_judge_endpoint_llm_rubric_is_kept_and_reported_skipped(
    db, fake_openai, task_queue, settings
):
    settings.FTVP_JUDGE_ENDPOINT = ""
    version = SuiteVersionFactory()
    CaseFactory(version=version, expected=None, assertions=[{"type": "llm-rubric", "value": "polite?"}])
    run_create(
        suite_version=version, arms=[(EndpointFactory(base_url=fake_openai.base_url), strategy("plain"))]
    )
    task_queue.drain()
    result = Result.objects.get()
    assert result.passed is None and result.score is None  # neither a pass nor a failure
    assert "every assertion was skipped" in result.scores["reason"]
    (check,) = result.scores["assertions"]
    assert check["skipped"] is True and "no judge endpoint is configured" in check["reason"]
