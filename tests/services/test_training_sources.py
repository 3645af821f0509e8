"""Training sources of a fine-tuning job (issue [data]): a labelling run of a teacher on the train
split through the real pipeline (a loopback teacher), its answers read as training examples (passing
ones or all, reviewers' verdicts winning), reviewed answers, unions, the leakage guard on every
source, and what the job stores and sends."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError

from evaluations.models import AuditEvent, FineTuneJob, Result, Review, SyntheticGeneration
from evaluations.selectors.decisions import decision_runs
from evaluations.selectors.training_data import (
    SourcePart,
    TrainingSourceError,
    parse_source,
    training_set,
)
from evaluations.services.findings import BaselineError, baseline_set
from evaluations.services.finetune import FineTuneError, finetune_create
from evaluations.services.reviews import review_save, reviews_accept_passing
from evaluations.services.runs import RunError, run_create
from tests.distillation import labelling_run, support_suite, teacher_endpoint
from tests.factories import CaseFactory, EndpointFactory, SuiteVersionFactory, UserFactory, strategy


@pytest.fixture
def version(db):
    return support_suite()


@pytest.fixture
def teacher(fake_openai):
    return teacher_endpoint(fake_openai)


@pytest.fixture
def labelling(version, teacher, task_queue):
    return labelling_run(version, teacher, task_queue)


@pytest.fixture
def student(db):
    return EndpointFactory(name="small", provider="local", model="smollm2-135m-instruct", base_url="")


def test_the_grammar_of_sources() -> None:
    assert parse_source("") == [SourcePart("train")]
    assert parse_source(" run:12:3 , reviewed:4,train") == [
        SourcePart("run", run_id=12, arm="3"),
        SourcePart("reviewed", run_id=4),
        SourcePart("train"),
    ]
    assert parse_source("run:12:big-teacher:all")[0].spec == "run:12:big-teacher:all"
    for bad, says in [
        ("runs:1:2", "is not one of: train | run:RUN:ARM"),
        ("run:x:2", "'x' is not a run id"),
        ("run:1:2:some", "the last part is 'all' or 'passing'"),
        ("reviewed:1,reviewed:1", "is listed twice"),
        ("run:1:", "name the arm"),
    ]:
        with pytest.raises(TrainingSourceError, match=says):
            parse_source(bad)


def test_a_labelling_run_answers_the_train_cases_and_is_never_evidence(version, labelling):
    cases = set(Result.objects.filter(arm__run=labelling).values_list("case__key", flat=True))
    assert cases == {f"x{i}" for i in range(10)}
    assert labelling not in decision_runs(version.suite)  # not a decision's run, nor the baseline
    with pytest.raises(BaselineError, match="is a labelling run"):
        baseline_set(suite=version.suite, run=labelling)
    labelling.refresh_from_db()
    assert labelling.analysed_at is not None and not labelling.arms.filter(trend__isnull=False).exists()


def test_a_labelling_run_needs_train_cases(db, teacher):
    empty = SuiteVersionFactory()
    CaseFactory(version=empty, key="t", input="q 1", expected="a")
    with pytest.raises(RunError, match="has no train cases to label"):
        run_create(suite_version=empty, arms=[(teacher, strategy("system"))], split="train")


def test_the_teachers_passing_answers_are_the_targets_with_the_plain_prompt(version, labelling):
    arm = labelling.arms.get()
    data = training_set(version, f"run:{labelling.pk}:{arm.pk}")
    assert [(r.key, r.answer) for r in data.rows] == [(f"x{i}", f"ANSWER {i}") for i in range(0, 10, 2)]
    assert data.rows[0].messages == [{"role": "user", "content": "train question 0"}]  # plain: no system
    assert data.teacher == (arm.endpoint, arm.strategy)
    paid = sum(Result.objects.filter(arm=arm).values_list("cost", flat=True))
    assert paid > 0 and data.data_cost == pytest.approx(paid)
    # All answers, by the endpoint's name
    everything = training_set(version, f"run:{labelling.pk}:big-teacher:all")
    assert len(everything.rows) == 10 and everything.rows[1].answer == "no idea"


def test_reviewers_verdicts_win_over_the_scorer(version, labelling):
    arm = labelling.arms.get()
    reviewer = UserFactory()
    by_key = {r.case.key: r for r in Result.objects.filter(arm=arm).select_related("case", "arm__run")}
    review_save(result=by_key["x0"], reviewer=reviewer, verdict="incorrect")
    review_save(result=by_key["x2"], reviewer=reviewer, verdict="corrected", corrected_output="ANSWER two")
    review_save(result=by_key["x1"], reviewer=reviewer, verdict="correct")  # the scorer failed it
    rows = {r.key: r.answer for r in training_set(version, f"run:{labelling.pk}:{arm.pk}").rows}
    assert rows == {"x1": "no idea", "x2": "ANSWER two", "x4": "ANSWER 4", "x6": "ANSWER 6", "x8": "ANSWER 8"}
    reviewed = {r.key: r.answer for r in training_set(version, f"reviewed:{labelling.pk}").rows}
    assert reviewed == {"x1": "no idea", "x2": "ANSWER two"}


def test_accept_passing_marks_only_unreviewed_passing_answers(version, labelling):
    arm = labelling.arms.get()
    reviewer, other = UserFactory(), UserFactory()
    x0 = Result.objects.select_related("arm__run").get(arm=arm, case__key="x0")
    review_save(result=x0, reviewer=other, verdict="incorrect")
    assert reviews_accept_passing(run=labelling, reviewer=reviewer) == 4  # x2, x4, x6, x8
    assert set(Review.objects.filter(reviewer=reviewer).values_list("result__case__key", "verdict")) == {
        (k, "correct") for k in ("x2", "x4", "x6", "x8")
    }
    assert reviews_accept_passing(run=labelling, reviewer=reviewer) == 0  # nothing left: no second event
    assert AuditEvent.objects.filter(action="review.accept_passing").count() == 1
    rows = training_set(version, f"reviewed:{labelling.pk}").rows
    assert [r.key for r in rows] == ["x2", "x4", "x6", "x8"]


def test_a_union_keeps_each_input_once_the_first_source_winning(version, labelling):
    arm = labelling.arms.get()
    Review.objects.create(
        result=Result.objects.get(arm=arm, case__key="x4"), run=labelling, reviewer=UserFactory(),
        verdict="corrected", corrected_output="ANSWER four",
    )  # fmt: skip
    data = training_set(version, f"run:{labelling.pk}:{arm.pk},reviewed:{labelling.pk}")
    assert [(r.key, r.answer, r.origin) for r in data.rows][:3] == [
        ("x0", "ANSWER 0", f"run:{labelling.pk}:{arm.pk}"),
        ("x2", "ANSWER 2", f"run:{labelling.pk}:{arm.pk}"),
        ("x4", "ANSWER four", f"run:{labelling.pk}:{arm.pk}"),
    ]
    assert len(data.rows) == 5 and data.duplicates == 1
    # The teacher's calls are paid once, however many parts read them.
    paid = sum(Result.objects.filter(arm=arm).values_list("cost", flat=True))
    assert data.data_cost == pytest.approx(paid)
    assert [p["examples"] for p in data.parts] == [5, 1] and [p["kept"] for p in data.parts] == [5, 0]


def test_runs_that_cannot_train_are_refused_with_the_reason(version, teacher, labelling, task_queue):
    evaluation = run_create(suite_version=version, arms=[(teacher, strategy("zero-shot"))])
    task_queue.drain()
    with pytest.raises(TrainingSourceError, match="answered the test split"):
        training_set(version, f"run:{evaluation.pk}:{evaluation.arms.get().pk}")
    with pytest.raises(TrainingSourceError, match="answered the test split"):
        training_set(version, f"reviewed:{evaluation.pk}")
    with pytest.raises(TrainingSourceError, match=r"has no arm 'nobody' \(its arms: "):
        training_set(version, f"run:{labelling.pk}:nobody")
    elsewhere = SuiteVersionFactory()
    with pytest.raises(TrainingSourceError, match="is not a run of suite"):
        training_set(elsewhere, f"reviewed:{labelling.pk}")
    with pytest.raises(TrainingSourceError, match="is not a run of suite"):
        training_set(version, "reviewed:99999")


def test_a_job_from_a_teacher_stores_its_source_cost_and_teacher(version, labelling, student, task_queue):
    arm = labelling.arms.get()
    job = finetune_create(suite_version=version, base_endpoint=student, source=f"run:{labelling.pk}:{arm.pk}")
    assert job.examples == 5 and job.teacher_endpoint == arm.endpoint and job.teacher_strategy == arm.strategy
    assert job.source["spec"] == f"run:{labelling.pk}:{arm.pk}" and job.source["examples"] == 5
    assert job.source["sample"][0] == {
        "key": "x0", "input": "train question 0", "answer": "ANSWER 0", "from": f"run:{labelling.pk}:{arm.pk}"
    }  # fmt: skip
    assert job.data_cost == pytest.approx(sum(Result.objects.filter(arm=arm).values_list("cost", flat=True)))
    event = AuditEvent.objects.get(action="finetune.create")
    assert event.after["source"] == f"run:{labelling.pk}:{arm.pk}"
    # Too few examples: the message says what each part gave and what to do.
    with pytest.raises(FineTuneError, match=r"0 train case\(s\) with an expected output.*its 10 other train"):
        finetune_create(suite_version=version, base_endpoint=student, source="train")
    with pytest.raises(FineTuneError, match=r"gives 0 example\(s\) \(reviewed:\d+: 0\).*at least 4"):
        finetune_create(suite_version=version, base_endpoint=student, source=f"reviewed:{labelling.pk}")
    assert FineTuneJob.objects.count() == 1


def test_the_leakage_guard_covers_a_teachers_answers(version, labelling, student):
    arm = labelling.arms.get()
    # A new version whose test split holds a train question the teacher answered.
    leaky = SuiteVersionFactory(suite=version.suite, number=2)
    CaseFactory(version=leaky, key="t-leak", input="Train  Question 4", expected="x")
    with pytest.raises(FineTuneError, match=r"t-leak \(= train x4\)"):
        finetune_create(suite_version=leaky, base_endpoint=student, source=f"run:{labelling.pk}:{arm.pk}")
    assert not FineTuneJob.objects.exists()


def test_a_hosted_job_uploads_the_teachers_answers(version, labelling, task_queue, monkeypatch):
    from evaluations.services.finetune import finetune_files

    monkeypatch.setenv("FT_KEY", "sk-test")
    base = EndpointFactory(name="hosted-small", api_key_env="FT_KEY")
    arm = labelling.arms.get()
    job = finetune_create(
        suite_version=version,
        base_endpoint=base,
        backend="openai",
        source=f"run:{labelling.pk}:{arm.pk}:all",
        hyperparameters={"validation_fraction": 0},
    )
    train_file, valid_file = finetune_files(job)
    lines = [json.loads(line) for line in train_file.decode().splitlines()]
    assert valid_file == b"" and len(lines) == 10
    assert lines[0]["messages"] == [
        {"role": "user", "content": "train question 0"},
        {"role": "assistant", "content": "ANSWER 0"},
    ]


def test_the_synthetic_generations_that_wrote_the_examples_are_part_of_the_data_cost(version, labelling):
    generator = EndpointFactory(name="writer")
    used, other = (
        SyntheticGeneration.objects.create(
            suite_version=version, endpoint=generator, strategy=strategy("zero-shot"), requested=5, cost=cost
        )
        for cost in (0.25, 9.0)
    )
    # A synthetic train case (carried over from the version it was promoted into), then a test case
    # another generation wrote nothing for.
    CaseFactory(version=version, key="syn-1", position=20, split="train", input="made up 1",
                expected="ANSWER 1", metadata={"synthetic": {"generation": used.pk}})  # fmt: skip
    CaseFactory(version=version, key="syn-2", position=21, split="train", input="made up 2",
                expected="ANSWER 2", metadata={"synthetic": {"generation": used.pk}})  # fmt: skip
    arm = labelling.arms.get()
    assert training_set(version, "train").data_cost == pytest.approx(0.25)  # once, for its two cases
    assert training_set(version, "train").generation_cost == pytest.approx(0.25)
    both = training_set(version, f"train,run:{labelling.pk}:{arm.pk}")
    paid = sum(Result.objects.filter(arm=arm).values_list("cost", flat=True))
    assert both.data_cost == pytest.approx(0.25 + paid) and both.teacher == (arm.endpoint, arm.strategy)
    assert [r.key for r in both.rows][:2] == ["syn-1", "syn-2"] and len(both.rows) == 7
    assert other.cost == 9.0 and training_set(version, f"run:{labelling.pk}:{arm.pk}").generation_cost == 0


def test_a_labelling_run_is_not_signed_off_and_a_running_one_accepts_nothing(version, labelling):
    from evaluations.models import Run, RunStatus
    from evaluations.services.signoffs import SignOffError, signoff_request

    with pytest.raises(SignOffError, match="is a labelling run"):
        signoff_request(run=labelling, user=UserFactory())
    Run.objects.filter(pk=labelling.pk).update(status=RunStatus.RUNNING)
    labelling.refresh_from_db()
    with pytest.raises(ValidationError, match="accepted once it has succeeded"):
        reviews_accept_passing(run=labelling, reviewer=UserFactory())
    assert not Review.objects.exists()
