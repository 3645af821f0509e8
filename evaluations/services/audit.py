"""The audit log: append-only, tamper-evident.

Every change to what a team relies on calls `audit_record` inside the transaction that makes the
change, so the event exists exactly when the change does. Each event's `hash` is the SHA-256 of its
canonical JSON (every field but the hash) including the previous event's hash, so editing, removing
or reordering any row breaks the chain from there on; `audit_verify` (`manage.py verify_audit`)
recomputes it and names the first events that do not match.

Appends are serialised by updating the single `AuditHead` row first (a row lock on PostgreSQL, the
write lock on SQLite), then reading it: two concurrent appends can never fork the chain.

What is hashed is exactly what the database gives back (`_clean`): PostgreSQL's jsonb rewrites some
JSON (1e16 comes back as 10000000000000000, -0.0 as 0.0, surrogate pairs joined), so values are put
in that form before they are hashed and stored, and the chain verifies on SQLite and PostgreSQL alike.

No secret reaches an event: keys named like a secret (api_key, token, password, Authorization, ...)
are recorded as "***", and URLs lose their user:password@ and secret query parameters (`redact`).
Services refuse such values before they are stored at all (services/endpoints.py); this is the
second line.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.db.models import F
from django.utils import timezone

from evaluations.models import AuditEvent, AuditHead

GENESIS = "0" * 64
REDACTED = "***"

# --- secrets: what they are named like, and URLs that carry them ------------------------------------

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
# A name whose last word is one of these holds a secret (api_key, x-api-key, apiKey, access_token,
# Authorization, client_secret, hf_token, ...); "max_tokens" or "stop_token_ids" do not.
SECRET_LAST_WORDS = frozenset(
    {
        "key", "apikey", "token", "secret", "password", "passwd", "pwd", "passphrase", "auth",
        "authorization", "credential", "credentials", "cookie", "signature", "sig",
    }
)  # fmt: skip
# ... and so does a name with one of these anywhere, unless it names an environment variable (api_key_env).
SECRET_WORDS = frozenset({"secret", "password", "passwd", "apikey", "credentials"})
# Generation parameters whose names look like a secret but are not one.
NOT_SECRET_NAMES = frozenset({"prompt_cache_key"})
# Query parameters that carry a key in a URL besides the names above (Azure Functions' ?code=).
SECRET_QUERY_NAMES = frozenset({"code"})
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")


def secret_name(name: object) -> bool:
    """True when a key or parameter named `name` likely holds a secret (an API key, a token, a
    password), e.g. api_key, X-API-Key, access_token, Authorization; not api_key_env or max_tokens."""
    words = [w.lower() for w in _WORD.findall(str(name))]
    if not words or "_".join(words) in NOT_SECRET_NAMES:
        return False
    if words[-1] in SECRET_LAST_WORDS:
        return True
    joined = "".join(words)
    return words[-1] != "env" and ("apikey" in joined or any(w in SECRET_WORDS for w in words))


def url_secrets(url: str) -> list[str]:
    """What in `url` is a secret: "user:password@" (any userinfo) and the names of secret-like query
    parameters (?api-key=, ?token=, ?key=, ?sig=, ?code=). Empty when there is none."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return []
    found = []
    if "@" in parts.netloc:
        found.append("user:password@")
    for name, _ in parse_qsl(parts.query, keep_blank_values=True):
        if secret_name(name) or name.lower() in SECRET_QUERY_NAMES:
            found.append(f"?{name}=")
    return found


def _redact_url(match: re.Match) -> str:
    url = match.group(0)
    if not url_secrets(url):
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = urlencode(
        [
            (k, REDACTED if secret_name(k) or k.lower() in SECRET_QUERY_NAMES else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="*",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact(value):
    """`value` (clean JSON) with secrets replaced by "***": the value of every secret-like key, and
    the userinfo and secret query parameters of every URL inside a string."""
    if isinstance(value, dict):
        return {
            k: REDACTED if secret_name(k) and v not in (None, "", [], {}) else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str) and "://" in value:
        return _URL.sub(_redact_url, value)
    return value


# --- canonical values: JSON that SQLite and PostgreSQL both return unchanged ---------------------------


def _text(value: str) -> str:
    """`value` as PostgreSQL stores it: no NUL (refused by jsonb and text columns), a lone surrogate
    (which UTF-8 cannot encode) replaced by U+FFFD, a surrogate pair joined into its character."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value.replace("\x00", "")


def _number(value: float) -> float | int | None:
    """A float as jsonb gives it back: NaN and infinities have no JSON (None); -0.0 is 0.0; a float
    of 1e16 or more (which JSON writes with an exponent, all of them whole numbers) is an int."""
    if value != value or value in (float("inf"), float("-inf")):
        return None
    if value == 0:
        return 0.0
    if abs(value) >= 1e16:
        return int(Decimal(float.__repr__(value)))  # the digits JSON writes (1.5e+300), not the binary value
    return float(value)


def _clean(value):
    """`value` as JSON both databases store and return unchanged (see `_text`, `_number`): dates and
    decimals as strings, model instances as their primary key, other objects as their text."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, dict):
        return {_text(str(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v) for v in value]
    if isinstance(value, models.Model):
        return _clean(value.pk)
    if isinstance(value, Decimal | datetime.date | datetime.time | datetime.timedelta):
        return json.loads(json.dumps(value, cls=DjangoJSONEncoder))
    return _text(str(value))


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


def stored_snapshot(obj: models.Model, fields: list[str] | tuple[str, ...]) -> dict:
    """`snapshot` of the row as the database holds it now (not as `obj` may have been edited): the
    "before" of an update, taken before anything is changed."""
    return snapshot(type(obj)._default_manager.get(pk=obj.pk), fields)


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
    a worker). Secret-looking values in `before` and `after` are recorded as "***" (`redact`)."""
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
            actor_name=_text(actor_name)[:150],
            action=_text(action)[:60],
            object_type=_text(object_type or "")[:40],
            object_id=_text("" if object_id is None else str(object_id))[:40],
            object_repr=redact(_text(object_repr or ""))[:300],
            suite_id=suite_id,
            before=redact(_clean(before)),
            after=redact(_clean(after)),
            prev_hash=head.hash or GENESIS,
        )
        event.hash = event_hash(event)
        event.save(force_insert=True)
        AuditHead.objects.filter(pk=1).update(hash=event.hash)
    return event


def audit_update(
    *,
    actor,
    action: str,
    obj: models.Model,
    before: dict,
    fields: list[str] | tuple[str, ...] | None = None,
    after: dict | None = None,
    suite_id: int | None = None,
) -> AuditEvent | None:
    """Record an update: `before` is the state taken before the change (`stored_snapshot`), the
    state now is `after` or, given `fields`, those fields of `obj` as the database now holds them
    (so a decimal or a float counts as changed only when its stored value did). Only the fields
    that differ are recorded; nothing is when none does. Call it in the change's transaction."""
    if after is None:
        obj.refresh_from_db(fields=list(fields or before))
        after = snapshot(obj, list(fields or before))
    old, new = changes(before, after)
    if not new:
        return None
    return audit_record(actor=actor, action=action, obj=obj, suite_id=suite_id, before=old, after=new)


@dataclass
class AuditCheck:
    checked: int = 0
    problems: list[str] = field(default_factory=list)
    head_seq: int = 0  # the last event's sequence number and hash (GENESIS when the log is empty)
    head_hash: str = GENESIS
    expected_seq: int | None = None  # where the `expect_head` hash was found in the chain

    @property
    def ok(self) -> bool:
        return not self.problems


def _describe(event: AuditEvent) -> str:
    return (
        f"event #{event.seq} (id {event.pk}, {event.action} {event.object_type} {event.object_id}".rstrip()
        + ")"
    )


def audit_verify(*, limit_problems: int = 20, expect_head: str | None = None) -> AuditCheck:
    """Recompute the chain from the first event. Every event must hash to its stored hash, link to
    the previous event's hash and follow it in sequence; the head must point at the last event.

    `expect_head` is a hash kept elsewhere earlier (the head then): the chain must still contain
    it, intact up to it; otherwise the log was rewritten (every hash recomputed) since."""
    check = AuditCheck()
    expect_head = (expect_head or "").strip().lower() or None
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
        if expect_head is not None and event.hash == expect_head and not check.problems:
            check.expected_seq = event.seq
        prev_hash, prev_seq = event.hash, event.seq
        if len(check.problems) >= limit_problems:
            return check
    check.head_seq, check.head_hash = prev_seq, prev_hash
    head = AuditHead.objects.filter(pk=1).first()
    if head is not None and (head.seq != prev_seq or (head.hash or GENESIS) != prev_hash):
        check.problems.append(
            f"the log ends at event #{prev_seq} but its head says #{head.seq}: the last events were removed"
        )
    if expect_head is not None and check.expected_seq is None:
        if expect_head == GENESIS:
            check.expected_seq = 0
        else:
            check.problems.append(
                f"no event of the intact chain has the hash {expect_head[:64]}: the log was rewritten "
                "since that hash was kept (or the hash was mistyped)"
            )
    return check
