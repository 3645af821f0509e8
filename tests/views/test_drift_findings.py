"""The finding page shows a drift finding's evidence (AUC, centroid, shifts, reasons) and a trend
finding's series."""

from __future__ import annotations

from django.urls import reverse

from evaluations.models import Finding, FindingKind
from evaluations.services.drift import run_drift
from evaluations.services.findings import baseline_set
from tests.factories import EndpointFactory
from tests.runs import scores_with_mean
from tests.runs import suite_version as make_version
from tests.services.test_drift import N, finished, short, verbose


def test_a_drift_finding_shows_its_evidence(auth_client):
    version = make_version(test_cases=N)
    endpoint = EndpointFactory(name="model")
    scores = scores_with_mean(N, 34)
    baseline = finished(version, endpoint, outputs=[short(i) for i in range(N)], scores=scores, day=0)
    baseline_set(suite=version.suite, run=baseline)
    run = finished(version, endpoint, outputs=[verbose(i) for i in range(N)], scores=scores, day=1)
    (finding,) = run_drift(run=run)
    page = auth_client.get(reverse("evaluations:finding-detail", args=[finding.pk])).content.decode()
    assert "Output drift" in page and "Classifier AUC" in page and "Centroid distance" in page
    assert "a silent model update behind the endpoint" in page
    assert "Output length went from" in page and "<strong>shifted</strong>" in page
    assert f"arm={finding.details['baseline_arm']}&amp;arm={finding.arm_id}" in page


def test_a_trend_finding_lists_the_runs_it_saw(auth_client):
    version = make_version(test_cases=N)
    endpoint = EndpointFactory(name="model")
    runs = [
        finished(version, endpoint, outputs=[short(i) for i in range(N)],
                 scores=scores_with_mean(N, 36 - 2 * day), day=day)
        for day in range(8)
    ]  # fmt: skip
    (finding,) = run_drift(run=runs[-1])
    assert finding.kind == FindingKind.TREND
    page = auth_client.get(reverse("evaluations:finding-detail", args=[finding.pk])).content.decode()
    assert "Score trend" in page and "Mann-Kendall over the last 8 runs" in page
    for run in runs:
        assert reverse("evaluations:run-detail", args=[run.pk]) in page


def test_the_finding_page_needs_a_login(client, db):
    version = make_version(test_cases=N)
    endpoint = EndpointFactory(name="model")
    runs = [
        finished(version, endpoint, outputs=[short(i) for i in range(N)],
                 scores=scores_with_mean(N, 36 - 2 * day), day=day)
        for day in range(8)
    ]  # fmt: skip
    run_drift(run=runs[-1])
    response = client.get(reverse("evaluations:finding-detail", args=[Finding.objects.get().pk]))
    assert response.status_code == 302 and "login" in response["Location"]
