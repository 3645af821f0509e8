"""The run page, the results table and the compare view make the same number of queries whatever
the size of the data: 20 or 200 cases, 1 or 3 arms, 1 or 3 runs, any page of the results, with or
without filters. (The trends page's test is in test_trends_page.py; bench/db_scale.py times all four
on 1,000,000 results.)"""

from __future__ import annotations

import random

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from evaluations.models import Finding, FindingKind, Result, Review, Run, Scoring, Verdict
from tests.factories import EndpointFactory, UserFactory
from tests.runs import ArmSpec, finished_run, suite_version

STRATEGIES = ("zero-shot", "few-shot", "cot")


def _runs(*, cases: int, runs: int, arms: int, seed: int = 0) -> list[Run]:
    """`runs` finished runs of one suite version of `cases` cases, each with `arms` arms whose
    scores differ from run to run; case 1 failed in every arm. Each run has a scoring, a finding and
    reviews (two reviewers) on its first 30 results in table order, as a real run has."""
    rng = random.Random(seed)
    version = suite_version(test_cases=cases)
    endpoint = EndpointFactory()
    reviewers = [UserFactory(), UserFactory()]
    out = []
    for _ in range(runs):
        specs = [
            ArmSpec(endpoint, STRATEGIES[a], [float(rng.random() < 0.6) for _ in range(cases)], errors={1})
            for a in range(arms)
        ]
        run = finished_run(version, specs)
        Scoring.objects.create(run=run, number=1, summaries={str(a.pk): a.summary for a in run.arms.all()})
        Finding.objects.create(
            suite=version.suite, run=run, kind=FindingKind.THRESHOLD, title=f"run {run.pk} below target"
        )
        for result in Result.objects.filter(arm__run=run).order_by("case__position", "arm__position")[:30]:
            for reviewer in reviewers:
                Review.objects.create(result=result, run=run, reviewer=reviewer, verdict=Verdict.CORRECT)
        out.append(run)
    return out


def _queries(client, url: str, params=None, **headers) -> list[str]:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url, params or {}, **headers)
    assert response.status_code == 200, (url, params, response.status_code)
    return [q["sql"] for q in ctx.captured_queries]


def test_the_run_page_makes_the_same_queries_for_20_or_200_results_1_or_3_arms(
    auth_client, django_assert_num_queries
):
    small = _runs(cases=20, runs=1, arms=1)[0]
    large = _runs(cases=200, runs=3, arms=3, seed=1)[-1]
    assert Result.objects.filter(arm__run=large).count() == 600
    small_url = reverse("evaluations:run-detail", args=[small.pk])
    large_url = reverse("evaluations:run-detail", args=[large.pk])
    _queries(auth_client, small_url)  # warm: the session's first read
    sql_small = _queries(auth_client, small_url)
    # session, user, the role check (user's and groups' permissions), run, arms, results counted
    # (all, errors), batches generated, scorings, a re-score running?, sign-offs, a pending one?,
    # the roles in the header, findings
    assert len(sql_small) <= 15
    with django_assert_num_queries(len(sql_small)):
        html = auth_client.get(large_url).content.decode()
    assert "600 of" in html  # results counted
    assert html.count('name="arm" value=') == 3  # the three arms, from the stored summaries
    # Counts and stored summaries only: no result row is read.
    sql_large = _queries(auth_client, large_url)
    assert not any('"evaluations_result"."output"' in sql for sql in sql_large)


RESULT_VIEWS = [
    ("first page", {}, {}),
    ("filtered: failed", {"outcome": "fail"}, {}),
    ("filtered: errors", {"outcome": "error"}, {}),
    ("filtered: passed", {"outcome": "pass"}, {}),
    ("searched", {"q": "t0"}, {}),
    ("htmx fragment", {}, {"HTTP_HX_REQUEST": "true"}),
]


def test_the_results_table_makes_the_same_queries_on_any_page_of_20_or_600_results(
    auth_client, django_assert_num_queries
):
    small = _runs(cases=20, runs=1, arms=1)[0]
    large = _runs(cases=200, runs=3, arms=3, seed=1)[-1]
    small_url = reverse("evaluations:run-results", args=[small.pk])
    large_url = reverse("evaluations:run-results", args=[large.pk])
    _queries(auth_client, small_url)  # warm
    large_arm = large.arms.get(position=1).pk
    small_arm = small.arms.get().pk
    views = [
        *RESULT_VIEWS,
        ("one arm", {"arm": small_arm}, {}),
    ]
    for name, params, headers in views:
        sql_small = _queries(auth_client, small_url, params, **headers)
        # session, user, the role check, run, results counted, the page's ids, its rows, their
        # reviews, the arms to filter by, the roles in the header (not in an htmx fragment)
        assert len(sql_small) <= 11, name
        large_params = {**params, "arm": large_arm} if "arm" in params else params
        pages = [1, 2, 12, 24] if name == "first page" else [1, 999]  # 999: past the end, the last
        for page in pages:
            with django_assert_num_queries(len(sql_small)):
                response = auth_client.get(large_url, {**large_params, "page": page}, **headers)
            html = response.content.decode()
            assert response.status_code == 200 and "<code>t" in html, (name, page)
            if name == "first page":
                # 600 results: 24 pages of 25, each row with its two reviews (one query for all)
                assert f"Page {page} of 24 (600 in all)" in html
                assert html.count('class="is-') == 25
    first = auth_client.get(large_url).content.decode()
    assert first.count("verdict-mark correct") == 2 * 25  # both reviewers, on each row of page 1


COMPARE_VIEWS = [("", "all"), ("drops", "largest drops"), ("flipped", "pass → fail")]


def test_the_compare_view_makes_the_same_queries_for_2_arms_of_20_or_3_arms_of_200_cases(
    auth_client, django_assert_num_queries
):
    small_runs = _runs(cases=20, runs=2, arms=1)
    large_runs = _runs(cases=200, runs=3, arms=3, seed=1)
    small_arms = [run.arms.get().pk for run in small_runs]
    large_arms = [large_runs[0].arms.get(position=0).pk] + [
        a.pk for a in large_runs[2].arms.order_by("position")[:2]
    ]
    url = reverse("evaluations:compare")
    _queries(auth_client, url, {"arm": small_arms})  # warm
    for view, _label in COMPARE_VIEWS:
        sql_small = _queries(auth_client, url, {"arm": small_arms, "view": view})
        # session, user, the role check, arms, their results (one query), the page's cases, the
        # roles in the header, the arms to choose from
        assert len(sql_small) <= 10, view
        for page in (1, 2, 999):  # 999: past the end, the last page
            with django_assert_num_queries(len(sql_small)):
                response = auth_client.get(url, {"arm": large_arms, "view": view, "page": page})
            html = response.content.decode()
            assert response.status_code == 200 and "200 shared cases" in html, (view, page)
            assert html.count('class="diffcell') >= 3, (view, page)  # rows with a cell per arm


@pytest.mark.parametrize("cases", [20, 200])
def test_the_compare_view_reads_the_cases_of_the_page_shown_only(auth_client, cases):
    runs = _runs(cases=cases, runs=2, arms=1)
    url = reverse("evaluations:compare")
    sql = _queries(auth_client, url, {"arm": [run.arms.get().pk for run in runs]})
    case_reads = [q for q in sql if 'FROM "evaluations_case"' in q]
    assert len(case_reads) == 1
    html = auth_client.get(url, {"arm": [run.arms.get().pk for run in runs]}).content.decode()
    assert html.count("<code>t") == min(cases, 25)
    assert "question 0" in html and "a0" in html  # the case's input and expected output
