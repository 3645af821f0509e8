"""Capture tokens: an application's key to the capture proxy (docs/traffic.md, docs/capture.md).

Created and shown once (`ftvpc_` + 43 random characters); only its SHA-256 (`key_hash`, the same hash
as API tokens) and its first 12 characters (`prefix`) are stored. A token is scoped to endpoints,
rate-limited (calls a minute; 0: no limit), may expire, and is revoked for good. Both writes are
audited with the name, prefix and scope, never the token itself. Checking a presented token is the
proxy's (evaluations/proxy/), by the same hash.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from evaluations.models import CaptureToken, Endpoint
from evaluations.services.audit import audit_record
from evaluations.services.tokens import token_hash

CAPTURE_TOKEN_PREFIX = "ftvpc_"  # noqa: S105 (a marker, not a secret)
PREFIX_LENGTH = 12  # "ftvpc_" and 6 random characters: enough to recognise a token, useless to guess it
MAX_RATE = 1_000_000
MAX_TAGS = 20
MAX_TAG_LENGTH = 100


class CaptureTokenError(ValueError):
    """A capture token cannot be created as asked; the message names the field and what to do."""


def _tags(tags: Iterable[str] | None) -> list[str]:
    out: list[str] = []
    for raw in tags or []:
        tag = str(raw).strip()
        if not tag:
            continue
        if len(tag) > MAX_TAG_LENGTH or "\x00" in tag:
            raise CaptureTokenError(f"tags: {tag[:40]!r}… is longer than {MAX_TAG_LENGTH} characters")
        if tag not in out:
            out.append(tag)
    if len(out) > MAX_TAGS:
        raise CaptureTokenError(f"tags: at most {MAX_TAGS}")
    return out


def _endpoints(endpoints: Iterable[Endpoint | int | str]) -> list[Endpoint]:
    wanted = list(endpoints or [])
    if not wanted:
        raise CaptureTokenError("endpoints: name at least one endpoint the application may call")
    found: list[Endpoint] = []
    for item in wanted:
        if isinstance(item, Endpoint):
            row = item
        elif isinstance(item, int) and not isinstance(item, bool):
            row = Endpoint.objects.filter(pk=item).first()
        else:
            row = Endpoint.objects.filter(name=str(item).strip()).first()
        if row is None:
            known = ", ".join(Endpoint.objects.order_by("name").values_list("name", flat=True)[:20])
            raise CaptureTokenError(f"endpoints: no endpoint {item!r} (known: {known or 'none yet'})")
        if row not in found:
            found.append(row)
    return found


def _actor(user):
    return user if getattr(user, "is_authenticated", False) else None


@transaction.atomic
def capture_token_create(
    *,
    name: str,
    endpoints: Iterable[Endpoint | int | str],
    rate_per_minute: int = 600,
    tags: Iterable[str] | None = None,
    expires_at: datetime | None = None,
    user=None,
) -> tuple[CaptureToken, str]:
    """A new capture token: the row (hash and prefix only) and the token itself, to show once."""
    name = (name or "").strip()
    if not name:
        raise CaptureTokenError("name: say which application uses it, e.g. 'support-bot'")
    if len(name) > 100:
        raise CaptureTokenError("name: at most 100 characters")
    if isinstance(rate_per_minute, bool) or not isinstance(rate_per_minute, int):
        raise CaptureTokenError("rate_per_minute: a whole number of calls a minute (0: no limit)")
    if not 0 <= rate_per_minute <= MAX_RATE:
        raise CaptureTokenError(f"rate_per_minute: between 0 (no limit) and {MAX_RATE:,}")
    if expires_at is not None and expires_at <= timezone.now():
        raise CaptureTokenError(
            "expires_at: give a time in the future, or none for a token that does not expire"
        )
    scope = _endpoints(endpoints)
    clean_tags = _tags(tags)
    token = CAPTURE_TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = CaptureToken.objects.create(
        name=name,
        prefix=token[:PREFIX_LENGTH],
        key_hash=token_hash(token),
        rate_per_minute=rate_per_minute,
        tags=clean_tags,
        expires_at=expires_at,
        created_by=_actor(user),
    )
    row.endpoints.set(scope)
    # The name, prefix and scope only: the token itself is never stored nor recorded.
    audit_record(
        actor=_actor(user),
        action="capture_token.create",
        obj=row,
        object_repr=f"{row.name} ({row.prefix}…)",
        after={
            "name": row.name,
            "prefix": row.prefix,
            "endpoints": sorted(e.name for e in scope),
            "rate_per_minute": rate_per_minute,
            "tags": clean_tags,
            "expires_at": expires_at,
        },
    )
    return row, token


def capture_token_revoke(*, token: CaptureToken, user=None) -> CaptureToken:
    """Revoke a capture token for good (idempotent: it keeps its first revocation time)."""
    with transaction.atomic():
        revoked = CaptureToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        token.refresh_from_db(fields=["revoked_at"])
        if revoked:
            audit_record(
                actor=_actor(user),
                action="capture_token.revoke",
                obj=token,
                object_repr=f"{token.name} ({token.prefix}…)",
                before={"revoked_at": None},
                after={"name": token.name, "prefix": token.prefix, "revoked_at": token.revoked_at},
            )
    return token
