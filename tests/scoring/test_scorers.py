import string

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from evaluations.scoring.classification import classification_metrics
from evaluations.scoring.scorers import cosine_best, exact, extract_label, json_equal, normalise_text

# --- normalise_text / exact -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("Paris", "paris"),
        ("  New   York\n\tCity ", "new york city"),
        ("Paris.", "paris"),
        ('"Paris!"', "paris"),
        ("**positive**", "positive"),
        ("ＰＡＲＩＳ", "paris"),  # fullwidth letters fold under NFKC
        ("ﬁne", "fine"),  # ligature
        ("Straße", "strasse"),  # casefold, not just lower
        ("3.14", "3.14"),  # inner punctuation stays
    ],
)
def test_normalise_text_ignores_case_whitespace_edge_punctuation_and_width(raw, normal):
    assert normalise_text(raw) == normal


def test_exact_matches_any_of_the_expected_outputs():
    assert exact("  PARIS. ", ["London", "paris"]) == 1.0


def test_exact_is_not_a_substring_match():
    assert exact("Paris, France", ["Paris"]) == 0.0


def test_exact_with_no_expected_outputs_is_zero():
    assert exact("Paris", []) == 0.0


# Letters and digits whose case mapping round-trips (unlike e.g. the dotless i, whose upper case is "I").
letters = st.sampled_from(string.ascii_letters + string.digits + "àéîõüçñøåæœßαβγδωжщя")
words = st.text(alphabet=letters, min_size=1, max_size=12)
padding = st.text(alphabet=" \t\n", max_size=4)


@given(st.lists(words, min_size=1, max_size=4), padding, padding)
def test_exact_is_invariant_to_surrounding_whitespace_and_case(tokens, before, after):
    expected = " ".join(tokens)
    assert exact(before + expected.upper() + after, [expected]) == 1.0
    assert exact(before + expected.lower() + after, [expected]) == 1.0


@given(st.text())
def test_normalise_text_is_idempotent(text):
    once = normalise_text(text)
    assert normalise_text(once) == once


# --- extract_label ----------------------------------------------------------------------------------

SENTIMENT = ["positive", "negative", "neutral", "very positive"]


def test_extract_label_prefers_an_exact_match_and_returns_the_label_as_spelled():
    assert extract_label("  NEGATIVE. ", ["Positive", "Negative"]) == "Negative"


def test_extract_label_picks_the_label_mentioned_earliest():
    assert extract_label("Neutral at first, but overall negative.", SENTIMENT) == "neutral"


def test_extract_label_prefers_the_longer_label_over_one_it_contains():
    assert extract_label("very positive", SENTIMENT) == "very positive"
    assert extract_label("I'd say it is very positive overall", SENTIMENT) == "very positive"


def test_extract_label_breaks_ties_at_the_same_position_by_length():
    labels = ["spam", "spam folder"]
    assert extract_label("send to spam folder", labels) == "spam folder"


def test_extract_label_respects_word_boundaries():
    assert extract_label("The review is negatively worded", ["negative", "positive"]) is None
    assert extract_label("nonpositive, so: negative", ["negative", "positive"]) == "negative"


def test_extract_label_handles_labels_with_regex_characters():
    assert extract_label("rating: 5+ stars (c++)", ["c++", "5+ stars"]) == "5+ stars"


def test_extract_label_returns_none_without_a_mention_or_labels():
    assert extract_label("I cannot decide", SENTIMENT) is None
    assert extract_label("positive", []) is None


# --- json_equal -------------------------------------------------------------------------------------


def test_json_equal_ignores_key_order_and_whitespace():
    assert json_equal('{"b": [1, 2], "a": {"y": 1, "x": 2}}', ['{"a":{"x":2,"y":1},"b":[1,2]}']) == 1.0


def test_json_equal_respects_list_order():
    assert json_equal("[1, 2]", ["[2, 1]"]) == 0.0


def test_json_equal_matches_any_expected_and_skips_invalid_expected():
    assert json_equal('{"a": 1}', ["not json", '{"a": 2}', '{"a": 1}']) == 1.0


@pytest.mark.parametrize("answer", ["", "{a: 1}", 'The answer is {"a": 1}', None])
def test_json_equal_invalid_answer_is_zero(answer):
    assert json_equal(answer, ['{"a": 1}']) == 0.0


@pytest.mark.parametrize(
    ("answer", "expected"), [("true", "1"), ('{"ok": false}', '{"ok": 0}'), ("[1]", "[true]")]
)
def test_json_equal_does_not_confuse_booleans_with_numbers(answer, expected):
    assert json_equal(answer, [expected]) == 0.0


def test_json_equal_treats_equal_numbers_as_equal():
    assert json_equal('{"n": 1.0}', ['{"n": 1}']) == 1.0


# --- cosine_best ------------------------------------------------------------------------------------


def unit(*xs):
    v = np.asarray(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_cosine_best_takes_the_best_expected_vector():
    answer = unit(1, 0)
    expected = np.stack([unit(0, 1), unit(1, 1), unit(1, 0.1)])
    assert cosine_best(answer, expected) == pytest.approx(float(unit(1, 0.1)[0]))


def test_cosine_best_clips_negative_similarity_to_zero():
    assert cosine_best(unit(1, 0), np.stack([unit(-1, 0)])) == 0.0


def test_cosine_best_clips_rounding_above_one():
    v = np.array([1.0000001, 0.0], dtype=np.float32)
    assert cosine_best(v, np.stack([v])) == 1.0


def test_cosine_best_with_no_expected_vectors_is_zero():
    assert cosine_best(unit(1, 0), np.zeros((0, 2), dtype=np.float32)) == 0.0


# --- classification_metrics -------------------------------------------------------------------------


def test_classification_metrics_match_hand_computed_accuracy_and_macro_f1():
    y_true = ["pos", "pos", "neg", "neg", "neu"]
    y_pred = ["pos", "neg", "neg", None, "neu"]

    m = classification_metrics(y_true, y_pred, ["pos", "neg", "neu"])

    # pos: tp1 fp0 fn1 -> f1 2/3; neg: tp1 fp1 fn1 -> 1/2; neu: tp1 -> 1.  None is just wrong.
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert m["support"] == 5


def test_classification_metrics_leave_out_labels_neither_tested_nor_predicted():
    # "b" has no test case and was never predicted: it must not drag macro-F1 down with an F1 of 0.
    m = classification_metrics(["a", "a"], ["a", "a"], ["a", "b"])
    assert m["accuracy"] == 1.0
    assert m["macro_f1"] == pytest.approx(1.0)


def test_classification_metrics_count_a_wrongly_predicted_untested_label():
    # "b" is predicted once though no case has it: its F1 of 0 belongs in the average.
    m = classification_metrics(["a", "a"], ["a", "b"], ["a", "b"])
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.0) / 2)


def test_classification_metrics_all_unparseable_scores_zero():
    m = classification_metrics(["a", "b"], [None, None], ["a", "b"])
    assert m["accuracy"] == 0.0
    assert m["macro_f1"] == 0.0


def test_classification_metrics_of_nothing_are_none():
    assert classification_metrics([], [], ["a"]) == {"accuracy": None, "macro_f1": None, "support": 0}
