"""Suites from other tools (files in each tool's format in tests/fixtures/peer-formats), format
detection, several files and zips, the seeded train/test split, and hostile files."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluations.importers import SourceFile, SuiteFormatError, read_sources
from tests.fixtures import PEER_FORMATS

FIXTURES = PEER_FORMATS


def fixture(name: str, as_name: str | None = None) -> SourceFile:
    return SourceFile(as_name or name, (FIXTURES / name).read_bytes())


def test_deepeval_goldens_json_and_csv_import_with_their_context():
    for name in ("deepeval__goldens.json", "deepeval__goldens.csv"):
        result = read_sources([fixture(name)])
        assert len(result.cases) == 15, name
        first = result.cases[0]
        assert first["input"] == "How many centimetres are in one inch?"
        assert first["expected"] == "2.54 centimetres"
        assert "context" in first["metadata"] and "actual_output" in first["metadata"]
    assert read_sources([fixture("deepeval__goldens.json")]).format == "deepeval"


CHAT = "openai-chat__unit-helper__fine_tuning.jsonl"


def test_openai_chat_fine_tuning_jsonl_ends_with_the_answer_and_can_be_split():
    result = read_sources([fixture(CHAT)])
    assert result.format == "openai-chat" and len(result.cases) == 5
    first = result.cases[0]
    assert first["expected"] == "About 6.2 miles."
    assert first["input"][-1] == {"role": "user", "content": "How far is 10 kilometres in miles?"}
    # The edge rows: no system message, no user message, and a reply of over 20,000 characters.
    assert result.cases[2]["input"][0]["role"] == "user"
    assert [m["role"] for m in result.cases[3]["input"]] == ["system"]
    assert len(result.cases[4]["expected"]) > 20_000
    split = read_sources([fixture(CHAT)], test_fraction=0.4, seed=3)
    assert [c["split"] for c in split.cases].count("test") == 2
    again = read_sources([fixture(CHAT)], test_fraction=0.4, seed=3)
    assert [c["split"] for c in again.cases] == [c["split"] for c in split.cases]


def test_openai_evals_samples_and_few_shot_files():
    samples = read_sources([fixture("openai-evals__unit_fuzzy_match__samples.jsonl")])
    assert samples.format == "openai-evals-jsonl" and len(samples.cases) == 3
    assert [c["expected"] for c in samples.cases] == [
        "2.54",
        ["5280", "5,280"],
        "212",
    ] or [c["expected"] for c in samples.cases][1] == ["5280", "5,280"]
    few = read_sources([fixture("openai-evals__renewal__few_shot.jsonl")])
    assert len(few.cases) == 5 and few.cases[0]["expected"] in ("0", "1")


def test_the_openai_evals_registry_ties_samples_and_few_shot_together():
    registry = fixture("openai-evals__registry__renewal.yaml", "registry/renewal.yaml")
    few_shot = fixture("openai-evals__renewal__few_shot.jsonl", "renewal/few_shot.jsonl")
    samples = SourceFile(
        "renewal/samples.jsonl",
        b'{"input": [{"role": "user", "content": "can i keep the cookbook a week longer"}], "ideal": "1"}\n'
        b'{"input": [{"role": "user", "content": "is there parking behind the library"}], "ideal": "0"}\n',
    )
    result = read_sources([registry, few_shot, samples])
    assert result.format == "openai-evals"
    assert [c["split"] for c in result.cases] == ["test"] * 2 + ["train"] * 5
    # Without the samples file the error names the registry, the field and the missing path.
    with pytest.raises(SuiteFormatError) as caught:
        read_sources([registry, few_shot])
    message = str(caught.value)
    assert (
        "registry/renewal.yaml" in message
        and "samples_jsonl" in message
        and "renewal/samples.jsonl" in message
    )


def test_langfuse_items_with_expected_output_and_structured_input():
    items = [
        {"id": "a", "input": {"question": "2+2?"}, "expectedOutput": "4", "metadata": {"source": "prod"}},
        {"id": "b", "input": "Capital of France?", "expectedOutput": "Paris"},
    ]
    result = read_sources([SourceFile("items.json", json.dumps(items).encode())])
    assert result.format == "langfuse" and len(result.cases) == 2
    assert result.cases[0]["input"] == '{"question": "2+2?"}' and result.cases[0]["expected"] == "4"
    lines = "\n".join(json.dumps(i) for i in items).encode()
    assert read_sources([SourceFile("items.jsonl", lines)]).format == "langfuse-jsonl"


def test_langfuse_dataset_items_as_the_api_returns_them():
    for name, fmt in (
        ("langfuse__library-faq__items.json", "langfuse"),
        ("langfuse__library-faq__items.jsonl", "langfuse-jsonl"),
    ):
        result = read_sources([fixture(name)])
        assert result.format == fmt and len(result.cases) == 3, name
        structured, plain, object_answer = result.cases
        # The item's id is the case key; a structured input becomes JSON text (keys sorted).
        assert [c["key"] for c in result.cases] == ["faq-renew-01", "faq-fines-02", "faq-hours-03"]
        assert structured["input"] == (
            '{"branch": "central", "question": "How many times can I renew a book?"}'
        )
        assert structured["expected"] == "Twice, unless another patron has placed a hold on it."
        # Its own metadata and the item's other fields (dataset, status, trace) are kept.
        assert structured["metadata"]["topic"] == "loans"
        assert structured["metadata"]["datasetName"] == "library-faq"
        assert structured["metadata"]["status"] == "ACTIVE"
        assert plain["input"] == "Do children's books collect late fees?"
        assert plain["metadata"]["sourceTraceId"] == "trace-5c1e"
        # An object as expectedOutput becomes JSON text too.
        assert object_answer["expected"] == '{"close": "16:00", "open": "10:00"}'


def test_ftvp_yaml_with_default_assertions():
    data = b"""
default_assertions:
  - type: icontains
    value: paris
cases:
  - id: fr
    input: Capital of France?
    expected: Paris
  - input: Capital of Italy?
    expected: Rome
    split: train
"""
    result = read_sources([SourceFile("suite.yaml", data)])
    assert result.format == "yaml" and next(c["key"] for c in result.cases) == "fr"
    assert result.extras.default_assertions == [{"type": "icontains", "value": "paris"}]


def test_a_zip_is_opened_and_its_members_read():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("goldens.json", (FIXTURES / "deepeval__goldens.json").read_bytes())
    result = read_sources([SourceFile("upload.zip", buffer.getvalue())])
    assert len(result.cases) == 15 and result.files == ["goldens.json"]


def test_a_zip_bomb_is_refused_before_it_is_unpacked():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("cases.jsonl", b"0" * (5 * 1024 * 1024))
    with pytest.raises(SuiteFormatError, match="unpacks to more than"):
        read_sources([SourceFile("bomb.zip", buffer.getvalue())], max_bytes=1024 * 1024)


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("cases.jsonl", b"", "is empty"),
        ("cases.jsonl", b'{\n  "input": "x",\n  "expected": "y"\n}\n', "line 1: is not valid JSON"),
        ("cases.csv", b"input,expected\nhi,hello,extra\n", "line 2"),
        ("cases.csv", b"input,expected\n\xff\xfehi,hello\n", "is not valid UTF-8"),
        ("cases.jsonl", b'{"input": "x", "assertions": [{"type": "telepathy"}]}\n', "unknown assertion type"),
        ("suite.yaml", b"a: &x [1]\nb: *x\n", "aliases"),
        ("suite.yaml", b"cases: !!python/object/apply:os.system ['true']\n", "not valid YAML"),
        ("deep.json", b"[" * 100 + b"]" * 100, "nests 100 levels deep"),
        (
            "deep.jsonl",
            b'{"input": "a", "expected": "b", "m": ' + b"[" * 200_000 + b"]" * 200_000 + b"}\n",
            "nests 200001 levels deep",
        ),
        ("deep.yaml", b"[" * 50_000 + b"]" * 50_000, "nests too deeply"),
        ("nan.jsonl", b'{"input": "a", "expected": "b", "metadata": {"x": NaN}}\n', "NaN is not a number"),
        ("nul.jsonl", b'{"input": "a\\u0000b", "expected": "b"}\n', "NUL character"),
        ("big.yaml", b"cases: []\n" + b"#" * (6 * 1024 * 1024), "larger than 5 MB of YAML"),
        ("notes.txt", b"hello", "file type '.txt' is not supported"),
    ],
)
def test_invalid_files_fail_with_the_file_line_and_reason(name, data, message):
    with pytest.raises(SuiteFormatError) as caught:
        read_sources([SourceFile(name, data)])
    assert name in str(caught.value) and message in str(caught.value)


def test_a_format_can_be_forced_and_an_unknown_one_is_refused():
    data = (FIXTURES / CHAT).read_bytes()
    assert read_sources([SourceFile("x.jsonl", data)], fmt="openai-chat").format == "openai-chat"
    with pytest.raises(SuiteFormatError, match="is not a format"):
        read_sources([SourceFile("x.jsonl", data)], fmt="excel")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(["s.csv", "s.jsonl", "s.json", "s.yaml", "s.zip"]),
    data=st.binary(max_size=2000),
)
def test_random_bytes_give_a_clear_error_or_cases_never_a_crash(name, data):
    try:
        result = read_sources([SourceFile(name, data)])
    except SuiteFormatError as exc:
        assert str(exc)
    else:
        assert result.cases


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(
        st.dictionaries(
            st.sampled_from(
                ["input", "expected", "ideal", "tags", "split", "id", "assertions", "metadata", "x"]
            ),
            st.one_of(
                st.text(max_size=30), st.integers(), st.none(), st.lists(st.text(max_size=5), max_size=3)
            ),
            max_size=6,
        ),
        max_size=8,
    )
)
def test_random_rows_give_a_clear_error_or_valid_cases(rows):
    data = "\n".join(json.dumps(r) for r in rows).encode()
    try:
        result = read_sources([SourceFile("rows.jsonl", data)])
    except SuiteFormatError as exc:
        assert "rows.jsonl" in str(exc)
    else:
        assert all(c["input"] and c["split"] in ("test", "train") for c in result.cases)


@pytest.mark.parametrize(
    ("name", "fmt", "cases"),
    [
        ("promptfoo__catalog-metadata__tests.csv", "promptfoo-csv", 3),
        ("promptfoo__help-desk__tests.csv", "promptfoo-csv", 3),
        ("promptfoo__unit-conversion__cases.jsonl", "promptfoo-jsonl", 2),
        ("deepeval__goldens.csv", "csv", 15),
        ("deepeval__goldens.json", "deepeval", 15),
        ("langfuse__library-faq__items.json", "langfuse", 3),
        ("langfuse__library-faq__items.jsonl", "langfuse-jsonl", 3),
        (CHAT, "openai-chat", 5),
        ("openai-evals__renewal__few_shot.jsonl", "openai-evals-jsonl", 5),
        ("openai-evals__unit_fuzzy_match__samples.jsonl", "openai-evals-jsonl", 3),
    ],
)
def test_every_single_file_fixture_is_detected_and_imported(name, fmt, cases):
    result = read_sources([fixture(name)])
    assert (result.format, len(result.cases)) == (fmt, cases)


def test_the_promptfoo_configs_import_with_the_files_they_refer_to():
    simple = read_sources(
        [
            fixture("promptfoo__help-desk__promptfooconfig.yaml", "promptfooconfig.yaml"),
            fixture("promptfoo__help-desk__prompts.txt", "prompts.txt"),
        ]
    )
    assert simple.format == "promptfoo" and len(simple.extras.prompts) == 2 and simple.cases
    # The f-score config refers to a CSV the fixtures do not ship: the error says which.
    with pytest.raises(SuiteFormatError) as caught:
        read_sources([fixture("promptfoo__feedback-f-score__promptfooconfig.yaml", "promptfooconfig.yaml")])
    assert "comment_cards_sample.csv" in str(caught.value)


def test_yaml_dates_and_binary_become_text():
    data = b"cases:\n  - input: a\n    expected: b\n    metadata: {d: 2024-01-01, raw: !!binary aGk=}\n"
    (case,) = read_sources([SourceFile("s.yaml", data)]).cases
    assert case["metadata"] == {"d": "2024-01-01", "raw": "hi"}


def test_a_corrupt_zip_member_is_a_clear_error():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("cases.jsonl", b'{"input": "a", "expected": "b"}\n' * 50)
    data = bytearray(buffer.getvalue())
    start = data.index(b"cases.jsonl") + len(b"cases.jsonl")
    data[start + 5 : start + 25] = b"\xff" * 20  # damage the compressed bytes
    with pytest.raises(SuiteFormatError, match=r"cannot be unpacked|not a valid zip"):
        read_sources([SourceFile("broken.zip", bytes(data))])


def test_ftvp_files_that_share_a_name_with_promptfoo_fields_stay_ftvp():
    jsonl = b'{"input": "What is 2+2?", "expected": "4", "vars": {"x": "y"}}\n'
    assert read_sources([SourceFile("a.jsonl", jsonl)]).format == "jsonl"
    csv_data = b"input,expected,__note\nhi,hello,internal\n"
    assert read_sources([SourceFile("a.csv", csv_data)]).format == "csv"


def test_a_promptfoo_tests_file_with_an_odd_name_imports():
    data = b"- vars: {q: hi}\n  assert: [{type: contains, value: hi}]\n"
    result = read_sources([SourceFile("my tests #2.yaml", data)])
    assert result.format == "promptfoo-tests" and len(result.cases) == 1
