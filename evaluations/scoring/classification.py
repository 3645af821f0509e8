"""Classification metrics over extracted labels (scikit-learn)."""

from __future__ import annotations

from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

NO_LABEL = "<none>"


def classification_metrics(y_true: list[str], y_pred: list[str | None], labels: list[str]) -> dict:
    """Accuracy and macro-F1; an unparseable answer counts as wrong.

    Macro-F1 averages over the labels that occur in the evaluated cases or were predicted (of the
    suite's labels): a label with no test case would otherwise add an F1 of 0 to the average.
    """
    if not y_true:
        return {"accuracy": None, "macro_f1": None, "support": 0}
    pred = [p if p is not None else NO_LABEL for p in y_pred]
    present = sorted({*y_true, *(p for p in pred if p in labels)})
    return {
        "accuracy": float(accuracy_score(y_true, pred)),
        "macro_f1": float(f1_score(y_true, pred, labels=present, average="macro", zero_division=0)),
        "support": len(y_true),
    }


def _label_space(y_true: list[str], y_pred: list[str | None], labels: list[str]):
    """Predictions outside `labels` (or None) become NO_LABEL; true labels missing from `labels` are
    appended (sorted) so that no case silently drops out of a report."""
    space = list(dict.fromkeys(labels))
    space += sorted({t for t in y_true if t not in space})
    known = set(space)
    pred = [p if p is not None and p in known else NO_LABEL for p in y_pred]
    return space, pred


def per_class_report(y_true: list[str], y_pred: list[str | None], labels: list[str]) -> dict:
    """Per label precision, recall, F1 and support (scikit-learn, zero_division=0).

    An unparseable answer (None, or a label outside the suite's) is a miss for the true label. With no
    cases every label has support 0 and None metrics.
    """
    space, pred = _label_space(y_true, y_pred, labels)
    if not y_true:
        return {lab: {"precision": None, "recall": None, "f1": None, "support": 0} for lab in space}
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, pred, labels=space, zero_division=0
    )
    return {
        lab: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, lab in enumerate(space)
    }


def confusion(y_true: list[str], y_pred: list[str | None], labels: list[str]) -> dict:
    """Confusion matrix (rows = true, columns = predicted) over `labels`, plus a NO_LABEL column (and
    row, so the matrix stays square) when some answer was unparseable."""
    space, pred = _label_space(y_true, y_pred, labels)
    if NO_LABEL in pred:
        space = [*space, NO_LABEL]
    if not y_true:
        return {"labels": space, "matrix": [[0] * len(space) for _ in space]}
    matrix = confusion_matrix(y_true, pred, labels=space)
    return {"labels": space, "matrix": matrix.astype(int).tolist()}
