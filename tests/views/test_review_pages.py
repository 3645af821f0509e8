"""The review queue pages, the run page's review card, the results table's review column."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from evaluations.models import AuditEvent, Result, Review, Run, Suite
from evaluations.services.reviews import review_save
from tests.factories import CaseFactory, EndpointFactory, UserFactory
from tests.runs import ArmSpec, finished_run, suite_version

pytestmark = pytest.mark.django_db

# Scores per case at threshold 0.8: t0 pass, t1 fail, t2 low confidence (0.85), t3 fail, t4 pass.
SCORES = [1.0, 0.2, 0.85, 0.1, 0.99]


@pytest.fixture
def run() -> Run:
    version = suite_version(test_cases=5, pass_threshold=0.8)
    return finished_run(version, [ArmSpec(EndpointFactory(name="m1"), "zero-shot", SCORES)])


@pytest.fixture
def reviewer_client(client):
    client.force_login(UserFactory(username="rita", roles=["reviewer"]))
    return client


def by_key(run: Run) -> dict[str, Result]:
    return {r.case.key: r for r in Result.objects.filter(arm__run=run).select_related("case")}


def review_url(run: Run, result: Result | None = None) -> str:
    if result is None:
        return reverse("evaluations:run-review", args=[run.pk])
    return reverse("evaluations:run-review-result", args=[run.pk, result.pk])


def test_the_queue_starts_with_the_first_failed_result(reviewer_client, run):
    response = reviewer_client.get(review_url(run))

    assert response.status_code == 302
    assert response["Location"] == review_url(run, by_key(run)["t0001"])


def test_the_review_page_shows_the_result_why_it_is_queued_and_the_shortcuts(reviewer_client, run):
    rs = by_key(run)
    Result.objects.filter(pk=rs["t0001"].pk).update(output="<b>bold</b> answer")

    response = reviewer_client.get(review_url(run, rs["t0001"]))
    html = response.content.decode()

    assert response.status_code == 200
    assert "1</strong> of 5 left" in html  # t1 and t3 failed first, then t2 (low confidence), t0, t4
    assert "failed the automatic check (score 0.200)" in html
    assert "question 1" in html and "a1" in html  # the case input and expected output
    assert "&lt;b&gt;bold&lt;/b&gt; answer" in html and "<b>bold</b>" not in html
    assert 'src="/static/evaluations/review.js"' in html
    assert "<kbd>c</kbd> correct" in html and "<kbd>s / j</kbd>" in html
    assert 'name="corrected_output" rows="6">&lt;b&gt;bold&lt;/b&gt; answer</textarea>' in html
    assert f'href="{review_url(run, rs["t0003"])}" id="review-skip"' in html
    assert "<script>" not in html


def test_saving_goes_to_the_next_result_in_queue_order_then_the_empty_state(reviewer_client, run):
    rs = by_key(run)
    order = [rs["t0001"], rs["t0003"], rs["t0002"], rs["t0000"], rs["t0004"]]

    visited = []
    url = reviewer_client.get(review_url(run))["Location"]
    for _ in range(len(order)):
        visited.append(url)
        response = reviewer_client.post(url, {"verdict": "correct", "comment": ""})
        assert response.status_code == 302
        url = response["Location"]

    assert visited == [review_url(run, r) for r in order]
    assert url == review_url(run)
    done = reviewer_client.get(url)
    assert done.status_code == 200
    assert "Nothing left to review" in done.content.decode()
    assert "All 5 results of this run have been reviewed" in done.content.decode()
    assert Review.objects.filter(reviewer__username="rita", verdict="correct").count() == 5


def test_a_comment_only_review_moves_on_but_leaves_the_result_in_the_queue(reviewer_client, run):
    rs = by_key(run)

    response = reviewer_client.post(review_url(run, rs["t0001"]), {"verdict": "comment", "comment": "hm"})

    assert response["Location"] == review_url(run, rs["t0003"])
    html = reviewer_client.get(response["Location"]).content.decode()
    assert "1</strong> of 5 left" not in html and "2</strong> of 5 left" in html  # t1 is still first
    assert "0 of 5 reviewed" in html
    assert reviewer_client.get(review_url(run))["Location"] == review_url(run, rs["t0001"])
    card = reviewer_client.get(reverse("evaluations:run-review-summary", args=[run.pk])).content.decode()
    assert "0 of 5 results reviewed (1 review, comments included)" in card


def test_a_corrected_output_is_saved_and_an_empty_one_is_refused_naming_the_field(reviewer_client, run):
    result = by_key(run)["t0001"]

    refused = reviewer_client.post(review_url(run, result), {"verdict": "corrected", "corrected_output": " "})
    saved = reviewer_client.post(
        review_url(run, result), {"verdict": "corrected", "corrected_output": "a1", "comment": "typo"}
    )

    assert refused.status_code == 400
    assert "<strong>corrected_output</strong>: a corrected verdict needs the corrected output" in (
        refused.content.decode()
    )
    assert saved.status_code == 302
    review = Review.objects.get()
    assert (review.verdict, review.corrected_output, review.comment) == ("corrected", "a1", "typo")
    event = AuditEvent.objects.get(action="review.save")
    assert event.after["verdict"] == "corrected"


def test_the_page_shows_existing_reviews_and_prefills_the_users_own(reviewer_client, run, user):
    result = by_key(run)["t0001"]
    review_save(result=result, reviewer=user, verdict="incorrect", comment="alice thinks <not>")
    rita = UserFactory(username="rita")
    review_save(result=result, reviewer=rita, verdict="corrected", corrected_output="fixed", comment="mine")

    html = reviewer_client.get(review_url(run, result)).content.decode()

    assert "alice thinks &lt;not&gt;" in html
    assert "You said <strong>corrected output</strong>" in html
    assert 'rows="6">fixed</textarea>' in html and 'rows="2">mine</textarea>' in html
    assert "already reviewed" in html


def test_a_result_of_another_run_is_not_found(reviewer_client, run):
    other = finished_run(run.suite_version, [ArmSpec(EndpointFactory(name="m2"), "zero-shot", SCORES)])

    response = reviewer_client.get(review_url(run, Result.objects.filter(arm__run=other).first()))

    assert response.status_code == 404


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_viewer_may_not_review(client, run, method):
    client.force_login(UserFactory(username="vic", roles=["viewer"]))
    result = by_key(run)["t0001"]

    for url in (review_url(run), review_url(run, result)):
        response = getattr(client, method)(url, {"verdict": "correct"} if method == "post" else None)
        assert response.status_code == 403
    assert not Review.objects.exists()


def test_the_keyboard_script_is_served(client):
    response = client.get("/static/evaluations/review.js")

    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()
    assert "keydown" in body and "TEXTAREA" in body and "verdict-correct" in body


# --- run page card -------------------------------------------------------------------------------------


def test_the_run_page_loads_the_review_card_by_htmx(auth_client, run):
    html = auth_client.get(reverse("evaluations:run-detail", args=[run.pk])).content.decode()

    assert f'hx-get="{reverse("evaluations:run-review-summary", args=[run.pk])}"' in html


def test_the_review_card_shows_progress_agreement_and_the_threshold_for_an_editor(client, run, user):
    rs = by_key(run)
    review_save(result=rs["t0000"], reviewer=user, verdict="correct")  # 1.0, auto pass
    review_save(result=rs["t0002"], reviewer=user, verdict="incorrect")  # 0.85, auto pass
    review_save(result=rs["t0001"], reviewer=user, verdict="incorrect")  # 0.2, auto fail
    client.force_login(UserFactory(username="ed", roles=["editor"]))

    html = client.get(reverse("evaluations:run-review-summary", args=[run.pk])).content.decode()

    assert "3 of 5 results reviewed" in html
    assert "66.7% (2 of 3)" in html
    assert "The reviewers' verdict on a result is the latest one given" in html
    assert "Cohen&#x27;s kappa" in html or "Cohen's kappa" in html
    assert "A score threshold of <strong>0.925</strong>" in html  # halfway between 0.85 and 1.0
    assert 'value="0.925"' in html and "Apply 0.925 to" in html
    assert "Review results" not in html  # an editor does not review
    assert "reviewed.jsonl?system=1" in html and "reviewed.jsonl?system=0" in html


def test_the_review_card_for_a_reviewer_links_the_queue_and_hides_apply(reviewer_client, run):
    html = reviewer_client.get(reverse("evaluations:run-review-summary", args=[run.pk])).content.decode()

    assert f'href="{review_url(run)}"' in html
    assert "No suggestion yet" in html and "at least 1 more result as correct" in html
    assert "Apply" not in html


def test_an_editor_applies_the_threshold_and_it_is_audited(client, run):
    client.force_login(UserFactory(username="ed", roles=["editor"]))

    response = client.post(reverse("evaluations:run-review-threshold", args=[run.pk]), {"threshold": "0.925"})

    assert response.status_code == 302
    suite = Suite.objects.get(pk=run.suite_version.suite_id)
    assert suite.pass_threshold == 0.925
    event = AuditEvent.objects.get(action="suite.threshold")
    assert (event.actor_name, event.before, event.after) == (
        "ed",
        {"pass_threshold": 0.8},
        {"pass_threshold": 0.925},
    )
    page = client.get(response["Location"]).content.decode()
    assert "re-score this run to apply it" in page


def test_a_reviewer_may_not_apply_the_threshold_and_a_bad_value_is_refused(reviewer_client, client, run):
    url = reverse("evaluations:run-review-threshold", args=[run.pk])

    assert reviewer_client.post(url, {"threshold": "0.5"}).status_code == 403
    client.force_login(UserFactory(username="ed", roles=["editor"]))
    response = client.post(url, {"threshold": "2"}, follow=True)

    assert "Threshold not applied" in response.content.decode()
    assert Suite.objects.get(pk=run.suite_version.suite_id).pass_threshold == 0.8
    assert not AuditEvent.objects.filter(action="suite.threshold").exists()


# --- results table -------------------------------------------------------------------------------------


def test_the_results_table_shows_verdicts_with_one_query_for_the_reviews(reviewer_client, run, user):
    rs = by_key(run)
    review_save(result=rs["t0000"], reviewer=user, verdict="correct")
    review_save(result=rs["t0001"], reviewer=user, verdict="incorrect")
    review_save(
        result=rs["t0001"], reviewer=UserFactory(username="bob"), verdict="corrected", corrected_output="x"
    )
    url = reverse("evaluations:run-results", args=[run.pk])

    with CaptureQueriesContext(connection) as queries:
        html = reviewer_client.get(url, HTTP_HX_REQUEST="true").content.decode()

    assert "<th>Review</th>" in html
    assert "✓ alice" in html and "✗ alice" in html and "✎ bob (corrected)" in html
    assert f'href="{review_url(run, rs["t0003"])}">review</a>' in html
    review_queries = [q for q in queries.captured_queries if 'FROM "evaluations_review"' in q["sql"]]
    assert len(review_queries) == 1


def test_more_results_add_no_review_queries(reviewer_client, user):
    version = suite_version(test_cases=0)
    for i in range(20):
        CaseFactory(version=version, key=f"k{i:02d}", position=i, input=f"q{i}", expected="a")
    run = finished_run(version, [ArmSpec(EndpointFactory(name="m3"), "zero-shot", [1.0] * 20)])
    for result in Result.objects.filter(arm__run=run):
        review_save(result=result, reviewer=user, verdict="correct")
    url = reverse("evaluations:run-results", args=[run.pk])

    with CaptureQueriesContext(connection) as queries:
        html = reviewer_client.get(url, HTTP_HX_REQUEST="true").content.decode()

    assert len(re.findall("✓ alice", html)) == 20
    assert len([q for q in queries.captured_queries if 'FROM "evaluations_review"' in q["sql"]]) == 1
