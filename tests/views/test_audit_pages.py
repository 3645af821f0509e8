"""The suite page's history and the audit log page (filters, pagination, the chain check)."""

from __future__ import annotations

import io

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from evaluations.models import AuditEvent
from evaluations.services.audit import audit_record
from evaluations.services.suites import suite_import, suite_update_settings
from tests.factories import UserFactory


@pytest.fixture
def people(db):
    return {
        "eddie": UserFactory(username="eddie", roles=["editor"]),
        "vic": UserFactory(username="vic", roles=["viewer"]),
        "nobody": UserFactory(username="nobody"),
    }


def as_user(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def upload(name: str, user) -> int:
    version = suite_import(
        name=name, fileobj=io.BytesIO(b"input,expected\nhi,hello\n"), filename=f"{name}.csv", user=user
    )
    return version.suite_id


def test_the_suite_page_shows_its_history_newest_first(people):
    suite_id = upload("greet", people["eddie"])
    upload("other", people["eddie"])
    from evaluations.models import Suite

    suite_update_settings(
        suite=Suite.objects.get(pk=suite_id), description="friendly <script>", quality_target=0.9,
        pass_threshold=0.8, monthly_volume=10_000, user=people["eddie"],
    )  # fmt: skip

    html = as_user(people["vic"]).get(reverse("evaluations:suite-detail", args=[suite_id])).content.decode()

    history = html[html.index('id="history"') :]
    assert history.index("suite.settings") < history.index("suite.upload")
    assert "eddie" in history and "greet.csv" in history and "other.csv" not in history
    assert "friendly &lt;script&gt;" in history and "<script>" not in history
    assert "0.8</del> → 0.9" in history


def test_the_suite_history_is_paginated(people):
    suite_id = upload("greet", people["eddie"])
    for i in range(25):
        audit_record(actor=None, action="test.event", object_type="thing", object_id=i, suite_id=suite_id)
    url = reverse("evaluations:suite-detail", args=[suite_id])
    first = as_user(people["vic"]).get(url).content.decode()
    assert "Page 1 of 2 (26 events)" in first and "suite.upload" not in first
    second = as_user(people["vic"]).get(url, {"history_page": 2}).content.decode()
    assert "suite.upload" in second


def test_the_audit_log_filters_by_action_actor_and_suite(people):
    greet = upload("greet", people["eddie"])
    other = upload("other", None)
    url = reverse("evaluations:audit-list")
    client = as_user(people["vic"])  # viewers read the log

    everything = client.get(url).content.decode()
    assert "greet.csv" in everything and "other.csv" in everything

    by_actor = client.get(url, {"actor": "system"}).content.decode()
    assert "other.csv" in by_actor and "greet.csv" not in by_actor
    by_suite = client.get(url, {"suite": greet}).content.decode()
    assert "greet.csv" in by_suite and "other.csv" not in by_suite
    by_group = client.get(url, {"action": "suite."}).content.decode()
    assert "greet.csv" in by_group
    by_action = client.get(url, {"action": "run.create", "suite": other}).content.decode()
    assert "No events." in by_action
    assert client.get(url, {"suite": "x" * 30, "page": "nonsense"}).status_code == 200


def test_the_audit_log_verifies_the_chain_on_demand_for_an_admin_by_post(people):
    upload("greet", people["eddie"])
    upload("other", people["eddie"])
    admin = UserFactory(username="ada", roles=["admin"])
    url = reverse("evaluations:audit-list")
    client = as_user(admin)
    page = client.get(url, {"verify": "1"}).content.decode()
    assert "Chain verified" not in page and "Verify the chain" in page  # a GET never re-hashes the log
    ok = client.post(url + "?action=suite.", {"verify": "1"}).content.decode()
    assert f"Chain verified: {AuditEvent.objects.count()} events" in ok  # the uploads, the roles given
    head = AuditEvent.objects.order_by("-seq").first()
    assert f"event #{head.seq}, hash <code>{head.hash}</code>" in ok

    with connection.cursor() as cursor:
        cursor.execute("UPDATE evaluations_auditevent SET actor_name = 'mallory' WHERE seq = %s", [head.seq])
    broken = client.post(url, {"verify": "1"}).content.decode()
    assert "The chain is broken" in broken and f"event #{head.seq} " in broken


def test_only_an_admin_may_verify_the_chain(people):
    upload("greet", people["eddie"])
    url = reverse("evaluations:audit-list")
    viewer = as_user(people["vic"])
    assert "Verify the chain" not in viewer.get(url).content.decode()
    assert viewer.post(url, {"verify": "1"}).status_code == 403
    assert as_user(people["eddie"]).post(url, {"verify": "1"}).status_code == 403


def test_the_filter_choices_read_only_the_latest_events(people, monkeypatch):
    from evaluations.selectors import audit as audit_selectors

    audit_record(actor=None, action="old.thing", object_type="thing")
    for i in range(3):
        audit_record(actor=people["eddie"], action="new.thing", object_type="thing", object_id=i)
    monkeypatch.setattr(audit_selectors, "FILTER_WINDOW", 3)
    assert audit_selectors.audit_actions() == ["new.thing"]
    assert audit_selectors.audit_actions(selected="old.thing") == ["new.thing", "old.thing"]
    assert audit_selectors.audit_actors() == ["eddie"]
    page = as_user(people["vic"]).get(reverse("evaluations:audit-list"), {"action": "old.thing"})
    assert '<option value="old.thing" selected>' in page.content.decode()


def test_the_audit_log_needs_the_permission_to_read_it(people):
    assert as_user(people["nobody"]).get(reverse("evaluations:audit-list")).status_code == 403
    assert Client().get(reverse("evaluations:audit-list")).status_code == 302
