"""The decision page: the verdict with its evidence, the editable profile and costs, the calculator."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from evaluations.analysis.costs import calculator
from evaluations.models import Endpoint, Suite
from tests.factories import EndpointFactory
from tests.runs import ArmSpec, endpoints, finished_run, scores_with_mean, suite_version

N = 100


@pytest.fixture
def decided(db):
    """Few-shot meets the target; a fine-tune that costs $100,000 to train meets it too."""
    version = suite_version(test_cases=N, train_cases=10, quality_target=0.8, monthly_volume=100_000)
    base, tuned = endpoints(training_cost=100_000)
    run = finished_run(
        version,
        [
            ArmSpec(base, "zero-shot", scores_with_mean(N, 60), prompt_tokens=80),
            ArmSpec(base, "few-shot", scores_with_mean(N, 90), prompt_tokens=600),
            ArmSpec(tuned, "plain", scores_with_mean(N, 92), prompt_tokens=40),
        ],
    )
    return version.suite, run, tuned


def _page(client, suite, **params):
    return client.get(reverse("evaluations:suite-decision", args=[suite.pk]), params)


def test_the_page_needs_a_login(client, decided):
    suite, _, _ = decided
    response = _page(client, suite)
    assert response.status_code == 302 and "/login" in response["Location"]


def test_the_page_shows_the_verdict_its_evidence_the_ladder_and_the_costs(auth_client, decided):
    suite, run, _ = decided
    response = _page(auth_client, suite)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-verdict="prompting-enough"' in html
    assert "Prompting is enough" in html
    assert "base-model · few-shot meets the target" in html
    assert "also meets the target but costs" in html
    # The ladder, the cost table and the break-even section.
    assert html.count("<td>Zero-shot</td>") == 1 and "<td>Fine-tuned</td>" in html
    assert "$0.00061" in html  # few-shot per request: 600 x $1 + 5 x $2 per 1M tokens
    assert "does not pay back" in html
    # The charts' data reaches the script through json_script.
    data = json.loads(re.search(r'id="decision-data" type="application/json">(.*?)</script>', html).group(1))
    assert data["target"] == 0.8
    assert {p["label"] for p in data["points"]} == {
        "base-model · zero-shot",
        "base-model · few-shot",
        "tuned-model · plain",
    }
    assert data["curves"]["prompting"][0] == [0.0, 0.0]
    assert f'href="/runs/{run.pk}/"' in html


def test_saving_the_profile_recomputes_the_decision(auth_client, decided):
    suite, run, _ = decided
    url = reverse("evaluations:suite-decision-profile", args=[suite.pk])
    form = {
        "quality_target": "0.8",
        "monthly_volume": "100000000",  # a thousand times the volume: the fine-tune now pays back
        "horizon_months": "12",
        "retrains_per_year": "0",
        "examples_available": "",
        "training_price_per_1m": "3",
        "training_epochs": "3",
        "urgency": "later",
        "monthly_budget": "",
        "run": str(run.pk),
    }
    response = auth_client.post(url, form)
    assert response.status_code == 302 and response["Location"].endswith(f"?run={run.pk}")
    suite.refresh_from_db()
    assert suite.monthly_volume == 100_000_000 and suite.urgency == "later"
    html = _page(auth_client, suite).content.decode()
    assert 'data-verdict="fine-tune-for-cost"' in html


def test_a_bad_profile_is_refused_with_the_field_and_nothing_changes(auth_client, decided):
    suite, _, _ = decided
    url = reverse("evaluations:suite-decision-profile", args=[suite.pk])
    response = auth_client.post(url, {"quality_target": "1.5", "monthly_volume": "-3"}, follow=True)
    html = response.content.decode()
    assert "Profile not saved" in html and "quality_target" in html and "monthly_volume" in html
    suite.refresh_from_db()
    assert suite.quality_target == 0.8 and suite.monthly_volume == 100_000


def test_the_fine_tuned_endpoints_costs_are_edited_on_the_page(auth_client, decided):
    suite, _, tuned = decided
    url = reverse("evaluations:suite-decision-endpoint", args=[suite.pk, tuned.pk])
    p = f"e{tuned.pk}-"
    form = {p + "price_in": "1", p + "price_out": "2", p + "price_hour": "0", p + "hosting_monthly": "0"}
    auth_client.post(url, {**form, p + "training_cost": "50"})
    tuned.refresh_from_db()
    assert float(tuned.training_cost) == 50
    assert 'data-verdict="fine-tune-for-cost"' in _page(auth_client, suite).content.decode()
    # Empty means unknown: the cost is then estimated from the train split.
    auth_client.post(url, {**form, p + "training_cost": ""})
    tuned.refresh_from_db()
    assert tuned.training_cost is None
    assert "(estimated)" in _page(auth_client, suite).content.decode()
    # A negative price is refused and nothing is stored.
    response = auth_client.post(url, {**form, p + "price_in": "-1", p + "training_cost": "7"}, follow=True)
    assert "Costs of tuned-model not saved" in response.content.decode()
    tuned.refresh_from_db()
    assert tuned.training_cost is None and float(tuned.price_in) == 1


def test_a_run_that_is_not_the_suites_falls_back_to_the_latest_with_a_message(auth_client, decided):
    suite, run, _ = decided
    html = _page(auth_client, suite, run="999999").content.decode()
    assert "is not a finished run of" in html
    assert 'data-verdict="prompting-enough"' in html
    assert _page(auth_client, suite, run=str(run.pk)).status_code == 200


def test_a_suite_without_runs_shows_an_empty_state(auth_client, db):
    suite = Suite.objects.create(name="fresh")
    html = _page(auth_client, suite).content.decode()
    assert 'data-verdict="no-evidence"' in html and "Start a run" in html
    assert "The checklist, by hand" in html


def test_names_with_markup_are_shown_as_text(auth_client, db):
    version = suite_version(test_cases=N, quality_target=0.8)
    Suite.objects.filter(pk=version.suite.pk).update(name="<script>alert(1)</script>")
    base, _ = endpoints()
    Endpoint.objects.filter(pk=base.pk).update(name="<img src=x onerror=alert(2)>")
    base.refresh_from_db()
    finished_run(version, [ArmSpec(base, "few-shot", scores_with_mean(N, 90))])
    html = _page(auth_client, version.suite).content.decode()
    assert "<script>alert(1)</script>" not in html and "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html


def test_the_calculator_page_reproduces_the_textbook_example(auth_client, db):
    params = {
        "tokens_saved": "500",
        "requests_per_month": "100000",
        "price_per_1k_tokens": "0.002",
        "training_cost": "50",
    }
    html = auth_client.get(reverse("evaluations:breakeven"), params).content.decode()
    assert re.search(r'data-field="monthly_saving">\$100\.00<', html)
    assert "50,000 requests, 0.50 months (15.2 days)" in html
    # htmx gets the result alone; bad input is reported in it.
    fragment = auth_client.get(reverse("evaluations:breakeven"), params, HTTP_HX_REQUEST="true")
    assert b"<html" not in fragment.content and b"15.2 days" in fragment.content
    bad = auth_client.get(
        reverse("evaluations:breakeven"), {**params, "tokens_saved": "-5"}, HTTP_HX_REQUEST="true"
    )
    assert bad.status_code == 200 and b"tokens_saved" in bad.content
    assert (
        auth_client.get(reverse("evaluations:breakeven"), {**params, "training_cost": "x"}).status_code == 400
    )


def test_only_the_suites_own_endpoints_are_edited_from_its_page(auth_client, decided):
    suite, _, _ = decided
    stranger = EndpointFactory(name="someone-elses")
    url = reverse("evaluations:suite-decision-endpoint", args=[suite.pk, stranger.pk])
    p = f"e{stranger.pk}-"
    form = {p + "price_in": "9", p + "price_out": "9", p + "price_hour": "0", p + "hosting_monthly": "0"}
    assert auth_client.post(url, form).status_code == 404
    stranger.refresh_from_db()
    assert float(stranger.price_in) == 1


def test_the_calculator_on_the_page_starts_from_the_measured_break_even(auth_client, decided):
    suite, _, tuned = decided
    Endpoint.objects.filter(pk=tuned.pk).update(training_cost=50)
    response = _page(auth_client, suite)
    form = response.context["calc_form"]
    be = response.context["d"].break_even
    calc = calculator(**{k: float(v) for k, v in form.initial.items()})
    assert calc["break_even_requests"] == pytest.approx(be["break_even_requests"], rel=1e-6)
    assert calc["monthly_saving"] == pytest.approx(be["monthly_saving"], rel=1e-6)


def test_the_page_shows_the_selection_rule_and_the_rungs_not_measured(auth_client, db):
    version = suite_version(test_cases=N, train_cases=600, quality_target=0.8)
    base, tuned = endpoints()
    finished_run(
        version,
        [
            ArmSpec(base, "zero-shot", scores_with_mean(N, 40), prompt_tokens=80),
            ArmSpec(base, "few-shot", scores_with_mean(N, 55), prompt_tokens=600),
            ArmSpec(tuned, "plain", scores_with_mean(N, 92), prompt_tokens=40),
        ],
    )
    html = _page(auth_client, version.suite).content.decode()
    assert 'data-verdict="fine-tune"' in html
    assert re.search(r'id="selection">Arms picked on \d+ cases, reported on the other \d+', html)
    caveats = html.split('<ul class="caveats">')[1].split("</ul>")[0]
    assert (
        "Retrieval (RAG), chain-of-thought" in caveats and "few-shot (nearest) were not measured" in caveats
    )
