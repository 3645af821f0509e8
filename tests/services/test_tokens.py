"""API tokens: created with their hash only, shown once, revoked for good, checked by hash."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from evaluations.models import ApiToken
from evaluations.services.tokens import (
    TokenError,
    api_token_check,
    api_token_create,
    api_token_revoke,
    token_hash,
)
from tests.factories import UserFactory


def test_a_token_is_random_and_only_its_hash_is_kept(user):
    first, token_a = api_token_create(user=user, name="CI")
    _, token_b = api_token_create(user=user, name="CI")
    assert token_a != token_b and token_a.startswith("ftvp_")
    assert first.key_hash == token_hash(token_a) and first.prefix == token_a[:12]
    assert api_token_check(token=token_a).pk == first.pk


@pytest.mark.parametrize(
    "name, expires, message",
    [("", None, "name: say what the token is for"), ("x" * 101, None, "name: at most 100"),
     ("CI", -1, "expires_at: give a time in the future")],
)  # fmt: skip
def test_bad_tokens_are_not_created(user, name, expires, message):
    expires_at = timezone.now() + timedelta(days=expires) if expires else None
    with pytest.raises(TokenError, match=message):
        api_token_create(user=user, name=name, expires_at=expires_at)
    assert not ApiToken.objects.exists()


def test_an_inactive_user_gets_no_token(db):
    with pytest.raises(TokenError, match="active user"):
        api_token_create(user=UserFactory(username="gone", is_active=False), name="CI")


def test_revoking_is_for_good_and_keeps_the_first_time(user):
    row, token = api_token_create(user=user, name="CI")
    api_token_revoke(token=row)
    first = row.revoked_at
    assert first is not None
    api_token_revoke(token=row)
    assert row.revoked_at == first
    with pytest.raises(TokenError, match="was revoked"):
        api_token_check(token=token)


def test_an_unknown_token_says_where_to_get_one(db):
    with pytest.raises(TokenError, match=r"no such token.*/tokens/"):
        api_token_check(token="ftvp_made_up")
