"""CSV suites: a header row, then one case per record.

Columns (names are case-insensitive): ``input`` (required), ``expected`` / ``ideal`` / ``expected_output``
(a cell holding a JSON list of strings such as ``["Paris", "paris"]`` means several acceptable outputs),
``assertions`` (a JSON list), ``tags`` (separated by commas or semicolons), ``metadata`` (a JSON object),
``split``, ``id``. Any other column is kept in the case's metadata. Quoted cells may span several lines;
errors give the line where the record starts.
"""

from __future__ import annotations

import csv
import json
from typing import IO, Any

from .base import EXPECTED_ALIASES, MAX_FIELD_CHARS, SuiteReader, json_problem, loads_json

JSON_COLUMNS = ("assertions", "metadata")
KNOWN_COLUMNS = {"id", "input", "tags", "split", *JSON_COLUMNS, *EXPECTED_ALIASES}


def read_csv(fileobj: IO[bytes], reader: SuiteReader) -> None:
    records = csv.reader(reader.text_lines(fileobj))
    header: list[str] | None = None
    header_line = 0
    end = 0
    while True:
        start = end + 1
        try:
            row = next(records)
        except StopIteration:
            break
        except csv.Error as exc:
            if "field larger than field limit" in str(exc):
                reason = (
                    f"a cell is longer than the limit of {MAX_FIELD_CHARS:,} characters, or a quote opened "
                    "here is never closed; shorten the cell or check its quotes"
                )
            elif "new-line character seen in unquoted field" in str(exc):
                reason = (
                    "has line breaks made of a lone carriage return (CR); "
                    "save the file with LF or CRLF line ends"
                )
            else:
                reason = f"cannot be read as CSV ({exc}); check the quotes in this record"
            reader.error(start, None, reason)
            return
        end = records.line_num
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header, header_line = _header(reader, row, start), start
            continue
        reader.count_record(start)
        if len(row) != len(header):
            reason = f"has {len(row)} cells but the header has {len(header)} columns; "
            if end > start:
                reason += f"the record runs to line {end}, so check for a quote that is never closed"
            else:
                reason += "put cells that contain commas in double quotes"
            reader.error(start, None, reason)
            continue
        _add_row(reader, start, dict(zip(header, row, strict=True)))
    if header is None:
        raise reader.fatal("is empty; give a header row with an 'input' column, then one row per case")
    if reader.records == 0:
        raise reader.fatal("has a header but no cases; add at least one row under the header", header_line)


def _header(reader: SuiteReader, row: list[str], line: int) -> list[str]:
    names = []
    for index, cell in enumerate(row, start=1):
        name = cell.strip().lower() or f"column_{index}"
        if name in names:
            raise reader.fatal(
                f"the column {name!r} appears twice in the header; rename or remove one", line, name
            )
        names.append(name)
    if "input" not in names:
        found = ", ".join(repr(name) for name in names)
        hint = ""
        if len(row) == 1 and any(sep in row[0] for sep in ";\t|"):
            hint = " (the file seems to use another separator than ','; save it as comma-separated)"
        raise reader.fatal(
            f"the header has no 'input' column (found {found}){hint}; add an 'input' column", line, "input"
        )
    if not any(name in names for name in (*EXPECTED_ALIASES, "assertions")):
        raise reader.fatal(
            "the header has no 'expected' column (nor 'ideal' or 'assertions'); add an 'expected' column "
            "with the expected output of each case",
            line,
            "expected",
        )
    return names


def _add_row(reader: SuiteReader, line: int, cells: dict[str, str]) -> None:
    for name, value in cells.items():
        if len(value) > MAX_FIELD_CHARS:
            reader.error(
                line, name, f"is longer than the limit of {MAX_FIELD_CHARS:,} characters; shorten it"
            )
            return

    filled = [name for name in EXPECTED_ALIASES if cells.get(name, "").strip()]
    if len(filled) > 1:
        reader.error(line, filled[1], f"is filled in together with {filled[0]!r}; keep only one of them")
        return
    expected_field = filled[0] if filled else next((n for n in EXPECTED_ALIASES if n in cells), "expected")
    expected: object = cells.get(expected_field)
    if isinstance(expected, str):
        expected = _acceptable_outputs(expected)

    parsed: dict[str, Any] = {}
    for name in JSON_COLUMNS:
        cell = cells.get(name, "")
        if not cell.strip():
            continue
        try:
            parsed[name] = loads_json(cell)
        except json.JSONDecodeError as exc:
            example = (
                '[{"type": "contains", "value": "Paris"}]' if name == "assertions" else '{"source": "faq"}'
            )
            reader.error(line, name, json_problem(exc, f"write it like {example}"))
            return

    reader.add_case(
        line,
        key=cells.get("id"),
        input=cells["input"],
        expected=expected,
        expected_field=expected_field,
        assertions=parsed.get("assertions"),
        tags=cells.get("tags"),
        metadata=parsed.get("metadata"),
        extra_metadata={name: value for name, value in cells.items() if name not in KNOWN_COLUMNS},
        split=cells.get("split"),
    )


def _acceptable_outputs(cell: str) -> str | list[str]:
    """A cell holding a non-empty JSON list of strings means several acceptable outputs; else it is text."""
    if not cell.lstrip().startswith("["):
        return cell
    try:
        value = loads_json(cell)
    except json.JSONDecodeError:
        return cell
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return value
    return cell
