"""`import_knowledge --suite NAME [--replace] PATH...`: files and folders as the suite's next version."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from evaluations.importers import SourceFile
from evaluations.models import SuiteVersion
from evaluations.services.suites import suite_import

pytestmark = pytest.mark.django_db


@pytest.fixture
def suite():
    cases = b"id,input,expected\nq1,How long do refunds take?,30 days\nq2,Do you ship abroad?,yes\n"
    return suite_import(name="support", files=[SourceFile("cases.csv", cases)]).suite


def test_files_and_folders_become_the_next_version(suite, tmp_path):
    folder = tmp_path / "kb"
    (folder / "policies").mkdir(parents=True)
    (folder / "policies" / "refunds.md").write_text("# Refunds\n\nWithin 30 days.")
    (folder / "faq.jsonl").write_text('{"id": "faq-1", "text": "We ship worldwide."}\n')
    (folder / "notes.pdf").write_bytes(b"%PDF")  # not a knowledge file: a folder's are picked
    (folder / ".hidden.md").write_text("secret")
    extra = tmp_path / "hours.txt"
    extra.write_text("Open 9-5.")
    out = io.StringIO()
    call_command("import_knowledge", "--suite", "support", str(folder), str(extra), stdout=out)
    version = suite.versions.get(number=2)
    assert "imported support v2: 3 documents, 3 chunks (2 cases of v1 kept)" in out.getvalue()
    assert "note: Knowledge: 3 added (faq-1, refunds.md, hours.txt)" in out.getvalue()
    assert list(version.knowledge.values_list("doc_id", "source_name")) == [
        ("faq-1", "faq.jsonl"),
        ("refunds.md", "policies/refunds.md"),
        ("hours.txt", "hours.txt"),
    ]
    assert version.cases.count() == 2

    call_command("import_knowledge", "--suite", "support", "--replace", str(extra), stdout=io.StringIO())
    assert list(suite.versions.get(number=3).knowledge.values_list("doc_id", flat=True)) == ["hours.txt"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--suite", "nope", "PATH"], "no suite named 'nope'; import its cases first"),
        (["--suite", "support", "missing.md"], "missing.md: no such file or folder"),
        (["--suite", "support", "bad.jsonl"], "bad.jsonl: 1 error found; fix it and upload the file again\n"
         "  line 1, field 'id': is missing"),
        (["--suite", "support", "manual.pdf"], "manual.pdf: file type '.pdf' is not supported for knowledge"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_with_the_reason_and_stores_nothing(suite, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.jsonl").write_text('{"text": "no id"}\n')
    (tmp_path / "manual.pdf").write_bytes(b"%PDF")
    with pytest.raises(CommandError) as err:
        call_command("import_knowledge", *args, stdout=io.StringIO())
    assert err.value.returncode == 2
    assert str(err.value).startswith("nothing imported: ")
    assert message in str(err.value)
    assert SuiteVersion.objects.count() == 1


def test_a_folder_without_knowledge_files_is_refused(suite, tmp_path):
    (tmp_path / "a.pdf").write_bytes(b"%PDF")
    with pytest.raises(CommandError, match="holds no knowledge file") as err:
        call_command("import_knowledge", "--suite", "support", str(tmp_path), stdout=io.StringIO())
    assert err.value.returncode == 2


def test_files_over_the_limit_are_refused_before_they_are_read(suite, tmp_path, settings):
    settings.FTVP_MAX_UPLOAD_BYTES = 1024
    big = tmp_path / "big.md"
    big.write_text("word " * 1000)
    with pytest.raises(CommandError, match=r"big\.md: is 5,000 bytes; the limit is 1,024 bytes"):
        call_command("import_knowledge", "--suite", "support", str(big), stdout=io.StringIO())
