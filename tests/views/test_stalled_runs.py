"""A stalled run on its page, in the run list and in the API: the notice says why, Resume and Cancel
are offered to those who may run, and resuming sends the run's unfinished work again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from evaluations.models import AuditEvent, Batch, Run, RunStatus, WorkerBeat
from evaluations.services.runs import run_create
from evaluations.services.tokens import api_token_create
from tests.factories import CaseFactory, EndpointFactory, SuiteVersionFactory, UserFactory, strategy

NOTICE = 'id="run-stalled"'
WORKER_HINT = "celery -A workers worker -Q llm,scoring"


@pytest.fixture
def stalled(db, task_queue) -> Run:
    """A running run of 3 batches, one generated, whose worker stopped reporting in hours ago."""
    version = SuiteVersionFactory()
    for i in range(12):
        CaseFactory(version=version, key=f"c{i:03d}", position=i, input=f"q{i}", expected=f"a{i}")
    run = run_create(suite_version=version, arms=[(EndpointFactory(), strategy("plain"))])
    task_queue.drain(limit=1)  # started; its batch messages were lost with the worker
    task_queue.sent.clear()
    then = timezone.now() - timedelta(hours=2)  # the tests' FTVP_STALL_SECONDS is an hour
    Run.objects.filter(pk=run.pk).update(created_at=then, started_at=then)
    Batch.objects.filter(pk=run.batches.order_by("index")[0].pk).update(generated_at=then)
    WorkerBeat.objects.create(hostname="gone@h", queues="llm,scoring", last_seen=then)
    return run


def _page(client, run: Run, name: str = "evaluations:run-detail") -> str:
    response = client.get(reverse(name, args=[run.pk]))
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.parametrize("role", ["editor", "admin"])
def test_a_stalled_run_shows_why_and_offers_resume_and_cancel_to_who_may_run(client, stalled, role):
    client.force_login(UserFactory(roles=[role]))
    for name in ("evaluations:run-detail", "evaluations:run-live"):
        html = _page(client, stalled, name)
        assert NOTICE in html and "This run is stalled:" in html
        assert "no worker has reported in for 2\xa0hours" in html
        assert "the run has made no progress since" in html
        assert WORKER_HINT in html  # resuming needs a worker: how to start one
        assert reverse("evaluations:run-resume", args=[stalled.pk]) in html
        assert html.count(reverse("evaluations:run-cancel", args=[stalled.pk])) == 1  # in the notice


@pytest.mark.parametrize("role", ["viewer", "reviewer", "approver"])
def test_roles_that_may_not_run_see_the_notice_without_the_buttons(client, stalled, role):
    client.force_login(UserFactory(roles=[role]))
    html = _page(client, stalled)
    assert NOTICE in html
    assert reverse("evaluations:run-resume", args=[stalled.pk]) not in html
    assert reverse("evaluations:run-cancel", args=[stalled.pk]) not in html
    assert client.post(reverse("evaluations:run-resume", args=[stalled.pk])).status_code == 403


def test_a_run_with_a_live_worker_shows_no_notice_and_keeps_its_cancel_button(client, stalled):
    client.force_login(UserFactory(roles=["editor"]))
    WorkerBeat.objects.create(hostname="alive@h", queues="llm,scoring", last_seen=timezone.now())
    html = _page(client, stalled)
    assert NOTICE not in html
    assert ">stalled</span>" not in client.get(reverse("evaluations:run-list")).content.decode()
    assert reverse("evaluations:run-resume", args=[stalled.pk]) not in html
    assert reverse("evaluations:run-cancel", args=[stalled.pk]) in html


def test_the_run_list_marks_the_stalled_run_only(client, stalled, task_queue):
    client.force_login(UserFactory(roles=["viewer"]))
    fresh = run_create(suite_version=stalled.suite_version, arms=[(EndpointFactory(), strategy("plain"))])
    html = client.get(reverse("evaluations:run-list")).content.decode()
    rows = {run.pk: html.split(f">#{run.pk}</a>")[1].split("</tr>")[0] for run in (stalled, fresh)}
    assert ">stalled</span>" in rows[stalled.pk] and "no worker has reported in" in rows[stalled.pk]
    assert "stalled" not in rows[fresh.pk]  # queued a moment ago: not stalled yet


def test_the_run_list_checks_its_unfinished_runs_in_the_same_few_queries_however_many(client, stalled):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(UserFactory(roles=["viewer"]))
    url = reverse("evaluations:run-list")
    with CaptureQueriesContext(connection) as one:
        client.get(url)
    for _ in range(4):
        run_create(suite_version=stalled.suite_version, arms=[(EndpointFactory(), strategy("plain"))])
    with CaptureQueriesContext(connection) as five:
        assert client.get(url).status_code == 200
    assert len(five.captured_queries) == len(one.captured_queries)


def test_posting_resume_sends_the_unfinished_work_and_says_a_worker_must_run(client, stalled, task_queue):
    client.force_login(UserFactory(username="eddie", roles=["editor"]))
    first, second, third = stalled.batches.order_by("index")
    response = client.post(reverse("evaluations:run-resume", args=[stalled.pk]), follow=True)
    assert response.redirect_chain == [(reverse("evaluations:run-detail", args=[stalled.pk]), 302)]
    assert sorted(task_queue.sent) == sorted(
        [("score_batch", (first.pk,)), ("run_batch", (second.pk,)), ("run_batch", (third.pk,))]
    )
    html = response.content.decode()
    assert f"Run #{stalled.pk} resumed: 3 steps sent to the workers." in html and WORKER_HINT in html
    assert AuditEvent.objects.get(action="run.resume").actor_name == "eddie"
    assert client.get(reverse("evaluations:run-resume", args=[stalled.pk])).status_code == 405


def test_resuming_a_finished_run_is_refused_with_the_reason(client, stalled, task_queue):
    client.force_login(UserFactory(roles=["editor"]))
    Run.objects.filter(pk=stalled.pk).update(status=RunStatus.CANCELLED, finished_at=timezone.now())
    response = client.post(reverse("evaluations:run-resume", args=[stalled.pk]), follow=True)
    html = response.content.decode()
    assert f"Not resumed: run #{stalled.pk} is cancelled: only a queued or running run can be resumed" in html
    assert NOTICE not in html and task_queue.sent == []


def test_the_api_reports_the_stall_and_resumes_the_run(client, stalled, task_queue):
    editor = UserFactory(roles=["editor"])
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {api_token_create(user=editor, name='CI')[1]}"
    detail = client.get(f"/api/v1/runs/{stalled.pk}/").json()
    assert detail["stall"]["reason"].startswith("no worker has reported in for 2\xa0hours")
    assert detail["stall"]["worker_last_seen"] is not None

    response = client.post(f"/api/v1/runs/{stalled.pk}/resume/")
    assert response.status_code == 200 and response.json()["status"] == "running"
    assert sorted(task_queue.names()) == ["run_batch", "run_batch", "score_batch"]

    WorkerBeat.objects.update(last_seen=timezone.now())  # a worker came back: not stalled any more
    assert client.get(f"/api/v1/runs/{stalled.pk}/").json()["stall"] is None
    Run.objects.filter(pk=stalled.pk).update(status=RunStatus.SUCCEEDED, finished_at=timezone.now())
    refused = client.post(f"/api/v1/runs/{stalled.pk}/resume/")
    assert refused.status_code == 409
    assert refused.json()["detail"].startswith(f"run #{stalled.pk} is succeeded: only a queued or running")


def test_the_api_refuses_resume_to_a_viewer(client, stalled, task_queue):
    viewer = UserFactory(roles=["viewer"])
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {api_token_create(user=viewer, name='CI')[1]}"
    assert client.post(f"/api/v1/runs/{stalled.pk}/resume/").status_code == 403
    assert task_queue.sent == []
