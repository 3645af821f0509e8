"""Pairwise judging through the real pipeline: a loopback judge endpoint compares a student's answers
with its teacher's (or the baseline's, or a named arm's); the run's pairwise step writes the scores."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from evaluations.analysis.pairwise import win_rate
from evaluations.models import Arm, Endpoint, FineTuneJob, Result, Run, RunStatus
from evaluations.scoring.pairwise import outcome as pw_outcome
from evaluations.selectors.runs import arm_summaries, current_scoring
from evaluations.services.pairwise import PairwiseBusy, pairwise_score_run
from evaluations.services.runs import run_create
from evaluations.services.scorings import run_rescore, save_scores, scoring_apply
from tests.factories import CaseFactory, EndpointFactory, SuiteVersionFactory, strategy

TEACHER = {"type": "pairwise", "against": "teacher"}
_ANSWER = re.compile(r"Answer A:\n(.*?)\n\nAnswer B:\n(.*?)\n\nWhich", re.DOTALL)


def shown(body) -> tuple[str, str]:
    """The two answers the judge was shown, A then B."""
    first, second = _ANSWER.search(body["messages"][-1]["content"]).groups()
    return first, second


@pytest.fixture
def pair_run(db, fake_openai, task_queue, settings):
    """A run of a student and its teacher on `n` cases, each checked by `assertion`, judged by `judge`."""
    settings.FTVP_JUDGE_ENDPOINT = "judge"
    settings.FTVP_BATCH_SIZE = 50

    def make(*, n=10, judge, assertion=TEACHER, teacher_fails=(), with_job=True, version=None, arms=None):
        def respond(body):
            if body["model"] == "judge":
                return judge(body)
            case = body["messages"][-1]["content"]
            if body["model"] == "teacher" and case in {f"q{i}" for i in teacher_fails}:
                raise RuntimeError("the teacher is down")
            return f"{body['model']} answer to {case}"

        fake_openai.responder = respond
        if version is None:
            version = SuiteVersionFactory()
            for i in range(n):
                CaseFactory(
                    version=version, key=f"c{i:03d}", position=i, input=f"q{i}", expected=None,
                    assertions=[assertion],
                )  # fmt: skip
        endpoints = {
            name: Endpoint.objects.filter(name=name).first()
            or EndpointFactory(name=name, model=name, base_url=fake_openai.base_url)
            for name in ("student", "teacher", "judge")
        }
        plain = strategy("plain")
        chosen = arms or ("student", "teacher")
        run = run_create(suite_version=version, arms=[(endpoints[name], plain) for name in chosen])
        if with_job:
            FineTuneJob.objects.create(
                suite_version=version, base_endpoint=endpoints["student"], run=run,
                teacher_endpoint=endpoints["teacher"], teacher_strategy=plain,
            )  # fmt: skip
        task_queue.drain()
        run.refresh_from_db()
        return run, {a.endpoint.name: a for a in Arm.objects.filter(run=run).select_related("endpoint")}

    return make


def _checks(arm: Arm) -> dict[str, dict]:
    """The pairwise check of each of the arm's results (its failed calls have none), by case key."""
    return {
        r.case.key: next(c for c in r.scores["assertions"] if c["type"] == "pairwise")
        for r in Result.objects.filter(arm=arm, error="").select_related("case")
    }


def _score_again(run: Run, order: str) -> dict[int, dict]:
    """The run's results scored again (pairwise pending), then judged in a fixed or random order."""
    scoring = current_scoring(run.pk)
    results = list(Result.objects.filter(arm__run=run).select_related("case"))
    scoring_apply(scoring=scoring, results=results)
    save_scores(results)
    pairwise_score_run(scoring=scoring, order=order)
    return arm_summaries(run)


def test_a_judge_that_always_prefers_the_first_answer_ties_with_randomised_order(pair_run, fake_openai):
    run, arms = pair_run(n=200, judge=lambda body: "A")
    assert run.status == RunStatus.SUCCEEDED
    checks = _checks(arms["student"])
    assert len(checks) == 200
    for check in checks.values():  # every pair's order and the judge's verdict are recorded
        details = check["pairwise"]
        assert details["raw"] == "A" and details["choice"] == "A" and details["order"] == "random"
        assert re.fullmatch(r"[0-9a-f]{16}", details["seed"])
        assert details["outcome"] == ("win" if details["shown_first"] == "scored" else "loss")
        assert check["score"] == (1.0 if details["shown_first"] == "scored" else 0.0)
    shown_first = sum(c["pairwise"]["shown_first"] == "scored" for c in checks.values())
    assert 0.38 <= shown_first / 200 <= 0.62  # a fair seeded coin (the pure test pins 0.4..0.6 exactly)
    summary = Arm.objects.get(pk=arms["student"].pk).summary["pairwise"]["teacher"]
    assert summary["rate"] == pytest.approx(shown_first / 200)
    assert 0.38 <= summary["rate"] <= 0.62 and summary["n"] == 200
    assert summary["ci"][0] < summary["rate"] < summary["ci"][1]
    assert summary["verdict"] == win_rate([c["score"] for c in checks.values()])["verdict"]
    assert summary["reference"].startswith("the teacher teacher:plain")
    assert len([r for r in fake_openai.requests if r["model"] == "judge"]) == 200  # the teacher's: none

    # The same judge with the order fixed: its position bias passes for a clear win (or loss).
    fixed = _score_again(run, "scored-first")[arms["student"].pk]["pairwise"]["teacher"]
    assert (fixed["rate"], fixed["verdict"]) == (1.0, "wins")
    fixed = _score_again(run, "reference-first")[arms["student"].pk]["pairwise"]["teacher"]
    assert (fixed["rate"], fixed["verdict"]) == (0.0, "loses")


def test_the_judge_sees_both_answers_and_the_scored_arm_gets_win_tie_or_loss(pair_run, fake_openai):
    def judge(body):  # prefers the student on even cases, ties on 2, prefers the teacher otherwise
        first, _second = shown(body)
        i = int(re.search(r"q(\d+)", first).group(1))
        if i == 2:
            return "TIE"
        student_letter = "A" if first.startswith("student") else "B"
        other = "B" if student_letter == "A" else "A"
        return f"{student_letter}\nbetter" if i % 2 == 0 else f"Answer {other} is better."

    _run, arms = pair_run(n=8, judge=judge)
    checks = _checks(arms["student"])
    assert {k: c["score"] for k, c in checks.items()} == {
        "c000": 1.0, "c001": 0.0, "c002": 0.5, "c003": 0.0,
        "c004": 1.0, "c005": 0.0, "c006": 1.0, "c007": 0.0,
    }  # fmt: skip
    assert checks["c001"]["reason"].startswith("lost to the teacher") and not checks["c001"]["passed"]
    assert checks["c002"]["passed"]  # a tie reaches the default threshold of 0.5
    results = {r.case.key: r for r in Result.objects.filter(arm=arms["student"]).select_related("case")}
    assert results["c000"].score == 1.0 and results["c000"].passed is True
    assert results["c001"].score == 0.0 and results["c001"].passed is False
    prompt = next(r for r in fake_openai.requests if r["model"] == "judge")["messages"][-1]["content"]
    assert prompt.startswith("Input:\nq") and "A, B or TIE" in prompt


def test_the_reference_arm_is_not_scored_and_missing_references_are_not_applicable(
    pair_run, fake_openai, task_queue
):
    run, arms = pair_run(n=4, judge=lambda body: "A", teacher_fails={1})
    teacher = _checks(arms["teacher"])
    assert sorted(teacher) == ["c000", "c002", "c003"]  # c001's call failed: an error, no assertions
    for check in teacher.values():
        assert check["skipped"] and check["reason"] == "not applicable: this arm is the reference"
    teacher_results = Result.objects.filter(arm=arms["teacher"], error="")
    assert {(r.score, r.passed) for r in teacher_results} == {(None, None)}  # neither 0 nor a pass
    student = _checks(arms["student"])
    assert student["c001"]["skipped"] and "its call failed" in student["c001"]["reason"]
    assert "outcome" not in student["c001"]["pairwise"]
    assert Result.objects.get(arm=arms["student"], case__key="c001").score is None  # not a silent 0.5
    summary = Arm.objects.get(pk=arms["student"].pk).summary["pairwise"]["teacher"]
    assert (summary["n"], summary["not_applicable"]) == (3, 1)
    assert "pairwise" not in Arm.objects.get(pk=arms["teacher"].pk).summary  # nothing to compare with

    # Re-scoring judges again, and a reference output gone since is not applicable either.
    Result.objects.filter(arm=arms["teacher"], case__key="c002").delete()
    before = len([r for r in fake_openai.requests if r["model"] == "judge"])
    run_rescore(run_id=run.pk)
    task_queue.drain()  # rescore_run: every result scored again, then the pairwise step
    student = _checks(arms["student"])
    assert "not generated" in student["c002"]["reason"] and student["c002"]["skipped"]
    details = student["c000"]["pairwise"]
    assert details["outcome"] == pw_outcome(details["choice"], details["shown_first"] == "scored")
    after = len([r for r in fake_openai.requests if r["model"] == "judge"])
    assert after - before == 2  # c000 and c003: c001 and c002 have no reference


def test_a_judge_error_fails_the_check_visibly_and_is_not_a_tie(pair_run):
    def judge(body):
        return "I would rather not say." if "Input:\nq3" in body["messages"][-1]["content"] else "A"

    _run, arms = pair_run(n=4, judge=judge)
    check = _checks(arms["student"])["c003"]
    assert check["passed"] is False and check["score"] == 0.0
    assert check["reason"].startswith("judge failed: no choice of A, B or TIE")
    assert check["pairwise"]["raw"] == "I would rather not say."
    summary = Arm.objects.get(pk=arms["student"].pk).summary["pairwise"]["teacher"]
    assert (summary["n"], summary["errors"]) == (3, 1)


def test_without_a_teacher_the_check_is_not_applicable(pair_run):
    _run, arms = pair_run(n=2, judge=lambda body: "A", with_job=False)
    check = _checks(arms["student"])["c000"]
    assert check["skipped"] and "no fine-tuning job with a teacher" in check["reason"]


def test_an_explicit_arm_is_a_reference_like_the_teacher(pair_run):
    explicit = {"type": "pairwise", "against": "teacher:plain"}
    _run, arms = pair_run(n=3, judge=lambda body: "TIE", assertion=explicit, with_job=False)
    assert {c["score"] for c in _checks(arms["student"]).values()} == {0.5}
    assert all(c["skipped"] for c in _checks(arms["teacher"]).values())
    missing = pairwise_score_run(scoring=None)
    assert missing == 0


def test_baseline_compares_with_the_same_arm_of_the_suites_baseline_run(pair_run):
    assertion = {"type": "pairwise", "against": "baseline", "rubric": "Is it correct?"}
    first, arms = pair_run(
        n=3, judge=lambda body: "TIE", assertion=assertion, arms=("student",), with_job=False
    )
    check = _checks(arms["student"])["c000"]
    assert check["skipped"] and "the suite has no baseline run" in check["reason"]
    suite = first.suite_version.suite
    suite.baseline_run = first
    suite.save(update_fields=["baseline_run"])

    def judge(body):
        assert "Criteria:\nIs it correct?" in body["messages"][-1]["content"]
        return "B" if shown(body)[0] == shown(body)[1] else "A"

    _second, arms2 = pair_run(judge=judge, version=first.suite_version, arms=("student",), with_job=False)
    checks = _checks(arms2["student"])
    baseline_arm = Arm.objects.get(run=first)
    for check in checks.values():
        assert check["pairwise"]["reference_arm"] == baseline_arm.pk
        details = check["pairwise"]
        # B is the second answer shown: a win when the reference was shown first
        assert details["choice"] == "B"
        assert details["outcome"] == ("win" if details["shown_first"] == "reference" else "loss")
    summary = Arm.objects.get(pk=arms2["student"].pk).summary["pairwise"]["baseline"]
    assert summary["n"] == 3 and summary["reference"].startswith(f"the baseline (run #{first.pk}")
    # The baseline run itself, scored again now that it is the baseline: it is its own reference.
    _score_again(first, "random")
    assert (
        _checks(Arm.objects.get(run=first))["c000"]["reason"] == "not applicable: this arm is the reference"
    )


def test_the_compare_and_run_pages_show_the_win_rate_with_its_ci_and_verdict(pair_run, auth_client):
    def judge(body):  # the student wins every case
        return "A" if shown(body)[0].startswith("student") else "B"

    run, arms = pair_run(n=12, judge=judge)
    url = reverse("evaluations:compare")
    page = auth_client.get(url, {"arm": [arms["teacher"].pk, arms["student"].pk]}).content.decode()
    assert "Pairwise judging" in page
    summary = Arm.objects.get(pk=arms["student"].pk).summary["pairwise"]["teacher"]
    assert summary["rate"] == 1.0 and summary["verdict"] == "wins"
    assert f"1.000 ({summary['ci'][0]:.3f} – 1.000)" in page
    assert 'class="verdict pairwise-wins">wins<' in page and "12 / 0 / 0" in page
    run_page = auth_client.get(reverse("evaluations:run-detail", args=[run.pk])).content.decode()
    assert "Pairwise judging" in run_page and ">wins<" in run_page


def test_the_compare_page_says_parity_when_the_ci_contains_one_half(pair_run, auth_client):
    def judge(body):  # the student wins even cases and loses odd ones: a win rate of exactly 0.5
        first, _second = shown(body)
        i = int(re.search(r"q(\d+)", first).group(1))
        student = "A" if first.startswith("student") else "B"
        return student if i % 2 == 0 else ("B" if student == "A" else "A")

    _run, arms = pair_run(n=10, judge=judge)
    page = auth_client.get(reverse("evaluations:compare"), {"arm": [arms["teacher"].pk, arms["student"].pk]})
    html = page.content.decode()
    assert 'class="verdict pairwise-parity">parity<' in html and "0.500 (" in html


def test_the_pairwise_step_is_idempotent_and_resumes_where_it_stopped(pair_run, fake_openai, monkeypatch):
    from evaluations.services import pairwise

    run, arms = pair_run(n=6, judge=lambda body: "A")
    scoring = current_scoring(run.pk)
    assert pairwise_score_run(scoring=scoring) == 0  # nothing pending: a duplicate finalize does nothing
    judged = _checks(arms["student"])
    results = list(Result.objects.filter(arm__run=run).select_related("case"))
    scoring_apply(scoring=scoring, results=results)  # pending again, as a re-score leaves them
    save_scores(results)
    real = pairwise._judge_chunk
    calls = []

    def dies_on_the_second_chunk(*args):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("worker killed")
        return real(*args)

    monkeypatch.setattr(pairwise, "_judge_chunk", dies_on_the_second_chunk)
    with pytest.raises(RuntimeError):
        pairwise_score_run(scoring=scoring, chunk=4)  # 12 results: the first 4 saved, then it dies
    monkeypatch.setattr(pairwise, "_judge_chunk", real)
    before = len([r for r in fake_openai.requests if r["model"] == "judge"])
    pairwise_score_run(scoring=scoring, chunk=4)
    asked = len([r for r in fake_openai.requests if r["model"] == "judge"]) - before
    assert asked == 2  # the 4 student results judged before the crash are not asked again
    assert not Result.objects.filter(arm__run=run, scores__pairwise_pending=True).exists()
    assert _checks(arms["student"]) == judged  # the same order and verdicts as the first time


def test_without_a_judge_endpoint_pairwise_is_kept_and_reported_skipped(pair_run, settings, fake_openai):
    settings.FTVP_JUDGE_ENDPOINT = ""
    run, arms = pair_run(n=2, judge=lambda body: "A")
    assert run.status == RunStatus.SUCCEEDED
    check = _checks(arms["student"])["c000"]
    assert check["skipped"] and "no judge endpoint is configured" in check["reason"]
    assert Result.objects.get(arm=arms["student"], case__key="c000").score is None
    assert not [r for r in fake_openai.requests if r["model"] == "judge"]


def test_one_judging_step_at_a_time_and_a_finalize_sent_again_waits_for_it(pair_run, fake_openai, settings):
    from datetime import timedelta

    from django.utils import timezone

    from evaluations.models import Scoring
    from evaluations.services.runs import run_finalize

    run, arms = pair_run(n=3, judge=lambda body: "TIE")
    scoring = current_scoring(run.pk)
    results = list(Result.objects.filter(arm__run=run).select_related("case"))
    scoring_apply(scoring=scoring, results=results)
    save_scores(results)  # pending again
    Scoring.objects.filter(pk=scoring.pk).update(heartbeat_at=timezone.now())  # another worker judges
    asked = len(fake_openai.requests)
    with pytest.raises(PairwiseBusy):
        pairwise_score_run(scoring=scoring)
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, finished_at=None)
    assert run_finalize(run_id=run.pk) is False  # the holder finalizes when it is done
    assert len(fake_openai.requests) == asked and Run.objects.get(pk=run.pk).status == RunStatus.RUNNING
    # Its lease gone stale (the worker died), the next finalize judges and finishes the run.
    Scoring.objects.filter(pk=scoring.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert run_finalize(run_id=run.pk) is True
    assert Run.objects.get(pk=run.pk).status == RunStatus.SUCCEEDED
    assert Scoring.objects.get(pk=scoring.pk).heartbeat_at is None
    assert {c["score"] for c in _checks(arms["student"]).values()} == {0.5}


def test_a_judge_that_cannot_start_fails_each_check_and_the_run_still_finishes(pair_run, monkeypatch):
    def broken(endpoint):
        raise RuntimeError("the judge's package is not installed")

    monkeypatch.setattr("evaluations.services.pairwise.endpoint_provider", broken)
    run, arms = pair_run(n=2, judge=lambda body: "A")
    assert run.status == RunStatus.SUCCEEDED
    for check in _checks(arms["student"]).values():
        assert (
            check["passed"] is False
            and check["reason"] == "judge failed: the judge's package is not installed"
        )
