"""The traffic pages and API: charts' data and the table with filters, a call's detail (escaped), the
capture tokens page (token shown once, revoke), traffic -> suite from the page and the API, and who
may do what."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from evaluations.models import AuditEvent, CaptureToken, Result, Run, Suite
from evaluations.selectors.traffic import traffic_summary
from evaluations.services.capture_tokens import capture_token_create
from evaluations.services.tokens import api_token_create, token_hash
from tests import traffic_rows
from tests.factories import EndpointFactory, UserFactory, strategy

pytestmark = pytest.mark.django_db
V1 = "/api/v1"


@pytest.fixture
def traffic(db):
    strategy("plain")
    gpt, local = EndpointFactory(name="gpt"), EndpointFactory(name="local")
    calls = [
        traffic_rows.call(gpt, question=f"q{i}", answer=f"captured answer {i}", tags=["prod"])
        for i in range(6)
    ]
    calls.append(traffic_rows.call(local, question="<script>alert(1)</script>", answer="<b>bold</b>"))
    calls.append(traffic_rows.call(gpt, status=502, error="bad gateway", days_ago=1))
    return {"gpt": gpt, "local": local, "calls": calls}


def _api(client, user) -> object:
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {api_token_create(user=user, name='t')[1]}"
    return client


def test_the_traffic_page_embeds_the_summary_and_lists_the_calls(auth_client, traffic):
    response = auth_client.get(reverse("evaluations:traffic"))
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="traffic-data"' in page and "chart.umd.js" in page and "traffic.js" in page
    start = page.index(">", page.index('id="traffic-data"')) + 1
    embedded = json.loads(page[start : page.index("</script>", start)])
    assert embedded == json.loads(json.dumps(traffic_summary()))
    assert embedded["totals"]["calls"] == 8
    assert page.count('href="/traffic/calls/') == 8
    assert 'id="traffic-to-suite"' in page  # admin may upload suites: the form is there


def test_the_table_filters(auth_client, traffic):
    url = reverse("evaluations:traffic")
    assert auth_client.get(url, {"endpoint": "local"}).content.decode().count('href="/traffic/calls/') == 1
    assert auth_client.get(url, {"status": "error"}).content.decode().count('href="/traffic/calls/') == 1
    assert auth_client.get(url, {"tag": "prod"}).content.decode().count('href="/traffic/calls/') == 6
    bad = auth_client.get(url, {"date_from": "yesterday"})
    assert bad.status_code == 200 and "not a date" in bad.content.decode()


def test_a_call_page_shows_the_request_and_response_escaped(auth_client, traffic):
    call = traffic["calls"][6]
    page = auth_client.get(reverse("evaluations:traffic-call", args=[call.pk])).content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>bold</b>" not in page and "&lt;b&gt;bold&lt;/b&gt;" in page
    assert auth_client.get(reverse("evaluations:traffic-call", args=[999999])).status_code == 404


def test_a_viewer_reads_traffic_but_makes_no_cases_nor_tokens(client, traffic):
    client.force_login(UserFactory(username="vera", roles=["viewer"]))
    page = client.get(reverse("evaluations:traffic")).content.decode()
    assert 'id="traffic-to-suite"' not in page
    assert client.post(reverse("evaluations:traffic-to-suite"), {"suite_name": "x"}).status_code == 403
    assert client.get(reverse("evaluations:capture-token-list")).status_code == 403


def test_the_capture_tokens_page_shows_a_new_token_once_and_revokes(auth_client, traffic):
    url = reverse("evaluations:capture-token-list")
    response = auth_client.post(
        url,
        {"name": "support-bot", "endpoints": [traffic["gpt"].pk], "rate_per_minute": 60, "tags": "prod, eu"},
    )
    assert response.status_code == 200
    row = CaptureToken.objects.get()
    page = response.content.decode()
    start = page.index('<code class="token">') + len('<code class="token">')
    token = page[start : page.index("</code>", start)]
    assert token.startswith("ftvpc_") and row.key_hash == token_hash(token) and row.tags == ["prod", "eu"]
    again = auth_client.get(url).content.decode()
    assert token not in again and row.prefix in again and "gpt" in again
    auth_client.post(reverse("evaluations:capture-token-revoke", args=[row.pk]))
    row.refresh_from_db()
    assert row.revoked_at is not None and "revoked" in auth_client.get(url).content.decode()
    assert auth_client.post(url, {"name": "", "endpoints": []}).status_code == 400


def test_traffic_to_suite_from_the_page_goes_to_the_captured_run(auth_client, traffic):
    response = auth_client.post(
        reverse("evaluations:traffic-to-suite"),
        {"suite_name": "from-traffic", "endpoint": "gpt", "sample_size": 10, "seed": "1", "test_share": 0},
    )
    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "evaluations:run-detail", args=[run.pk]
    )
    assert Result.objects.filter(arm__run=run).count() == 6 and run.split == "train"
    assert auth_client.get(response["Location"]).status_code == 200  # the run page of a captured run
    review = auth_client.get(reverse("evaluations:run-review", args=[run.pk]), follow=True)
    assert review.status_code == 200 and "captured answer" in review.content.decode()
    suite = Suite.objects.get(name="from-traffic")
    assert suite.versions.get().cases.count() == 6
    refused = auth_client.post(reverse("evaluations:traffic-to-suite"), {"suite_name": "", "sample_size": 5})
    assert refused.status_code == 400
    nothing = auth_client.post(
        reverse("evaluations:traffic-to-suite"), {"suite_name": "none", "endpoint": "nope", "sample_size": 5,
                                                  "seed": "0", "test_share": 0.2},
    )  # fmt: skip
    assert nothing.status_code == 400 and "no successful chat call" in nothing.content.decode()


# --- API ----------------------------------------------------------------------------------------------


def test_the_api_lists_calls_with_filters_and_pages(client, user, traffic):
    api = _api(client, user)
    body = api.get(f"{V1}/traffic/").json()
    assert body["count"] == 8 and "request" not in body["results"][0]
    assert api.get(f"{V1}/traffic/", {"endpoint": "local"}).json()["count"] == 1
    assert api.get(f"{V1}/traffic/", {"status": "error"}).json()["count"] == 1
    assert api.get(f"{V1}/traffic/", {"tag": "prod", "page_size": 2}).json()["count"] == 6
    assert len(api.get(f"{V1}/traffic/", {"page_size": 3}).json()["results"]) == 3
    assert api.get(f"{V1}/traffic/", {"status": "maybe"}).status_code == 400
    one = api.get(f"{V1}/traffic/{traffic['calls'][0].pk}/").json()
    assert one["request"]["messages"][-1]["content"] == "q0" and one["endpoint"] == "gpt"


def test_the_api_summary_is_the_page_s(client, user, traffic):
    api = _api(client, user)
    assert api.get(f"{V1}/traffic/summary/").json() == json.loads(json.dumps(traffic_summary()))
    by_gpt = api.get(f"{V1}/traffic/summary/", {"endpoint": "gpt", "days": 7}).json()
    assert by_gpt["totals"]["calls"] == 7 and len(by_gpt["days"]) == 7
    assert api.get(f"{V1}/traffic/summary/", {"days": 0}).status_code == 400


def test_the_api_creates_lists_and_revokes_capture_tokens(client, user, traffic):
    api = _api(client, user)
    created = api.post(
        f"{V1}/capture-tokens/",
        {"name": "bot", "endpoints": ["gpt"], "tags": ["prod"]},
        content_type="application/json",
    )
    assert created.status_code == 201
    token = created.json()["token"]
    row = CaptureToken.objects.get()
    assert row.key_hash == token_hash(token) and created.json()["endpoints"] == [
        {"id": traffic["gpt"].pk, "name": "gpt"}
    ]
    listed = api.get(f"{V1}/capture-tokens/").json()
    assert listed["count"] == 1 and "token" not in listed["results"][0] and token not in json.dumps(listed)
    revoked = api.post(f"{V1}/capture-tokens/{row.pk}/revoke/")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert AuditEvent.objects.filter(action="capture_token.revoke").count() == 1
    bad = api.post(
        f"{V1}/capture-tokens/", {"name": "bot", "endpoints": ["nope"]}, content_type="application/json"
    )
    assert bad.status_code == 400 and "endpoints" in bad.json()["detail"]


def test_capture_tokens_need_the_admin_role_in_the_api(client, traffic):
    editor = UserFactory(username="ed", roles=["editor"])
    api = _api(client, editor)
    assert api.get(f"{V1}/capture-tokens/").status_code == 403
    assert (
        api.post(
            f"{V1}/capture-tokens/", {"name": "x", "endpoints": ["gpt"]}, content_type="application/json"
        ).status_code
        == 403
    )
    row, _ = capture_token_create(name="bot", endpoints=["gpt"])
    assert api.post(f"{V1}/capture-tokens/{row.pk}/revoke/").status_code == 403
    assert api.get(f"{V1}/traffic/").status_code == 200


def test_the_api_makes_a_suite_from_traffic(client, user, traffic):
    api = _api(client, user)
    payload = {
        "suite_name": "api-traffic",
        "endpoint": "gpt",
        "sample_size": 4,
        "seed": "3",
        "test_share": 0.0,
    }
    response = api.post(f"{V1}/traffic/to-suite/", payload, content_type="application/json")
    assert response.status_code == 201
    body = response.json()
    assert body["sampled"] == 4 and body["train"] == 4 and body["suite"]["name"] == "api-traffic"
    run = Run.objects.get(pk=body["run"])
    assert run.trigger == "capture" and run.split == "train" and body["arms"][0]["endpoint"] == "gpt"
    assert Result.objects.filter(arm__run=run).count() == 4
    again = api.post(f"{V1}/traffic/to-suite/", {"sample_size": 4}, content_type="application/json")
    assert again.status_code == 400 and "suite" in again.json()["detail"]
    viewer = _api(client, UserFactory(username="vic", roles=["viewer"]))
    assert viewer.post(f"{V1}/traffic/to-suite/", payload, content_type="application/json").status_code == 403


def test_the_traffic_page_and_the_tokens_page_make_a_bounded_number_of_queries(
    auth_client, traffic, django_assert_max_num_queries
):
    for i in range(60):
        traffic_rows.call(traffic["gpt"], question=f"more {i}", tags=[f"t{i % 12}"])
    for i in range(5):
        capture_token_create(name=f"app{i}", endpoints=["gpt", "local"])
    with django_assert_max_num_queries(20):
        assert auth_client.get(reverse("evaluations:traffic")).status_code == 200
    with django_assert_max_num_queries(15):
        assert auth_client.get(reverse("evaluations:capture-token-list")).status_code == 200
