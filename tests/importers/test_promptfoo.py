"""promptfoo importer: configs with their files, test CSVs and test JSONL (pure: no database)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluations.importers.base import (
    SourceFile,
    SuiteExtras,
    SuiteFormatError,
    SuiteReader,
    SuiteValidationError,
    TooManyErrors,
)
from evaluations.importers.promptfoo import (
    assertion_from_string,
    looks_like_promptfoo_config,
    looks_like_promptfoo_csv,
    looks_like_promptfoo_jsonl,
    read_promptfoo_config,
    read_promptfoo_tests_csv,
    read_promptfoo_tests_jsonl,
)
from tests.fixtures import PEER_FORMATS

FIXTURES = PEER_FORMATS


def fixture(name: str, as_name: str | None = None) -> SourceFile:
    """A fixture file under the name its config uses (``promptfoo__help-desk__tests.csv`` -> tests.csv)."""
    return SourceFile(as_name or name.split("__")[-1], (FIXTURES / name).read_bytes())


def text_file(name: str, text: str) -> SourceFile:
    return SourceFile(name, text.encode("utf-8"))


class Imported:
    def __init__(self, reader: SuiteReader, extras: SuiteExtras | None) -> None:
        self.cases = reader.cases
        self.notes = reader.notes + (extras.notes if extras else [])
        self.extras = extras or SuiteExtras()


def run(read: Callable[[SuiteReader], SuiteExtras | None], name: str) -> Imported:
    """Read like the upload service does: every error collected, nothing returned when there is one."""
    reader = SuiteReader(name)
    try:
        extras = read(reader)
    except TooManyErrors:
        raise SuiteValidationError(name, reader.errors, truncated=True) from None
    if reader.errors:
        raise SuiteValidationError(name, reader.errors)
    return Imported(reader, extras)


def read_csv(source: SourceFile) -> Imported:
    return run(lambda reader: read_promptfoo_tests_csv(source, reader), source.name)


def read_jsonl(source: SourceFile) -> Imported:
    return run(lambda reader: read_promptfoo_tests_jsonl(source, reader), source.name)


def read_config(entry: SourceFile, *others: SourceFile) -> Imported:
    files = {f.name: f for f in (entry, *others)}
    return run(lambda reader: read_promptfoo_config(entry, files, reader), entry.name)


def errors_of(read: Callable[[], Any]) -> list[SuiteFormatError]:
    with pytest.raises(SuiteValidationError) as info:
        read()
    return info.value.errors


def types(case: dict[str, Any]) -> list[str]:
    return [a["type"] for a in case["assertions"]]


# -- the peer-format fixtures ---------------------------------------------------------------------------

COVERED = {
    "promptfoo__catalog-metadata__tests.csv",
    "promptfoo__desk-reply-rubric__tests.csv",
    "promptfoo__feedback-f-score__promptfooconfig.yaml",
    "promptfoo__unit-conversion__cases.jsonl",
    "promptfoo__help-desk__promptfooconfig.yaml",
    "promptfoo__help-desk__prompts.txt",
    "promptfoo__help-desk__tests.csv",
}


def test_every_promptfoo_fixture_has_a_test_here():
    assert {p.name for p in FIXTURES.glob("promptfoo__*")} == COVERED


def test_catalog_metadata_csv_fixture():
    got = read_csv(fixture("promptfoo__catalog-metadata__tests.csv"))

    assert len(got.cases) == 3
    assert [c["line"] for c in got.cases] == [2, 3, 4]
    assert all(c["expected"] is None for c in got.cases)
    assert [types(c) for c in got.cases] == [["contains", "llm-rubric"]] * 3
    first, second, _third = got.cases
    assert first["assertions"] == [
        {"type": "contains", "value": "metre"},
        {"type": "llm-rubric", "value": "Does this explain {{subject}} correctly?"},
    ]
    assert first["metadata"] == {"shelf": "reference", "vars": {"subject": "metric units"}}
    assert first["tags"] == ["units", "si system", "measurement"]
    # "celsius\,fahrenheit": an escaped comma stays inside the tag.
    assert second["tags"] == ["physics", "celsius,fahrenheit", "thermometers"]
    # Without prompts, the input lists the vars.
    assert first["input"] == "subject: metric units"


def test_help_desk_csv_fixture_keeps_javascript_and_notes_it_as_skipped():
    got = read_csv(fixture("promptfoo__help-desk__tests.csv"))

    assert len(got.cases) == 3
    assert [types(c) for c in got.cases] == [["javascript"], ["javascript"], ["is-json"]]
    assert got.cases[0]["assertions"][0] == {
        "type": "javascript",
        "value": "output.toLowerCase().includes('welcome')",
    }
    assert all(c["expected"] is None for c in got.cases)
    assert got.notes == ["line 2: 'javascript' runs JavaScript: kept, and skipped when scoring"]


def test_unit_conversion_jsonl_fixture():
    got = read_jsonl(fixture("promptfoo__unit-conversion__cases.jsonl"))

    assert len(got.cases) == 2
    kilometres, metres = got.cases
    assert kilometres["assertions"] == [
        {"type": "equals", "value": "Convert this quantity to kilometres: 26.2 miles"}
    ]
    # An equals assertion's text is also the expected output the dashboard shows.
    assert kilometres["expected"] == "Convert this quantity to kilometres: 26.2 miles"
    assert metres["expected"] == "Convert this quantity to metres: 26.2 miles"
    assert kilometres["metadata"]["vars"] == {"target_unit": "kilometres", "quantity": "26.2 miles"}
    assert kilometres["input"] == "target_unit: kilometres\nquantity: 26.2 miles"


def test_unit_conversion_jsonl_fixture_with_its_config_uses_the_prompt_and_two_vars():
    config = text_file(
        "promptfooconfig.yaml",
        "prompts:\n  - 'Convert this quantity to {{target_unit}}: {{quantity}}'\n"
        "providers:\n  - echo\ntests: file://cases.jsonl\n",
    )
    got = read_config(config, fixture("promptfoo__unit-conversion__cases.jsonl"))

    assert len(got.cases) == 2
    assert got.extras.prompts == [
        {"name": "prompt-1", "template": "Convert this quantity to {{target_unit}}: {{quantity}}"}
    ]
    # The prompt uses two vars: the input lists both.
    assert got.cases[0]["input"] == "target_unit: kilometres\nquantity: 26.2 miles"
    assert got.cases[0]["metadata"]["source_file"] == "cases.jsonl"


def test_help_desk_config_with_its_prompts_and_tests_uploaded_together():
    config = fixture("promptfoo__help-desk__promptfooconfig.yaml")
    got = read_config(
        config, fixture("promptfoo__help-desk__prompts.txt"), fixture("promptfoo__help-desk__tests.csv")
    )

    assert len(got.cases) == 5
    assert [len(c["assertions"]) for c in got.cases] == [1, 1, 1, 3, 2]
    assert [c["expected"] for c in got.cases] == ["Understood", None, None, None, None]
    assert got.extras.prompts == [
        {"name": "prompt-1", "template": "Answer this library patron as the help desk would: {{message}}"},
        {
            "name": "prompt-2",
            "template": "You staff the front desk of a public library. Reply briefly to: {{message}}",
        },
    ]
    assert got.extras.default_assertions == []
    first, _, _, similar, rubric = got.cases
    # `message: No` is the text "No" (YAML 1.2, as promptfoo reads it), not a boolean.
    assert first["input"] == "No"
    assert first["metadata"] == {
        "vars": {"message": "No"},
        "description": "A one-word reply is acknowledged exactly",
    }
    assert similar["assertions"] == [
        {"type": "javascript", "value": "output.startsWith('Welcome')"},
        {"type": "python", "value": "max(0, len(output) - 280)"},
        {"type": "similar", "value": "Welcome to the library, how can I help?"},
    ]
    # `$ref: '#/assertionTemplates/mentionsCard'` is resolved.
    assert rubric["assertions"] == [
        {"type": "llm-rubric", "value": "Is courteous and explains how to renew the card"},
        {"type": "icontains", "value": "card"},
    ]
    assert [c["key"] for c in got.cases] == [f"case-{i:04d}" for i in range(1, 6)]
    notes = "\n".join(got.notes)
    assert "'javascript' runs JavaScript: kept, and skipped when scoring" in notes
    assert "'python' runs Python code: kept, and skipped when scoring" in notes
    assert "providers (openai:gpt-4o-mini) are not imported: register them as endpoints" in notes
    # The example's tests.csv is not referenced by its config: said, not silently ignored.
    assert "tests.csv was uploaded but the config does not refer to it" in notes


def test_help_desk_config_without_its_prompts_file_asks_for_it():
    config = fixture("promptfoo__help-desk__promptfooconfig.yaml")

    with pytest.raises(SuiteFormatError) as info:
        read_config(config)

    err = info.value
    assert (err.file, err.field) == ("promptfooconfig.yaml", "prompts[0]")
    assert (
        "'prompts.txt'" in err.reason
        and "upload prompts.txt together with promptfooconfig.yaml" in err.reason
    )


COMMENT_CARDS = (
    'comment,label\n"The self-checkout machines save me so much time, thank you.",praise\n'
    '"The study room was booked twice, so we had nowhere to sit.",complaint\n'
    '"Love the new large-print shelf.",praise\n'
)


def test_f_score_config_without_its_csv_names_the_missing_file():
    config = fixture("promptfoo__feedback-f-score__promptfooconfig.yaml")

    with pytest.raises(SuiteFormatError) as info:
        read_config(config)

    err = info.value
    assert (err.file, err.line, err.field) == ("promptfooconfig.yaml", None, "tests")
    assert "'comment_cards_sample.csv'" in err.reason
    assert "upload comment_cards_sample.csv together with promptfooconfig.yaml" in err.reason


def test_f_score_config_with_its_csv_gives_default_assertions():
    # The config's tests file (columns comment,label) is not in the fixtures, on purpose (see the test
    # above): three rows with its header stand in for it.
    config = fixture("promptfoo__feedback-f-score__promptfooconfig.yaml")
    got = read_config(config, text_file("comment_cards_sample.csv", COMMENT_CARDS))

    assert len(got.cases) == 3
    assert all(c["assertions"] == [] and c["expected"] is None for c in got.cases)
    assert got.cases[0]["input"] == "The self-checkout machines save me so much time, thank you."
    assert got.cases[1]["metadata"]["vars"]["label"] == "complaint"
    defaults = got.extras.default_assertions
    assert [a["type"] for a in defaults] == ["is-json"] + ["javascript"] * 5
    assert defaults[1] == {
        "type": "javascript",
        "value": "output.label === context.vars.label",
        "metric": "accuracy",
    }
    assert defaults[2]["weight"] == 0 and defaults[2]["metric"] == "complaint_hits"
    [prompt] = got.extras.prompts
    assert prompt["name"] == "Comment Card Triage"
    assert prompt["template"].startswith("Read the following comment card left at the library desk")
    assert 'Comment: "{{comment}}"' in prompt["template"]
    notes = "\n".join(got.notes)
    assert notes.count("'javascript' runs JavaScript") == 1
    assert "'derivedMetrics' is not imported" in notes


RUBRIC_CONFIG = """\
prompts:
  - file://prompt.txt
providers:
  - id: echo
    label: Mock desk assistant
tests: file://tests.csv
defaultTest:
  options:
    provider: openai:gpt-4.1-mini
  assert:
    - type: llm-rubric
      metric: correct
      threshold: 0.8
      value: The reply is factually correct for "{{patron_message}}" ({{context}}).
    - type: llm-rubric
      metric: language_fit
      threshold: 0.8
      value: The reply is written in the patron's language ({{language}}).
"""


def test_desk_reply_rubric_csv_alone_checks_nothing_and_says_so():
    source = fixture("promptfoo__desk-reply-rubric__tests.csv")

    with pytest.raises(SuiteFormatError) as info:
        read_csv(source)

    err = info.value
    assert (err.file, err.line, err.field) == ("tests.csv", 1, "__expected")
    assert "has no __expected column" in err.reason
    assert "promptfooconfig.yaml whose defaultTest.assert" in err.reason


def test_desk_reply_rubric_csv_with_its_config():
    # The fixture ships no config (it is read with the one above): two rubrics over its columns.
    got = read_config(
        text_file("promptfooconfig.yaml", RUBRIC_CONFIG),
        text_file("prompt.txt", "{{reply}}\n"),
        fixture("promptfoo__desk-reply-rubric__tests.csv"),
    )

    assert len(got.cases) == 8
    assert all(c["assertions"] == [] and c["expected"] is None for c in got.cases)
    assert [a["metric"] for a in got.extras.default_assertions] == ["correct", "language_fit"]
    assert got.extras.default_assertions[0]["threshold"] == 0.8
    first, _, _, hours = got.cases[:4]
    # The prompt uses one var: the input is its value.
    assert first["input"].startswith("Hola, claro que si. He renovado sus 3 libros")
    assert first["metadata"]["description"] == "ES renewal request answered in Spanish"
    assert first["metadata"]["severity"] == "high"
    assert "threshold" not in first["metadata"]
    assert hours["metadata"]["threshold"] == 0.0
    assert hours["metadata"]["vars"]["patron_message"] == (
        "Cual es el horario de la biblioteca el resto del año?"
    )
    assert set(first["metadata"]["vars"]) == {"language", "context", "patron_message", "reply"}
    notes = "\n".join(got.notes)
    assert "providers (Mock desk assistant) are not imported" in notes
    assert "defaultTest.options (provider) are not imported" in notes


# -- configs -----------------------------------------------------------------------------------------------


def test_tests_mix_inline_tests_and_files_with_unique_keys():
    config = text_file(
        "evals/promptfooconfig.yaml",
        """\
prompts: ['Answer: {{question}}']
defaultTest:
  vars: {style: short}
tests:
  - vars: {question: 'Capital of France?'}
    assert: [{type: icontains, value: paris}]
  - file://data/more.csv
  - file://data/more.yaml
""",
    )
    csv_file = text_file("evals/data/more.csv", "question,__expected\nCapital of Spain?,Madrid\n")
    yaml_file = text_file(
        "evals/data/more.yaml",
        "- vars: {question: 'Capital of Italy?', style: long}\n  assert: [{type: contains, value: Rome}]\n",
    )
    got = read_config(config, csv_file, yaml_file)

    assert [c["key"] for c in got.cases] == ["case-0001", "evals/data/more-0002", "evals/data/more-0001"]
    assert [c["input"] for c in got.cases] == ["Capital of France?", "Capital of Spain?", "Capital of Italy?"]
    # defaultTest.vars merge into every test; the test's own win.
    assert [c["metadata"]["vars"]["style"] for c in got.cases] == ["short", "short", "long"]
    assert got.cases[1]["expected"] == "Madrid"
    assert got.cases[1]["metadata"]["source_file"] == "evals/data/more.csv"


def test_a_missing_file_target_names_the_config_the_field_and_the_path():
    config = text_file(
        "promptfooconfig.yaml",
        "tests:\n  - vars: {q: hi}\n    assert: [{type: is-json}]\n  - file://extra/tests.csv\n",
    )

    with pytest.raises(SuiteFormatError) as info:
        read_config(config)

    err = info.value
    assert (err.file, err.field) == ("promptfooconfig.yaml", "tests[1]")
    assert "refers to 'extra/tests.csv'" in err.reason
    assert "upload tests.csv together with promptfooconfig.yaml" in err.reason


def test_a_referenced_file_is_found_by_its_base_name():
    config = text_file("promptfooconfig.yaml", "tests: file://cases/tests.jsonl\n")
    data = text_file(
        "tests.jsonl", '{"vars": {"q": "hi"}, "assert": [{"type": "contains", "value": "hello"}]}\n'
    )

    assert len(read_config(config, data).cases) == 1


def test_an_unknown_assertion_type_is_an_error_with_its_location():
    config = text_file(
        "promptfooconfig.yaml",
        "tests:\n  - vars: {q: a}\n    assert: [{type: contains, value: a}]\n"
        "  - vars: {q: b}\n    assert:\n      - type: contains\n        value: b\n      - type: nonsense\n",
    )

    [err] = errors_of(lambda: read_config(config))

    assert (err.file, err.line, err.field) == ("promptfooconfig.yaml", 2, "tests[1].assert[1]")
    assert "unknown assertion type 'nonsense'" in err.reason


def test_an_unknown_type_in_a_csv_cell_is_an_error_with_its_column():
    source = text_file(
        "tests.csv", "q,__expected1,__expected2\na,contains: a,trace-span-count\nb,contains: b,contains: c\n"
    )

    [err] = errors_of(lambda: read_csv(source))

    assert (err.file, err.line, err.field) == ("tests.csv", 2, "__expected2")
    assert "unknown assertion type 'trace-span-count'" in err.reason


def test_an_invalid_default_assertion_is_an_error_with_its_location():
    config = text_file(
        "promptfooconfig.yaml",
        "defaultTest:\n  assert:\n    - type: is-json\n    - type: similar\n      threshold: 3\n"
        "tests:\n  - vars: {q: a}\n",
    )

    [err] = errors_of(lambda: read_config(config))

    assert (err.line, err.field) == (None, "defaultTest.assert[1]")
    assert "threshold 3 is out of range" in err.reason


def test_a_test_with_neither_expected_output_nor_assertions_is_an_error():
    config = text_file(
        "promptfooconfig.yaml", "tests:\n  - vars: {q: a}\n    assert: [{type: is-json}]\n  - vars: {q: b}\n"
    )

    [err] = errors_of(lambda: read_config(config))

    assert (err.line, err.field) == (2, "tests[1].assert")
    assert "this test checks nothing" in err.reason


def test_an_assert_set_is_an_error():
    config = text_file(
        "promptfooconfig.yaml",
        "tests:\n  - vars: {q: b}\n    assert:\n      - type: assert-set\n"
        "        assert: [{type: contains, value: b}]\n",
    )

    [err] = errors_of(lambda: read_config(config))

    assert (err.line, err.field) == (1, "tests[0].assert[0]")
    assert "ftvp has no assertion groups" in err.reason


def test_assertion_fields_ftvp_has_no_use_for_are_left_out_with_a_note():
    config = text_file(
        "promptfooconfig.yaml",
        """\
tests:
  - vars: {q: a}
    assert:
      - type: llm-rubric
        value: is polite
        provider: openai:gpt-4o
        weight: 2
        metric: tone
""",
    )
    got = read_config(config)

    assert got.cases[0]["assertions"] == [
        {"type": "llm-rubric", "value": "is polite", "weight": 2, "metric": "tone"}
    ]
    assert "the assertion field 'provider' is not imported" in "\n".join(got.notes)


def test_contains_json_keeps_its_schema_and_a_json_schema_ref_is_left_alone():
    config = text_file(
        "promptfooconfig.yaml",
        """\
tests:
  - vars: {q: a}
    assert:
      - type: contains-json
        value:
          type: object
          required: [name]
          properties: {name: {$ref: '#/definitions/name'}}
          definitions: {name: {type: string}}
""",
    )
    [case] = read_config(config).cases

    assert case["assertions"][0]["value"]["properties"] == {"name": {"$ref": "#/definitions/name"}}


def test_a_ref_to_nothing_is_an_error():
    config = text_file(
        "promptfooconfig.yaml", "tests:\n  - vars: {q: a}\n    assert:\n      - $ref: '#/nope'\n"
    )

    with pytest.raises(SuiteFormatError) as info:
        read_config(config)

    assert info.value.field == "tests[0].assert[0]"
    assert "'#/nope' names nothing" in info.value.reason


def test_prompt_objects_labels_and_list_vars():
    config = text_file(
        "promptfooconfig.yaml",
        """\
prompts:
  - {raw: 'Say {{word}}', label: say}
  - id: file://p/more.txt
    label: more
tests:
  - vars: {word: [hi, hello]}
    assert: [{type: icontains, value: h}]
""",
    )
    prompts = text_file("p/more.txt", "Repeat {{word}}\n---\nShout {{word}}\n")
    got = read_config(config, prompts)

    assert got.extras.prompts == [
        {"name": "say", "template": "Say {{word}}"},
        {"name": "more-1", "template": "Repeat {{word}}"},
        {"name": "more-2", "template": "Shout {{word}}"},
    ]
    # A list var runs the test once per value, as promptfoo does.
    assert [(c["key"], c["input"]) for c in got.cases] == [("case-0001.1", "hi"), ("case-0001.2", "hello")]


def test_a_python_test_generator_is_refused_with_what_to_do():
    config = text_file("promptfooconfig.yaml", "tests: file://generate.py:create_tests\n")

    with pytest.raises(SuiteFormatError) as info:
        read_config(config)

    assert info.value.field == "tests"
    assert "save the generated tests as CSV, JSONL or YAML" in info.value.reason


# -- CSV details ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "assertion"),
    [
        ("Paris", {"type": "equals", "value": "Paris"}),
        ("contains: Paris", {"type": "contains", "value": "Paris"}),
        ("contains:Paris", {"type": "contains", "value": "Paris"}),
        ("not-icontains: sorry", {"type": "not-icontains", "value": "sorry"}),
        ("similar(0.7): Hello there", {"type": "similar", "value": "Hello there", "threshold": 0.7}),
        ("similar: Hello there", {"type": "similar", "value": "Hello there", "threshold": 0.8}),
        ("levenshtein(3): Paris", {"type": "levenshtein", "value": "Paris", "threshold": 3.0}),
        ("contains-any: <b>,</span>", {"type": "contains-any", "value": ["<b>", "</span>"]}),
        ("is-json", {"type": "is-json"}),
        ("llm-rubric: is polite", {"type": "llm-rubric", "value": "is polite"}),
        ("grade: is polite", {"type": "llm-rubric", "value": "is polite"}),
        ("fn:output.length < 10", {"type": "javascript", "value": "output.length < 10"}),
        ("javascript: output.length < 10", {"type": "javascript", "value": "output.length < 10"}),
        ("file://checks/len.js:check", {"type": "javascript", "value": "checks/len.js:check"}),
        ("python: len(output) < 10", {"type": "python", "value": "len(output) < 10"}),
        ("file://check.py", {"type": "python", "value": "check.py"}),
        ("factuality: Paris is the capital", {"type": "factuality", "value": "Paris is the capital"}),
        # promptfoo's grammar: an unknown prefix is not an assertion type, so the cell is an equals.
        ("contain: Paris", {"type": "equals", "value": "contain: Paris"}),
    ],
)
def test_expected_cell_shorthand(cell, assertion):
    assert assertion_from_string(cell) == assertion


def test_csv_special_columns():
    source = text_file(
        "tests.csv",
        "q,__expected,__expected2,__description,__metric,__threshold,__prefix,"
        "__metadata:level,__metadata:topics[],__config:__expected2:threshold,_expected\n"
        'What is 2+2?,4,similar: four,Sum,math,0.5,Answer: ,easy,"arith,sum",0.9,x\n',
    )
    got = read_csv(source)

    [case] = got.cases
    assert case["expected"] == "4"
    assert case["assertions"] == [
        {"type": "equals", "value": "4", "metric": "math"},
        {"type": "similar", "value": "four", "threshold": 0.9, "metric": "math"},
    ]
    assert case["metadata"] == {
        "level": "easy",
        "topics": ["arith", "sum"],
        "vars": {"q": "What is 2+2?", "_expected": "x"},
        "description": "Sum",
        "threshold": 0.5,
        "prefix": "Answer: ",
    }
    assert "did you mean '__expected'?" in "\n".join(got.notes)


def test_a_csv_row_with_too_many_fields_is_an_error_with_its_line():
    source = text_file("tests.csv", "q,__expected\na,contains: a\nb,contains: b,extra\nc,contains: c\n")

    [err] = errors_of(lambda: read_csv(source))

    assert (err.file, err.line, err.field) == ("tests.csv", 3, None)
    assert "has 3 cells but the header has 2 columns" in err.reason


def test_a_csv_row_without_an_expected_value_is_an_error():
    source = text_file("tests.csv", "q,__expected\na,contains: a\nb,\n")

    [err] = errors_of(lambda: read_csv(source))

    assert (err.line, err.field) == (3, "__expected")
    assert "checks nothing" in err.reason


def test_a_bad_threshold_is_an_error():
    source = text_file("tests.csv", "q,__expected,__threshold\na,contains: a,high\n")

    [err] = errors_of(lambda: read_csv(source))

    assert (err.line, err.field) == (2, "__threshold")


# -- broken files -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("read", "name"),
    [(read_csv, "tests.csv"), (read_jsonl, "tests.jsonl"), (read_config, "promptfooconfig.yaml")],
)
def test_a_zero_byte_file_is_empty(read, name):
    with pytest.raises(SuiteFormatError) as info:
        read(SourceFile(name, b""))

    assert info.value.file == name
    assert "is empty" in info.value.reason


def test_invalid_utf8_in_a_csv_names_the_line():
    source = SourceFile("tests.csv", b"q,__expected\na,contains: a\nb\xe9,contains: b\n")

    [err] = errors_of(lambda: read_csv(source))

    assert (err.line, err.field) == (3, None)
    assert "is not valid UTF-8 (byte 0xe9 at column 2)" in err.reason


def test_the_rubric_fixture_saved_as_latin1_is_refused_at_its_line():
    # The fixture holds an "ñ" (in "año", line 5): saved as Latin-1, that line is not UTF-8.
    text = (FIXTURES / "promptfoo__desk-reply-rubric__tests.csv").read_text("utf-8")
    tests = SourceFile("tests.csv", text.encode("latin-1"))

    [err] = errors_of(
        lambda: read_config(
            text_file("promptfooconfig.yaml", RUBRIC_CONFIG), text_file("prompt.txt", "{{reply}}"), tests
        )
    )

    assert (err.file, err.line) == ("tests.csv", 5)
    assert "is not valid UTF-8 (byte 0xf1" in err.reason and "save the file with UTF-8 encoding" in err.reason


def test_invalid_utf8_in_a_config_is_refused():
    with pytest.raises(SuiteFormatError) as info:
        read_config(SourceFile("promptfooconfig.yaml", b"tests:\n  - vars: {q: caf\xe9}\n"))

    assert info.value.file == "promptfooconfig.yaml"
    assert "is not valid UTF-8" in info.value.reason


def test_invalid_yaml_names_the_line():
    with pytest.raises(SuiteFormatError) as info:
        read_config(text_file("promptfooconfig.yaml", "tests:\n  - vars: {q: a}\n\tassert: []\n"))

    assert info.value.line == 3
    assert "is not valid YAML" in info.value.reason


def test_pretty_printed_json_is_not_jsonl():
    source = text_file("tests.jsonl", '{\n  "vars": {"q": "a"},\n  "assert": [{"type": "is-json"}]\n}\n')

    errors = errors_of(lambda: read_jsonl(source))

    assert errors[0].line == 1 and "is not valid JSON" in errors[0].reason


def test_errors_in_a_referenced_file_name_that_file():
    config = text_file("promptfooconfig.yaml", "tests: file://tests.csv\n")
    data = text_file("tests.csv", "q,__expected\na,nonsense-type: x\nb,trace-span-count: 3\n")

    [err] = errors_of(lambda: read_config(config, data))

    assert (err.file, err.line, err.field) == ("tests.csv", 3, "__expected")


# -- detection ------------------------------------------------------------------------------------------


def test_detection_helpers():
    import yaml

    for name in (
        "promptfoo__help-desk__promptfooconfig.yaml",
        "promptfoo__feedback-f-score__promptfooconfig.yaml",
    ):
        assert looks_like_promptfoo_config(yaml.safe_load((FIXTURES / name).read_text("utf-8")))
    assert not looks_like_promptfoo_config({"cases": [{"input": "a", "expected": "b"}]})
    assert not looks_like_promptfoo_config({"renewal": {"id": "renewal.dev.v0"}})
    assert not looks_like_promptfoo_config(["a"])

    assert looks_like_promptfoo_csv(["subject", "__expected1", "__metadata:tags[]"])
    assert looks_like_promptfoo_csv(["__description", "language"])
    assert not looks_like_promptfoo_csv(["input", "expected"])

    first = json.loads(
        (FIXTURES / "promptfoo__unit-conversion__cases.jsonl").read_text("utf-8").splitlines()[0]
    )
    assert looks_like_promptfoo_jsonl(first)
    assert not looks_like_promptfoo_jsonl({"input": "a", "ideal": "b"})


# -- anything at all: the clear error or cases, never a crash ------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), st.sampled_from(["csv", "jsonl", "config"]))
def test_random_bytes_give_cases_or_a_clear_error(data, kind):
    source = SourceFile(
        {"csv": "tests.csv", "jsonl": "tests.jsonl", "config": "promptfooconfig.yaml"}[kind], data
    )
    read = {"csv": read_csv, "jsonl": read_jsonl, "config": read_config}[kind]
    try:
        read(source)
    except SuiteFormatError as exc:
        assert exc.reason


_CELL = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=20)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(_CELL, min_size=1, max_size=4), min_size=1, max_size=5))
def test_random_csv_rows_give_cases_or_a_clear_error(rows):
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["q", "__expected", "__metadata:tags[]"])
    writer.writerows(rows)
    try:
        got = read_csv(text_file("tests.csv", out.getvalue()))
    except SuiteFormatError as exc:
        assert exc.reason
    else:
        assert all(c["assertions"] or c["expected"] for c in got.cases)
