"""Shadow evaluation through its page, its API and `manage.py shadow`: start, see the agreement and
the daily chart data, pause; roles; errors naming the field."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from evaluations.models import AuditEvent, ShadowConfig, ShadowPair
from evaluations.services.tokens import api_token_create
from tests.factories import EndpointFactory, SuiteFactory, UserFactory
from tests.services.test_shadow import candidate_model, record


@pytest.fixture(autouse=True)
def settled_at_once(monkeypatch):
    monkeypatch.setattr("evaluations.services.shadow.SETTLE_SECONDS", 0)


@pytest.fixture
def endpoints(db, fake_openai):
    fake_openai.responder = candidate_model
    live = EndpointFactory(name="live", price_in=10, price_out=30)
    candidate = EndpointFactory(name="candidate", base_url=fake_openai.base_url)
    SuiteFactory(name="support", default_assertions=[{"type": "equals"}])
    return live, candidate


def test_the_page_starts_a_shadow_then_shows_its_agreement_and_chart(client, endpoints, task_queue):
    live, candidate = endpoints
    client.force_login(UserFactory(username="lead", roles=["admin"]))
    assert "No shadow yet" in client.get("/shadows/").content.decode()
    response = client.post("/shadows/", {"name": "small", "live_endpoint": live.pk, "candidate": candidate.pk,
                                         "share": 1, "compare": "assertions",
                                         "suite": SuiteFactory._meta.model.objects.get().pk})  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:1000]
    config = ShadowConfig.objects.get()
    for n in range(10):
        record(live, n)
    call_command("shadow", "run", "small", stdout=io.StringIO())
    assert ShadowPair.objects.count() == 10
    page = client.get(f"/shadows/{config.pk}/").content.decode()
    assert "0.700" in page and 'id="shadow-data"' in page and "different 1" in page
    assert "0.700" in client.get("/shadows/").content.decode()
    client.post(f"/shadows/{config.pk}/enabled/", {"enabled": "0"})
    config.refresh_from_db()
    assert not config.enabled and AuditEvent.objects.filter(action="shadow.pause").exists()
    same = {
        "name": "same",
        "live_endpoint": live.pk,
        "candidate": live.pk,
        "share": 1,
        "compare": "assertions",
    }
    bad = client.post("/shadows/", same)
    assert bad.status_code == 400 and "it is the live endpoint" in bad.content.decode()


def test_a_viewer_reads_but_may_not_start_one(client, endpoints):
    live, candidate = endpoints
    client.force_login(UserFactory(username="viewer", roles=["viewer"]))
    assert client.get("/shadows/").status_code == 200
    response = client.post("/shadows/", {"name": "x", "live_endpoint": live.pk, "candidate": candidate.pk})
    assert response.status_code == 403 and not ShadowConfig.objects.exists()


def test_the_api_and_the_command(client, endpoints, task_queue):
    live, _candidate = endpoints
    user = UserFactory(username="api", roles=["editor"])
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {api_token_create(user=user, name='t')[1]}"
    body = {"name": "api", "live_endpoint": "live", "candidate": "candidate", "share": 0.5}
    created = client.post("/api/v1/shadows/", body, content_type="application/json")
    assert created.status_code == 201, created.json()
    assert created.json()["summary"]["pairs"] == 0 and created.json()["enabled"] is True
    for n in range(40):
        record(live, n)
    call_command("shadow", "run", "api", stdout=io.StringIO())
    detail = client.get(f"/api/v1/shadows/{created.json()['id']}/").json()
    assert (
        0 < detail["summary"]["pairs"] < 40
        and detail["summary"]["daily"][0]["pairs"] == detail["summary"]["pairs"]
    )
    paused = client.post(f"/api/v1/shadows/{created.json()['id']}/enabled/", {"enabled": False},
                         content_type="application/json")  # fmt: skip
    assert paused.status_code == 200 and paused.json()["enabled"] is False
    bad = client.post("/api/v1/shadows/", {"name": "b", "live_endpoint": "nowhere", "candidate": "candidate"},
                      content_type="application/json")  # fmt: skip
    assert bad.status_code == 400 and "live_endpoint: no endpoint named 'nowhere'" in bad.json()["detail"]
    out = io.StringIO()
    call_command("shadow", "report", "api", "--json", stdout=out)
    assert json.loads(out.getvalue())["pairs"] == detail["summary"]["pairs"]
    listed = io.StringIO()
    call_command("shadow", "list", stdout=listed)
    assert "api: live -> candidate (50%, assertions, paused)" in listed.getvalue()
    with pytest.raises(CommandError, match="is paused") as failed:
        call_command("shadow", "run", "api", stdout=io.StringIO())
    assert failed.value.returncode == 2
    with pytest.raises(CommandError, match="--candidate 'ghost': no such endpoint"):
        call_command("shadow", "create", "c", "--live", "live", "--candidate", "ghost", stdout=io.StringIO())
