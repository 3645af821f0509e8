"""Knowledge documents read from files: txt/md one document each, JSON Lines and CSV one per record;
every problem named with its file, line and field."""

from __future__ import annotations

import io
import zipfile

import pytest

from evaluations.importers import SourceFile, SuiteFormatError, SuiteValidationError
from evaluations.importers.knowledge import is_knowledge_path, read_knowledge
from evaluations.importers.sources import read_knowledge_files, read_sources
from evaluations.retrieval import chunk_text

LIMIT = 1024 * 1024


def read(*files: tuple[str, bytes], max_bytes: int = LIMIT):
    return read_knowledge([SourceFile(name, data) for name, data in files], max_bytes=max_bytes)


def problems(*files: tuple[str, bytes]) -> list[str]:
    with pytest.raises(SuiteValidationError) as err:
        read(*files)
    return [str(e) for e in err.value.errors]


def test_text_and_markdown_files_are_one_document_each_with_a_title():
    md = b"Some intro before the heading.\n\n## Refunds ##\n\nWe refund within 30 days of delivery.\n"
    txt = b"\n   Shipping times  \nOrders ship in two days.\n"
    refunds, shipping = read(("policies/refunds.md", md), ("shipping.txt", txt))
    assert refunds["doc_id"] == "refunds.md" and refunds["source_name"] == "policies/refunds.md"
    assert refunds["title"] == "Refunds"  # the first heading, its closing hashes dropped
    assert refunds["text"] == md.decode().strip()
    assert refunds["chunks"] == chunk_text(refunds["text"])
    assert (shipping["doc_id"], shipping["title"]) == ("shipping.txt", "Shipping times")  # the first line


def test_a_txt_file_starting_with_a_hash_is_titled_by_its_first_line():
    [doc] = read(("notes.txt", b"# not a heading in a text file\nbody"))
    assert doc["title"] == "# not a heading in a text file"


def test_a_long_document_is_chunked():
    words = " ".join(f"w{i}" for i in range(400))
    [doc] = read(("long.md", words.encode()))
    assert len(doc["chunks"]) > 1 and doc["chunks"] == chunk_text(words)


def test_json_lines_and_csv_give_one_document_per_record_in_order():
    jsonl = (
        b'{"id": "faq-1", "text": "Refunds take 5 days.", "title": "Refunds", "extra": 1}\n'
        b"\n"
        b'{"id": "faq-2", "text": "We ship worldwide."}\n'
    )
    csv = b'id,text,title\nc1,"A cell\nover two lines",Two lines\nc2,plain text,\n'
    docs = read(("faq.jsonl", jsonl), ("more.csv", csv))
    assert [(d["doc_id"], d["title"], d["source_name"]) for d in docs] == [
        ("faq-1", "Refunds", "faq.jsonl"),
        ("faq-2", "", "faq.jsonl"),
        ("c1", "Two lines", "more.csv"),
        ("c2", "", "more.csv"),
    ]
    assert docs[2]["text"] == "A cell\nover two lines"


def test_a_csv_without_title_column_is_fine():
    [doc] = read(("kb.csv", b"ID,Text\nk1,hello\n"))  # column names are case-insensitive
    assert (doc["doc_id"], doc["text"], doc["title"]) == ("k1", "hello", "")


def test_jsonl_record_errors_name_file_line_and_field():
    data = (
        b'{"text": "no id"}\n'
        b'{"id": 7, "text": "a number"}\n'
        b'{"id": "empty", "text": "   "}\n'
        b'{"id": "t", "text": "x", "title": ["a list"]}\n'
        b"[1, 2]\n"
        b"{not json\n"
    )
    assert problems(("faq.jsonl", data)) == [
        "faq.jsonl, line 1, field 'id': is missing; give every document a unique id (the name cases' "
        "gold_docs refer to)",
        "faq.jsonl, line 2, field 'id': is a number; write the id as a string, in quotes",
        "faq.jsonl, line 3, field 'text': is missing or empty; write the document's text",
        "faq.jsonl, line 4, field 'title': is a list; write the title as a string, or leave it out",
        'faq.jsonl, line 5: is a JSON list, not an object; write it like {"id": "refunds", "title": '
        '"Refunds", "text": "..."}',
        "faq.jsonl, line 6: is not valid JSON (Expecting property name enclosed in double quotes at column "
        '2); write one JSON object per line, like {"id": "refunds", "title": "Refunds", "text": "..."}',
    ]


def test_csv_errors_name_line_and_field():
    data = b"id,text\nok,fine\n,no id\nno-text,\nshort\n"
    assert problems(("kb.csv", data)) == [
        "kb.csv, line 3, field 'id': is missing; give every document a unique id (the name cases' gold_docs "
        "refer to)",
        "kb.csv, line 4, field 'text': is missing or empty; write the document's text",
        "kb.csv, line 5: has 1 cells but the header has 2 columns; put cells that contain commas in double "
        "quotes",
    ]


def test_a_csv_needs_a_header_with_id_and_text():
    with pytest.raises(SuiteFormatError) as err:
        read(("kb.csv", b"name,body\na,b\n"))
    assert str(err.value) == (
        "kb.csv, line 1, field 'id': the header has no 'id' and no 'text' column (found 'name', 'body'); "
        "the first row names the columns: id, text and optionally title"
    )


def test_duplicate_ids_are_refused_naming_both_places():
    jsonl = b'{"id": "refunds.md", "text": "one"}\n{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n'
    assert problems(("refunds.md", b"Refunds"), ("faq.jsonl", jsonl)) == [
        "faq.jsonl, line 1, field 'id': the id 'refunds.md' is already used by refunds.md; give each "
        "document its own id (rename the file, or change one of the ids)",
        "faq.jsonl, line 3, field 'id': the id 'a' is already used by faq.jsonl, line 2; give each document "
        "its own id (rename the file, or change one of the ids)",
    ]
    # the same file name in two folders of a zip: one problem of a whole file, said as it is
    with pytest.raises(SuiteFormatError) as err:
        read(("a/faq.md", b"one"), ("b/faq.md", b"two"))
    assert str(err.value).startswith("b/faq.md: the id 'faq.md' is already used by a/faq.md;")


def test_an_empty_document_is_refused():
    with pytest.raises(SuiteFormatError) as err:
        read(("empty.md", b"  \n\n"))
    assert str(err.value) == "empty.md: is empty; write the document's text"
    with pytest.raises(
        SuiteFormatError, match=r"none\.jsonl: holds no document; write one document per line"
    ):
        read(("none.jsonl", b"\n\n"))
    with pytest.raises(SuiteFormatError, match=r"head\.csv: holds no document; write one document per row"):
        read(("head.csv", b"id,text\n"))


def test_non_utf8_is_refused_with_the_line():
    with pytest.raises(SuiteFormatError) as err:
        read(("latin.md", "first line\ncaf\xe9".encode("latin-1")))
    assert str(err.value) == (
        "latin.md, line 2: is not valid UTF-8 (byte 0xe9 at column 4); save the file with UTF-8 encoding"
    )


def test_files_over_the_upload_limit_are_refused():
    with pytest.raises(SuiteFormatError) as err:
        read(("big.md", b"x" * 2000), max_bytes=1000)
    assert str(err.value).startswith(
        "big.md: is 2,000 bytes; the limit is 1,000 bytes (FTVP_MAX_UPLOAD_BYTES)"
    )


def test_unknown_extensions_are_refused_listing_the_accepted_ones():
    with pytest.raises(SuiteFormatError) as err:
        read(("manual.pdf", b"%PDF"))
    assert str(err.value).startswith(
        "manual.pdf: file type '.pdf' is not supported for knowledge documents; upload .txt, .md, .jsonl or "
        ".csv files"
    )


def test_a_nul_character_is_refused():
    [message] = problems(("faq.jsonl", b'{"id": "a", "text": "x\\u0000y"}\n'))
    assert message.startswith("faq.jsonl, line 1, field 'text': holds a NUL character")


def test_a_zip_of_documents_is_read_hidden_files_skipped():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("docs/refunds.md", "# Refunds\nWithin 30 days.")
        archive.writestr("docs/.DS_Store", b"\x00\x01")
    [doc] = read_knowledge_files([SourceFile("docs.zip", buffer.getvalue())], max_bytes=LIMIT)
    assert (doc["doc_id"], doc["source_name"]) == ("refunds.md", "docs/refunds.md")


def test_knowledge_paths():
    assert is_knowledge_path("knowledge/faq.md")
    assert is_knowledge_path("suite/Knowledge/policies/faq.md")
    assert not is_knowledge_path("knowledge.md") and not is_knowledge_path("cases/knowledge.csv")


def _zip(members: dict[str, bytes | str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_a_suite_zip_knowledge_folder_is_not_read_as_cases():
    data = _zip(
        {
            "suite/cases.jsonl": '{"id": "q1", "input": "Refunds take how long?", "expected": "30 days"}\n',
            "suite/knowledge/refunds.md": "# Refunds\nWithin 30 days.",
            "suite/knowledge/faq.csv": "id,text\nship,We ship worldwide.\n",
            "suite/knowledge/.DS_Store": b"\x00",
        }
    )
    result = read_sources([SourceFile("suite.zip", data)])
    assert [c["key"] for c in result.cases] == ["q1"] and result.files == ["suite/cases.jsonl"]
    assert [d["doc_id"] for d in result.knowledge] == ["refunds.md", "ship"]
    plain = read_sources([SourceFile("cases.csv", b"input,expected\na,b\n")])
    assert plain.knowledge is None  # no knowledge/ folder: nothing said about knowledge


def test_a_bad_knowledge_file_in_a_suite_zip_fails_the_upload():
    data = _zip({"cases.csv": "input,expected\na,b\n", "knowledge/bad.jsonl": '{"id": "x"}\n'})
    with pytest.raises(SuiteValidationError) as err:
        read_sources([SourceFile("suite.zip", data)])
    assert [str(e) for e in err.value.errors] == [
        "knowledge/bad.jsonl, line 1, field 'text': is missing or empty; write the document's text"
    ]


def test_a_zip_with_only_knowledge_is_not_a_suite():
    with pytest.raises(SuiteFormatError, match="holds only knowledge/ files"):
        read_sources([SourceFile("k.zip", _zip({"knowledge/a.md": "text"}))])
