"""The audit chain under concurrency: appends from several connections at once never fork it."""

from __future__ import annotations

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
