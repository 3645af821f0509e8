"""HTML/JS in model outputs, case inputs, names and comments is shown as text on every page.

A run whose every user- or model-supplied text carries a payload (tests/hostile.py) is shown on each
page that shows it: the raw markup never appears, the escaped text does (HTML-escaped in the page,
\\u003C-escaped inside json_script blocks). The API answers JSON (the text as it is) that a browser
never renders as HTML (application/json with nosniff)."""

from __future__ import annotations

import html
import json

import pytest
from django.urls import reverse

from evaluations.models import AlertChannel, Arm, Finding, FineTuneJob, Result, Schedule, SignOff
from tests.factories import UserFactory
from tests.hostile import FORBIDDEN, seed_hostile_run

pytestmark = pytest.mark.django_db


def _escaped_forms(text: str) -> tuple[str, str]:
    """How a text looks once escaped: in HTML (Django's escape), and inside a json_script block."""
    in_json = json.dumps(text)[1:-1].replace("<", "\\u003C").replace(">", "\\u003E").replace("&", "\\u0026")
    return html.escape(text, quote=True), in_json


@pytest.fixture
def hostile(db):
    return seed_hostile_run()


@pytest.fixture
def admin_client(client, db):
    client.force_login(
        UserFactory(username="hostile-viewer-admin", roles=["admin"], is_staff=True, is_superuser=True)
    )
    return client


def _pages(run) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Page -> (address, texts that page must show, escaped)."""
    suite = run.suite_version.suite
    arms = list(Arm.objects.filter(run=run).select_related("endpoint", "strategy").order_by("position"))
    result = Result.objects.filter(arm=arms[1]).order_by("case__position").first()
    error = Result.objects.filter(arm__run=run).exclude(error="").get().error
    review = result.reviews.get()
    finding = Finding.objects.get(run=run)
    job = FineTuneJob.objects.get(suite_version=run.suite_version)
    schedule = Schedule.objects.get(suite=suite)
    signoff = SignOff.objects.get(run=run)
    approval = signoff.approvals.get()
    channel = AlertChannel.objects.order_by("-pk").first()
    base, tuned, strategy = arms[0].endpoint, arms[2].endpoint, arms[1].strategy
    key, source = result.case.key, run.suite_version.source_name
    arm_names = (base.name, tuned.name, strategy.name)
    compare = reverse("evaluations:compare") + "?" + "&".join(f"arm={a.pk}" for a in arms)
    suite_url = reverse("evaluations:suite-detail", args=[suite.pk])
    results_url = reverse("evaluations:run-results", args=[run.pk])
    return {
        "home": (reverse("evaluations:home"), (suite.name,)),
        "suite list": (reverse("evaluations:suite-list"), (suite.name,)),
        "suite detail": (suite_url, (suite.name, schedule.name, key, source, review.comment)),
        "suite detail, train split": (suite_url + "?split=train", (suite.name, source)),
        "decision": (reverse("evaluations:suite-decision", args=[suite.pk]), (suite.name, *arm_names)),
        "trends": (reverse("evaluations:suite-trends", args=[suite.pk]), (suite.name, *arm_names)),
        "breakeven": (reverse("evaluations:breakeven"), ()),
        "run list": (reverse("evaluations:run-list"), (suite.name,)),
        "run new": (reverse("evaluations:run-new"), (suite.name, *arm_names)),
        "run detail": (
            reverse("evaluations:run-detail", args=[run.pk]),
            (suite.name, *arm_names, signoff.note, approval.comment),
        ),
        "run live": (reverse("evaluations:run-live", args=[run.pk]), arm_names),
        "run results": (results_url, (*arm_names, result.output, error, key, review.comment)),
        "run results, errors": (results_url + "?outcome=error", (error,)),
        "compare": (compare, (*arm_names, key, error)),
        "compare, cases": (compare + "&view=cases", (key,)),
        "findings": (reverse("evaluations:finding-list") + "?show=all", (suite.name, finding.title)),
        "finding detail": (
            reverse("evaluations:finding-detail", args=[finding.pk]),
            (suite.name, finding.title, finding.comment),
        ),
        "signoffs": (reverse("evaluations:signoff-list"), (suite.name, signoff.note)),
        "audit": (reverse("evaluations:audit-list"), (suite.name, base.name, review.comment, source)),
        "review next": (reverse("evaluations:run-review", args=[run.pk]), (suite.name,)),
        "review result": (
            reverse("evaluations:run-review-result", args=[run.pk, result.pk]),
            (suite.name, result.output, key, review.corrected_output),
        ),
        "review summary": (reverse("evaluations:run-review-summary", args=[run.pk]), arm_names),
        "schedule edit": (
            reverse("evaluations:schedule-edit", args=[schedule.pk]),
            (schedule.name, *arm_names),
        ),
        "endpoints": (reverse("evaluations:endpoint-list"), (base.name, tuned.name)),
        "finetunes": (reverse("evaluations:finetune-list"), (suite.name, base.name)),
        "finetune detail": (reverse("evaluations:finetune-detail", args=[job.pk]), (suite.name, job.error)),
        "finetune live": (reverse("evaluations:finetune-live", args=[job.pk]), (job.error,)),
        "alerts": (reverse("evaluations:alert-list"), (channel.name,)),
        "team": (reverse("evaluations:team"), ()),
        "admin suites": ("/admin/evaluations/suite/", (suite.name,)),
        "admin cases": ("/admin/evaluations/case/", (key,)),
        "admin runs": ("/admin/evaluations/run/", (suite.name,)),
        "admin endpoints": ("/admin/evaluations/endpoint/", (base.name, tuned.name)),
        "admin result": (f"/admin/evaluations/result/{result.pk}/change/", (result.output, key)),
    }


def test_every_page_shows_hostile_text_as_text(admin_client, hostile):
    run, _ = hostile
    failures = []
    for page, (url, texts) in _pages(run).items():
        response = admin_client.get(url, follow=True)
        if response.status_code != 200:
            failures.append(f"{page} ({url}): status {response.status_code}")
            continue
        body = response.content.decode()
        for raw in FORBIDDEN:
            if raw in body:
                at = body.index(raw)
                failures.append(f"{page} ({url}): raw {raw!r} in …{body[max(0, at - 150) : at + 80]}…")
        for text in texts:
            if not any(form in body for form in _escaped_forms(text)):
                failures.append(f"{page} ({url}): {text!r} is not shown (escaped)")
    assert not failures, "\n".join(failures)


def test_the_api_serves_hostile_text_as_json_never_as_html(admin_client, hostile):
    run, payloads = hostile
    suite = run.suite_version.suite
    urls = [
        "/api/v1/suites/",
        f"/api/v1/suites/{suite.pk}/",
        f"/api/v1/suites/{suite.pk}/decision",
        "/api/v1/runs/",
        f"/api/v1/runs/{run.pk}/",
        f"/api/v1/runs/{run.pk}/reviews/",
        "/api/v1/findings/",
        "/api/v1/schedules/",
        "/api/v1/endpoints/",
        "/api/v1/strategies/",
        "/api/runs/",
        f"/api/runs/{run.pk}/",
    ]
    for url in urls:
        response = admin_client.get(url, HTTP_ACCEPT="application/json")
        assert response.status_code == 200, (url, response.status_code)
        assert response["Content-Type"].startswith("application/json"), url
        assert response["X-Content-Type-Options"] == "nosniff", url
        text = json.dumps(response.json(), ensure_ascii=False)
        assert any(p in text for p in payloads), f"{url}: none of the texts"
    # The browsable API (an HTML page) escapes them like any other page.
    response = admin_client.get(f"/api/v1/runs/{run.pk}/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    body = response.content.decode()
    assert not [raw for raw in FORBIDDEN if raw in body]
    assert html.escape(run.suite_version.suite.name) in body


def test_downloads_are_attachments_with_nosniff(admin_client, hostile):
    run, payloads = hostile
    suite = run.suite_version.suite
    for url in (
        reverse("evaluations:run-export-csv", args=[run.pk]),
        reverse("evaluations:run-export-jsonl", args=[run.pk]),
        reverse("evaluations:run-export-finetune", args=[run.pk]),
        reverse("evaluations:run-export-reviewed", args=[run.pk]),
        reverse("evaluations:suite-finetune-export", args=[suite.pk]),
    ):
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert response["Content-Disposition"].startswith("attachment;"), url
        assert response["X-Content-Type-Options"] == "nosniff", url
        assert not response["Content-Type"].startswith("text/html"), url
        body = (
            b"".join(response.streaming_content).decode() if response.streaming else response.content.decode()
        )
        assert any(p in body or json.dumps(p)[1:-1] in body for p in payloads), (
            f"{url}: the texts are missing"
        )
