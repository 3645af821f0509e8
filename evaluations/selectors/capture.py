"""The capture proxy's reads: a capture token by its hash (with the endpoints it may call) and an
endpoint by name, as plain values the proxy caches for a few seconds (docs/capture.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from evaluations.models import CaptureToken, Endpoint


@dataclass(frozen=True)
class TokenInfo:
    id: int
    name: str
    endpoint_ids: frozenset[int]
    rate_per_minute: int
    tags: tuple[str, ...]
    revoked: bool
    expires_at: datetime | None


def capture_token_by_hash(key_hash: str) -> TokenInfo | None:
    token = CaptureToken.objects.filter(key_hash=key_hash).first()
    if token is None:
        return None
    return TokenInfo(
        id=token.id,
        name=token.name,
        endpoint_ids=frozenset(token.endpoints.values_list("id", flat=True)),
        rate_per_minute=token.rate_per_minute,
        tags=tuple(str(t) for t in token.tags or []),
        revoked=token.revoked_at is not None,
        expires_at=token.expires_at,
    )


def capture_endpoint_by_name(name: str) -> Endpoint | None:
    return Endpoint.objects.filter(name=name).first()
