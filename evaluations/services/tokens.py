"""API tokens: create (the token is shown once), revoke, and check a token a request presents.

Only the token's SHA-256 is stored, with its first characters (`prefix`) so people can tell their
tokens apart. A request's token is found by its hash: the lookup never compares secrets byte by byte.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from evaluations.models import ApiToken
from evaluations.services.audit import audit_record

TOKEN_PREFIX = "ftvp_"  # noqa: S105 (a marker, not a secret)
PREFIX_LENGTH = 12  # "ftvp_" and 7 random characters: enough to recognise a token, useless to guess it
# last_used_at is written at most this often per token, so busy scripts do not write on every request.
LAST_USED_EVERY = timedelta(minutes=1)


class TokenError(ValueError):
    """A token cannot be created, or the one presented is not valid; the message says what to do."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def api_token_create(*, user, name: str, expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """A new token for `user`: the row (hash and prefix only) and the token itself, to show once."""
    name = (name or "").strip()
    if not name:
        raise TokenError("name: say what the token is for, e.g. 'CI'")
    if len(name) > 100:
        raise TokenError("name: at most 100 characters")
    if expires_at is not None and expires_at <= timezone.now():
        raise TokenError("expires_at: give a time in the future, or none for a token that does not expire")
    if user is None or not user.is_active:
        raise TokenError("user: an active user is needed to own a token")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=token[:PREFIX_LENGTH],
        key_hash=token_hash(token),
        expires_at=expires_at,
    )
    # The name and prefix only: the token itself is never stored nor recorded.
    audit_record(
        actor=user,
        action="token.create",
        obj=row,
        object_repr=f"{row.name} ({row.prefix}…)",
        after={"name": row.name, "prefix": row.prefix, "user": user.pk, "expires_at": expires_at},
    )
    return row, token


def api_token_revoke(*, token: ApiToken, user=None) -> ApiToken:
    """Revoke a token for good (idempotent: a revoked token keeps its first revocation time)."""
    with transaction.atomic():
        revoked = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        token.refresh_from_db(fields=["revoked_at"])
        if revoked:
            audit_record(
                actor=user,
                action="token.revoke",
                obj=token,
                object_repr=f"{token.name} ({token.prefix}…)",
                before={"revoked_at": None},
                after={"name": token.name, "prefix": token.prefix, "revoked_at": token.revoked_at},
            )
    return token


def api_token_check(*, token: str) -> ApiToken:
    """The live token row for a presented token (its user loaded); TokenError says why it is refused.

    Notes the use (`last_used_at`) at most once a minute, with a conditional UPDATE."""
    row = ApiToken.objects.select_related("user").filter(key_hash=token_hash(token)).first()
    if row is None:
        raise TokenError(
            "invalid API token: no such token. Create one on the API tokens page (/tokens/) or with "
            "`manage.py api_token --user NAME --name CI`"
        )
    now = timezone.now()
    if row.revoked_at is not None:
        raise TokenError(
            f"API token {row.prefix}… ({row.name!r}) was revoked on {row.revoked_at:%Y-%m-%d %H:%M} UTC; "
            "create a new one on the API tokens page (/tokens/)"
        )
    if row.expires_at is not None and row.expires_at <= now:
        raise TokenError(
            f"API token {row.prefix}… ({row.name!r}) expired on {row.expires_at:%Y-%m-%d %H:%M} UTC; "
            "create a new one on the API tokens page (/tokens/)"
        )
    if not row.user.is_active:
        raise TokenError(f"API token {row.prefix}…: its user {row.user.get_username()!r} is inactive")
    if row.last_used_at is None or row.last_used_at < now - LAST_USED_EVERY:
        ApiToken.objects.filter(pk=row.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_EVERY)
        ).update(last_used_at=now)
        row.last_used_at = now
    return row
