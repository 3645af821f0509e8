"""The fine-tuning API client against the loopback fake (tests/fakefinetune.py)."""

from __future__ import annotations

import pytest

from evaluations.providers.base import ProviderError
from evaluations.providers.finetune_api import FineTuneApiError, FineTuneClient
from tests.fakefinetune import FakeFineTune

KEY = "sk-client-secret-0123456789abcdef"


@pytest.fixture
def server():
    fake = FakeFineTune(api_key=KEY, queue_polls=0, run_polls=1)
    yield fake
    fake.stop()


def _client(server, **kwargs):
    return FineTuneClient(base_url=server.base_url, api_key=KEY, timeout=5, backoff_base=0.01, **kwargs)


def test_a_job_from_upload_to_cancel(server):
    client = _client(server)
    uploaded = client.upload_file("train.jsonl", b'{"messages": []}\n')
    assert uploaded["id"] == "file-1" and server.files["file-1"]["purpose"] == "fine-tune"
    assert server.files["file-1"]["content"] == b'{"messages": []}\n'
    job = client.create_job({"model": "m", "training_file": uploaded["id"]})
    assert job["status"] == "validating_files"
    assert [j["id"] for j in client.list_jobs()] == [job["id"]]
    assert client.get_job(job["id"])["status"] == "running"
    assert client.list_events(job["id"])[0]["type"] == "metrics"  # newest first
    assert client.list_checkpoints(job["id"])[0]["step_number"] == 1
    assert client.cancel_job(job["id"])["status"] == "cancelled"
    assert "Authorization" not in repr(client) and KEY not in repr(client)


def test_429_and_5xx_are_retried_within_the_call(server):
    server.fail_api_next(429, 1, headers={"retry-after": "0"})
    server.fail_api_next(503, 1)
    assert _client(server, max_retries=2).list_jobs() == []
    assert len(server.api_requests) == 3


def test_retries_run_out_as_a_transient_error(server):
    server.fail_api_next(500, 3)
    with pytest.raises(FineTuneApiError) as caught:
        _client(server, max_retries=1).list_jobs()
    assert caught.value.transient and "after 2 attempts" in str(caught.value)


def test_a_create_is_sent_once_when_told_not_to_retry(server):
    server.fail_api_next(503, 1)
    with pytest.raises(FineTuneApiError) as caught:
        _client(server, max_retries=3).create_job({"model": "m", "training_file": "file-x"}, retry=False)
    assert caught.value.transient and len(server.api_requests) == 1


def test_a_permanent_error_is_reported_at_once_without_the_key(server):
    server.fail_api_next(401, 1, body={"error": {"message": f"bad key {KEY}"}})
    with pytest.raises(FineTuneApiError) as caught:
        _client(server, max_retries=3).get_job("ftjob-9")
    assert not caught.value.transient and caught.value.status == 401
    assert "HTTP 401" in str(caught.value) and KEY not in str(caught.value)
    assert len(server.api_requests) == 1


def test_a_missing_checkpoints_route_is_no_checkpoints(server):
    server.checkpoints_route = False
    client = _client(server)
    job = client.create_job({"model": "m", "training_file": client.upload_file("t.jsonl", b"{}\n")["id"]})
    assert client.list_checkpoints(job["id"]) == []


def test_a_key_with_spaces_is_refused(server):
    with pytest.raises(ProviderError, match="spaces"):
        FineTuneClient(base_url=server.base_url, api_key="sk bad key")
