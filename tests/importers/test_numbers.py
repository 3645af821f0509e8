"""Numbers JSON and the database cannot hold (NaN, Infinity, 1e400, an integer of 400 digits) in any
importer, wherever a case carries one (metadata, vars, assertion values, extra fields, nested at any
depth): an error naming the file, the line and the field, and saying what to do; no case comes back."""

from __future__ import annotations

import json

import pytest

from evaluations.importers import SourceFile, SuiteFormatError, SuiteValidationError, read_sources, read_suite

REMEDY = "write a finite number, or put the value in quotes to keep it as text"
# (as written in JSON, what the error says about it)
JSON_NUMBERS = [
    ("1e400", "1e400 is too large for JSON and the database (the limit is ±1.8e308)"),
    ("-1e400", "-1e400 is too large for JSON and the database"),
    ("NaN", "NaN is not a number JSON or the database can hold"),
    ("Infinity", "Infinity is not a number JSON or the database can hold"),
    ("-Infinity", "-Infinity is not a number JSON or the database can hold"),
    ("1" + "0" * 400, "100000000000... (401 characters) is too large"),
    ("9" * 5000, "999999999999... (5000 characters) is too large"),  # more digits than int() converts
]
# YAML (1.1 for ftvp's YAML and OpenAI evals, 1.2 for promptfoo): its spellings of the same
YAML_NUMBERS = [
    ("1.0e+400", "1.0e+400 is too large for JSON and the database"),
    ("-1.0e+400", "-1.0e+400 is too large"),
    (".nan", ".nan is not a number JSON or the database can hold"),
    (".inf", ".inf is not a number JSON or the database can hold"),
    ("-.inf", "-.inf is not a number"),
    ("1" + "0" * 400, "100000000000... (401 characters) is too large"),
    ("9" * 5000, "999999999999... (5000 characters) is too large"),
]


def short(value: object) -> str:
    text = str(value)
    return text if len(text) < 12 else f"{text[:3]}-{len(text)}-chars"


def refused(files: list[SourceFile], **kwargs) -> list[str]:
    with pytest.raises(SuiteValidationError) as caught:
        read_sources(files, **kwargs)
    return [err.describe() for err in caught.value.errors]


def one(errors: list[str], where: str, message: str) -> None:
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{where}: {message}"), errors
    assert errors[0].endswith(REMEDY), errors


# -- JSON Lines, CSV and JSON files ------------------------------------------------------------------


N = "<number>"  # where the number goes in the records below (written out as the file has it)
ANSWER = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
EQUALS = [{"type": "equals", "value": "a"}]


def lines(*records: object) -> str:
    return "\n".join(json.dumps(r) for r in records) + "\n"


JSON_FILES = [  # (file name, its text, the format when it is forced, where the error is)
    (
        "cases.jsonl",
        lines({"input": "q", "expected": "a", "metadata": {"big": N}}),
        None,
        "1, field 'metadata.big'",
    ),
    (
        "cases.jsonl",
        lines({"input": "q", "expected": "a", "score": {"runs": [1, N]}}),
        None,
        "1, field 'score.runs[1]'",
    ),
    (
        "cases.jsonl",
        lines({"input": "q", "assertions": [{"type": "similar", "value": "a", "threshold": N}]}),
        None,
        "1, field 'assertions[0].threshold'",
    ),
    (
        "cases.jsonl",
        lines({"input": "q", "assertions": [{"type": "equals", "value": N}]}),
        None,
        "1, field 'assertions[0].value'",
    ),
    ("cases.jsonl", lines({"input": "q", "expected": N}), None, "1, field 'expected'"),
    ("cases.jsonl", lines({"id": N, "input": "q", "expected": "a"}), None, "1, field 'id'"),
    ("cases.csv", 'input,expected,metadata\nq,a,"{""big"": <number>}"', None, "2, field 'metadata.big'"),
    (
        "cases.csv",
        'input,assertions\nq,"[{""type"": ""similar"", ""value"": ""a"", ""threshold"": <number>}]"',
        None,
        "2, field 'assertions[0].threshold'",
    ),
    ("samples.jsonl", lines({"input": ANSWER[:1], "ideal": "a", "w": N}), "openai-evals", "1, field 'w'"),
    ("chat.jsonl", lines({"messages": ANSWER, "w": [N]}), "openai-chat", "1, field 'w[0]'"),
    (
        "goldens.json",
        json.dumps([{"input": "q", "expected_output": "a", "additional_metadata": {"x": N}}]),
        None,
        "1, field 'additional_metadata.x'",
    ),
    (
        "goldens.json",
        json.dumps([{"input": {"k": N}, "expected_output": "a"}]),
        "deepeval",
        "1, field 'input.k'",
    ),
    (
        "items.json",
        json.dumps([{"input": "q", "expectedOutput": "a", "metadata": {"x": N}}]),
        "langfuse",
        "1, field 'metadata.x'",
    ),
    (
        "items.json",
        json.dumps([{"input": "q", "expectedOutput": {"a": N}}]),
        "langfuse",
        "1, field 'expectedOutput.a'",
    ),
    (
        "items.jsonl",
        lines({"input": "q", "expectedOutput": "a"}, {"input": "r", "expectedOutput": "b", "metadata": N}),
        "langfuse",
        "2, field 'metadata'",
    ),
    (
        "cases.json",
        json.dumps(
            {"cases": [{"input": "q", "expected": "a"}, {"input": "r", "expected": "b", "tags": [N]}]}
        ),
        "json",
        "2, field 'tags[0]'",
    ),
]


@pytest.mark.parametrize(("number", "message"), JSON_NUMBERS, ids=short)
@pytest.mark.parametrize(("name", "text", "fmt", "where"), JSON_FILES)
def test_json_files_name_the_file_line_and_field(name, text, fmt, where, number, message):
    data = text.replace(json.dumps(N), number).replace(N, number).encode()
    one(refused([SourceFile(name, data)], fmt=fmt), f"{name}, line {where}", message)


@pytest.mark.parametrize(("number", "message"), JSON_NUMBERS[:3])
def test_the_csv_and_jsonl_reader_of_the_cli_refuses_them_too(number, message):
    import io

    with pytest.raises(SuiteValidationError) as caught:
        read_suite(io.BytesIO(f'{{"input": "q", "expected": "a", "m": {number}}}\n'.encode()), "c.jsonl")
    assert caught.value.errors[0].describe().startswith(f"c.jsonl, line 1, field 'm': {message}")


def test_every_such_number_of_a_file_is_reported_and_the_good_records_do_not_make_it_through():
    data = (
        b'{"input": "q1", "expected": "a"}\n'
        b'{"input": "q2", "expected": "a", "metadata": {"x": NaN, "y": [1e400, 2]}}\n'
        b'{"input": "q3", "expected": "a", "z": -Infinity}\n'
    )
    errors = refused([SourceFile("cases.jsonl", data)])
    assert [e.split(":")[0] for e in errors] == [
        "cases.jsonl, line 2, field 'metadata.x'",
        "cases.jsonl, line 2, field 'metadata.y[0]'",
        "cases.jsonl, line 3, field 'z'",
    ]


@pytest.mark.parametrize("number", ["1e308", "-1e308", "-0.0", "5e-324", "1e-400", str(2**63), str(2**64)])
def test_numbers_at_the_edges_that_fit_are_kept(number):
    data = f'{{"input": "q", "expected": "a", "metadata": {{"n": {number}}}}}\n'.encode()
    result = read_sources([SourceFile("cases.jsonl", data)])
    assert result.cases[0]["metadata"] == {
        "n": float(number) if "." in number or "e" in number else int(number)
    }


# -- YAML: ftvp's own, OpenAI evals registries, promptfoo configs and test files -------------------------


@pytest.mark.parametrize(("number", "message"), YAML_NUMBERS, ids=short)
def test_ftvp_yaml_names_the_case_and_the_line_it_is_written_on(number, message):
    data = "cases:\n  - input: q\n    expected: a\n  - input: r\n    expected: b\n    metadata:\n"
    data += f"      big: {number}\n"
    one(
        refused([SourceFile("suite.yaml", data.encode())]),
        "suite.yaml, line 2, field 'metadata.big'",
        f"{message}",
    )
    assert "(written on line 7)" in refused([SourceFile("suite.yaml", data.encode())])[0]


@pytest.mark.parametrize(("number", "message"), YAML_NUMBERS[:4])
def test_ftvp_yaml_default_assertions_name_their_line(number, message):
    data = f"default_assertions:\n  - type: similar\n    value: a\n    threshold: {number}\n"
    data += "cases:\n  - input: q\n"
    one(
        refused([SourceFile("suite.yaml", data.encode())]),
        "suite.yaml, line 4, field 'default assertions[0].threshold'",
        message,
    )


@pytest.mark.parametrize(("number", "message"), JSON_NUMBERS[:3])
def test_an_openai_evals_registry_names_the_samples_file(number, message):
    registry = (
        b"capitals:\n  id: capitals.dev.v0\ncapitals.dev.v0:\n  class: evals.elsuite.basic.match:Match\n"
    )
    registry += b"  args:\n    samples_jsonl: capitals/samples.jsonl\n"
    samples = lines({"input": ANSWER[:1], "ideal": "a"}, {"input": "r", "ideal": N}).replace(
        json.dumps(N), number
    )
    errors = refused(
        [SourceFile("capitals.yaml", registry), SourceFile("capitals/samples.jsonl", samples.encode())]
    )
    assert len(errors) == 1 and errors[0].startswith(
        f"capitals/samples.jsonl, line 2, field 'ideal': {message}"
    )


PROMPTFOO_CONFIG = """prompts:
  - "Answer: {{{{question}}}}"
defaultTest:
  vars:
    style: {default}
tests:
  - vars:
      question: q
    assert:
      - type: similar
        value: a
        threshold: {threshold}
  - vars:
      question: {var}
    assert:
      - type: equals
        value: a
"""


@pytest.mark.parametrize(("number", "message"), [(n, m) for n, m in YAML_NUMBERS if "e+" in n or "inf" in n])
def test_a_promptfoo_config_names_each_place(number, message):
    def config(default="plain", threshold="0.8", var="r"):
        text = PROMPTFOO_CONFIG.format(default=default, threshold=threshold, var=var)
        return [SourceFile("promptfooconfig.yaml", text.encode())]

    one(
        refused(config(default=number)),
        "promptfooconfig.yaml, line 5, field 'defaultTest.vars.style'",
        message,
    )
    errors = refused(config(threshold=number))
    one(errors, "promptfooconfig.yaml, line 1, field 'tests[0].assert[0].threshold'", message)
    assert "(written on line 12)" in errors[0]
    one(refused(config(var=number)), "promptfooconfig.yaml, line 2, field 'tests[1].vars.question'", message)


@pytest.mark.parametrize(("number", "message"), [("1e400", "1e400 is too large"), ("9" * 5000, "99999")])
def test_promptfoo_reads_1e400_as_a_number_in_yaml_too(number, message):
    # YAML 1.2, as promptfoo reads it: 1e400 is a number (YAML 1.1 reads it as text)
    text = PROMPTFOO_CONFIG.format(default="plain", threshold="0.8", var=number)
    errors = refused([SourceFile("promptfooconfig.yaml", text.encode())])
    one(errors, "promptfooconfig.yaml, line 2, field 'tests[1].vars.question'", message)


PROMPTFOO_TEST_FILES = [  # (file name, its text, where the error is)
    (
        "tests.jsonl",
        lines({"vars": {"q": "x"}, "assert": EQUALS}, {"vars": {"q": N}, "assert": EQUALS}),
        "2, field 'vars.q'",
    ),
    (
        "tests.jsonl",
        lines({"vars": {"q": "x"}, "assert": [{**EQUALS[0], "weight": N}]}),
        "1, field 'assert[0].weight'",
    ),
    (
        "tests.jsonl",
        lines({"vars": {"q": "x"}, "metadata": {"deep": {"er": [N]}}, "assert": EQUALS}),
        "1, field 'metadata.deep.er[0]'",
    ),
    ("tests.json", json.dumps([{"vars": {"q": N}, "assert": EQUALS}]), "1, field '[0].vars.q'"),
]


@pytest.mark.parametrize(("number", "message"), JSON_NUMBERS[:5], ids=short)
@pytest.mark.parametrize(("name", "text", "where"), PROMPTFOO_TEST_FILES)
def test_promptfoo_test_files_named_by_a_config_name_the_file_line_and_field(
    name, text, where, number, message
):
    config = f"prompts: ['{{{{q}}}}']\ntests: file://{name}\n".encode()
    files = [
        SourceFile("promptfooconfig.yaml", config),
        SourceFile(name, text.replace(json.dumps(N), number).encode()),
    ]
    one(refused(files), f"{name}, line {where}", message)


def test_a_promptfoo_test_csv_threshold_that_is_no_finite_number_is_refused():
    data = b"question,__expected,__threshold\nq,a,1e400\n"
    errors = refused([SourceFile("tests.csv", data)], fmt="promptfoo")
    assert errors == ["tests.csv, line 2, field '__threshold': '1e400' is not a number; give one such as 0.8"]


def test_the_errors_keep_their_place_among_the_others():
    data = b'{"input": "", "expected": "a"}\n{"input": "q", "expected": "a", "m": NaN}\n'
    errors = refused([SourceFile("cases.jsonl", data)])
    assert errors[0].startswith("cases.jsonl, line 1, field 'input': is empty")
    assert errors[1].startswith("cases.jsonl, line 2, field 'm': NaN is not a number")


def test_a_file_that_is_all_such_numbers_is_refused_not_emptied():
    with pytest.raises(SuiteFormatError) as caught:
        read_sources([SourceFile("cases.jsonl", b"NaN\n")])
    assert "is a JSON number, not an object" in str(caught.value)
