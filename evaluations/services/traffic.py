"""Captured traffic: a proxied call turned into its record (redacted before anything is stored), the
drain from the spool into the database, and retention (docs/capture.md).

- `traffic_build(raw=..., redact=...)` makes the record of one call from what the proxy saw: the
  request, the response (a stream's chunks assembled into the message and its usage), tokens, status,
  latency and tags; `redact` is applied to the whole record before it is returned, so the spool (and
  the database after it) only ever holds redacted data.
- `CaptureRedaction` drops the configured JSON keys (FTVP_CAPTURE_DROP_FIELDS, at any depth) and
  masks the configured patterns (FTVP_CAPTURE_MASK: e-mail addresses, card numbers passing the Luhn
  check) and every configured secret (services/secrets.py) in every string.
- `traffic_record(records=...)` inserts records in bulk, once each (`ignore_conflicts` on call_id),
  prices them at the endpoint's current prices, and marks the tokens used (last_used_at).
- `traffic_drain(conn=...)` moves the spool into the database, deleting rows only after the insert
  committed; `traffic_prune()` deletes calls older than FTVP_TRAFFIC_RETENTION_DAYS.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DataError, IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from evaluations.analysis.costs import token_cost
from evaluations.models import CaptureToken, Endpoint, TrafficCall, TrafficKind
from evaluations.redaction import Redactor
from evaluations.services.secrets import configured_secrets
from evaluations.services.spool import BATCH, spool_delete, spool_take

MASKS = {
    "email": re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"),
    # 13 to 19 digits, spaces or dashes between, not inside a longer word (an id, a hex digest)
    "card": re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])"),
}
MASK_TEXT = {"email": "[email]", "card": "[card]"}
MAX_RECORDED_BYTES = 1024 * 1024
# What the database refuses in a record itself (not an outage: OperationalError is retried).
UNSTORABLE = (
    DataError,
    IntegrityError,
    ValueError,
    TypeError,
)  # a response body larger than this is recorded cut off


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


class CaptureRedaction:
    """Drop fields and mask patterns and secrets in a JSON-like value; cheap to call once built."""

    def __init__(self, *, drop: Iterable[str], masks: Iterable[str], secrets: Iterable[str] = ()) -> None:
        self.drop = frozenset(drop)
        self.masks = [name for name in masks if name in MASKS]
        self.secrets = Redactor(secrets)

    @classmethod
    def configured(cls) -> CaptureRedaction:
        """From the settings and the secrets configured now (reads the database)."""
        return cls(
            drop=settings.FTVP_CAPTURE_DROP_FIELDS,
            masks=settings.FTVP_CAPTURE_MASK,
            secrets=configured_secrets(),
        )

    def text(self, value: str) -> str:
        value = value.replace("\x00", "")  # PostgreSQL's JSON cannot hold NUL
        for name in self.masks:
            if name == "card":
                value = MASKS["card"].sub(
                    lambda m: MASK_TEXT["card"] if _luhn(re.sub(r"\D", "", m.group())) else m.group(), value
                )
            else:
                value = MASKS[name].sub(MASK_TEXT[name], value)
        return self.secrets(value)

    def __call__(self, value):
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, int) and not isinstance(value, bool) and 13 <= len(str(abs(value))) <= 19:
            masked = self.text(str(value))  # a card number sent as a JSON number
            return value if masked == str(value) else masked
        if isinstance(value, dict):
            return {k: self(v) for k, v in value.items() if k not in self.drop}
        if isinstance(value, list):
            return [self(v) for v in value]
        return value


def _json(body: bytes):
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {"raw": body[:MAX_RECORDED_BYTES].decode("utf-8", "replace")}


def _assemble_stream(body: bytes) -> tuple[dict, dict | None]:
    """An SSE chat stream as one response: the message's text, the model, the finish reason, usage."""
    text: list[str] = []
    out: dict = {}
    usage = None
    finish = None
    for line in body.decode("utf-8", "replace").splitlines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if not data or data == "[DONE]":
            continue
        try:
            chunk = json.loads(data)
        except ValueError:
            continue
        if not isinstance(chunk, dict):
            continue
        for key in ("id", "model", "created"):
            if key in chunk and key not in out:
                out[key] = chunk[key]
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                delta = choice.get("delta") or {}
                if isinstance(delta.get("content"), str):
                    text.append(delta["content"])
                finish = choice.get("finish_reason") or finish
    out["choices"] = [
        {"index": 0, "message": {"role": "assistant", "content": "".join(text)}, "finish_reason": finish}
    ]
    if usage:
        out["usage"] = usage
    return out, usage


def _tags(header: str, request, token_tags: list) -> list[str]:
    tags = [t.strip() for t in (header or "").split(",")]
    meta = request.get("metadata") if isinstance(request, dict) else None
    if isinstance(meta, dict):
        value = meta.get("tags")
        if isinstance(value, str):
            tags += [t.strip() for t in value.split(",")]
        elif isinstance(value, list):
            tags += [str(t).strip() for t in value]
        tags += [f"{k}:{v}" for k, v in meta.items() if k != "tags" and isinstance(v, str | int | float)]
    tags += [str(t) for t in token_tags or []]
    return [t[:100] for t in dict.fromkeys(tags) if t]


def traffic_build(*, raw: dict, redact: Callable) -> dict:
    """The record of one call. `raw` holds what the proxy saw: call_id, token_id, application,
    endpoint_id, endpoint_name, kind, stream, request (bytes), response (bytes), status, error,
    latency_ms, started_at (ISO), tags_header, token_tags."""
    request = _json(raw["request"])
    body = raw.get("response") or b""
    usage = None
    if raw["stream"] and raw["status"] < 400:
        response, usage = _assemble_stream(body)
    else:
        response = _json(body) if body else {}
        if isinstance(response, dict):
            usage = response.get("usage")
    if not isinstance(response, dict):
        response = {"value": response}
    usage = usage if isinstance(usage, dict) else {}
    usage = {
        k: v for k, v in usage.items() if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**31
    }
    model = request.get("model") if isinstance(request, dict) else None
    record = {
        "call_id": raw["call_id"],
        "token_id": raw["token_id"],
        "application": raw["application"],
        "endpoint_id": raw["endpoint_id"],
        "endpoint_name": raw["endpoint_name"],
        "kind": raw["kind"],
        "model": str(model or response.get("model") or "")[:200],
        "stream": raw["stream"],
        "request": request if isinstance(request, dict) else {"value": request},
        "response": response,
        "status": raw["status"],
        "error": raw.get("error", ""),
        "prompt_tokens": usage.get("prompt_tokens"),
        "completion_tokens": usage.get("completion_tokens"),
        "latency_ms": raw["latency_ms"],
        "started_at": raw["started_at"],
    }
    # What the application sent and got is redacted; the proxy's own fields (ids, names) are not.
    for key in ("request", "response", "error"):
        record[key] = redact(record[key])
    # Tags from the redacted request: a dropped field never comes back as a tag.
    record["tags"] = redact(_tags(raw.get("tags_header", ""), record["request"], raw.get("token_tags") or []))
    return record


@transaction.atomic
def traffic_record(*, records: list[dict]) -> int:
    """Insert `records` (from `traffic_build`) once each; returns how many were new."""
    if not records:
        return 0
    ids = {r["endpoint_id"] for r in records if r.get("endpoint_id")}
    prices = {e.id: (e.price_in, e.price_out) for e in Endpoint.objects.filter(id__in=ids)}
    token_ids = set(
        CaptureToken.objects.filter(id__in={r["token_id"] for r in records}).values_list("id", flat=True)
    )
    rows = []
    for r in records:
        price = prices.get(r.get("endpoint_id"))
        cost = None
        if price and (r["prompt_tokens"] is not None or r["completion_tokens"] is not None):
            cost = token_cost(
                r["prompt_tokens"], r["completion_tokens"], float(price[0] or 0), float(price[1] or 0)
            )
        rows.append(
            TrafficCall(
                call_id=r["call_id"],
                token_id=r["token_id"] if r["token_id"] in token_ids else None,
                application=r["application"][:100],
                endpoint_id=r["endpoint_id"] if r.get("endpoint_id") in prices else None,
                endpoint_name=r["endpoint_name"][:100],
                kind=r["kind"] if r["kind"] in TrafficKind.values else TrafficKind.CHAT,
                model=r["model"],
                stream=r["stream"],
                request=r["request"],
                response=r["response"],
                status=r["status"] if isinstance(r["status"], int) and 0 <= r["status"] < 1000 else 0,
                error=r["error"] or "",
                prompt_tokens=r["prompt_tokens"],
                completion_tokens=r["completion_tokens"],
                latency_ms=r["latency_ms"],
                cost=cost,
                tags=r["tags"],
                started_at=parse_datetime(str(r["started_at"])) or timezone.now(),
            )
        )
    before = TrafficCall.objects.filter(call_id__in=[r.call_id for r in rows]).count()
    TrafficCall.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
    # Token use, audited on the token (at most once a drain per token: no write per call).
    last = TrafficCall.objects.filter(call_id__in=[r.call_id for r in rows], token_id__isnull=False)
    for row in last.values("token_id").annotate(at=Max("started_at")):
        CaptureToken.objects.filter(id=row["token_id"]).exclude(last_used_at__gte=row["at"]).update(
            last_used_at=row["at"]
        )
    return len({row.call_id for row in rows}) - before


def traffic_drain(*, conn: sqlite3.Connection, limit: int = BATCH) -> int:
    """One batch from the spool into the database; the rows leave the spool only after the insert
    committed. Returns how many records the batch held (0: the spool is empty). Database errors
    propagate (the caller backs off and tries again)."""
    seqs, records = spool_take(conn, limit)
    if not records:
        return 0
    try:
        traffic_record(records=records)
    except UNSTORABLE:
        # One record the database refuses must not hold up the spool: one by one, and a record refused
        # alone is kept without its bodies, with the reason.
        for record in records:
            try:
                with transaction.atomic():
                    traffic_record(records=[record])
            except UNSTORABLE as exc:
                bare = {**record, "request": {}, "response": {}, "tags": [], "model": ""}
                bare.update(prompt_tokens=None, completion_tokens=None, latency_ms=None)
                bare["status"] = (
                    record["status"]
                    if isinstance(record["status"], int) and 0 <= record["status"] < 1000
                    else 0
                )
                bare["error"] = f"not stored as captured: {type(exc).__name__}: {str(exc)[:200]}"
                traffic_record(records=[bare])
    spool_delete(conn, seqs)
    return len(records)


def traffic_prune(*, now: datetime | None = None) -> int:
    """Delete captured calls older than FTVP_TRAFFIC_RETENTION_DAYS (0: keep them all)."""
    days = settings.FTVP_TRAFFIC_RETENTION_DAYS
    if not days:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    deleted, _ = TrafficCall.objects.filter(started_at__lt=cutoff).delete()
    return deleted
