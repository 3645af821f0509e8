"""Capture tokens: shown once, stored hashed, scoped to endpoints, revoked for good, audited."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from evaluations.models import AuditEvent, CaptureToken
from evaluations.services.capture_tokens import (
    CaptureTokenError,
    capture_token_create,
    capture_token_revoke,
)
from evaluations.services.tokens import token_hash
from tests.factories import EndpointFactory


def test_a_token_is_random_shown_once_and_only_its_hash_is_kept(user):
    bot = EndpointFactory(name="gpt")
    row, token = capture_token_create(
        name="support-bot", endpoints=[bot], rate_per_minute=60, tags=["prod", "prod", " eu "], user=user
    )
    _, other = capture_token_create(name="support-bot", endpoints=["gpt"], user=user)
    assert token != other and token.startswith("ftvpc_") and len(token) > 40
    row.refresh_from_db()
    assert row.key_hash == token_hash(token) and row.prefix == token[:12]
    assert list(row.endpoints.all()) == [bot]
    assert row.tags == ["prod", "eu"] and row.rate_per_minute == 60 and row.created_by == user
    # The token itself is nowhere in the database's rows, the audit log included.
    stored = json.dumps(list(CaptureToken.objects.values()), default=str)
    events = json.dumps(list(AuditEvent.objects.values()), default=str)
    assert token not in stored and token not in events
    event = AuditEvent.objects.get(action="capture_token.create", object_id=str(row.pk))
    assert event.after["prefix"] == row.prefix and event.after["endpoints"] == ["gpt"]


@pytest.mark.parametrize(
    "kwargs, message",
    [({"name": ""}, "name: say which application"), ({"endpoints": []}, "endpoints: name at least one"),
     ({"endpoints": ["nope"]}, "endpoints: no endpoint 'nope'"), ({"rate_per_minute": -1}, "rate_per_minute"),
     ({"expires_at": -1}, "expires_at: give a time in the future"), ({"tags": ["x" * 101]}, "tags:")],
)  # fmt: skip
def test_bad_tokens_are_not_created(user, kwargs, message):
    EndpointFactory(name="gpt")
    args = {"name": "bot", "endpoints": ["gpt"], **kwargs}
    if args.get("expires_at") == -1:
        args["expires_at"] = timezone.now() - timedelta(days=1)
    with pytest.raises(CaptureTokenError, match=message):
        capture_token_create(user=user, **args)
    assert not CaptureToken.objects.exists()


def test_revoking_is_for_good_keeps_the_first_time_and_is_audited_once(user):
    row, _ = capture_token_create(name="bot", endpoints=[EndpointFactory()], user=user)
    capture_token_revoke(token=row, user=user)
    first = row.revoked_at
    assert first is not None
    capture_token_revoke(token=row, user=user)
    assert row.revoked_at == first
    assert AuditEvent.objects.filter(action="capture_token.revoke").count() == 1
