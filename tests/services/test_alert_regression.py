"""The acceptance test of alerts: a loopback OpenAI-compatible endpoint whose accuracy drops from 90% to
70% between two runs produces a regression finding, an e-mail and a webhook POST with the run's link,
and `evaluate --fail-on-regression` exits 1; unchanged behaviour over 20 runs at temperature 0 produces
no finding and no alert."""

from __future__ import annotations

import io
import random

import pytest
from django.core import mail
from django.core.management import CommandError, call_command

from evaluations.models import AlertDelivery, Finding, FindingKind, Run
from evaluations.services.alerts import alert_channel_create
from evaluations.services.findings import baseline_set
from evaluations.services.runs import run_create
from tests.factories import CaseFactory, EndpointFactory, SuiteVersionFactory, strategy

LABELS = ("positive", "negative")
N = 200


def _regression_mails() -> list:
    return [m for m in mail.outbox if "regression" in m.subject]


def _regression_posts(webhook) -> list:
    return [r for r in webhook.received if r.json["finding"]["kind"] == "regression"]


@pytest.fixture
def alerting(db, fake_openai, task_queue, settings, webhook, monkeypatch):
    """A classification suite, an endpoint on the loopback server whose right answers each run sets,
    an e-mail channel and a webhook channel on a loopback receiver."""
    settings.FTVP_BATCH_SIZE = 100
    settings.FTVP_BASE_URL = "https://ftvp.example.org"
    version = SuiteVersionFactory(
        suite__name="reviews", suite__task_type="classification", labels=list(LABELS)
    )
    for i in range(N):
        CaseFactory(version=version, key=f"r{i:03d}", position=i, input=f"review {i}", expected=LABELS[i % 2])
    endpoint = EndpointFactory(
        name="model", model="model", base_url=fake_openai.base_url, params={"temperature": 0}
    )
    monkeypatch.setenv("FTVP_TEAM_HOOK", webhook.url)
    alert_channel_create(name="team-mail", kind="email", recipients="ml-team@example.org")
    alert_channel_create(name="team-hook", kind="webhook", url_env="FTVP_TEAM_HOOK", suite=version.suite)

    def run_with(right: set[int]) -> Run:
        def answer(body):
            i = int(body["messages"][-1]["content"].split()[1])
            return LABELS[i % 2] if i in right else LABELS[1 - i % 2]

        fake_openai.responder = answer
        run = run_create(suite_version=version, arms=[(endpoint, strategy("plain"))], use_cache=False)
        task_queue.drain()  # the run, its scoring, its findings and the alerts they send
        run.refresh_from_db()
        return run

    return version, run_with


def test_a_drop_from_90_to_70_percent_alerts_by_mail_and_webhook_and_fails_the_ci_gate(
    alerting, webhook, task_queue, monkeypatch
):
    version, run_with = alerting
    rng = random.Random(4)
    good = set(rng.sample(range(N), 180))  # 90% right
    baseline = run_with(good)
    baseline_set(suite=version.suite, run=baseline)
    assert mail.outbox == [] and webhook.received == []

    run = run_with(set(rng.sample(sorted(good), 140)))  # 70% right

    # (Other kinds of finding, e.g. output drift, may come with it; this test follows the regression.)
    finding = Finding.objects.get(run=run, kind=FindingKind.REGRESSION)
    assert finding.severity == "critical"
    run_link = f"https://ftvp.example.org/runs/{run.pk}/"
    (message,) = _regression_mails()
    assert message.to == ["ml-team@example.org"]
    assert "Critical regression in reviews" in message.subject
    assert run_link in message.body and "fell from 0.900 to 0.700" in message.body
    (post,) = _regression_posts(webhook)
    assert post.status == 200
    assert post.json["run_url"] == run_link and post.json["finding"]["id"] == finding.pk
    assert "fell from 0.900 to 0.700" in post.json["finding"]["title"]
    assert sorted(finding.deliveries.values_list("channel__name", "status")) == [
        ("team-hook", "sent"),
        ("team-mail", "sent"),
    ]

    def wait_in_process(self, run, *, timeout):  # the task queue stands in for the worker
        task_queue.drain()
        return Run.objects.get(pk=run.pk)

    monkeypatch.setattr("evaluations.management.commands.evaluate.Command._wait", wait_in_process)
    with pytest.raises(CommandError) as caught:
        call_command(
            "evaluate", "--suite", "reviews", "--arm", "model:plain", "--wait", "--no-cache",
            "--fail-on-regression", stdout=io.StringIO(), stderr=io.StringIO(),
        )  # fmt: skip
    assert caught.value.returncode == 1 and "fell from 0.900 to 0.700" in str(caught.value)
    # The CI run regressed too: its finding was sent like any other.
    assert len(_regression_mails()) == 2 and len(_regression_posts(webhook)) == 2


def test_unchanged_behaviour_over_20_runs_at_temperature_0_raises_no_finding_and_no_alert(alerting, webhook):
    version, run_with = alerting
    right = set(random.Random(5).sample(range(N), 180))
    baseline_set(suite=version.suite, run=run_with(right))
    runs = [run_with(right) for _ in range(20)]
    assert all(r.status == "succeeded" for r in runs)
    assert not Finding.objects.exists()
    assert not AlertDelivery.objects.exists()
    assert mail.outbox == [] and webhook.received == []
