"""Knowledge documents versioned with the suite: each import makes the next version with the latest
version's cases copied and its documents kept, replaced by id, or dropped; a suite zip's knowledge/
folder; carried over when cases are uploaded again."""

from __future__ import annotations

import io
import zipfile

import pytest

from evaluations.importers import SourceFile, SuiteFormatError, SuiteValidationError
from evaluations.models import AuditEvent, Case, KnowledgeChunk, KnowledgeDoc, SuiteVersion
from evaluations.retrieval import chunk_text
from evaluations.services.knowledge import knowledge_import
from evaluations.services.suites import suite_import
from tests.factories import SuiteFactory, UserFactory

pytestmark = pytest.mark.django_db

CASES = (
    b'{"id": "refund", "input": "How long do refunds take?", "expected": "30 days", "tags": ["money"], '
    b'"metadata": {"gold_docs": ["refunds.md"]}, "assertions": [{"type": "icontains", "value": "30"}]}\n'
    b'{"id": "ship", "input": "Do you ship abroad?", "expected": ["yes", "Yes"], "split": "train"}\n'
)
REFUNDS = b"# Refunds\n\nWe refund within 30 days of delivery.\n"
FAQ = (
    b'{"id": "faq-1", "title": "Shipping", "text": "We ship worldwide."}\n'
    b'{"id": "faq-2", "text": "Open 9-5."}\n'
)


def _suite(name: str = "support"):
    return suite_import(name=name, files=[SourceFile("cases.jsonl", CASES)]).suite


def _docs(version: SuiteVersion) -> list[tuple]:
    return list(version.knowledge.order_by("position").values_list("doc_id", "title", "text", "position"))


def _chunks(version: SuiteVersion) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for doc_id, text in version.chunks.order_by("doc__position", "position").values_list(
        "doc__doc_id", "text"
    ):
        out.setdefault(doc_id, []).append(text)
    return out


CASE_FIELDS = ("key", "position", "input", "expected", "assertions", "tags", "metadata", "split")


def _cases(version: SuiteVersion) -> list[tuple]:
    return list(version.cases.order_by("position").values_list(*CASE_FIELDS))


def test_an_import_makes_the_next_version_with_the_cases_copied_and_the_documents_chunked():
    suite = _suite()
    first = suite.versions.get()
    editor = UserFactory(username="eddie", roles=["editor"])
    version = knowledge_import(
        suite=suite, files=[SourceFile("refunds.md", REFUNDS), SourceFile("faq.jsonl", FAQ)], user=editor
    )
    assert version.number == 2 and version.created_by == editor
    assert _cases(version) == _cases(first) and len(_cases(version)) == 2  # every field as it was
    assert (version.task_type, version.source_name, version.source_format) == (
        first.task_type, first.source_name, first.source_format
    )  # fmt: skip
    assert _docs(version) == [
        ("refunds.md", "Refunds", REFUNDS.decode().strip(), 0),
        ("faq-1", "Shipping", "We ship worldwide.", 1),
        ("faq-2", "", "Open 9-5.", 2),
    ]
    assert _chunks(version) == {
        "refunds.md": chunk_text(REFUNDS.decode()),
        "faq-1": ["We ship worldwide."],
        "faq-2": ["Open 9-5."],
    }
    assert not first.knowledge.exists()  # versions are immutable
    assert "Cases: the 2 cases of v1, unchanged." in version.notes
    assert (
        "Knowledge: 3 added (refunds.md, faq-1, faq-2), 0 kept from v1; 3 documents, 3 chunks."
        in version.notes
    )
    [event] = AuditEvent.objects.filter(action="suite.knowledge")
    assert (event.actor_name, event.suite_id, event.object_id) == ("eddie", suite.pk, str(version.pk))
    assert event.after["documents"] == 3 and event.after["added"] == ["refunds.md", "faq-1", "faq-2"]
    assert event.after["from_version"] == 1 and event.after["cases"] == 2


def test_a_new_document_with_an_existing_id_replaces_it_in_its_place():
    suite = _suite()
    knowledge_import(suite=suite, files=[SourceFile("refunds.md", REFUNDS), SourceFile("faq.jsonl", FAQ)])
    newer = (
        b'{"id": "faq-1", "text": "We ship to 40 countries."}\n{"id": "faq-3", "text": "Returns are free."}\n'
    )
    version = knowledge_import(suite=suite, files=[SourceFile("faq2.jsonl", newer)])
    assert version.number == 3
    assert [(d, t, p) for d, _, t, p in _docs(version)] == [
        ("refunds.md", REFUNDS.decode().strip(), 0),
        ("faq-1", "We ship to 40 countries.", 1),
        ("faq-2", "Open 9-5.", 2),
        ("faq-3", "Returns are free.", 3),
    ]
    assert _chunks(version)["faq-1"] == ["We ship to 40 countries."]
    assert _chunks(version)["refunds.md"] == chunk_text(REFUNDS.decode())  # copied chunks, same text
    assert KnowledgeChunk.objects.filter(version=version).count() == 4
    assert (
        "Knowledge: 1 added (faq-3), 1 replaced (faq-1), 2 kept from v2; 4 documents, 4 chunks."
        in version.notes
    )
    assert [n for n in version.notes if n.startswith("Cases: ")] == ["Cases: the 2 cases of v2, unchanged."]
    assert len(_docs(suite.versions.get(number=2))) == 3  # v2 as it was


def test_replace_drops_the_old_documents():
    suite = _suite()
    knowledge_import(suite=suite, files=[SourceFile("refunds.md", REFUNDS), SourceFile("faq.jsonl", FAQ)])
    version = knowledge_import(
        suite=suite, files=[SourceFile("only.txt", b"The only document.")], replace=True
    )
    assert [d for d, *_ in _docs(version)] == ["only.txt"]
    assert (
        "Knowledge: v2's 3 documents replaced by 1 uploaded (only.txt); 1 document, 1 chunk." in version.notes
    )
    assert AuditEvent.objects.filter(action="suite.knowledge").order_by("seq").last().after["dropped"] == 3


def test_a_bad_file_writes_nothing():
    suite = _suite()
    before = (SuiteVersion.objects.count(), Case.objects.count(), AuditEvent.objects.count())
    with pytest.raises(SuiteValidationError) as err:
        knowledge_import(
            suite=suite, files=[SourceFile("refunds.md", REFUNDS), SourceFile("bad.jsonl", b'{"id": "x"}\n')]
        )
    assert (
        str(err.value.errors[0])
        == "bad.jsonl, line 1, field 'text': is missing or empty; write the document's text"
    )
    assert (SuiteVersion.objects.count(), Case.objects.count(), AuditEvent.objects.count()) == before
    assert not KnowledgeDoc.objects.exists()


def test_a_failure_while_writing_rolls_everything_back(monkeypatch):
    suite = _suite()
    before = (SuiteVersion.objects.count(), Case.objects.count())

    def boom(**kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("evaluations.services.knowledge.audit_record", boom)
    with pytest.raises(RuntimeError):
        knowledge_import(suite=suite, files=[SourceFile("refunds.md", REFUNDS)])
    assert (SuiteVersion.objects.count(), Case.objects.count()) == before
    assert not KnowledgeDoc.objects.exists() and not KnowledgeChunk.objects.exists()


def test_a_suite_without_a_version_is_refused():
    suite = SuiteFactory(name="empty")
    with pytest.raises(SuiteFormatError, match="has no version yet; upload its cases first"):
        knowledge_import(suite=suite, files=[SourceFile("refunds.md", REFUNDS)])
    assert not SuiteVersion.objects.exists()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_a_suite_zip_with_a_knowledge_folder_stores_its_documents():
    data = _zip({"cases.jsonl": CASES, "knowledge/refunds.md": REFUNDS, "knowledge/faq.jsonl": FAQ})
    version = suite_import(name="zipped", files=[SourceFile("suite.zip", data)])
    assert [c[0] for c in _cases(version)] == ["refund", "ship"]  # the knowledge files are no cases
    assert version.source_name == "cases.jsonl"
    assert [d for d, *_ in _docs(version)] == ["refunds.md", "faq-1", "faq-2"]
    assert KnowledgeChunk.objects.filter(version=version).count() == 3
    assert "Knowledge: 3 documents from the knowledge/ folder (3 chunks)." in version.notes
    upload = AuditEvent.objects.get(action="suite.upload")
    assert upload.after["knowledge"] == {"documents": 3, "chunks": 3, "from": "upload"}

    # a new zip's knowledge/ folder is the new version's whole knowledge
    again = suite_import(
        name="zipped", files=[SourceFile("suite.zip", _zip({"cases.jsonl": CASES, "knowledge/a.txt": b"A."}))]
    )
    assert [d for d, *_ in _docs(again)] == ["a.txt"]
    assert (
        "Knowledge: 1 document from the knowledge/ folder (1 chunk); they replace the 3 of v1." in again.notes
    )


def test_a_reupload_without_knowledge_carries_the_documents_over():
    suite = _suite()
    with_docs = knowledge_import(
        suite=suite, files=[SourceFile("refunds.md", REFUNDS), SourceFile("faq.jsonl", FAQ)]
    )
    cases = b'{"id": "new", "input": "Hello?", "expected": "Hi"}\n'
    version = suite_import(name="support", files=[SourceFile("cases.jsonl", cases)])
    assert version.number == 3 and [c[0] for c in _cases(version)] == ["new"]
    assert _docs(version) == _docs(with_docs) and _chunks(version) == _chunks(with_docs)
    assert "Knowledge: 3 documents of v2 carried over (the upload has no knowledge/ folder)." in version.notes
    upload = AuditEvent.objects.filter(action="suite.upload").order_by("seq").last()
    assert upload.after["knowledge"] == {"documents": 3, "chunks": 3, "from": "v2"}
    # the chunks are the new version's own rows
    assert not KnowledgeChunk.objects.filter(version=version, doc__version=with_docs).exists()


def test_an_upload_without_knowledge_anywhere_says_nothing_about_it():
    suite = _suite()
    version = suite_import(name=suite.name, files=[SourceFile("cases.jsonl", CASES)])
    assert not any(n.startswith("Knowledge: ") for n in version.notes)
    assert "knowledge" not in AuditEvent.objects.filter(action="suite.upload").order_by("seq").last().after


def test_notes_of_the_cases_import_are_kept_and_knowledge_notes_are_not_carried():
    suite = _suite()
    first = suite.versions.get()
    first.notes = ["2 assertions of type 'javascript' are kept but skipped"]
    first.save(update_fields=["notes"])
    second = knowledge_import(suite=suite, files=[SourceFile("refunds.md", REFUNDS)])
    third = knowledge_import(suite=suite, files=[SourceFile("a.txt", b"A.")])
    assert third.notes[0] == "2 assertions of type 'javascript' are kept but skipped"
    assert len([n for n in third.notes if n.startswith("Knowledge: ")]) == 1
    assert second.notes != third.notes
