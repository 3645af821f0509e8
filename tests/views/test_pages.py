"""The server-rendered pages, through the Django test client: what a browser user sees and changes."""

from __future__ import annotations

import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from evaluations.models import Case, Endpoint, Result, Run, RunStatus, Suite, SuiteVersion
from evaluations.services.runs import run_create
from tests.factories import CaseFactory, EndpointFactory, SuiteVersionFactory, strategy
from tests.fakeopenai import answers_responder

XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"


def _suite(n: int, **suite_fields) -> SuiteVersion:
    version = SuiteVersionFactory(**{f"suite__{k}": v for k, v in suite_fields.items()})
    for i in range(n):
        CaseFactory(version=version, key=f"c{i:03d}", position=i, input=f"q{i}", expected=f"answer {i}")
    return version


def _run(version, arms, task_queue, *, drain: bool = True) -> Run:
    run = run_create(suite_version=version, arms=arms)
    if drain:
        task_queue.drain()
    run.refresh_from_db()
    return run


def _rows(html: str) -> list[str]:
    """The case keys of the result rows shown in a results table, in order."""
    return re.findall(r"<td><code>(c\d+)</code>", html)


@pytest.fixture(autouse=True)
def _fast_hasher(settings):
    # PBKDF2 costs ~0.3 s per user made; requested before `user`, so it applies to it.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def endpoint(fake_openai, db):
    return EndpointFactory(name="fake", base_url=fake_openai.base_url)


# --- login required -------------------------------------------------------------------------------


@pytest.fixture
def some_run(db, task_queue):
    endpoint = EndpointFactory(name="anon-ep")
    return run_create(suite_version=_suite(2), arms=[(endpoint, strategy("plain"))])


@pytest.mark.parametrize(
    ("name", "needs_pk", "method"),
    [
        ("evaluations:home", False, "get"),
        ("evaluations:suite-list", False, "get"),
        ("evaluations:suite-upload", False, "get"),
        ("evaluations:suite-upload", False, "post"),
        ("evaluations:suite-detail", True, "get"),
        ("evaluations:endpoint-list", False, "get"),
        ("evaluations:endpoint-list", False, "post"),
        ("evaluations:run-list", False, "get"),
        ("evaluations:run-new", False, "get"),
        ("evaluations:run-new", False, "post"),
        ("evaluations:run-detail", True, "get"),
        ("evaluations:run-live", True, "get"),
        ("evaluations:run-results", True, "get"),
        ("evaluations:run-cancel", True, "post"),
    ],
)
def test_every_page_sends_an_anonymous_user_to_the_login_page(client, some_run, name, needs_pk, method):
    pk = some_run.suite_version.suite_id if name == "evaluations:suite-detail" else some_run.pk
    url = reverse(name, args=[pk] if needs_pk else [])
    response = getattr(client, method)(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={url}"
    some_run.refresh_from_db()
    assert some_run.status == RunStatus.QUEUED  # the anonymous cancel did nothing
    assert Suite.objects.count() == 1 and Endpoint.objects.count() == 1 and Run.objects.count() == 1


def test_the_pages_render_for_a_logged_in_user(auth_client, some_run):
    for url in [
        reverse("evaluations:home"),
        reverse("evaluations:suite-list"),
        reverse("evaluations:suite-upload"),
        reverse("evaluations:suite-detail", args=[some_run.suite_version.suite_id]),
        reverse("evaluations:endpoint-list"),
        reverse("evaluations:run-list"),
        reverse("evaluations:run-new"),
        reverse("evaluations:run-detail", args=[some_run.pk]),
    ]:
        response = auth_client.get(url)
        assert response.status_code == 200, url
        assert b"<html" in response.content


# --- suite upload ---------------------------------------------------------------------------------


def _upload(client, filename: str, content: bytes, name: str = "geography"):
    return client.post(
        reverse("evaluations:suite-upload"),
        {"name": name, "task_type": "generation", "file": SimpleUploadedFile(filename, content)},
    )


GOOD_CSV = b"id,input,expected\ncap-fr,Capital of France?,Paris\ncap-it,Capital of Italy?,Rome\n"


def test_uploading_a_good_csv_stores_its_cases_and_shows_them(auth_client):
    response = _upload(auth_client, "cases.csv", GOOD_CSV)
    suite = Suite.objects.get(name="geography")
    assert response.status_code == 302
    assert response["Location"] == reverse("evaluations:suite-detail", args=[suite.pk])
    version = suite.versions.get()
    assert version.number == 1 and version.source_format == "csv"
    assert list(version.cases.values_list("key", "input", "expected")) == [
        ("cap-fr", "Capital of France?", "Paris"),
        ("cap-it", "Capital of Italy?", "Rome"),
    ]
    page = auth_client.get(response["Location"]).content.decode()
    assert "Imported 2 cases" in page
    assert "Capital of France?" in page and "Rome" in page and "cap-it" in page


def test_uploading_the_same_name_again_makes_version_2(auth_client):
    _upload(auth_client, "cases.csv", GOOD_CSV)
    response = _upload(auth_client, "more.csv", GOOD_CSV + b"cap-es,Capital of Spain?,Madrid\n")
    assert response.status_code == 302
    suite = Suite.objects.get()
    assert list(suite.versions.order_by("number").values_list("number", flat=True)) == [1, 2]
    assert suite.versions.get(number=2).cases.count() == 3
    page = auth_client.get(response["Location"]).content.decode()
    assert "Capital of Spain?" in page and "v2" in page
    old = auth_client.get(response["Location"] + "?version=1").content.decode()
    assert "Capital of Spain?" not in old and "Capital of France?" in old


@pytest.mark.parametrize(
    ("filename", "content", "expected"),
    [
        (
            "bad.csv",
            b"id,input,expected\nc1,hello,world\nc2,,world\n",
            ["bad.csv, line 3, field &#x27;input&#x27;: is empty; give the input text"],
        ),
        (
            "bad.jsonl",
            b'{"input": "a", "expected": "b"}\n{not json\n',
            ["bad.jsonl, line 2: is not valid JSON"],
        ),
        ("cases.txt", b"input,expected\na,b\n", ["cases.txt: file type &#x27;.txt&#x27; is not supported"]),
    ],
)
def test_a_bad_file_is_refused_with_where_and_why_and_nothing_is_stored(
    auth_client, filename, content, expected
):
    response = _upload(auth_client, filename, content)
    assert response.status_code == 400
    page = response.content.decode()
    assert "Nothing was imported" in page
    for text in expected:
        assert text in page
    assert not Suite.objects.exists()
    assert not SuiteVersion.objects.exists()
    assert not Case.objects.exists()


def test_a_bad_second_version_leaves_the_first_untouched(auth_client):
    _upload(auth_client, "cases.csv", GOOD_CSV)
    response = _upload(auth_client, "bad.csv", b"input,expected\n,x\n")
    assert response.status_code == 400
    assert SuiteVersion.objects.count() == 1 and Case.objects.count() == 2


# --- endpoints ------------------------------------------------------------------------------------


def _endpoint_form(**overrides) -> dict:
    data = {
        "name": "local",
        "provider": "local",
        "model": "smollm2-135m-instruct",
        "base_url": "",
        "api_key_env": "",
        "kind": "base",
        "base_endpoint": "",
        "price_in": "0",
        "price_out": "0",
        "price_hour": "0.5",
        "training_cost": "0",
        "max_concurrency": "4",
    }
    return {**data, **overrides}


def test_adding_a_local_endpoint(auth_client):
    response = auth_client.post(reverse("evaluations:endpoint-list"), _endpoint_form())
    assert response.status_code == 302
    endpoint = Endpoint.objects.get(name="local")
    assert endpoint.provider == "local" and endpoint.model == "smollm2-135m-instruct"
    page = auth_client.get(reverse("evaluations:endpoint-list")).content.decode()
    assert "Endpoint local added." in page and "smollm2-135m-instruct" in page


def test_an_api_key_pasted_as_the_variable_name_is_refused_and_not_echoed(auth_client):
    key = "sk-abc123def456ghi789"
    response = auth_client.post(
        reverse("evaluations:endpoint-list"),
        _endpoint_form(name="openai", provider="openai", model="gpt-4o-mini", api_key_env=key),
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "give the NAME of an environment variable" in page
    assert key not in page
    assert not Endpoint.objects.exists()


def test_a_duplicate_endpoint_name_is_a_form_error(auth_client):
    EndpointFactory(name="local")
    response = auth_client.post(reverse("evaluations:endpoint-list"), _endpoint_form())
    assert response.status_code == 400
    assert re.search(r"already exists|exists already", response.content.decode())
    assert Endpoint.objects.count() == 1


def test_the_api_key_value_is_never_rendered(auth_client, fake_openai, task_queue, monkeypatch):
    secret = "sk-this-is-the-secret-value-4242"
    monkeypatch.setenv("FTVP_TEST_VIEWS_KEY", secret)
    fake_openai.api_key = secret  # the run only succeeds when the worker sent the key
    response = auth_client.post(
        reverse("evaluations:endpoint-list"),
        _endpoint_form(
            name="keyed",
            provider="openai",
            model="fake-model",
            base_url=fake_openai.base_url,
            api_key_env="FTVP_TEST_VIEWS_KEY",
        ),
    )
    assert response.status_code == 302
    endpoint = Endpoint.objects.get(name="keyed")
    run = _run(_suite(3), [(endpoint, strategy("plain"))], task_queue)
    assert run.status == RunStatus.SUCCEEDED
    assert not Result.objects.exclude(error="").exists()
    assert fake_openai.request_headers[0]["authorization"] == f"Bearer {secret}"
    for url in [
        reverse("evaluations:endpoint-list"),
        reverse("evaluations:run-detail", args=[run.pk]),
        reverse("evaluations:run-live", args=[run.pk]),
        reverse("evaluations:run-results", args=[run.pk]),
        reverse("api:run-list"),
        reverse("api:run-detail", args=[run.pk]),
    ]:
        response = auth_client.get(url)
        assert response.status_code == 200, url
        assert secret not in response.content.decode(), url


# --- runs -----------------------------------------------------------------------------------------


def test_the_new_run_form_creates_a_run_with_two_arms_and_starts_it(auth_client, endpoint, task_queue):
    version = _suite(3)
    zero, cot = strategy("zero-shot"), strategy("cot")
    page = auth_client.get(reverse("evaluations:run-new")).content.decode()
    assert f'value="{endpoint.pk}:{zero.pk}"' in page
    response = auth_client.post(
        reverse("evaluations:run-new"),
        {
            "suite_version": version.pk,
            "arms": [f"{endpoint.pk}:{zero.pk}", f"{endpoint.pk}:{cot.pk}"],
            "repeats": 1,
        },
    )
    run = Run.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("evaluations:run-detail", args=[run.pk])
    assert [(a.endpoint_id, a.strategy_id) for a in run.arms.order_by("position")] == [
        (endpoint.pk, zero.pk),
        (endpoint.pk, cot.pk),
    ]
    assert run.status == RunStatus.QUEUED and run.expected_results == 6
    assert task_queue.sent == [("start_run", (run.pk,))]


def test_the_new_run_form_refuses_no_arms(auth_client, endpoint, task_queue):
    version = _suite(3)
    response = auth_client.post(reverse("evaluations:run-new"), {"suite_version": version.pk, "repeats": 1})
    assert response.status_code == 400
    assert not Run.objects.exists() and task_queue.sent == []


def test_a_run_driven_to_completion_shows_its_summary_and_chart_data(
    auth_client, endpoint, fake_openai, task_queue
):
    fake_openai.responder = answers_responder(
        {f"q{i}": f"answer {i}" if i < 3 else "no idea" for i in range(5)}
    )
    version = _suite(5)
    plain, zero = strategy("plain"), strategy("zero-shot")
    auth_client.post(
        reverse("evaluations:run-new"),
        {
            "suite_version": version.pk,
            "arms": [f"{endpoint.pk}:{plain.pk}", f"{endpoint.pk}:{zero.pk}"],
            "repeats": 1,
        },
    )
    run = Run.objects.get()
    live_url = reverse("evaluations:run-live", args=[run.pk])

    queued = auth_client.get(live_url).content.decode()
    assert "Queued" in queued and "0 of 10 results" in queued
    assert 'hx-trigger="every 2s"' in queued

    task_queue.drain()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED

    page = auth_client.get(reverse("evaluations:run-detail", args=[run.pk])).content.decode()
    assert "Succeeded" in page
    assert "Cancel run" not in page
    arms = list(run.arms.select_related("endpoint", "strategy").order_by("position"))
    for arm in arms:
        summary = arm.summary
        assert summary["cases"] == 5 and summary["errors"] == 0
        assert summary["mean_score"] is not None
        assert arm.label in page
        assert f"{summary['mean_score']:.3f}" in page
        assert f"{round(summary['pass_rate'] * 100)}%" in page

    live = auth_client.get(live_url).content.decode()
    assert "<html" not in live
    assert "10 of 10 results" in live
    assert "hx-trigger" not in live
    match = re.search(r'<script id="chart-data" type="application/json">(.*?)</script>', live, re.S)
    assert match, live
    chart = json.loads(match.group(1))
    assert chart["labels"] == [arm.label for arm in arms]
    assert chart["mean"] == pytest.approx([arm.summary["mean_score"] for arm in arms])
    assert all(isinstance(m, float) for m in chart["mean"])
    assert chart["target"] == version.suite.quality_target


def test_the_live_partial_keeps_polling_while_the_run_is_running(auth_client, endpoint, task_queue):
    run = _run(_suite(2), [(endpoint, strategy("plain"))], task_queue, drain=False)
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
    live = auth_client.get(reverse("evaluations:run-live", args=[run.pk])).content.decode()
    assert "Running" in live and 'hx-trigger="every 2s"' in live and "(live, partial)" in live


def test_model_output_is_escaped_in_the_results_table(auth_client, endpoint, fake_openai, task_queue):
    fake_openai.responder = lambda body: XSS
    run = _run(_suite(2), [(endpoint, strategy("plain"))], task_queue)
    assert run.status == RunStatus.SUCCEEDED
    assert Result.objects.filter(output=XSS).count() == 2
    for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
        html = auth_client.get(reverse("evaluations:run-results", args=[run.pk]), **headers).content.decode()
        assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in html
        assert "<script>alert(1)" not in html
        assert "<img src=x" not in html


@pytest.fixture
def finished_run(endpoint, fake_openai, task_queue, settings):
    """14 cases x 2 arms: even cases answered right, odd ones wrong, case 7 a server error."""
    settings.FTVP_HTTP_RETRIES = 0
    settings.FTVP_BATCH_SIZE = 50  # one batch per arm: fewer tasks, fewer clients

    def respond(body):
        text = body["messages"][-1]["content"]
        if text == "q7":
            raise RuntimeError("boom")
        n = int(text[1:])
        return f"answer {n}" if n % 2 == 0 else "something else entirely"

    fake_openai.responder = respond
    return _run(_suite(14), [(endpoint, strategy("plain")), (endpoint, strategy("zero-shot"))], task_queue)


def test_results_are_paginated_25_to_a_page(auth_client, finished_run):
    url = reverse("evaluations:run-results", args=[finished_run.pk])
    first = auth_client.get(url).content.decode()
    assert "<html" in first
    assert len(_rows(first)) == 25
    assert "Page 1 of 2 (28 in all)" in first
    assert f'href="{url}?page=2"' in first
    second = auth_client.get(url, {"page": 2}).content.decode()
    assert "Page 2 of 2" in second and f'href="{url}?page=1"' in second
    # ordered by case then arm: page 1 ends with c012 (first arm), page 2 holds the rest
    assert _rows(second) == ["c012", "c013", "c013"]
    assert sorted(_rows(first) + _rows(second)) == sorted(f"c{i:03d}" for i in range(14) for _ in range(2))
    # the page links keep the filters (every key matches "c0": still two pages)
    filtered = auth_client.get(url, {"q": "c0"}).content.decode()
    assert f'href="{url}?q=c0&amp;page=2"' in filtered
    assert f'hx-get="{url}?q=c0&amp;page=2"' in filtered


def test_results_filters_narrow_the_rows(auth_client, finished_run):
    url = reverse("evaluations:run-results", args=[finished_run.pk])
    results = Result.objects.filter(arm__run=finished_run)
    errors = results.exclude(error="")
    assert errors.count() == 2 and set(errors.values_list("case__key", flat=True)) == {"c007"}
    passed = results.filter(passed=True)
    failed = results.filter(passed=False, error="")
    assert passed.exists() and failed.exists()

    def keys(**params):
        html = auth_client.get(url, {**params, "page": 1}).content.decode()
        # all pages of the filtered rows
        out = _rows(html)
        page = 2
        while f"page={page}" in html:
            html = auth_client.get(url, {**params, "page": page}).content.decode()
            out += _rows(html)
            page += 1
        return sorted(out)

    assert keys(outcome="error") == ["c007", "c007"]
    assert keys(outcome="pass") == sorted(passed.values_list("case__key", flat=True))
    assert keys(outcome="fail") == sorted(failed.values_list("case__key", flat=True))
    assert "c007" not in keys(outcome="pass") + keys(outcome="fail")
    arm = finished_run.arms.get(position=1)
    assert keys(arm=arm.pk) == [f"c{i:03d}" for i in range(14)]
    assert keys(arm=arm.pk, outcome="error") == ["c007"]
    assert keys(q="c012") == ["c012", "c012"]
    none = auth_client.get(url, {"q": "no-such-thing"}).content.decode()
    assert _rows(none) == [] and "No results match these filters." in none


def test_an_htmx_request_gets_only_the_results_table(auth_client, finished_run):
    url = reverse("evaluations:run-results", args=[finished_run.pk])
    html = auth_client.get(url, {"outcome": "error"}, HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in html and "<header" not in html
    # The table refreshes itself with the same filters when the live run page asks it to.
    expected = f'<div id="results" hx-get="/runs/{finished_run.pk}/results/?outcome=error"'
    assert html.strip().startswith(expected)
    assert _rows(html) == ["c007", "c007"]
    assert 'hx-target="#results"' in html


# --- cancel ---------------------------------------------------------------------------------------


def test_post_cancels_a_queued_run(auth_client, endpoint, task_queue):
    run = _run(_suite(2), [(endpoint, strategy("plain"))], task_queue, drain=False)
    response = auth_client.post(reverse("evaluations:run-cancel", args=[run.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("evaluations:run-detail", args=[run.pk])
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED and run.finished_at is not None
    page = auth_client.get(response["Location"]).content.decode()
    assert f"Run #{run.pk} cancelled." in page and "Cancelled" in page
    task_queue.drain()  # the start message arrives after the cancel: nothing runs
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED and not Result.objects.exists()


def test_cancel_is_post_only(auth_client, endpoint, task_queue):
    run = _run(_suite(2), [(endpoint, strategy("plain"))], task_queue, drain=False)
    assert auth_client.get(reverse("evaluations:run-cancel", args=[run.pk])).status_code == 405
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED


def test_cancelling_a_finished_run_changes_nothing(auth_client, endpoint, task_queue):
    run = _run(_suite(2), [(endpoint, strategy("plain"))], task_queue)
    response = auth_client.post(reverse("evaluations:run-cancel", args=[run.pk]), follow=True)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert "had already finished" in response.content.decode()


def test_an_unknown_run_is_404(auth_client):
    assert auth_client.get(reverse("evaluations:run-detail", args=[999])).status_code == 404
    assert auth_client.get(reverse("evaluations:run-live", args=[999])).status_code == 404


def test_suite_settings_are_saved_from_the_suite_page(auth_client, db):

    suite = Suite.objects.create(name="s")
    url = reverse("evaluations:suite-settings", args=[suite.pk])
    data = {"description": "d", "quality_target": "0.9", "pass_threshold": "0.7", "monthly_volume": "500"}
    assert auth_client.post(url, data).status_code == 302
    suite.refresh_from_db()
    assert (suite.quality_target, suite.pass_threshold, suite.monthly_volume) == (0.9, 0.7, 500)
    bad = auth_client.post(url, {**data, "quality_target": "1.5"}, follow=True)
    assert "Settings not saved" in bad.content.decode()
    suite.refresh_from_db()
    assert suite.quality_target == 0.9


def test_an_oversized_upload_is_refused_before_it_is_read(auth_client, settings, db):

    settings.FTVP_MAX_UPLOAD_BYTES = 1024
    big = SimpleUploadedFile("big.csv", b"input,expected\n" + b"x,y\n" * 40_000)
    response = auth_client.post(reverse("evaluations:suite-upload"), {"name": "big", "file": big})
    assert response.status_code == 413
    assert "larger than the limit" in response.content.decode()
    assert not Suite.objects.exists()


def test_a_non_numeric_version_parameter_shows_the_latest_version(auth_client, db):

    suite = Suite.objects.create(name="s")
    assert (
        auth_client.get(reverse("evaluations:suite-detail", args=[suite.pk]), {"version": "abc"}).status_code
        == 200
    )


def test_suite_default_assertions_are_validated_and_saved(auth_client, db):
    suite = Suite.objects.create(name="s")
    url = reverse("evaluations:suite-settings", args=[suite.pk])
    data = {"description": "", "quality_target": "0.8", "pass_threshold": "0.8", "monthly_volume": "10"}
    bad = auth_client.post(url, {**data, "default_assertions": '[{"type": "nonsense"}]'}, follow=True)
    assert "unknown assertion type" in bad.content.decode()
    suite.refresh_from_db()
    assert suite.default_assertions == []
    auth_client.post(url, {**data, "default_assertions": '[{"type": "icontains", "value": "Paris"}]'})
    suite.refresh_from_db()
    assert suite.default_assertions == [{"type": "icontains", "value": "Paris"}]
