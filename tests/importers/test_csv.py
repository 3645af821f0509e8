from __future__ import annotations

import io

import pytest

from evaluations.importers import (
    MAX_FIELD_CHARS,
    SuiteFormatError,
    SuiteValidationError,
    detect_format,
    read_suite,
)
from evaluations.importers import base as importer_base
from tests.fixtures import PEER_FORMATS

FIXTURES = PEER_FORMATS


def read(data: str | bytes, filename: str = "cases.csv", **kwargs: int) -> list:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return read_suite(io.BytesIO(raw), filename, **kwargs)


def errors_of(data: str | bytes, filename: str = "cases.csv", **kwargs: int) -> list[SuiteFormatError]:
    with pytest.raises(SuiteValidationError) as info:
        read(data, filename, **kwargs)
    return info.value.errors


def where(err: SuiteFormatError) -> tuple[str, int | None, str | None]:
    return (err.file, err.line, err.field)


# -- good files ----------------------------------------------------------------------------------------


def test_it_reads_every_column_into_the_case_dict():
    data = (
        "id,input,expected,tags,split,metadata,source\n"
        'capital-fr,What is the capital of France?,Paris,"geo; easy",train,"{""level"": 1}",atlas\n'
    )

    assert read(data) == [
        {
            "key": "capital-fr",
            "input": "What is the capital of France?",
            "expected": "Paris",
            "assertions": [],
            "tags": ["geo", "easy"],
            "metadata": {"level": 1, "source": "atlas"},
            "split": "train",
            "line": 2,
        }
    ]


def test_it_makes_zero_padded_keys_from_the_line_when_there_is_no_id():
    cases = read("input,expected\nhello,world\n\nbye,moon\n")

    assert [(c["key"], c["line"], c["split"]) for c in cases] == [
        ("case-0002", 2, "test"),
        ("case-0004", 4, "test"),
    ]


def test_it_matches_header_names_case_insensitively_and_strips_them():
    cases = read(" Input , IDEAL ,ID\nq,a, k1 \n")

    assert cases[0]["input"] == "q"
    assert cases[0]["expected"] == "a"
    assert cases[0]["key"] == "k1"


def test_it_reads_a_json_list_cell_as_several_acceptable_outputs():
    cases = read('input,expected\nCapital of France?,"[""Paris"", ""paris""]"\nList?,[1 2]\n')

    assert cases[0]["expected"] == ["Paris", "paris"]
    assert cases[1]["expected"] == "[1 2]"


def test_it_keeps_strings_as_given_and_splits_tags_on_commas_and_semicolons():
    cases = read('input,expected,tags\n"  two  spaces ","  x ","a, b;c,,a"\n')

    assert cases[0]["input"] == "  two  spaces "
    assert cases[0]["expected"] == "  x "
    assert cases[0]["tags"] == ["a", "b", "c"]


def test_it_allows_multi_line_cells_and_reports_the_line_where_a_record_starts():
    data = 'input,expected\n"line one\nline two",ok\nsecond,\n'

    errors = errors_of(data)

    assert [where(e) for e in errors] == [("cases.csv", 4, "expected")]


def test_it_returns_multi_line_cells_whole():
    cases = read('input,expected\r\n"line one\r\nline two",ok\r\n')

    assert cases[0]["input"] == "line one\r\nline two"
    assert cases[0]["line"] == 2


def test_it_accepts_a_row_with_assertions_and_no_expected_output():
    data = 'input,expected,assertions\nSay hi,,"[{""type"": ""contains"", ""value"": ""hi""}]"\n'

    cases = read(data)

    assert cases[0]["expected"] is None
    assert cases[0]["assertions"] == [{"type": "contains", "value": "hi"}]


def test_it_accepts_a_utf8_bom_and_non_ascii_text():
    cases = read("\ufeffinput,expected\nEspañol?,sí\n".encode())

    assert cases[0]["input"] == "Español?"
    assert cases[0]["expected"] == "sí"


def test_it_skips_blank_lines_and_rows_of_empty_cells():
    cases = read("\n\ninput,expected\n\n,\nq,a\n\n")

    assert [(c["input"], c["line"]) for c in cases] == [("q", 6)]


def test_it_reads_a_file_opened_from_disk(tmp_path):
    path = tmp_path / "suite.CSV"
    path.write_text("input,expected\nq,a\n", encoding="utf-8")

    with path.open("rb") as f:
        cases = read_suite(f, path.name)

    assert cases[0]["input"] == "q"
    assert detect_format("suite.CSV") == "csv"


def test_it_reads_the_deepeval_goldens_csv_with_expected_output_and_extra_columns():
    with (FIXTURES / "deepeval__goldens.csv").open("rb") as f:
        cases = read_suite(f, "goldens.csv")

    assert cases[0]["input"] == "How many centimetres are in one inch?"
    assert cases[0]["expected"] == "2.54 centimetres"
    assert cases[0]["metadata"]["context"] == "Length|Imperial units"


# -- errors --------------------------------------------------------------------------------------------


def test_it_explains_an_empty_expected_cell_with_file_line_field_and_fix():
    data = "input,expected\n" + "q,a\n" * 5 + "q,\n"

    with pytest.raises(SuiteValidationError) as info:
        read(data)

    assert str(info.value.errors[0]) == (
        "cases.csv, line 7, field 'expected': is empty; give the expected output or remove the row"
    )
    assert info.value.errors[0].reason == "is empty; give the expected output or remove the row"


def test_it_rejects_a_header_without_an_input_column():
    with pytest.raises(SuiteFormatError) as info:
        read("question,expected\nq,a\n")

    assert not isinstance(info.value, SuiteValidationError)
    assert where(info.value) == ("cases.csv", 1, "input")
    assert "'question'" in str(info.value)


def test_it_hints_at_the_separator_when_the_file_is_not_comma_separated():
    with pytest.raises(SuiteFormatError, match="another separator"):
        read("input;expected\nq;a\n")


def test_it_rejects_a_header_without_an_expected_or_assertions_column():
    with pytest.raises(SuiteFormatError) as info:
        read("input,notes\nq,a\n")

    assert where(info.value) == ("cases.csv", 1, "expected")


def test_it_rejects_an_empty_input():
    assert [where(e) for e in errors_of("input,expected\n   ,a\n")] == [("cases.csv", 2, "input")]


def test_it_rejects_an_unknown_split():
    errors = errors_of("input,expected,split\nq,a,dev\n")

    assert [where(e) for e in errors] == [("cases.csv", 2, "split")]
    assert "'dev'" in errors[0].reason and "'train'" in errors[0].reason


def test_it_rejects_a_duplicate_id_naming_both_lines():
    errors = errors_of("id,input,expected\nk1,q,a\nk2,q,a\n k1 ,q,a\n")

    assert [where(e) for e in errors] == [("cases.csv", 4, "id")]
    assert "'k1' is already used on line 2" in errors[0].reason


def test_it_rejects_a_ragged_row_with_its_line():
    errors = errors_of("input,expected\nq,a\nq,a,extra\n")

    assert [where(e) for e in errors] == [("cases.csv", 3, None)]
    assert "3 cells but the header has 2 columns" in errors[0].reason


def test_it_points_at_an_unclosed_quote():
    errors = errors_of('input,expected\n"q,a\nr,b\ns,c\n')

    assert [where(e) for e in errors] == [("cases.csv", 2, None)]
    assert "quote" in errors[0].reason


def test_it_explains_files_with_carriage_return_line_ends():
    errors = errors_of(b"input,expected\rq,a\r")

    assert [where(e) for e in errors] == [("cases.csv", 1, None)]
    assert "carriage return" in errors[0].reason


def test_it_rejects_bad_utf8_naming_the_line():
    errors = errors_of(b"input,expected\nq,a\ncaf\xe9,b\n")

    assert [where(e) for e in errors] == [("cases.csv", 3, None)]
    assert "UTF-8" in errors[0].reason and "0xe9" in errors[0].reason


def test_it_rejects_invalid_json_in_the_assertions_column():
    errors = errors_of("input,expected,assertions\nq,a,[{type}]\n")

    assert [where(e) for e in errors] == [("cases.csv", 2, "assertions")]


def test_it_rejects_metadata_that_is_not_a_json_object():
    errors = errors_of('input,expected,metadata\nq,a,"[1, 2]"\n')

    assert [where(e) for e in errors] == [("cases.csv", 2, "metadata")]


def test_it_rejects_a_cell_over_the_length_limit():
    errors = errors_of("input,expected\n" + "x" * (MAX_FIELD_CHARS + 1) + ",a\n")

    assert [where(e) for e in errors] == [("cases.csv", 2, "input")]
    assert "100,000" in errors[0].reason


def test_it_rejects_a_file_with_more_cases_than_the_limit(monkeypatch):
    monkeypatch.setattr(importer_base, "MAX_CASES", 3)

    with pytest.raises(SuiteFormatError) as info:
        read("input,expected\n" + "q,a\n" * 4)

    assert info.value.line == 5
    assert "more than 3 cases" in str(info.value)


@pytest.mark.parametrize("data", ["", "\n\n", "\ufeff"])
def test_it_rejects_an_empty_file(data):
    with pytest.raises(SuiteFormatError, match="is empty"):
        read(data)


def test_it_rejects_a_header_without_cases():
    with pytest.raises(SuiteFormatError, match="no cases") as info:
        read("input,expected\n\n")

    assert info.value.line == 1


@pytest.mark.parametrize("filename", ["cases.txt", "cases.xlsx", "cases"])
def test_it_rejects_an_unsupported_extension(filename):
    with pytest.raises(SuiteFormatError) as info:
        read("input,expected\nq,a\n", filename)

    assert info.value.file == filename
    assert ".csv, .jsonl or .ndjson" in str(info.value)


def test_it_reports_every_bad_row_at_once():
    data = "id,input,expected,split\na,,x,test\nb,q,,test\nc,q,x,prod\nd,q,x,test\n"

    with pytest.raises(SuiteValidationError) as info:
        read(data)

    assert [where(e) for e in info.value.errors] == [
        ("cases.csv", 2, "input"),
        ("cases.csv", 3, "expected"),
        ("cases.csv", 4, "split"),
    ]
    assert str(info.value).startswith("cases.csv: 3 errors found")
    assert "line 4, field 'split'" in str(info.value)


def test_it_stops_after_max_errors_and_summarises_the_rest():
    data = "input,expected\n" + ",a\n" * 30

    with pytest.raises(SuiteValidationError) as info:
        read(data, max_errors=8)

    assert len(info.value.errors) == 8
    assert info.value.truncated
    message = str(info.value)
    assert "line 6, field 'input'" in message
    assert "line 7," not in message
    assert "and 3 more" in message
