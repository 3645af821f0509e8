"""The audit log: append-only, tamper-evident.

Every change to what a team relies on calls `audit_record` inside the transaction that makes the
change, so the event exists exactly when the change does. Each event's `hash` is the SHA-256 of its
canonical JSON (every field but the hash) including the previous event's hash, so editing, removing
or reordering any row breaks the chain from there on; `audit_verify` (`manage.py verify_audit`)
recomputes it and names the first events that do not match.

Appends are serialised by updating the single `AuditHead` row first (a row lock on PostgreSQL, the
write lock on SQLite), then reading it: two concurrent appends can never fork the chain.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.db.models import F
from django.utils import timezone

from evaluations.models import AuditEvent, AuditHead

GENESIS = "0" * 64


def _clean(value):
    """`value` as JSON a database stores and returns unchanged: no NUL (PostgreSQL's jsonb refuses
    it), no NaN, dates and decimals as strings, model instances as their primary key."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {str(k).replace("\x00", ""): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v) for v in value]
    if isinstance(value, models.Model):
        return value.pk
    if isinstance(value, Decimal | datetime.date | datetime.time | datetime.timedelta):
        return json.loads(json.dumps(value, cls=DjangoJSONEncoder))
    return str(value).replace("\x00", "")


def _at(value: datetime.datetime) -> str:
    return value.astimezone(datetime.UTC).isoformat(timespec="microseconds")


def event_hash(event: AuditEvent) -> str:
    """The SHA-256 of the event's canonical JSON, chained to `event.prev_hash`."""
    body = {
        "seq": int(event.seq),
        "at": _at(event.at),
        "actor_id": event.actor_id,
        "actor_name": event.actor_name,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "object_repr": event.object_repr,
        "suite_id": event.suite_id,
        "before": event.before,
        "after": event.after,
        "prev_hash": event.prev_hash,
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def snapshot(obj: models.Model, fields: list[str] | tuple[str, ...]) -> dict:
    """The named fields of a model instance, JSON-ready: the "before" or "after" of an event."""
    out = {}
    for name in fields:
        value = getattr(obj, f"{name}_id" if _is_fk(obj, name) else name)
        out[name] = _clean(value)
    return out


def _is_fk(obj: models.Model, name: str) -> bool:
    try:
        return obj._meta.get_field(name).is_relation
    except Exception:
        return False


def changes(before: dict, after: dict) -> tuple[dict, dict]:
    """Only the keys whose values differ, from two snapshots."""
    keys = [k for k in after if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in keys}, {k: after[k] for k in keys}


def _actor(user) -> tuple[int | None, str]:
    if user is None or not getattr(user, "is_authenticated", False):
        return None, "system"
    return user.pk, user.get_username()[:150]


def audit_record(
    *,
    actor,
    action: str,
    obj: models.Model | None = None,
    object_type: str | None = None,
    object_id: object = None,
    object_repr: str | None = None,
    suite_id: int | None = None,
    before: dict | None = None,
    after: dict | None = None,
) -> AuditEvent:
    """Append one event (who, what, when, before and after) to the chain; call it inside the
    transaction of the change it records. `actor` is a user, or None for the system (a schedule,
    a worker)."""
    if obj is not None:
        object_type = object_type or obj._meta.model_name
        object_id = obj.pk if object_id is None else object_id
        object_repr = str(obj) if object_repr is None else object_repr
    actor_id, actor_name = _actor(actor)
    with transaction.atomic():
        head, _ = AuditHead.objects.get_or_create(pk=1)
        AuditHead.objects.filter(pk=1).update(seq=F("seq") + 1)  # takes the lock before reading
        head.refresh_from_db()
        event = AuditEvent(
            seq=head.seq,
            at=timezone.now(),
            actor_id=actor_id,
            actor_name=actor_name,
            action=action[:60],
            object_type=(object_type or "")[:40],
            object_id=("" if object_id is None else str(object_id))[:40],
            object_repr=(object_repr or "").replace("\x00", "")[:300],
            suite_id=suite_id,
            before=_clean(before),
            after=_clean(after),
            prev_hash=head.hash or GENESIS,
        )
        event.hash = event_hash(event)
        event.save(force_insert=True)
        AuditHead.objects.filter(pk=1).update(hash=event.hash)
    return event


@dataclass
class AuditCheck:
    checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _describe(event: AuditEvent) -> str:
    return (
        f"event #{event.seq} (id {event.pk}, {event.action} {event.object_type} {event.object_id}".rstrip()
        + ")"
    )


def audit_verify(*, limit_problems: int = 20) -> AuditCheck:
    """Recompute the chain from the first event. Every event must hash to its stored hash, link to
    the previous event's hash and follow it in sequence; the head must point at the last event."""
    check = AuditCheck()
    prev_hash, prev_seq = GENESIS, 0
    for event in AuditEvent.objects.order_by("seq").iterator(chunk_size=2000):
        check.checked += 1
        if event.seq != prev_seq + 1:
            check.problems.append(
                f"{_describe(event)}: follows #{prev_seq}; "
                f"events #{prev_seq + 1}..#{event.seq - 1} are missing"
            )
        if event.prev_hash != prev_hash:
            check.problems.append(
                f"{_describe(event)}: does not link to the event before it (prev_hash differs)"
            )
        if event_hash(event) != event.hash:
            check.problems.append(
                f"{_describe(event)}: its content was changed after it was written (hash mismatch)"
            )
        prev_hash, prev_seq = event.hash, event.seq
        if len(check.problems) >= limit_problems:
            return check
    head = AuditHead.objects.filter(pk=1).first()
    if head is not None and (head.seq != prev_seq or (head.hash or GENESIS) != prev_hash):
        check.problems.append(
            f"the log ends at event #{prev_seq} but its head says #{head.seq}: the last events were removed"
        )
    return check
