import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluations.scoring.assertions import (
    SCORERS,
    Context,
    Verdict,
    combine,
    evaluate,
    levenshtein_distance,
    parse_json_path,
    scorer_versions,
    texts_to_embed,
    unrunnable_reason,
    validate_assertion,
)


def check(kind, output, value=None, **kwargs):
    assertion = {"type": kind}
    if value is not None:
        assertion["value"] = value
    if "threshold" in kwargs:
        assertion["threshold"] = kwargs.pop("threshold")
    return evaluate(assertion, Context(output=output, **kwargs))


def unit(degrees):
    """A 2-d unit vector at an angle: cosine between two of them is cos(difference)."""
    rad = math.radians(degrees)
    return np.array([math.cos(rad), math.sin(rad)], dtype=np.float32)


VECTORS = {
    "Paris": unit(0),
    "The capital is Paris": unit(10),  # cos 10 deg = 0.985
    "Lyon": unit(60),  # cos 60 deg = 0.5
    "Berlin": unit(90),  # cos 90 deg = 0
    "opposite": unit(180),  # cos 180 deg = -1, clipped to 0
}


# --- the registry -----------------------------------------------------------------------------------------


def test_the_registry_has_every_documented_type_with_a_version():
    names = {
        "equals", "contains", "icontains", "contains-any", "icontains-any", "contains-all", "icontains-all",
        "starts-with", "regex", "is-json", "json-equals", "contains-json", "json-schema", "json-field",
        "levenshtein", "length", "cost", "latency", "similar", "exact", "label", "llm-rubric", "pairwise",
    }  # fmt: skip
    assert set(SCORERS) == names
    for name, scorer in SCORERS.items():
        assert scorer.name == name
        assert isinstance(scorer.version, int) and scorer.version >= 1
        assert scorer.needs_embeddings == (name == "similar")


# --- equals / contains family -----------------------------------------------------------------------------


def test_equals_is_case_and_whitespace_sensitive():
    assert check("equals", "Paris", "Paris") == Verdict(1.0, True, "equals 'Paris'")
    assert not check("equals", "paris", "Paris").passed
    assert not check("equals", "Paris ", "Paris").passed


def test_equals_without_a_value_uses_the_expected_outputs():
    assert check("equals", "Lyon", expected=("Paris", "Lyon")).passed
    assert not check("equals", "Nice", expected=("Paris", "Lyon")).passed


def test_equals_treats_composed_and_decomposed_accents_alike():
    assert check("equals", "Caf\u00e9", "Cafe\u0301").passed


def test_equals_with_an_object_value_compares_json():
    assert check("equals", '{"b": 2, "a": 1}', {"a": 1, "b": 2}).passed
    assert not check("equals", '{"a": true}', {"a": 1}).passed
    assert check("equals", "not json", {"a": 1}).reason == "output is not valid JSON"


def test_contains_is_case_sensitive_and_icontains_is_not():
    assert check("contains", "The capital is Paris.", "Paris") == Verdict(1.0, True, "contains 'Paris'")
    assert check("contains", "the capital is paris.", "Paris") == Verdict(
        0.0, False, "does not contain 'Paris'"
    )
    assert check("icontains", "THE CAPITAL IS PARIS.", "paris").passed


def test_icontains_folds_unicode_case():
    assert check("icontains", "STRASSE", "straße").passed
    assert check("icontains", "ÉCOLE", "école").passed


def test_contains_reads_a_number_value_as_text():
    assert check("contains", "The answer is 42.", 42).passed


def test_contains_on_an_empty_output_fails():
    assert not check("contains", "", "Paris").passed


def test_contains_any_passes_on_one_match_and_splits_comma_strings():
    assert check("contains-any", "I like Lyon", ["Paris", "Lyon"]).reason == "contains 'Lyon'"
    assert check("contains-any", "I like Lyon", "Paris, Lyon").passed
    verdict = check("contains-any", "I like Nice", ["Paris", "Lyon"])
    assert verdict == Verdict(0.0, False, "contains none of 'Paris', 'Lyon'")
    assert check("icontains-any", "i like lyon", ["Paris", "LYON"]).passed
    assert not check("contains-any", "i like lyon", ["Paris", "LYON"]).passed


def test_contains_all_scores_the_share_found_but_passes_only_when_all_are_there():
    assert check("contains-all", "Paris and Lyon", ["Paris", "Lyon"]) == Verdict(1.0, True, "contains all 2")
    verdict = check("contains-all", "Paris and Nice", ["Paris", "Lyon", "Nice", "Metz"])
    assert verdict.score == pytest.approx(0.5)
    assert not verdict.passed
    assert verdict.reason == "missing 'Lyon', 'Metz'"
    assert check("icontains-all", "PARIS and lyon", "paris,LYON").passed


def test_starts_with_checks_the_very_start():
    assert check("starts-with", "Ahoy matey", "Ahoy").passed
    assert not check("starts-with", " Ahoy matey", "Ahoy").passed
    assert check("starts-with", "Bonjour", "Ahoy").reason == "does not start with 'Ahoy'"


def test_long_values_are_shortened_in_reasons():
    verdict = check("contains", "short", "x" * 200)
    assert len(verdict.reason) < 70
    assert "…" in verdict.reason


# --- regex ------------------------------------------------------------------------------------------------


def test_regex_searches_anywhere_in_the_output():
    assert check("regex", "Order #12345 shipped", r"#\d{5}\b").passed
    assert not check("regex", "Order shipped", r"#\d{5}").passed
    assert check("regex", "PARIS", "(?i)paris").passed


def test_an_invalid_regex_gives_a_failing_verdict_not_an_exception():
    verdict = check("regex", "anything", "([unclosed")
    assert not verdict.passed
    assert verdict.score == 0.0
    assert verdict.reason.startswith("invalid regex '([unclosed'")


def test_negating_an_invalid_regex_still_fails():
    verdict = check("not-regex", "anything", "([unclosed")
    assert not verdict.passed
    assert verdict.score == 0.0


# --- JSON -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "passed"),
    [
        ('{"a": 1}', True),
        ("  [1, 2, 3]\n", True),
        ("42", True),
        ('"text"', True),
        ("", False),
        ("{'a': 1}", False),
        ('{"a": 1} trailing', False),
        ("NaN", False),
        ('```json\n{"a": 1}\n```', False),  # is-json measures format compliance: no fences
    ],
)
def test_is_json(output, passed):
    assert check("is-json", output).passed is passed


def test_is_json_with_a_schema_validates_the_output():
    schema = {"type": "object", "required": ["sentiment"]}
    assert check("is-json", '{"sentiment": "positive"}', schema).passed
    verdict = check("is-json", '{"mood": "positive"}', schema)
    assert not verdict.passed
    assert "'sentiment' is a required property" in verdict.reason


def test_contains_json_finds_json_inside_text():
    assert check("contains-json", 'Here you go: {"a": [1, 2]} - done').passed
    assert check("contains-json", '```json\n[{"a": 1}]\n```').passed
    assert check("contains-json", "braces { but no json }").reason == "output contains no JSON"
    assert not check("contains-json", "").passed


def test_contains_json_with_a_schema_passes_when_any_embedded_json_matches():
    schema = {"type": "object", "required": ["b"]}
    assert check("contains-json", 'first {"a": 1} then {"b": 2}', schema).passed
    assert not check("contains-json", 'only {"a": 1}', schema).passed


SENTIMENT_SCHEMA = {
    "type": "object",
    "properties": {
        "sentiment": {"type": "string", "enum": ["positive", "negative"]},
        "confidence": {"type": "integer", "minimum": 1, "maximum": 10},
    },
    "required": ["sentiment", "confidence"],
}


def test_json_schema_accepts_a_valid_document():
    verdict = check("json-schema", '{"sentiment": "positive", "confidence": 8}', SENTIMENT_SCHEMA)
    assert verdict == Verdict(1.0, True, "JSON matches the schema")


def test_json_schema_reports_where_the_document_is_wrong():
    verdict = check("json-schema", '{"sentiment": "positive", "confidence": 11}', SENTIMENT_SCHEMA)
    assert not verdict.passed
    assert verdict.reason.startswith("schema: $.confidence: 11 is greater than the maximum of 10")


def test_json_schema_accepts_a_fenced_document_and_a_schema_given_as_text():
    output = '```json\n{"sentiment": "negative", "confidence": 3}\n```'
    assert check("json-schema", output, '{"type": "object"}').passed
    assert check("json-schema", output, SENTIMENT_SCHEMA).passed


def test_json_schema_on_non_json_output_fails():
    assert check("json-schema", "positive", SENTIMENT_SCHEMA).reason == "output is not valid JSON"


def test_json_schema_with_an_invalid_schema_fails_and_does_not_negate():
    bad = {"type": "no-such-type"}
    assert "invalid JSON schema" in check("json-schema", "{}", bad).reason
    assert not check("not-json-schema", "{}", bad).passed


@pytest.mark.parametrize(
    ("path", "steps"),
    [
        ("a", ["a"]),
        ("a.b[0]", ["a", "b", 0]),
        ("$.a.b[-1]", ["a", "b", -1]),
        ("[2].name", [2, "name"]),
        ('a["odd key"].b', ["a", "odd key", "b"]),
    ],
)
def test_parse_json_path(path, steps):
    assert parse_json_path(path) == steps


@pytest.mark.parametrize("path", ["", "$", "a..b", "a.", "a[x]", "a[0]b"])
def test_parse_json_path_rejects_malformed_paths(path):
    with pytest.raises(ValueError):
        parse_json_path(path)


DOC = '{"user": {"name": "Zoë", "tags": ["a", "b"], "age": 30, "admin": false}}'


@pytest.mark.parametrize(
    ("value", "passed"),
    [
        ({"path": "user.name", "equals": "Zoë"}, True),
        ({"path": "user.tags[1]", "equals": "b"}, True),
        ({"path": "user.tags[-1]", "equals": "b"}, True),
        ({"path": "user.tags", "equals": ["a", "b"]}, True),
        ({"path": "user.age", "equals": 30}, True),
        ({"path": "user.age", "equals": 30.0}, True),
        ({"path": "user.age", "equals": "30"}, False),
        ({"path": "user.admin", "equals": False}, True),
        ({"path": "user.admin", "equals": 0}, False),  # false is not the number 0
        ({"path": "user.tags[5]", "equals": "a"}, False),
        ({"path": "user.missing", "equals": None}, False),
        ({"path": "user.name"}, True),  # no 'equals': the field only has to exist
        ({"path": "user.name.first"}, False),
    ],
)
def test_json_field(value, passed):
    assert check("json-field", DOC, value).passed is passed


def test_json_field_reasons():
    assert check("json-field", DOC, {"path": "user.age", "equals": 31}).reason == "user.age != '31'"
    assert check("json-field", DOC, {"path": "user.x", "equals": 1}).reason == "no field user.x"
    assert check("json-field", "nope", {"path": "a", "equals": 1}).reason == "output is not valid JSON"


def test_json_field_with_a_bad_value_at_runtime_fails_with_a_reason():
    verdict = check("json-field", DOC, {"path": "a..b"})
    assert not verdict.passed
    assert "bad path" in verdict.reason


# --- levenshtein ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [
        ("", "", 0),
        ("abc", "", 3),
        ("", "abc", 3),
        ("kitten", "sitting", 3),
        ("flaw", "lawn", 2),
        ("Zoë", "Zoe", 1),
        ("intention", "execution", 5),
        ("abc", "abc", 0),
    ],
)
def test_levenshtein_distance(a, b, distance):
    assert levenshtein_distance(a, b) == distance
    assert levenshtein_distance(b, a) == distance


def _reference_distance(a, b):
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, start=1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


@settings(max_examples=200)
@given(st.text(alphabet="abcé ", max_size=12), st.text(alphabet="abcé ", max_size=12))
def test_levenshtein_distance_matches_the_textbook_algorithm(a, b):
    assert levenshtein_distance(a, b) == _reference_distance(a, b)


def test_levenshtein_scores_one_minus_the_relative_distance_and_passes_within_the_threshold():
    verdict = check("levenshtein", "kitten", "sitting", threshold=3)
    assert verdict.score == pytest.approx(1 - 3 / 7)
    assert verdict.passed
    assert verdict.reason == "edit distance 3 <= 3"
    verdict = check("levenshtein", "kitten", "sitting", threshold=2)
    assert not verdict.passed
    assert verdict.reason == "edit distance 3 > 2"


def test_levenshtein_defaults_to_the_expected_outputs_and_a_threshold_of_five():
    verdict = check("levenshtein", "Pariss", expected=("London", "Paris"))
    assert verdict.passed
    assert verdict.score == pytest.approx(1 - 1 / 6)
    assert not check("levenshtein", "a completely different answer", expected=("Paris",)).passed


def test_levenshtein_of_two_empty_texts_is_a_perfect_score():
    assert check("levenshtein", "", "", threshold=0) == Verdict(1.0, True, "edit distance 0 <= 0")


def test_levenshtein_with_nothing_to_compare_fails():
    verdict = check("levenshtein", "Paris")
    assert verdict == Verdict(0.0, False, "no expected output to compare with")


# --- length, cost, latency --------------------------------------------------------------------------------


def test_length_bounds_count_characters():
    assert check("length", "héllo", {"min": 5, "max": 5}).passed
    assert check("length", "hi", {"min": 5}).reason == "length 2 < min 5"
    assert check("length", "hello world", {"max": 5}).reason == "length 11 > max 5"
    assert check("length", "", {"max": 0}).passed
    assert check("length", "hello", {"min": 1}).reason == "length 5 within [1, ∞]"


def test_length_with_a_bad_value_at_runtime_fails():
    assert not check("length", "hello", {"min": 9, "max": 1}).passed
    assert not check("length", "hello", 5).passed


def test_cost_passes_at_or_under_the_threshold():
    assert check("cost", "x", threshold=0.01, cost=0.01).passed
    verdict = check("cost", "x", threshold=0.01, cost=0.02)
    assert verdict == Verdict(0.0, False, "cost $0.02 > $0.01")


def test_latency_passes_at_or_under_the_threshold():
    assert check("latency", "x", threshold=1000, latency_ms=812.4).reason == "latency 812 ms <= 1000 ms"
    assert not check("latency", "x", threshold=500, latency_ms=812.4).passed


def test_cost_and_latency_fail_when_unknown_even_when_negated():
    assert check("cost", "x", threshold=0.01).reason == "cost unknown"
    assert check("latency", "x", threshold=10).reason == "latency unknown"
    assert not check("not-cost", "x", threshold=0.01).passed
    assert not check("not-latency", "x", threshold=10).passed


def test_cost_without_a_threshold_fails():
    assert check("cost", "x", cost=0.5).reason == "cost needs a threshold (max USD)"


# --- similar ----------------------------------------------------------------------------------------------


def test_similar_compares_the_output_with_the_expected_outputs_and_the_best_match_counts():
    verdict = check("similar", "The capital is Paris", expected=("Berlin", "Paris"), vectors=VECTORS)
    assert verdict.score == pytest.approx(math.cos(math.radians(10)), abs=1e-6)
    assert verdict.passed
    assert verdict.reason == "similarity 0.98 >= 0.80"


def test_similar_uses_the_suite_threshold_unless_the_assertion_gives_one():
    ctx = {"vectors": VECTORS, "expected": ("Paris",)}
    assert check("similar", "Lyon", **ctx).reason == "similarity 0.50 < 0.80"
    assert check("similar", "Lyon", similarity_threshold=0.4, **ctx).passed
    assert check("similar", "Lyon", threshold=0.5, **ctx).passed
    assert not check("similar", "Lyon", threshold=0.51, **ctx).passed


def test_similar_with_a_value_ignores_the_expected_outputs():
    assert check("similar", "Paris", "Lyon", expected=("Paris",), vectors=VECTORS).score == pytest.approx(0.5)
    assert check("similar", "Paris", ["Berlin", "Lyon"], vectors=VECTORS).score == pytest.approx(0.5)


def test_similar_clips_negative_cosines_to_zero():
    verdict = check("similar", "opposite", "Paris", vectors=VECTORS)
    assert verdict.score == 0.0


def test_similar_of_identical_texts_passes_a_threshold_of_one():
    assert check("similar", "Paris", "Paris", threshold=1.0, vectors=VECTORS).passed


def test_similar_fails_clearly_when_an_embedding_is_missing():
    assert check("similar", "Rome", "Paris", vectors=VECTORS).reason == "no embedding for the output"
    assert check("similar", "Paris", "Rome", vectors=VECTORS).reason == "no embedding for 'Rome'"
    assert not check("not-similar", "Paris", "Rome", vectors=VECTORS).passed


def test_similar_with_nothing_to_compare_fails():
    assert check("similar", "Paris", vectors=VECTORS).reason == "no expected output to compare with"


def test_not_similar_passes_for_unrelated_texts():
    verdict = check("not-similar", "Berlin", "Paris", vectors=VECTORS)
    assert verdict.passed
    assert verdict.score == pytest.approx(1.0)
    assert verdict.reason == "negated: similarity 0.00 < 0.80"


def test_texts_to_embed_lists_the_output_then_the_comparison_texts_without_duplicates():
    ctx = Context(output="Paris", expected=("Paris", "Lyon", "Lyon"))
    assert texts_to_embed({"type": "similar"}, ctx) == ["Paris", "Lyon"]
    assert texts_to_embed({"type": "not-similar", "value": ["Berlin"]}, ctx) == ["Paris", "Berlin"]
    assert texts_to_embed({"type": "similar", "value": "Rome"}, ctx) == ["Paris", "Rome"]


def test_texts_to_embed_is_empty_for_other_scorers():
    ctx = Context(output="Paris", expected=("Paris",))
    assert texts_to_embed({"type": "contains", "value": "Paris"}, ctx) == []
    assert texts_to_embed({"type": "exact"}, ctx) == []
    assert texts_to_embed({"type": "nonsense"}, ctx) == []
    assert texts_to_embed({"type": "similar"}, Context(output="Paris")) == ["Paris"]


# --- exact and label --------------------------------------------------------------------------------------


def test_exact_is_normalised_equality_with_an_expected_output():
    assert check("exact", "  PARIS. ", expected=("London", "Paris")).passed
    assert check("exact", "ＰＡＲＩＳ", expected=("paris",)).passed
    verdict = check("exact", "Paris, France", expected=("Paris",))
    assert verdict == Verdict(0.0, False, "matches no expected output")


def test_exact_with_a_value_and_with_nothing_to_compare():
    assert check("exact", "paris", "Paris").passed
    assert check("exact", "paris").reason == "no expected output to compare with"


def test_label_extracts_the_label_from_free_text():
    labels = ("positive", "negative", "very positive")
    verdict = check("label", "I'd say **Very Positive**.", expected=("very positive",), labels=labels)
    assert verdict == Verdict(1.0, True, "label 'very positive'")
    verdict = check("label", "The review is negative.", expected=("positive",), labels=labels)
    assert verdict == Verdict(0.0, False, "label 'negative', expected 'positive'")


def test_label_without_a_recognisable_label_fails():
    verdict = check("label", "hard to say", expected=("positive",), labels=("positive", "negative"))
    assert verdict.reason == "no label found, expected 'positive'"


def test_label_value_overrides_the_expected_outputs_and_labels_default_to_the_expected():
    assert check(
        "label", "Negative", "negative", expected=("positive",), labels=("positive", "negative")
    ).passed
    assert check("label", "It's sarcastic.", expected=("sarcastic",)).passed


# --- llm-rubric -------------------------------------------------------------------------------------------


def test_llm_rubric_asks_the_judge_and_passes_at_the_threshold():
    calls = []

    def judge(rubric, output, expected):
        calls.append((rubric, output, expected))
        return 0.7, "mostly polite"

    verdict = check("llm-rubric", "Hello!", "Is it polite?", expected=("Hi",), judge=judge)
    assert verdict == Verdict(0.7, True, "judge 0.70: mostly polite")
    assert calls == [("Is it polite?", "Hello!", ("Hi",))]
    assert not check("llm-rubric", "Hello!", "Is it polite?", threshold=0.8, judge=judge).passed


def test_llm_rubric_without_a_judge_is_skipped_even_when_negated():
    skipped = check("llm-rubric", "x", "Is it polite?")
    assert skipped.skipped and skipped.reason.startswith("skipped: no judge endpoint is configured")
    assert check("not-llm-rubric", "x", "Is it polite?").skipped


def test_llm_rubric_survives_a_failing_or_odd_judge():
    def broken(rubric, output, expected):
        raise TimeoutError("judge timed out")

    assert check("llm-rubric", "x", "r", judge=broken).reason == "judge failed: judge timed out"
    assert check("llm-rubric", "x", "r", judge=lambda *a: (1.7, "")).score == 1.0
    assert not check("llm-rubric", "x", "r", judge=lambda *a: ("high", "")).passed
    assert not check("llm-rubric", "x", "r", judge=lambda *a: (float("nan"), "")).passed


# --- negation and robustness ------------------------------------------------------------------------------


def test_not_prefix_negates_score_pass_and_reason():
    verdict = check("not-contains", "I cannot help with that", "sorry")
    assert verdict == Verdict(1.0, True, "negated: does not contain 'sorry'")
    verdict = check("not-icontains", "Sorry, no", "sorry")
    assert verdict == Verdict(0.0, False, "negated: contains 'sorry'")


def test_negating_a_partial_score_complements_it():
    verdict = check("not-contains-all", "Paris only", ["Paris", "Lyon"])
    assert verdict.score == pytest.approx(0.5)
    assert verdict.passed


def test_not_is_json():
    assert check("not-is-json", "plain text").passed
    assert not check("not-is-json", "{}").passed


def test_unknown_types_fail_without_raising():
    assert evaluate({"type": "telepathy", "value": "1"}, Context(output="x")) == Verdict(
        0.0, False, "unknown assertion type 'telepathy'"
    )
    assert not evaluate({"type": "not-not-contains", "value": "x"}, Context(output="x")).passed
    assert not evaluate({}, Context(output="x")).passed
    assert not evaluate("contains", Context(output="x")).passed  # type: ignore[arg-type]


def test_a_type_with_surrounding_spaces_is_accepted():
    assert evaluate({"type": " contains ", "value": "x"}, Context(output="x")).passed


def test_a_non_numeric_threshold_at_runtime_fails():
    verdict = evaluate({"type": "similar", "threshold": "high"}, Context(output="x"))
    assert verdict == Verdict(0.0, False, "threshold 'high' is not a number")


def test_a_numeric_text_threshold_is_read_as_a_number():
    assert evaluate({"type": "cost", "threshold": "0.5"}, Context(output="x", cost=0.1)).passed


@pytest.mark.parametrize(
    "assertion",
    [
        {"type": "contains"},
        {"type": "contains", "value": None},
        {"type": "contains", "value": {"a": 1}},
        {"type": "contains-any", "value": []},
        {"type": "contains-any", "value": [None]},
        {"type": "regex", "value": 5},
        {"type": "json-schema", "value": "not json"},
        {"type": "json-field", "value": ["a"]},
        {"type": "length", "value": {"min": "x"}},
        {"type": "llm-rubric", "value": ["a"]},
        {"type": "similar", "value": {"a": 1}},
        {"type": "label", "value": 3},
    ],
)
def test_bad_values_at_runtime_give_failing_verdicts(assertion):
    verdict = evaluate(assertion, Context(output='{"a": 1}', expected=("a",), vectors=VECTORS))
    assert not verdict.passed
    assert verdict.score == 0.0
    assert verdict.reason


ANY_ASSERTION = st.fixed_dictionaries(
    {
        "type": st.sampled_from([*SCORERS, *(f"not-{n}" for n in SCORERS)]),
        "value": st.one_of(
            st.none(),
            st.text(max_size=8),
            st.lists(st.text(max_size=4), max_size=3),
            st.integers(),
            st.dictionaries(st.sampled_from(["path", "equals", "min", "max", "type"]), st.integers()),
        ),
        "threshold": st.one_of(st.none(), st.floats(allow_nan=True), st.text(max_size=3)),
    }
)


@settings(max_examples=300, deadline=None)
@given(ANY_ASSERTION, st.text(max_size=30))
def test_evaluate_never_raises_and_scores_stay_in_the_unit_interval(assertion, output):
    ctx = Context(output=output, expected=("Paris",), cost=0.1, latency_ms=10.0, judge=lambda *a: (0.5, "ok"))
    verdict = evaluate(assertion, ctx)
    assert 0.0 <= verdict.score <= 1.0
    assert isinstance(verdict.passed, bool)
    assert isinstance(verdict.reason, str) and verdict.reason


# --- validate_assertion -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "assertion",
    [
        {"type": "contains", "value": "Paris"},
        {"type": "not-contains", "value": "sorry", "weight": 2, "metric": "tone"},
        {"type": "contains-any", "value": "a, b"},
        {"type": "icontains-all", "value": ["a", "b"]},
        {"type": "regex", "value": r"^\d+$"},
        {"type": "is-json"},
        {"type": "is-json", "value": SENTIMENT_SCHEMA},
        {"type": "contains-json"},
        {"type": "json-schema", "value": SENTIMENT_SCHEMA},
        {"type": "json-schema", "value": '{"type": "object"}'},
        {"type": "json-field", "value": {"path": "a.b[0]", "equals": 3}},
        {"type": "levenshtein", "threshold": 2},
        {"type": "levenshtein", "value": "Paris", "threshold": 0},
        {"type": "length", "value": {"min": 1, "max": 10}},
        {"type": "length", "value": {"max": 10}},
        {"type": "cost", "threshold": 0.01},
        {"type": "latency", "threshold": 1500},
        {"type": "similar"},
        {"type": "similar", "value": ["a", "b"], "threshold": 0.75},
        {"type": "exact", "weight": 0},
        {"type": "label", "value": "positive"},
        {"type": "llm-rubric", "value": "Is polite", "threshold": 0.6},
        {"type": "equals", "value": {"a": 1}},
        {"type": "equals"},
        {"type": "similar", "threshold": "0.7"},
    ],
)
def test_valid_assertions_pass_validation(assertion):
    assert validate_assertion(assertion) is None


@pytest.mark.parametrize(
    ("assertion", "message"),
    [
        ("contains", "an assertion must be an object with a 'type', not a str"),
        ({"value": "x"}, "the assertion has no 'type'; use one of: equals, contains,"),
        ({"type": "telepathy"}, "unknown assertion type 'telepathy'; use one of: equals, contains,"),
        ({"type": "not-nonsense"}, "unknown assertion type 'not-nonsense'"),
        ({"type": "contains"}, "'contains' needs a 'value' (the text to look for)"),
        ({"type": "not-contains"}, "'not-contains' needs a 'value' (the text to look for)"),
        ({"type": "contains", "value": ""}, "'contains' value must be a non-empty text"),
        ({"type": "contains-any", "value": []}, "'contains-any' value must name at least one text"),
        ({"type": "contains-all", "value": [1, None]}, "'contains-all' value must be a list of texts"),
        ({"type": "regex", "value": "([a"}, "'regex' value is not a valid regular expression"),
        ({"type": "json-schema"}, "'json-schema' needs a 'value' (a JSON schema)"),
        (
            {"type": "json-schema", "value": {"type": "nope"}},
            "'json-schema' value is not a valid JSON schema",
        ),
        ({"type": "json-schema", "value": "{oops"}, "'json-schema' value is not a JSON schema"),
        ({"type": "is-json", "value": {"minimum": "x"}}, "'is-json' value is not a valid JSON schema"),
        ({"type": "json-field", "value": "a.b"}, "'json-field' value must be an object like"),
        ({"type": "json-field", "value": {"path": "a..b"}}, "'json-field' value has a bad path 'a..b'"),
        ({"type": "json-field", "value": {"path": "a", "eq": 1}}, "'json-field' value has unknown keys"),
        ({"type": "length", "value": {}}, "'length' value must be an object like"),
        ({"type": "length", "value": {"min": 5, "max": 2}}, "'length' value has min 5 above max 2"),
        ({"type": "length", "value": {"min": -1}}, "'length' value has a bad min -1"),
        ({"type": "cost"}, "'cost' needs a 'threshold' (the maximum cost in USD)"),
        ({"type": "latency"}, "'latency' needs a 'threshold' (the maximum latency in ms)"),
        ({"type": "latency", "threshold": -5}, "'latency' threshold -5 is out of range; give a number >= 0"),
        ({"type": "similar", "threshold": "high"}, "'similar' threshold 'high' is not a number"),
        ({"type": "similar", "threshold": True}, "'similar' threshold True is not a number"),
        ({"type": "similar", "threshold": float("nan")}, "'similar' threshold nan is not a number"),
        (
            {"type": "similar", "threshold": 1.5},
            "'similar' threshold 1.5 is out of range; give a number between 0",
        ),
        ({"type": "similar", "value": 3}, "'similar' value must be a text or a list of texts"),
        ({"type": "llm-rubric"}, "'llm-rubric' needs a 'value' (the rubric text)"),
        ({"type": "contains", "value": "x", "weight": -1}, "weight -1 must be a number >= 0"),
        ({"type": "contains", "value": "x", "weight": "heavy"}, "weight 'heavy' must be a number >= 0"),
        ({"type": "contains", "value": "x", "metric": 3}, "metric 3 must be a text"),
    ],
)
def test_invalid_assertions_are_explained(assertion, message):
    problem = validate_assertion(assertion)
    assert problem is not None
    assert problem.startswith(message), problem
    assert "\n" not in problem


def test_unknown_type_message_lists_every_known_type():
    problem = validate_assertion({"type": "telepathy"})
    for name in SCORERS:
        assert name in problem
    assert "not-" in problem


# --- combine ----------------------------------------------------------------------------------------------


def test_combine_is_the_weighted_mean_and_passes_when_all_pass():
    assertions = [{"type": "a", "weight": 3}, {"type": "b"}]
    verdict = combine(assertions, [Verdict(1.0, True, "x"), Verdict(0.6, True, "y")])
    assert verdict.score == pytest.approx((3 * 1.0 + 0.6) / 4)
    assert verdict.passed
    assert verdict.reason == "all 2 passed"


def test_combine_fails_when_any_weighted_assertion_fails_and_joins_the_reasons():
    assertions = [{"type": "a"}, {"type": "b"}, {"type": "c"}]
    verdicts = [
        Verdict(0.0, False, "does not contain 'Paris'"),
        Verdict(1.0, True, "ok"),
        Verdict(0.2, False, "e"),
    ]
    verdict = combine(assertions, verdicts)
    assert verdict.score == pytest.approx(0.4)
    assert not verdict.passed
    assert verdict.reason == "does not contain 'Paris'; e"


def test_combine_ignores_weight_zero_assertions_for_score_and_pass():
    assertions = [{"type": "a"}, {"type": "b", "weight": 0}]
    verdict = combine(
        assertions, [Verdict(0.9, True, "similarity 0.90 >= 0.80"), Verdict(0.0, False, "info")]
    )
    assert verdict == Verdict(0.9, True, "similarity 0.90 >= 0.80")


def test_combine_with_nothing_weighted_fails():
    assert combine([], []) == Verdict(0.0, False, "no assertions")
    only_info = combine([{"type": "a", "weight": 0}], [Verdict(1.0, True, "x")])
    assert only_info == Verdict(0.0, False, "no weighted assertions")


def test_combine_reads_bad_weights_as_one_and_clips_scores():
    assertions = [{"type": "a", "weight": "heavy"}, {"type": "b", "weight": "1"}]
    verdict = combine(assertions, [Verdict(1.5, True, "x"), Verdict(0.5, True, "y")])
    assert verdict.score == pytest.approx(0.75)


def test_combine_rejects_mismatched_lists():
    with pytest.raises(ValueError):
        combine([{"type": "a"}], [])


# --- scorer_versions --------------------------------------------------------------------------------------


def test_scorer_versions_names_each_base_scorer_once():
    assertions = [
        {"type": "similar"},
        {"type": "not-contains", "value": "x"},
        {"type": "contains", "value": "y"},
        {"type": "javascript"},
    ]
    assert scorer_versions(assertions) == {"contains": SCORERS["contains"].version, "similar": 1}
    assert scorer_versions([]) == {}


def test_json_equals_compares_parsed_values_with_the_expected_outputs():
    ctx = Context(output='{"b": 2, "a": [1, true]}', expected=('{"a": [1, true], "b": 2}',))
    assert evaluate({"type": "json-equals"}, ctx).passed
    assert not evaluate({"type": "json-equals"}, Context(output='{"a": 1}', expected=('{"a": true}',))).passed
    assert evaluate({"type": "json-equals", "value": {"x": 1}}, Context(output='{"x": 1.0}')).passed
    assert evaluate({"type": "json-equals"}, Context(output="not json", expected=("{}",))).reason == (
        "output is not valid JSON"
    )


def test_base_type_strips_the_negation():
    from evaluations.scoring.assertions import base_type

    assert base_type({"type": " not-llm-rubric "}) == "llm-rubric"
    assert base_type({"type": "contains"}) == "contains"


def test_assertions_other_tools_run_but_ftvp_cannot_are_kept_and_skipped():
    for kind in ("javascript", "python", "not-javascript"):
        assert validate_assertion({"type": kind, "value": "output.length > 3"}) is None
        assert unrunnable_reason({"type": kind}).endswith("kept, and skipped when scoring")
        verdict = evaluate({"type": kind, "value": "1"}, Context(output="x"))
        assert verdict.skipped and verdict.reason.startswith("skipped:")
    assert unrunnable_reason({"type": "contains"}) is None
    # Skipped assertions count in neither the score nor the pass.
    checks = [{"type": "contains", "value": "x"}, {"type": "python", "value": "False"}]
    verdicts = [evaluate(a, Context(output="x")) for a in checks]
    assert combine(checks, verdicts) == Verdict(1.0, True, "contains 'x'")
    only = [{"type": "python", "value": "1"}]
    total = combine(only, [evaluate(only[0], Context(output="x"))])
    assert total.skipped and not total.passed and "every assertion was skipped" in total.reason
