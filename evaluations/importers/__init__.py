"""Suite importers: read an uploaded test-suite file into validated case dicts.

Pure Python, no Django and no database: services turn the returned dicts into Case rows.

    with open("cases.csv", "rb") as f:
        cases = read_suite(f, "cases.csv")

Each case is ``{"key", "input", "expected", "assertions", "tags", "metadata", "split", "line"}`` (see
:class:`CaseDict`). The whole file is validated before anything is returned; problems raise
:class:`SuiteFormatError` (the file cannot be read at all) or its subclass :class:`SuiteValidationError`
(some records are invalid; ``.errors`` lists each one with its line and field).
"""

from __future__ import annotations

from pathlib import PurePath
from typing import IO

from .base import (
    DEFAULT_MAX_ERRORS,
    MAX_CASES,
    MAX_FIELD_CHARS,
    CaseDict,
    Message,
    SuiteFormatError,
    SuiteReader,
    SuiteValidationError,
    TooManyErrors,
)
from .csv_format import read_csv
from .jsonl_format import read_jsonl
from .sources import FORMAT_CHOICES, ImportResult, SourceFile, read_sources

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
SUPPORTED_EXTENSIONS = tuple(FORMATS)

__all__ = [
    "FORMAT_CHOICES",
    "MAX_CASES",
    "MAX_FIELD_CHARS",
    "SUPPORTED_EXTENSIONS",
    "CaseDict",
    "ImportResult",
    "Message",
    "SourceFile",
    "SuiteFormatError",
    "SuiteValidationError",
    "detect_format",
    "read_sources",
    "read_suite",
]


def detect_format(filename: str) -> str:
    """``"csv"`` or ``"jsonl"`` from the file's extension; SuiteFormatError for anything else."""
    suffix = PurePath(filename).suffix.lower()
    if suffix in FORMATS:
        return FORMATS[suffix]
    accepted = ", ".join(SUPPORTED_EXTENSIONS[:-1]) + f" or {SUPPORTED_EXTENSIONS[-1]}"
    what = f"file type {suffix!r} is not supported" if suffix else "the file name has no extension"
    raise SuiteFormatError(filename, f"{what}; upload a {accepted} file")


def read_suite(fileobj: IO[bytes], filename: str, *, max_errors: int = DEFAULT_MAX_ERRORS) -> list[CaseDict]:
    """Read and validate a whole suite file (opened in binary mode); return its cases in file order.

    Raises SuiteFormatError when the file cannot be read (unsupported extension, empty, no usable CSV
    header, too many cases), and SuiteValidationError listing up to ``max_errors`` invalid records.
    """
    fmt = detect_format(filename)
    reader = SuiteReader(filename, max_errors=max_errors)
    try:
        if fmt == "csv":
            read_csv(fileobj, reader)
        else:
            read_jsonl(fileobj, reader)
    except TooManyErrors:
        raise SuiteValidationError(filename, reader.errors, truncated=True) from None
    if reader.errors:
        raise SuiteValidationError(filename, reader.errors)
    if not reader.cases:
        raise SuiteFormatError(
            filename,
            'is empty; write one case per line as a JSON object, e.g. {"input": ..., "expected": ...}',
        )
    return reader.cases
