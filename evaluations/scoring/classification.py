"""Classification metrics over extracted labels (scikit-learn)."""

from __future__ import annotations

from sklearn.metrics import accuracy_score, f1_score

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
