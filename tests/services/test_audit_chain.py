"""The audit chain under concurrency: appends from several connections at once never fork it."""

from __future__ import annotations

import json
import random
import threading

import pytest
from django.db import connection, connections

from evaluations.models import AuditEvent, AuditHead
from evaluations.services.audit import GENESIS, audit_record, audit_verify, event_hash


@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_make_one_unbroken_chain():
    errors: list[BaseException] = []

    def append(worker: int) -> None:
        try:
            for i in range(10):
                audit_record(actor=None, action="test.append", object_type="thing", object_id=f"{worker}-{i}")
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=append, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    seqs = list(AuditEvent.objects.filter(action="test.append").order_by("seq").values_list("seq", flat=True))
    assert len(seqs) == 40
    check = audit_verify()
    assert check.ok, check.problems
    head = AuditHead.objects.get(pk=1)
    last = AuditEvent.objects.order_by("-seq").first()
    assert (head.seq, head.hash) == (last.seq, last.hash)


@pytest.mark.django_db
def test_the_first_event_links_to_the_genesis_hash_and_values_survive_the_round_trip():
    event = audit_record(
        actor=None,
        action="test.values",
        object_type="thing",
        object_id=7,
        before={"price": 1.5, "name": "a\x00b", "nested": {"z": [1, 2.25, None]}, "nan": float("nan")},
        after={"when": "2026-11-21"},
    )
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.before == {"price": 1.5, "name": "ab", "nested": {"z": [1, 2.25, None]}, "nan": None}
    assert event_hash(stored) == stored.hash
    first = AuditEvent.objects.order_by("seq").first()
    assert first.prev_hash == GENESIS


@pytest.mark.django_db
def test_a_rewritten_hash_breaks_the_link_to_the_next_event():
    a = audit_record(actor=None, action="test.a", object_type="thing")
    b = audit_record(actor=None, action="test.b", object_type="thing")
    with connection.cursor() as cursor:  # recompute a's hash after editing it: b no longer links
        cursor.execute("UPDATE evaluations_auditevent SET action = %s WHERE id = %s", ["test.x", a.pk])
    edited = AuditEvent.objects.get(pk=a.pk)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE evaluations_auditevent SET hash = %s WHERE id = %s", [event_hash(edited), a.pk]
        )
    problems = audit_verify().problems
    assert any(f"event #{b.seq}" in p and "does not link" in p for p in problems), problems


def _awkward_values() -> dict:
    """Numbers and strings that jsonb (PostgreSQL) rewrites unless they are put in its form first."""
    rng = random.Random(8)
    floats = [-0.0, 1e16, -1e16, 1.5e300, 1.7976931348623157e308, 5e-324, 1e-7, 1e-5, 0.1, 2.0, 1e15, 123.456]
    floats += [rng.uniform(-10, 10) * 10.0 ** rng.randint(-320, 300) for _ in range(300)]
    return {
        "floats": floats,
        "ints": [2**53 + 1, -(2**63), 2**64 + 7, 10**30],
        "strings": ["lone \ud800", "\udc00 low", "pair \ud83d\ude00", "nul \x00", "é ✓ \u2028"],
        "nested": {"-0": {"z": -0.0, "big": [1e20, {"deep": 3.0e17}]}},
    }


@pytest.mark.django_db
def test_awkward_numbers_and_strings_hash_the_same_after_the_database_round_trip():
    """On PostgreSQL (DATABASE_URL) the jsonb round trip is the real one; on SQLite it must hold too."""
    event = audit_record(
        actor=None,
        action="test.awkward",
        object_type="thing",
        object_repr="lone \ud800 in a repr",
        before=_awkward_values(),
        after={"same": _awkward_values()["nested"]},
    )
    stored = AuditEvent.objects.get(pk=event.pk)

    def exact(value) -> str:  # tells 1e16 from 10000000000000000 and -0.0 from 0.0
        return json.dumps(value, sort_keys=True)

    assert exact(stored.before) == exact(event.before)
    assert exact(stored.after) == exact(event.after)
    assert stored.object_repr == event.object_repr
    assert event_hash(stored) == stored.hash
    check = audit_verify()
    assert check.ok, check.problems
