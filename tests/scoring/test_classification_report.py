import pytest
from sklearn.metrics import classification_report, confusion_matrix

from evaluations.scoring.classification import NO_LABEL, classification_metrics, confusion, per_class_report

LABELS = ["billing", "bug", "other"]
Y_TRUE = ["billing", "billing", "bug", "bug", "bug", "other", "billing", "other"]
Y_PRED = ["billing", "bug", "bug", None, "bug", "other", "billing", "billing"]


def test_per_class_report_matches_sklearn():
    ref = classification_report(
        Y_TRUE, [p or NO_LABEL for p in Y_PRED], labels=LABELS, output_dict=True, zero_division=0
    )
    report = per_class_report(Y_TRUE, Y_PRED, LABELS)

    assert list(report) == LABELS
    for label in LABELS:
        assert report[label]["precision"] == pytest.approx(ref[label]["precision"])
        assert report[label]["recall"] == pytest.approx(ref[label]["recall"])
        assert report[label]["f1"] == pytest.approx(ref[label]["f1-score"])
        assert report[label]["support"] == ref[label]["support"]
    # by hand: bug is predicted 3 times (2 right), has 3 true cases of which one was unparseable
    assert report["bug"] == {
        "precision": pytest.approx(2 / 3),
        "recall": pytest.approx(2 / 3),
        "f1": pytest.approx(2 / 3),
        "support": 3,
    }


def test_per_class_report_zero_division_is_zero():
    report = per_class_report(["a", "a"], ["a", "a"], ["a", "b"])
    assert report["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert report["a"]["f1"] == 1.0


def test_per_class_report_without_cases():
    report = per_class_report([], [], ["a", "b"])
    assert report == {lab: {"precision": None, "recall": None, "f1": None, "support": 0} for lab in "ab"}


def test_confusion_matches_sklearn_and_adds_the_unparseable_column():
    c = confusion(Y_TRUE, Y_PRED, LABELS)
    space = [*LABELS, NO_LABEL]
    ref = confusion_matrix(Y_TRUE, [p or NO_LABEL for p in Y_PRED], labels=space)

    assert c["labels"] == space
    assert c["matrix"] == ref.tolist()
    assert c["matrix"][LABELS.index("bug")][space.index(NO_LABEL)] == 1  # rows true, columns predicted
    assert c["matrix"][LABELS.index("other")][LABELS.index("billing")] == 1
    assert sum(map(sum, c["matrix"])) == len(Y_TRUE)


def test_confusion_without_unparseable_answers_has_only_the_labels():
    c = confusion(["a", "b", "b"], ["a", "b", "a"], ["a", "b"])
    assert c == {"labels": ["a", "b"], "matrix": [[1, 0], [1, 1]]}


def test_out_of_vocabulary_labels_are_not_dropped():
    # A prediction outside the suite's labels counts as unparseable; an unexpected true label is kept.
    c = confusion(["a", "c"], ["zzz", "c"], ["a", "b"])
    assert c["labels"] == ["a", "b", "c", NO_LABEL]
    assert sum(map(sum, c["matrix"])) == 2
    assert c["matrix"][0][3] == 1 and c["matrix"][2][2] == 1
    assert per_class_report(["a", "c"], ["zzz", "c"], ["a", "b"])["c"]["support"] == 1


def test_confusion_without_cases():
    assert confusion([], [], ["a", "b"]) == {"labels": ["a", "b"], "matrix": [[0, 0], [0, 0]]}


def test_classification_metrics_are_unchanged():
    m = classification_metrics(Y_TRUE, Y_PRED, LABELS)
    assert m["accuracy"] == pytest.approx(5 / 8)
    assert m["support"] == 8
