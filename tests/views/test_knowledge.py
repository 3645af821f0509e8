"""A suite's knowledge documents through the API (`/api/v1/suites/<id>/knowledge/`) and the suite page."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from evaluations.importers import SourceFile
from evaluations.models import AuditEvent, SuiteVersion
from evaluations.services.knowledge import knowledge_import
from evaluations.services.suites import suite_import
from evaluations.services.tokens import api_token_create
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

V1 = "/api/v1"
CASES = b"id,input,expected\nq1,How long do refunds take?,30 days\nq2,Do you ship abroad?,yes\n"
REFUNDS = b"# Refunds\n\nWe refund within 30 days of delivery."
FAQ = b'{"id": "faq-1", "title": "Shipping", "text": "We ship worldwide."}\n'


@pytest.fixture
def suite():
    return suite_import(name="support", files=[SourceFile("cases.csv", CASES)]).suite


def _client(client, role: str | None):
    user = UserFactory(username=f"api-{role}", roles=[role] if role else [])
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {api_token_create(user=user, name='t')[1]}"
    return client


def _files(*files: tuple[str, bytes]) -> list[SimpleUploadedFile]:
    return [SimpleUploadedFile(name, data) for name, data in files]


# --- API ----------------------------------------------------------------------------------------------


def test_the_api_uploads_documents_as_the_next_version(client, suite):
    api = _client(client, "editor")
    response = api.post(
        f"{V1}/suites/{suite.pk}/knowledge/", {"file": _files(("refunds.md", REFUNDS), ("faq.jsonl", FAQ))}
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["suite"] == {"id": suite.pk, "name": "support"}
    assert (body["version"], body["documents"], body["chunks"], body["cases"]) == (2, 2, 2, 2)
    assert any(n.startswith("Knowledge: 2 added") for n in body["notes"])
    assert AuditEvent.objects.get(action="suite.knowledge").actor_name == "api-editor"

    replaced = api.post(
        f"{V1}/suites/{suite.pk}/knowledge/", {"file": _files(("hours.txt", b"Open 9-5.")), "replace": "true"}
    )
    assert replaced.status_code == 201 and replaced.json()["documents"] == 1


def test_the_api_lists_the_latest_or_a_given_versions_documents_paginated(client, suite):
    knowledge_import(suite=suite, files=[SourceFile("refunds.md", REFUNDS), SourceFile("faq.jsonl", FAQ)])
    knowledge_import(suite=suite, files=[SourceFile("hours.txt", b"Open 9-5.")], replace=True)
    api = _client(client, "viewer")
    latest = api.get(f"{V1}/suites/{suite.pk}/knowledge/").json()
    assert latest["count"] == 1
    assert latest["results"] == [
        {"doc_id": "hours.txt", "title": "Open 9-5.", "source_name": "hours.txt", "chunks": 1, "chars": 9}
    ]
    v2 = api.get(f"{V1}/suites/{suite.pk}/knowledge/", {"version": 2, "page_size": 1}).json()
    assert v2["count"] == 2 and v2["next"] and [d["doc_id"] for d in v2["results"]] == ["refunds.md"]
    assert api.get(f"{V1}/suites/{suite.pk}/knowledge/", {"version": 1}).json()["count"] == 0
    missing = api.get(f"{V1}/suites/{suite.pk}/knowledge/", {"version": 9})
    assert missing.status_code == 404 and "has no version 9" in missing.json()["detail"]
    bad = api.get(f"{V1}/suites/{suite.pk}/knowledge/", {"version": "x"})
    assert bad.status_code == 400 and bad.json()["detail"].startswith("version:")
    assert api.get(f"{V1}/suites/99999/knowledge/").status_code == 404


def test_the_api_needs_credentials_and_the_upload_role(client, suite):
    url = f"{V1}/suites/{suite.pk}/knowledge/"
    assert client.get(url).status_code == 401
    assert client.post(url, {"file": _files(("a.md", b"A."))}).status_code == 401
    viewer = _client(client, "viewer")
    refused = viewer.post(url, {"file": _files(("a.md", b"A."))})
    assert refused.status_code == 403
    assert "evaluations.add_suiteversion" in refused.json()["detail"] and "editor" in refused.json()["detail"]
    assert SuiteVersion.objects.count() == 1


def test_api_errors_name_file_line_and_field_and_store_nothing(client, suite):
    api = _client(client, "editor")
    url = f"{V1}/suites/{suite.pk}/knowledge/"
    response = api.post(url, {"file": _files(("faq.jsonl", b'{"id": "a"}\n{"text": "b"}\n'))})
    assert response.status_code == 400
    assert response.json()["errors"] == [
        "faq.jsonl, line 1, field 'text': is missing or empty; write the document's text",
        "faq.jsonl, line 2, field 'id': is missing; give every document a unique id (the name cases' "
        "gold_docs refer to)",
    ]
    unknown = api.post(url, {"file": _files(("manual.pdf", b"%PDF"))})
    assert unknown.status_code == 400 and "upload .txt, .md, .jsonl or .csv files" in unknown.json()["detail"]
    none = api.post(url, {"replace": "true"})
    assert none.status_code == 400 and none.json()["detail"].startswith("file:")
    bad_flag = api.post(url, {"file": _files(("a.md", b"A.")), "replace": "maybe"})
    assert bad_flag.status_code == 400 and bad_flag.json()["detail"].startswith("replace:")
    assert SuiteVersion.objects.count() == 1


# --- the suite page -----------------------------------------------------------------------------------


def test_the_page_lists_the_documents_and_offers_the_form(client, suite):
    knowledge_import(suite=suite, files=[SourceFile("refunds.md", REFUNDS), SourceFile("faq.jsonl", FAQ)])
    client.force_login(UserFactory(username="eddie", roles=["editor"]))
    html = client.get(reverse("evaluations:suite-detail", args=[suite.pk])).content.decode()
    assert 'id="knowledge"' in html and "2 documents, 2 chunks" in html
    assert "<code>refunds.md</code>" in html and "Refunds" in html and "<code>faq-1</code>" in html
    assert reverse("evaluations:suite-knowledge", args=[suite.pk]) in html
    assert 'name="replace"' in html and "multiple" in html
    # an older version shows its own (no) documents
    v1 = client.get(reverse("evaluations:suite-detail", args=[suite.pk]), {"version": 1}).content.decode()
    assert "No knowledge documents in v1" in v1 and "<code>rag</code>" in v1


def test_the_empty_state_explains_knowledge_and_viewers_get_no_form(client, suite):
    client.force_login(UserFactory(username="vera", roles=["viewer"]))
    html = client.get(reverse("evaluations:suite-detail", args=[suite.pk])).content.decode()
    assert "No knowledge documents in v1" in html and "<code>rag</code>" in html and "gold_docs" in html
    assert reverse("evaluations:suite-knowledge", args=[suite.pk]) not in html
    refused = client.post(
        reverse("evaluations:suite-knowledge", args=[suite.pk]), {"file": _files(("a.md", b"A."))}
    )
    assert refused.status_code == 403
    assert SuiteVersion.objects.count() == 1


def test_uploading_on_the_page_makes_a_version(client, suite):
    client.force_login(UserFactory(username="eddie", roles=["editor"]))
    url = reverse("evaluations:suite-knowledge", args=[suite.pk])
    response = client.post(url, {"file": _files(("refunds.md", REFUNDS), ("faq.jsonl", FAQ))}, follow=True)
    assert response.redirect_chain[-1][0].endswith(f"/suites/{suite.pk}/#knowledge")
    html = response.content.decode()
    assert "Knowledge saved as support v2: 2 documents, 2 chunks." in html
    assert "<code>refunds.md</code>" in html
    assert suite.versions.get(number=2).cases.count() == 2


def test_page_errors_are_shown_and_nothing_is_stored(client, suite):
    client.force_login(UserFactory(username="eddie", roles=["editor"]))
    url = reverse("evaluations:suite-knowledge", args=[suite.pk])
    response = client.post(url, {"file": _files(("faq.jsonl", b'{"id": 5, "text": "x"}\n'))})
    assert response.status_code == 400
    html = response.content.decode()
    assert "No knowledge was stored." in html
    assert "faq.jsonl, line 1, field &#x27;id&#x27;: is a number; write the id as a string, in quotes" in html
    empty = client.post(url, {})
    assert (
        empty.status_code == 400
        and "upload: holds no file; upload knowledge documents" in empty.content.decode()
    )
    assert SuiteVersion.objects.count() == 1
