from evaluations.analysis.textdiff import word_diff


def test_identical_texts_are_all_same():
    assert word_diff("Paris is big", "Paris is big") == [("same", "Paris is big")]


def test_it_marks_added_and_missing_words_case_insensitively():
    pieces = word_diff("The capital is Paris", "the capital is Lyon")
    assert ("missing", "Paris") in pieces and ("added", "Lyon") in pieces
    assert "".join(t for op, t in pieces if op != "missing") == "the capital is Lyon"


def test_an_empty_output_is_all_missing():
    assert word_diff("Paris", "") == [("missing", "Paris")]


def test_punctuation_does_not_hide_a_matching_word():
    pieces = word_diff("positive", "The review is positive.")
    assert ("same", "positive") in pieces and not any(op == "missing" for op, _ in pieces)
