"""The capture proxy in process: forwarding, tokens, scope, limits, recording and redaction."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx2
import pytest
from django.db import OperationalError
from django.utils import timezone

from evaluations.models import CaptureToken, TrafficCall
from evaluations.services import traffic
from tests.factories import EndpointFactory
from tests.proxy.conftest import UPSTREAM_KEY, make_token

CHAT = "/proxy/chat/v1/chat/completions"


def direct(upstream, route: str, body: dict) -> httpx2.Response:
    return httpx2.post(
        f"{upstream.base_url}/{route}", json=body, headers={"Authorization": f"Bearer {UPSTREAM_KEY}"}
    )


def test_it_forwards_a_chat_call_unchanged_and_records_it(endpoint, upstream, proxy):
    token, secret = make_token(endpoint, tags=["team:support"])
    body = {
        "model": "fake-model",
        "messages": [{"role": "user", "content": "where is my parcel"}],
        "metadata": {"tags": ["checkout"], "tenant": "acme"},
    }
    answer = proxy.post(CHAT, token=secret, json=body, headers={"X-Ftvp-Tags": "prod, v2"})
    expected = direct(upstream, "chat/completions", body)
    assert answer.status_code == 200
    assert answer.content == expected.content
    for header in ("content-type", "x-request-id", "openai-processing-ms"):
        assert answer.headers[header] == expected.headers[header]
    assert upstream.app.authorizations[0] == f"Bearer {UPSTREAM_KEY}"  # the endpoint's key, not the token
    proxy.close()

    call = TrafficCall.objects.get()
    assert call.call_id == answer.headers["x-ftvp-call-id"]
    assert (call.token_id, call.application, call.endpoint_id, call.endpoint_name) == (
        token.id,
        "support-bot",
        endpoint.id,
        "chat",
    )
    assert call.kind == "chat" and call.model == "fake-model" and call.stream is False and call.status == 200
    assert call.request["messages"] == body["messages"]
    assert call.response == json.loads(expected.content)
    assert (call.prompt_tokens, call.completion_tokens) == (7, 5)
    assert call.cost == pytest.approx((7 * 1 + 5 * 2) / 1_000_000)
    assert call.tags == ["prod", "v2", "checkout", "tenant:acme", "team:support"]
    assert call.latency_ms > 0
    token.refresh_from_db()
    assert token.last_used_at == call.started_at


def test_a_streamed_call_is_passed_through_chunk_by_chunk_and_recorded_assembled(endpoint, upstream, proxy):
    _, secret = make_token(endpoint)
    body = {"model": "fake-model", "stream": True, "messages": [{"role": "user", "content": "one two three"}]}
    answer = proxy.post(CHAT, token=secret, json=body)
    expected = direct(upstream, "chat/completions", body)
    assert answer.status_code == 200
    assert answer.content == expected.content
    assert answer.headers["content-type"].startswith("text/event-stream")
    proxy.close()
    call = TrafficCall.objects.get()
    assert call.stream is True
    assert call.response["choices"][0]["message"]["content"] == "echo: one two three"
    assert (call.prompt_tokens, call.completion_tokens) == (6, 4)


def test_embeddings_are_forwarded_and_recorded(endpoint, upstream, proxy):
    _, secret = make_token(endpoint)
    body = {"model": "emb", "input": ["a b", "c"]}
    answer = proxy.post("/proxy/chat/v1/embeddings", token=secret, json=body)
    assert answer.content == direct(upstream, "embeddings", body).content
    proxy.close()
    call = TrafficCall.objects.get()
    assert call.kind == "embeddings" and call.prompt_tokens == 3 and call.completion_tokens is None


@pytest.mark.parametrize("case", ["missing", "unknown", "revoked", "expired"])
def test_a_bad_revoked_or_expired_token_gets_401_and_reaches_nothing_upstream(
    endpoint, upstream, proxy, case
):
    token, secret = make_token(endpoint)
    if case == "revoked":
        CaptureToken.objects.filter(id=token.id).update(revoked_at=timezone.now())
    if case == "expired":
        CaptureToken.objects.filter(id=token.id).update(expires_at=timezone.now() - timedelta(seconds=1))
    presented = {"missing": None, "unknown": secret[:-2] + "xx"}.get(case, secret)
    answer = proxy.post(CHAT, token=presented, json={"model": "m", "messages": []})
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "invalid_api_key"
    assert upstream.app.requests == 0
    proxy.close()
    assert not TrafficCall.objects.exists()


def test_a_revocation_takes_effect_within_the_cache_time(endpoint, upstream, proxy, settings):
    settings.FTVP_CAPTURE_CACHE_SECONDS = 0
    token, secret = make_token(endpoint)
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert proxy.post(CHAT, token=secret, json=body).status_code == 200
    CaptureToken.objects.filter(id=token.id).update(revoked_at=timezone.now())
    assert proxy.post(CHAT, token=secret, json=body).status_code == 401
    assert upstream.app.requests == 1


def test_a_token_scoped_to_one_endpoint_cannot_use_another(endpoint, upstream, proxy):
    EndpointFactory(name="other", base_url=upstream.base_url, api_key_env="FTVP_TEST_UPSTREAM_KEY")
    _, secret = make_token(endpoint)
    answer = proxy.post("/proxy/other/v1/chat/completions", token=secret, json={"model": "m", "messages": []})
    assert answer.status_code == 403
    assert upstream.app.requests == 0


def test_an_unknown_endpoint_is_404_and_a_local_one_is_refused(endpoint, upstream, proxy):
    local = EndpointFactory(name="smol", provider="local", base_url="")
    _, secret = make_token(endpoint, local)
    assert proxy.post("/proxy/nope/v1/chat/completions", token=secret, json={}).status_code == 404
    refused = proxy.post("/proxy/smol/v1/chat/completions", token=secret, json={})
    assert refused.status_code == 400 and "local model" in refused.json()["error"]["message"]
    assert proxy.post("/proxy/chat/v1/completions", token=secret, json={}).status_code == 404
    assert upstream.app.requests == 0


def test_a_token_over_its_rate_gets_429_with_retry_after(endpoint, upstream, proxy):
    _, secret = make_token(endpoint, rate_per_minute=2)
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert [proxy.post(CHAT, token=secret, json=body).status_code for _ in range(2)] == [200, 200]
    limited = proxy.post(CHAT, token=secret, json=body)
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 61
    assert upstream.app.requests == 2


def test_upstream_errors_pass_through_and_an_unreachable_endpoint_is_502(endpoint, upstream, proxy):
    dead = EndpointFactory(
        name="dead", base_url="http://127.0.0.1:9/v1", api_key_env="FTVP_TEST_UPSTREAM_KEY"
    )
    _, secret = make_token(endpoint, dead)
    failed = proxy.post(
        CHAT, token=secret, json={"model": "m", "messages": [{"role": "user", "content": "please fail"}]}
    )
    assert failed.status_code == 500 and failed.json()["error"]["message"] == "upstream broke"
    unreachable = proxy.post(
        "/proxy/dead/v1/chat/completions", token=secret, json={"model": "m", "messages": []}
    )
    assert unreachable.status_code == 502 and unreachable.json()["error"]["type"] == "server_error"
    proxy.close()
    calls = {c.endpoint_name: c for c in TrafficCall.objects.all()}
    assert calls["chat"].status == 500
    assert calls["dead"].status == 502 and calls["dead"].error.startswith("upstream:")


def test_redaction_is_applied_before_anything_is_stored(endpoint, upstream, proxy, settings, monkeypatch):
    settings.FTVP_CAPTURE_DROP_FIELDS = ["user", "internal_note"]
    _, secret = make_token(endpoint)
    text = f"mail bob.smith@example.com card 4111 1111 1111 1111 order 1234567890123 key {UPSTREAM_KEY}"
    body = {
        "model": "m",
        "user": "customer-42",
        "messages": [{"role": "user", "content": text}],
        "metadata": {"internal_note": "vip customer-42"},
    }

    def database_down(*, records):
        raise OperationalError("database is down")

    monkeypatch.setattr(traffic, "traffic_record", database_down)
    answer = proxy.post(CHAT, token=secret, json=body)
    assert "bob.smith@example.com" in answer.text  # the answer itself is never changed
    proxy.close()  # flushed to the spool; the drain fails: the spool keeps it
    assert not TrafficCall.objects.exists()
    on_disk = b"".join(p.read_bytes() for p in settings.FTVP_SPOOL_DIR.iterdir())
    for clear in (b"bob.smith@example.com", b"4111 1111 1111 1111", UPSTREAM_KEY.encode(), b"customer-42"):
        assert clear not in on_disk
    assert b"[email]" in on_disk

    monkeypatch.undo()  # the database is back: a drain writes the spooled call once
    from django.core.management import call_command

    call_command("drain_spool", "--spool", str(settings.FTVP_SPOOL_DIR / "capture.sqlite3"))
    call = TrafficCall.objects.get()
    content = call.request["messages"][0]["content"]
    assert content == "mail [email] card [card] order 1234567890123 key ***"
    assert "user" not in call.request and call.request["metadata"] == {}
    assert "[email]" in call.response["choices"][0]["message"]["content"]


def test_a_call_spooled_or_drained_twice_is_recorded_once(endpoint):
    raw = {
        "call_id": "c1",
        "token_id": None,
        "application": "app",
        "endpoint_id": endpoint.id,
        "endpoint_name": "chat",
        "kind": "chat",
        "stream": False,
        "request": b'{"model": "m"}',
        "response": b'{"usage": {"prompt_tokens": 1, "completion_tokens": 1}}',
        "status": 200,
        "latency_ms": 1.0,
        "started_at": timezone.now().isoformat(),
    }
    record = traffic.traffic_build(raw=raw, redact=lambda r: r)
    assert traffic.traffic_record(records=[record]) == 1
    assert traffic.traffic_record(records=[record, record]) == 0
    assert TrafficCall.objects.count() == 1


def test_retention_deletes_calls_older_than_the_setting(endpoint, settings):
    settings.FTVP_TRAFFIC_RETENTION_DAYS = 30
    now = timezone.now()
    for i, age in enumerate([1, 29, 31, 400]):
        TrafficCall.objects.create(call_id=f"c{i}", started_at=now - timedelta(days=age))
    assert traffic.traffic_prune(now=now) == 2
    assert TrafficCall.objects.count() == 2
    settings.FTVP_TRAFFIC_RETENTION_DAYS = 0
    assert traffic.traffic_prune(now=now + timedelta(days=1000)) == 0


def test_with_the_database_down_known_tokens_keep_working_and_unknown_ones_get_503(
    endpoint, upstream, proxy, monkeypatch
):
    _, secret = make_token(endpoint)
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert proxy.post(CHAT, token=secret, json=body).status_code == 200

    def down(*args):
        raise OperationalError("database is down")

    monkeypatch.setattr("evaluations.proxy.app.capture_token_by_hash", down)
    monkeypatch.setattr("evaluations.proxy.app.capture_endpoint_by_name", down)
    assert proxy.post(CHAT, token=secret, json=body).status_code == 200  # read before: still served
    unknown = proxy.post(CHAT, token="ftvpc_" + "x" * 43, json=body)
    assert unknown.status_code == 503 and upstream.app.requests == 2


def test_a_record_the_database_refuses_is_kept_bare_and_does_not_hold_up_the_spool(
    endpoint, proxy_settings, monkeypatch
):
    from django.db import DataError

    from evaluations.services.spool import spool_connect, spool_count, spool_put

    def raw(call_id: str, text: str) -> dict:
        return {
            "call_id": call_id,
            "token_id": None,
            "application": "app",
            "endpoint_id": endpoint.id,
            "endpoint_name": "chat",
            "kind": "chat",
            "stream": False,
            "request": json.dumps({"model": "m", "note": text}).encode(),
            "response": b"{}",
            "status": 200,
            "latency_ms": 1.0,
            "started_at": timezone.now().isoformat(),
        }

    real = TrafficCall.objects.bulk_create

    def refusing(rows, **kwargs):  # as PostgreSQL refuses a value it cannot hold
        if any(row.request.get("note") == "unstorable" for row in rows):
            raise DataError("unsupported Unicode escape sequence")
        return real(rows, **kwargs)

    monkeypatch.setattr(TrafficCall.objects, "bulk_create", refusing)
    conn = spool_connect()
    spool_put(
        conn,
        [
            traffic.traffic_build(raw=raw("good", "fine"), redact=lambda r: r),
            traffic.traffic_build(raw=raw("bad", "unstorable"), redact=lambda r: r),
        ],
    )
    assert traffic.traffic_drain(conn=conn) == 2
    assert spool_count(conn) == 0
    calls = {c.call_id: c for c in TrafficCall.objects.all()}
    assert calls["good"].request == {"model": "m", "note": "fine"} and calls["good"].error == ""
    assert calls["bad"].request == {} and calls["bad"].error.startswith("not stored as captured: DataError")


def test_a_compressed_answer_is_passed_on_as_sent_and_recorded_decoded(endpoint, upstream, proxy):
    _, secret = make_token(endpoint)
    body = {"model": "m", "messages": [{"role": "user", "content": "gzip me"}]}
    answer = proxy.post(CHAT, token=secret, json=body)
    expected = direct(upstream, "chat/completions", body)
    assert answer.headers["content-encoding"] == "gzip"
    assert answer.content == expected.content and answer.json()["note"] == "zipped"
    proxy.close()
    assert TrafficCall.objects.get().response["note"] == "zipped"
