from __future__ import annotations

import io
import json
import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluations.importers import SuiteFormatError, SuiteValidationError, detect_format, read_suite
from tests.fixtures import PEER_FORMATS

FIXTURES = PEER_FORMATS


def jsonl(*rows: Any) -> str:
    return "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows)


def read(data: str | bytes, filename: str = "cases.jsonl", **kwargs: int) -> list:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return read_suite(io.BytesIO(raw), filename, **kwargs)


def errors_of(data: str | bytes, filename: str = "cases.jsonl") -> list[SuiteFormatError]:
    with pytest.raises(SuiteValidationError) as info:
        read(data, filename)
    return info.value.errors


def where(err: SuiteFormatError) -> tuple[int | None, str | None]:
    return (err.line, err.field)


# -- good files ----------------------------------------------------------------------------------------


def test_it_reads_every_field_into_the_case_dict():
    row = {
        "id": "greet",
        "input": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "ideal": ["Hello", "Hi"],
        "assertions": [{"type": "contains", "value": "H"}],
        "tags": ["chat", " short "],
        "metadata": {"source": "faq"},
        "split": "train",
        "difficulty": 2,
    }

    assert read(jsonl(row)) == [
        {
            "key": "greet",
            "input": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
            "expected": ["Hello", "Hi"],
            "assertions": [{"type": "contains", "value": "H"}],
            "tags": ["chat", "short"],
            "metadata": {"source": "faq", "difficulty": 2},
            "split": "train",
            "line": 1,
        }
    ]


def test_it_reads_text_input_with_defaults_and_skips_blank_lines():
    cases = read("\n" + jsonl({"input": "2+2?", "expected": "4", "tags": "math; easy"}) + "  \n")

    assert cases == [
        {
            "key": "case-0002",
            "input": "2+2?",
            "expected": "4",
            "assertions": [],
            "tags": ["math", "easy"],
            "metadata": {},
            "split": "test",
            "line": 2,
        }
    ]


def test_it_accepts_numeric_ids_the_ndjson_extension_and_a_bom():
    data = "\ufeff" + jsonl({"id": 7, "input": "q", "expected": "a"})

    cases = read(data, "cases.ndjson")

    assert cases[0]["key"] == "7"
    assert detect_format("x.NDJSON") == "jsonl"


def test_it_reads_the_openai_evals_samples_file():
    with (FIXTURES / "openai-evals__unit_fuzzy_match__samples.jsonl").open("rb") as f:
        cases = read_suite(f, "samples.jsonl")

    assert [c["expected"] for c in cases] == [
        ["2.54"],
        ["5280", "5,280"],
        ["212"],
    ]
    first = cases[0]["input"]
    assert first[0] == {
        "role": "system",
        "content": "Give only the converted value, as briefly as possible.",
    }
    assert first[1] == {
        "role": "system",
        "content": "How many grams are in a kilogram?",
        "name": "example_user",
    }
    assert first[-1] == {"role": "user", "content": "How many centimetres are in one inch?"}
    assert [c["key"] for c in cases] == ["case-0001", "case-0002", "case-0003"]


def test_it_reads_the_openai_evals_few_shot_file_taking_the_last_assistant_message_as_expected():
    with (FIXTURES / "openai-evals__renewal__few_shot.jsonl").open("rb") as f:
        cases = read_suite(f, "few_shot.jsonl")

    assert len(cases) == 5
    assert cases[0]["input"] == [
        {
            "role": "user",
            "content": "what time does the reading room close on sundays",
            "name": "example_user",
        }
    ]
    assert [c["expected"] for c in cases] == ["0", "1", "1", "1", "1"]
    assert cases[0]["metadata"] == {}


def test_it_reads_chat_fine_tuning_messages_rows():
    with (FIXTURES / "openai-chat__unit-helper__fine_tuning.jsonl").open("rb") as f:
        cases = read_suite(f, "fine_tuning.jsonl")

    assert len(cases) == 5
    assert cases[1]["input"][-1] == {
        "role": "user",
        "content": "My oven only shows Fahrenheit, what should I set?",
    }
    assert cases[1]["expected"] == "Set it to 350 degrees Fahrenheit."


# -- errors --------------------------------------------------------------------------------------------


def test_it_reports_an_invalid_json_line_with_the_parser_message():
    errors = errors_of(jsonl({"input": "q", "expected": "a"}, '{"input": "q", "expected": }'))

    assert [where(e) for e in errors] == [(2, None)]
    assert "Expecting value" in errors[0].reason
    assert str(errors[0]).startswith("cases.jsonl, line 2: is not valid JSON")


def test_it_rejects_a_line_that_is_not_an_object():
    errors = errors_of(jsonl('["q", "a"]'))

    assert [where(e) for e in errors] == [(1, None)]
    assert "JSON list, not an object" in errors[0].reason


def test_it_rejects_a_message_with_an_unknown_role():
    row = {"input": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "x"}], "expected": "a"}

    errors = errors_of(jsonl(row))

    assert [where(e) for e in errors] == [(1, "input[1].role")]
    assert "'bot'" in errors[0].reason and "system, user, assistant" in errors[0].reason


def test_it_rejects_a_message_without_string_content():
    errors = errors_of(jsonl({"input": [{"role": "user", "content": None}], "expected": "a"}))

    assert [where(e) for e in errors] == [(1, "input[0].content")]


def test_it_rejects_a_missing_or_empty_input():
    errors = errors_of(
        jsonl({"expected": "a"}, {"input": " ", "expected": "a"}, {"input": [], "expected": "a"})
    )

    assert [where(e) for e in errors] == [(1, "input"), (2, "input"), (3, "input")]


def test_it_rejects_a_missing_expected_unless_there_are_assertions():
    errors = errors_of(jsonl({"input": "q"}, {"input": "q", "assertions": [{"type": "is-json"}]}))

    assert [where(e) for e in errors] == [(1, "expected")]
    assert "is missing" in errors[0].reason


def test_it_rejects_expected_and_ideal_together():
    errors = errors_of(jsonl({"input": "q", "expected": "a", "ideal": "b"}))

    assert [where(e) for e in errors] == [(1, "ideal")]


def test_it_rejects_a_non_string_expected_item():
    errors = errors_of(jsonl({"input": "q", "ideal": ["a", 4]}))

    assert [where(e) for e in errors] == [(1, "ideal[1]")]


def test_it_rejects_an_assertion_without_a_type():
    errors = errors_of(jsonl({"input": "q", "assertions": [{"value": "x"}]}))

    assert [where(e) for e in errors] == [(1, "assertions[0].type")]


def test_it_rejects_an_unknown_split():
    errors = errors_of(jsonl({"input": "q", "expected": "a", "split": "validation"}))

    assert [where(e) for e in errors] == [(1, "split")]


def test_it_rejects_a_duplicate_id_naming_both_lines():
    errors = errors_of(
        jsonl({"id": "a", "input": "q", "expected": "x"}, {"id": "a", "input": "q", "expected": "y"})
    )

    assert [where(e) for e in errors] == [(2, "id")]
    assert "already used on line 1" in errors[0].reason


def test_it_rejects_bad_utf8_naming_the_line():
    data = jsonl({"input": "q", "expected": "a"}).encode() + b'{"input": "caf\xc3", "expected": "a"}\n'

    errors = errors_of(data)

    assert [where(e) for e in errors] == [(2, None)]
    assert "not valid UTF-8" in errors[0].reason


@pytest.mark.parametrize("data", ["", "\n  \n", "\ufeff\n"])
def test_it_rejects_an_empty_file(data):
    with pytest.raises(SuiteFormatError, match="is empty") as info:
        read(data)

    assert info.value.file == "cases.jsonl"


def test_it_rejects_a_json_file_that_is_not_json_lines():
    with pytest.raises(SuiteFormatError, match="not supported"):
        read(jsonl({"input": "q", "expected": "a"}), "cases.json")


def test_it_reports_every_bad_line_at_once():
    data = jsonl(
        {"input": "q", "expected": "a"},
        "not json",
        [1],
        {"input": "q", "expected": "a", "split": "dev"},
        {"input": [{"role": "robot", "content": "x"}], "expected": "a"},
    )

    with pytest.raises(SuiteValidationError) as info:
        read(data)

    assert [where(e) for e in info.value.errors] == [(2, None), (3, None), (4, "split"), (5, "input[0].role")]
    assert not info.value.truncated


def test_errors_survive_pickling_for_task_results():
    with pytest.raises(SuiteValidationError) as info:
        read(jsonl({"input": "q"}))

    clone = pickle.loads(pickle.dumps(info.value))  # noqa: S301 - our own object

    assert str(clone) == str(info.value)
    assert where(clone.errors[0]) == (1, "expected")


# -- round trip ----------------------------------------------------------------------------------------

# NUL characters are refused by design (PostgreSQL cannot store them): see the NUL test.
no_nul = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
text = st.text(no_nul, min_size=1, max_size=30).filter(lambda s: s.strip())
tokens = st.text(no_nul, min_size=1, max_size=12).map(str.strip).filter(bool)
messages = st.lists(
    st.builds(
        lambda role, content: {"role": role, "content": content},
        st.sampled_from(["system", "user", "assistant"]),
        st.text(no_nul, max_size=30),
    ),
    min_size=1,
    max_size=4,
)
json_scalars = st.none() | st.booleans() | st.integers() | st.text(no_nul, max_size=10)


@st.composite
def case_dicts(draw: st.DrawFn) -> dict[str, Any]:
    assertions = draw(
        st.lists(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["contains", "icontains", "starts-with"]), "value": text}
            ),
            max_size=2,
        )
    )
    expected_options = text | st.lists(text, min_size=1, max_size=3)
    if assertions:
        expected_options = st.none() | expected_options
    return {
        "key": draw(tokens.filter(lambda s: len(s) <= 200)),
        "input": draw(text | messages),
        "expected": draw(expected_options),
        "assertions": assertions,
        "tags": draw(st.lists(tokens, max_size=3, unique=True)),
        "metadata": draw(st.dictionaries(st.text(no_nul, max_size=8), json_scalars, max_size=3)),
        "split": draw(st.sampled_from(["test", "train"])),
    }


@settings(max_examples=30, deadline=None)
@given(st.lists(case_dicts(), min_size=1, max_size=4, unique_by=lambda c: c["key"]))
def test_any_valid_cases_written_as_jsonl_read_back_equal(cases):
    rows = []
    for case in cases:
        row = {"id": case["key"], **{k: v for k, v in case.items() if k != "key"}}
        rows.append(json.dumps(row, ensure_ascii=False))
    data = "\n".join(rows) + "\n"

    assert read(data) == [{**case, "line": number} for number, case in enumerate(cases, start=1)]


def test_an_unknown_or_broken_assertion_is_reported_with_its_line():
    data = (
        b'{"input": "a", "assertions": [{"type": "contains", "value": "x"}]}\n'
        b'{"input": "b", "assertions": [{"type": "nonsense"}]}\n'
        b'{"input": "c", "assertions": [{"type": "regex", "value": "("}]}\n'
    )
    with pytest.raises(SuiteValidationError) as err:
        read_suite(io.BytesIO(data), "cases.jsonl")
    problems = {(e.line, e.field) for e in err.value.errors}
    assert problems == {(2, "assertions[0]"), (3, "assertions[0]")}
    assert "nonsense" in str(err.value) and "contains" in str(err.value)
