"""Knowledge documents: the texts the `rag` strategies retrieve from, read from uploaded files.

Pure Python, no Django. Accepted files:

- ``.txt``, ``.md`` (``.markdown``): one document each. Its id is the file's name without its folder
  (``refunds.md``); its title the first markdown heading (``# Refunds``), else its first line.
- ``.jsonl`` (``.ndjson``): one document per line, ``{"id": "...", "text": "...", "title": "..."}``;
  ``id`` and ``text`` are required strings, ``title`` optional; other fields are ignored.
- ``.csv``: a header row with the columns ``id`` and ``text`` (and optionally ``title``), then one
  document per row; other columns are ignored.

    documents = read_knowledge([SourceFile("refunds.md", data)], max_bytes=50 * 1024 * 1024)
    documents[0]["doc_id"], documents[0]["chunks"]

Every file is checked before anything is returned: problems raise SuiteFormatError (a file that cannot
be read at all) or SuiteValidationError (some documents are invalid; `.errors` names each one's file,
line and field), like the suite importers.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import PurePosixPath
from typing import TypedDict

from .base import (
    DEFAULT_MAX_ERRORS,
    MAX_KEY_CHARS,
    SourceFile,
    SuiteFormatError,
    SuiteReader,
    SuiteValidationError,
    TooManyErrors,
    decode_utf8,
    json_problem,
    json_type,
    loads_json,
    upload_size_check,
)

TEXT_SUFFIXES = (".txt", ".md", ".markdown")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
CSV_SUFFIXES = (".csv",)
KNOWLEDGE_SUFFIXES = (*TEXT_SUFFIXES, *JSONL_SUFFIXES, *CSV_SUFFIXES)
ACCEPTED = ".txt, .md, .jsonl or .csv"
MAX_TITLE_CHARS = 300  # KnowledgeDoc.title
MAX_SOURCE_CHARS = 255  # KnowledgeDoc.source_name
MAX_DOCUMENTS = 100_000
# The folder of a suite zip whose files are the version's knowledge documents, not its cases.
KNOWLEDGE_FOLDER = "knowledge"

_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$")
_JSONL_EXAMPLE = '{"id": "refunds", "title": "Refunds", "text": "..."}'
_EMPTY_REMEDY = {
    **dict.fromkeys(JSONL_SUFFIXES, f"write one document per line, like {_JSONL_EXAMPLE}"),
    **dict.fromkeys(CSV_SUFFIXES, "write one document per row under the header (id,text,title)"),
}


class KnowledgeDocument(TypedDict):
    doc_id: str
    title: str
    text: str
    source_name: str
    chunks: list[str]


def is_knowledge_path(name: str) -> bool:
    """A file inside a `knowledge/` folder (at any depth of the archive: `knowledge/faq.md`,
    `mysuite/knowledge/policies/refunds.md`)."""
    parts = PurePosixPath(name).parts[:-1]
    return any(part.lower() == KNOWLEDGE_FOLDER for part in parts)


def read_knowledge(
    files: list[SourceFile], *, max_bytes: int, max_errors: int = DEFAULT_MAX_ERRORS
) -> list[KnowledgeDocument]:
    """Read and check every file; return the documents in upload order (a JSON Lines or CSV file's in
    file order), each with its chunks. Nothing is returned unless every file is valid."""
    if not files:
        raise SuiteFormatError("upload", f"holds no file; upload knowledge documents ({ACCEPTED} files)")
    upload_size_check([(f.name, len(f.data)) for f in files], limit=max_bytes)
    for f in files:
        _suffix_check(f.name)
    errors = _Errors(max_errors)
    documents: list[KnowledgeDocument] = []
    seen: dict[str, str] = {}  # doc_id -> where it was first given ("faq.jsonl, line 3")
    try:
        for f in files:
            records = 0
            for line, raw in _records(f, errors):
                records += 1
                doc = _document(f, line, raw, errors)
                if doc is None:
                    continue
                where = f.name if line is None else f"{f.name}, line {line}"
                first = seen.get(doc["doc_id"])
                if first is not None:
                    errors.add(
                        SuiteFormatError(
                            f.name,
                            f"the id {doc['doc_id']!r} is already used by {first}; give each document its "
                            "own id (rename the file, or change one of the ids)",
                            line,
                            None if line is None else "id",
                        )
                    )
                    continue
                seen[doc["doc_id"]] = where
                documents.append(doc)
                if len(documents) > MAX_DOCUMENTS:
                    raise SuiteFormatError(
                        f.name,
                        f"the upload has more than {MAX_DOCUMENTS:,} documents, the limit; upload fewer",
                        line,
                    )
            if records == 0 and not any(e.file == f.name for e in errors.items):
                errors.add(SuiteFormatError(f.name, f"holds no document; {_EMPTY_REMEDY[_suffix(f.name)]}"))
    except TooManyErrors:
        raise errors.failure(truncated=True) from None
    if len(errors.items) == 1 and errors.items[0].line is None:
        raise errors.items[0]  # a whole file's problem (an empty document) is said as it is
    if errors.items:
        raise errors.failure()
    from evaluations.retrieval import chunk_text  # pure, like this package

    for doc in documents:
        doc["chunks"] = chunk_text(doc["text"])
    return documents


# --- reading ---------------------------------------------------------------------------------------------


class _Errors:
    """The problems found in all files, up to `max_errors`."""

    def __init__(self, max_errors: int) -> None:
        self.max_errors = max(1, max_errors)
        self.items: list[SuiteFormatError] = []

    def add(self, error: SuiteFormatError) -> None:
        self.items.append(error)
        if len(self.items) >= self.max_errors:
            raise TooManyErrors

    def failure(self, *, truncated: bool = False) -> SuiteValidationError:
        files = list(dict.fromkeys(e.file for e in self.items))
        name = files[0] if len(files) == 1 else ", ".join(files[:5])
        return SuiteValidationError(name, self.items, truncated)


def _suffix(name: str) -> str:
    return PurePosixPath(name).suffix.lower()


def _suffix_check(name: str) -> None:
    suffix = _suffix(name)
    if suffix in KNOWLEDGE_SUFFIXES:
        return
    what = f"file type {suffix!r} is not supported" if suffix else "the file name has no extension"
    raise SuiteFormatError(
        name,
        f"{what} for knowledge documents; upload {ACCEPTED} files (.txt and .md: one document each; "
        ".jsonl: one {id, text, title} object per line; .csv: columns id, text and optionally title)",
    )


def _records(source: SourceFile, errors: _Errors):
    """(line, raw record) of each document of the file; the line is None for a whole-file document."""
    suffix = _suffix(source.name)
    if suffix in TEXT_SUFFIXES:
        text = decode_utf8(source)  # a bad byte is refused with its line and column
        yield None, {"id": PurePosixPath(source.name).name, "text": text, "title": _title(text, suffix)}
    elif suffix in JSONL_SUFFIXES:
        yield from _jsonl_records(source, errors)
    else:
        yield from _csv_records(source, errors)


def _title(text: str, suffix: str) -> str:
    """The first markdown heading (markdown files), else the first line with text on it."""
    lines = text.splitlines()
    if suffix != ".txt":
        for line in lines:
            match = _HEADING.match(line)
            if match and match.group(1).strip():
                return match.group(1).strip()
    return next((line.strip() for line in lines if line.strip()), "")


def _jsonl_records(source: SourceFile, errors: _Errors):
    reader = SuiteReader(source.name)
    text = decode_utf8(source)
    # Lines end at "\n" only: JSON strings may hold U+2028 and friends unescaped.
    for line, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            obj = loads_json(raw)
        except json.JSONDecodeError as exc:
            remedy = f"write one JSON object per line, like {_JSONL_EXAMPLE}"
            errors.add(reader.fatal(json_problem(exc, remedy), line))
            continue
        if not isinstance(obj, dict):
            reason = f"is a JSON {json_type(obj)}, not an object; write it like {_JSONL_EXAMPLE}"
            errors.add(reader.fatal(reason, line))
            continue
        yield line, obj


def _csv_records(source: SourceFile, errors: _Errors):
    reader = SuiteReader(source.name)
    text = decode_utf8(source)
    rows = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    end = 0
    while True:
        start = end + 1
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as exc:
            if "field larger than field limit" in str(exc):
                reason = (
                    f"a cell is longer than {csv.field_size_limit():,} characters, or a quote opened here "
                    "is never closed; put long documents in .txt or .md files, or check the quotes"
                )
            else:
                reason = f"cannot be read as CSV ({exc}); check the quotes in this record"
            errors.add(reader.fatal(reason, start))
            return
        end = rows.line_num
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = [cell.strip().lower() for cell in row]
            missing = [name for name in ("id", "text") if name not in header]
            if missing:
                found = ", ".join(repr(name) for name in header)
                raise reader.fatal(
                    f"the header has no {' and no '.join(repr(m) for m in missing)} column (found {found}); "
                    "the first row names the columns: id, text and optionally title",
                    start,
                    missing[0],
                )
            continue
        if len(row) != len(header):
            reason = f"has {len(row)} cells but the header has {len(header)} columns; "
            if end > start:
                reason += f"the record runs to line {end}, so check for a quote that is never closed"
            else:
                reason += "put cells that contain commas in double quotes"
            errors.add(reader.fatal(reason, start))
            continue
        cells = dict(zip(header, row, strict=True))
        yield start, {k: cells[k] for k in ("id", "text", "title") if k in cells}
    if header is None:
        raise reader.fatal("is empty; give a header row (id,text,title), then one document per row")


def _document(source: SourceFile, line: int | None, raw: dict, errors: _Errors) -> KnowledgeDocument | None:
    """The document of one record, or None with its problems reported. A whole file's problems name no
    field (its id is its name, its title its first line)."""
    found = len(errors.items)
    whole_file = line is None

    def problem(field: str, reason: str) -> None:
        errors.add(SuiteFormatError(source.name, reason, line, None if whole_file else field))

    doc_id, text, title = raw.get("id"), raw.get("text"), raw.get("title")
    if doc_id is None or (isinstance(doc_id, str) and not doc_id.strip()):
        problem("id", "is missing; give every document a unique id (the name cases' gold_docs refer to)")
    elif not isinstance(doc_id, str):
        problem("id", f"is a {json_type(doc_id)}; write the id as a string, in quotes")
    elif len(doc_id.strip()) > MAX_KEY_CHARS:
        what = "the file name" if whole_file else "is"
        problem("id", f"{what} longer than {MAX_KEY_CHARS} characters; shorten it")
    if text is None or (isinstance(text, str) and not text.strip()):
        problem("text", f"is {'empty' if whole_file else 'missing or empty'}; write the document's text")
    elif not isinstance(text, str):
        problem("text", f"is a {json_type(text)}; write the text as a string")
    if title is not None and not isinstance(title, str):
        problem("title", f"is a {json_type(title)}; write the title as a string, or leave it out")
    elif isinstance(title, str) and len(title.strip()) > MAX_TITLE_CHARS and not whole_file:
        problem("title", f"is longer than {MAX_TITLE_CHARS} characters; shorten it")
    for name, value in (("id", doc_id), ("text", text), ("title", title)):
        if isinstance(value, str) and "\x00" in value:
            problem(name, "holds a NUL character; remove it (the database cannot store it)")
            break
    if len(errors.items) > found:
        return None
    title = (title or "").strip()
    if len(title) > MAX_TITLE_CHARS:  # a whole file's first line
        title = title[: MAX_TITLE_CHARS - 1].rstrip() + "…"
    return {
        "doc_id": doc_id.strip(),
        "title": title,
        "text": text.strip(),
        "source_name": source.name[-MAX_SOURCE_CHARS:],
        "chunks": [],
    }
