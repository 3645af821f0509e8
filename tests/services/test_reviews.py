from __future__ import annotations

import time

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.utils import timezone

from evaluations.models import Arm, AuditEvent, Case, Result, Review, Run, RunStatus, Suite
from evaluations.selectors import reviews as selectors_reviews
from evaluations.services import reviews as reviews_service
from evaluations.services.audit import audit_verify
from evaluations.services.reviews import review_save, suite_threshold_apply
from tests.factories import EndpointFactory, UserFactory, strategy
from tests.runs import ArmSpec, finished_run, suite_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def reviewer(db):
    return UserFactory(username="rita", roles=["reviewer"])


@pytest.fixture
def run():
    version = suite_version(test_cases=6, pass_threshold=0.8)
    endpoint = EndpointFactory(name="m1")
    return finished_run(version, [ArmSpec(endpoint, "zero-shot", [1.0, 0.85, 0.5, 0.2, 1.0, 0.95])])


def results(run: Run) -> list[Result]:
    return list(Result.objects.filter(arm__run=run).order_by("case__position", "arm__position", "sample"))


# --- review_save ---------------------------------------------------------------------------------------


def test_it_creates_then_updates_the_reviewers_one_review_and_audits_both(run, reviewer):
    result = results(run)[2]

    first = review_save(result=result, reviewer=reviewer, verdict="incorrect", comment="wrong city")
    second = review_save(result=result, reviewer=reviewer, verdict="corrected", corrected_output="Paris")

    assert first.pk == second.pk
    review = Review.objects.get()
    assert (review.run_id, review.verdict, review.corrected_output, review.comment) == (
        run.pk,
        "corrected",
        "Paris",
        "",
    )
    events = list(AuditEvent.objects.filter(action="review.save").order_by("seq"))
    assert [(e.before, e.after) for e in events] == [
        (None, {"verdict": "incorrect", "corrected_output": "", "comment": "wrong city"}),
        (
            {"verdict": "incorrect", "corrected_output": "", "comment": "wrong city"},
            {"verdict": "corrected", "corrected_output": "Paris", "comment": ""},
        ),
    ]
    assert {e.suite_id for e in events} == {run.suite_version.suite_id}
    assert {(e.object_type, e.object_id, e.actor_name) for e in events} == {
        ("review", str(review.pk), "rita")
    }
    assert audit_verify().ok


def test_a_concurrent_first_save_of_the_same_review_becomes_an_update(run, reviewer, monkeypatch):
    result = results(run)[0]
    real = reviews_service._locked_review
    raced = []

    def read_then_lose_the_race(result_, reviewer_):
        found = real(result_, reviewer_)
        if not raced:  # another request's first save lands between this one's read and its insert
            raced.append(True)
            review_save(result=result_, reviewer=reviewer_, verdict="incorrect", comment="other tab")
        return found

    monkeypatch.setattr(reviews_service, "_locked_review", read_then_lose_the_race)

    review = review_save(result=result, reviewer=reviewer, verdict="correct", comment="this tab")

    assert raced
    assert list(Review.objects.values_list("pk", "verdict", "comment")) == [
        (review.pk, "correct", "this tab")
    ]
    events = list(AuditEvent.objects.filter(action="review.save").order_by("seq"))
    assert [(e.before, e.after) for e in events] == [
        (None, {"verdict": "incorrect", "corrected_output": "", "comment": "other tab"}),
        (
            {"verdict": "incorrect", "corrected_output": "", "comment": "other tab"},
            {"verdict": "correct", "corrected_output": "", "comment": "this tab"},
        ),
    ]
    assert audit_verify().ok


def test_a_refused_insert_that_is_not_the_race_is_not_hidden(run, reviewer, monkeypatch):
    def refuse(*args, **kwargs):
        raise IntegrityError("CHECK constraint failed")

    monkeypatch.setattr(Review, "save", refuse)

    with pytest.raises(IntegrityError):
        review_save(result=results(run)[0], reviewer=reviewer, verdict="correct")
    assert not AuditEvent.objects.filter(action="review.save").exists()


def test_saving_the_same_review_again_writes_no_event(run, reviewer):
    result = results(run)[0]
    review_save(result=result, reviewer=reviewer, verdict="correct")
    review_save(result=result, reviewer=reviewer, verdict="correct")

    assert AuditEvent.objects.filter(action="review.save").count() == 1


def test_two_reviewers_each_have_their_own_review(run, reviewer, user):
    result = results(run)[0]
    review_save(result=result, reviewer=reviewer, verdict="correct")
    review_save(result=result, reviewer=user, verdict="incorrect")

    assert sorted(Review.objects.values_list("reviewer__username", "verdict")) == [
        ("alice", "incorrect"),
        ("rita", "correct"),
    ]


@pytest.mark.parametrize(
    ("verdict", "corrected", "comment", "field"),
    [
        ("corrected", "", "", "corrected_output"),
        ("corrected", "   \n", "why", "corrected_output"),
        ("comment", "", "  ", "comment"),
        ("maybe", "", "", "verdict"),
    ],
)
def test_it_refuses_an_incomplete_review_naming_the_field(run, reviewer, verdict, corrected, comment, field):
    with pytest.raises(ValidationError) as info:
        review_save(
            result=results(run)[0],
            reviewer=reviewer,
            verdict=verdict,
            corrected_output=corrected,
            comment=comment,
        )

    assert list(info.value.message_dict) == [field]
    assert not Review.objects.exists()
    assert not AuditEvent.objects.filter(action="review.save").exists()


def test_a_corrected_output_is_kept_only_with_a_corrected_verdict(run, reviewer):
    review = review_save(result=results(run)[0], reviewer=reviewer, verdict="correct", corrected_output="x")

    assert review.corrected_output == ""


def test_it_needs_a_signed_in_reviewer(run):
    with pytest.raises(ValidationError) as info:
        review_save(result=results(run)[0], reviewer=None, verdict="correct")

    assert "reviewer" in info.value.message_dict


# --- suite_threshold_apply -----------------------------------------------------------------------------


def test_applying_a_threshold_sets_it_and_audits_before_and_after(run, user):
    suite = run.suite_version.suite

    suite_threshold_apply(suite=suite, threshold=0.71, user=user)

    assert Suite.objects.get(pk=suite.pk).pass_threshold == 0.71
    event = AuditEvent.objects.get(action="suite.threshold")
    assert (event.before, event.after, event.suite_id, event.actor_name) == (
        {"pass_threshold": 0.8},
        {"pass_threshold": 0.71},
        suite.pk,
        "alice",
    )


@pytest.mark.parametrize("value", [1.5, -0.1, "abc", "nan"])
def test_a_threshold_outside_0_1_is_refused(run, user, value):
    with pytest.raises(ValidationError) as info:
        suite_threshold_apply(suite=run.suite_version.suite, threshold=value, user=user)

    assert "threshold" in info.value.message_dict
    assert Suite.objects.get(pk=run.suite_version.suite_id).pass_threshold == 0.8
    assert not AuditEvent.objects.filter(action="suite.threshold").exists()


# --- the queue and the summary (selectors) -------------------------------------------------------------


def test_the_queue_of_a_real_run_orders_by_reason_and_drops_reviewed_and_errored_results(reviewer):
    version = suite_version(test_cases=6, pass_threshold=0.8)
    endpoint = EndpointFactory(name="m1")
    baseline = finished_run(version, [ArmSpec(endpoint, "zero-shot", [1.0, 1.0, 1.0, 1.0, 0.0, 1.0])])
    suite = version.suite
    suite.baseline_run = baseline
    suite.save()
    # cases:   t0 pass, t1 flips (fails here), t2 low confidence, t3 rest, t4 flips the other way, t5 error
    run = finished_run(
        version, [ArmSpec(endpoint, "zero-shot", [1.0, 0.3, 0.82, 1.0, 0.99, 1.0], errors={5})]
    )
    rs = {r.case.key: r for r in Result.objects.filter(arm__run=run).select_related("case")}

    queue = selectors_reviews.review_queue(run)

    assert [i.result_id for i in queue.items] == [
        rs["t0001"].pk,
        rs["t0004"].pk,
        rs["t0002"].pk,
        rs["t0000"].pk,
        rs["t0003"].pk,
    ]
    assert [r.code for r in queue.by_result[rs["t0001"].pk].reasons] == ["failed", "flipped"]
    assert queue.by_result[rs["t0004"].pk].reasons[0].text == "failed in the baseline run, passes here"
    assert queue.baseline_run_id == baseline.pk
    assert (queue.total, queue.left) == (5, 5)

    review_save(result=rs["t0001"], reviewer=reviewer, verdict="comment", comment="hm")
    queue = selectors_reviews.review_queue(run)

    # a comment is no verdict: the result stays in the queue, first
    assert (queue.left, queue.reviewed) == (5, 0)
    assert queue.next_after(None).result_id == rs["t0001"].pk

    review_save(result=rs["t0001"], reviewer=reviewer, verdict="incorrect", comment="hm")
    queue = selectors_reviews.review_queue(run)

    assert (queue.left, queue.reviewed) == (4, 1)
    assert queue.next_after(None).result_id == rs["t0004"].pk
    assert queue.position(rs["t0002"].pk) == 2
    assert queue.position(rs["t0001"].pk) is None


def test_the_queue_matches_baseline_arms_on_endpoint_and_strategy_name():
    version = suite_version(test_cases=2)
    a, b = EndpointFactory(name="a"), EndpointFactory(name="b")
    baseline = finished_run(
        version, [ArmSpec(a, "zero-shot", [1.0, 1.0]), ArmSpec(b, "few-shot", [0.0, 0.0])]
    )
    version.suite.baseline_run = baseline
    version.suite.save()
    run = finished_run(version, [ArmSpec(a, "few-shot", [0.0, 0.0]), ArmSpec(b, "few-shot", [1.0, 1.0])])

    queue = selectors_reviews.review_queue(run)
    codes = {i.result_id: [r.code for r in i.reasons] for i in queue.items}
    arm_a = Arm.objects.get(run=run, endpoint=a)

    # a/few-shot has no baseline arm (the baseline ran a/zero-shot): failed, but not flipped.
    assert all(codes[r.pk] == ["failed"] for r in Result.objects.filter(arm=arm_a))
    assert all(codes[r.pk] == ["flipped"] for r in Result.objects.filter(arm__run=run, arm__endpoint=b))


def _big_run(n_cases: int, n_arms: int) -> Run:
    version = suite_version(test_cases=0, pass_threshold=0.8)
    Case.objects.bulk_create(
        [
            Case(version=version, key=f"k{i:05d}", position=i, input=f"q{i}", expected="a")
            for i in range(n_cases)
        ]
    )
    cases = list(Case.objects.filter(version=version).order_by("position"))
    now = timezone.now()
    run = Run.objects.create(
        suite_version=version, status=RunStatus.SUCCEEDED, started_at=now, finished_at=now
    )
    for position in range(n_arms):
        arm = Arm.objects.create(
            run=run, endpoint=EndpointFactory(), strategy=strategy("zero-shot"), position=position
        )
        Result.objects.bulk_create(
            [
                Result(
                    arm=arm, case=c, output="o", score=(i % 100) / 100, passed=(i % 100) >= 80, scored_at=now
                )
                for i, c in enumerate(cases)
            ],
            batch_size=2000,
        )
    return run


def test_a_ten_thousand_result_run_builds_its_queue_fast_in_a_few_queries(django_assert_max_num_queries):
    run = _big_run(5000, 2)
    run = Run.objects.select_related("suite_version__suite").get(pk=run.pk)

    start = time.perf_counter()
    with django_assert_max_num_queries(6):
        queue = selectors_reviews.review_queue(run)
    elapsed = time.perf_counter() - start

    assert queue.total == 10_000
    assert queue.items[0].bucket == 0
    assert elapsed < 2.0, f"{elapsed:.2f}s"


def test_the_summary_counts_each_reviewed_results_latest_verdict_once(run, reviewer, user):
    rs = results(run)  # scores 1.0, 0.85, 0.5, 0.2, 1.0, 0.95 with threshold 0.8
    review_save(result=rs[0], reviewer=reviewer, verdict="correct")
    review_save(result=rs[1], reviewer=reviewer, verdict="incorrect")  # scorer says pass
    review_save(result=rs[2], reviewer=reviewer, verdict="corrected", corrected_output="x")
    review_save(result=rs[3], reviewer=reviewer, verdict="comment", comment="odd")  # no verdict
    review_save(result=rs[5], reviewer=reviewer, verdict="incorrect")
    review_save(result=rs[5], reviewer=user, verdict="correct")  # later: the reviewers' verdict on rs[5]

    summary = selectors_reviews.run_review_summary(Run.objects.get(pk=run.pk))

    # rs[3] has only a comment: 4 of 6 results are reviewed; the 6 reviews include the comment.
    assert (summary.total, summary.reviewed, summary.reviews) == (6, 4, 6)
    a = summary.agreement
    # one pair per reviewed result: rs[5] counts once, as correct (its earlier "incorrect" is replaced)
    assert (a.count, a.both_pass, a.human_pass_auto_fail, a.human_fail_auto_pass, a.both_fail) == (
        4,
        2,
        0,
        1,
        1,
    )
    assert (a.agreed, a.percent) == (3, 75.0)
    t = summary.threshold
    assert (t.count, t.positives, t.negatives) == (4, 2, 2)  # the same four results, the same verdicts
    assert t.available
    assert [s >= t.threshold for s in (1.0, 0.85, 0.5, 0.95)] == [True, False, False, True]


def test_kappa_and_the_threshold_see_the_same_verdicts_when_reviewers_disagree(run, reviewer, user):
    rs = results(run)  # scores 1.0, 0.85, 0.5, 0.2, ...; rs[0], rs[1] pass, rs[2], rs[3] fail
    review_save(result=rs[0], reviewer=reviewer, verdict="correct")
    review_save(result=rs[3], reviewer=reviewer, verdict="incorrect")
    review_save(result=rs[1], reviewer=reviewer, verdict="correct")
    review_save(result=rs[1], reviewer=user, verdict="incorrect")  # the latest verdict on rs[1]
    review_save(result=rs[2], reviewer=user, verdict="incorrect")
    review_save(result=rs[2], reviewer=reviewer, verdict="correct")  # the latest verdict on rs[2]

    summary = selectors_reviews.run_review_summary(Run.objects.get(pk=run.pk))

    a = summary.agreement
    assert a.count == summary.threshold.count == summary.reviewed == 4
    # latest verdicts: rs[0] correct/pass, rs[1] incorrect/pass, rs[2] correct/fail, rs[3] incorrect/fail
    assert a.confusion == [[1, 1], [1, 1]]
    assert a.kappa == pytest.approx(0.0)
    assert (summary.threshold.positives, summary.threshold.negatives) == (2, 2)
