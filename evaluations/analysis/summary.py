"""Per-arm aggregates from result rows: quality with 95% CIs, cost, tokens, latency, errors."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from evaluations.analysis import stats
from evaluations.analysis.consistency import SampleRow, arm_consistency
from evaluations.scoring.classification import classification_metrics, confusion, per_class_report


@dataclass(frozen=True)
class Row:
    case_id: int
    score: float | None
    passed: bool | None
    error: bool
    cost: float
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: float | None
    expected_label: str | None = None
    predicted_label: str | None = None
    scored: bool = True
    sample: int = 0
    answer: str = ""
    format_ok: bool | None = None
    compute_seconds: float | None = None


def summarise(rows: Iterable[Row], *, task_type: str, labels: list[str], monthly_volume: int) -> dict:
    rows = list(rows)
    scored = [r for r in rows if r.scored and r.score is not None]
    # Samples of one case are not independent (at temperature 0 they are identical): the interval
    # is over cases, each case contributing the mean of its samples.
    mean, low, high = stats.bootstrap_mean_ci(_per_case([(r.case_id, r.score) for r in scored]))
    if scored:
        mean = sum(r.score for r in scored) / len(scored)
    judged = [r for r in rows if r.scored and r.passed is not None]
    passes = sum(1 for r in judged if r.passed)
    if len({r.case_id for r in judged}) == len(judged):
        pass_rate, pass_low, pass_high = stats.wilson_ci(passes, len(judged))
    else:
        _, pass_low, pass_high = stats.mean_ci(_per_case([(r.case_id, float(r.passed)) for r in judged]))
        pass_rate = passes / len(judged)
    ok = [r for r in rows if not r.error]
    cost_total = sum(r.cost for r in rows)
    per_request = cost_total / len(ok) if ok else None
    summary = {
        "cases": len({r.case_id for r in rows}),
        "results": len(rows),
        "scored": len(scored),
        "mean_score": mean,
        "score_ci": [low, high] if mean is not None else None,
        "pass_rate": pass_rate,
        "pass_ci": [pass_low, pass_high] if pass_rate is not None else None,
        "accuracy": None,
        "macro_f1": None,
        "errors": sum(1 for r in rows if r.error),
        "cost_total": cost_total,
        "cost_per_request": per_request,
        "monthly_cost": per_request * monthly_volume if per_request is not None else None,
        "prompt_tokens_mean": stats.mean_or_none([r.prompt_tokens for r in ok]),
        "completion_tokens_mean": stats.mean_or_none([r.completion_tokens for r in ok]),
        "compute_seconds_mean": stats.mean_or_none([r.compute_seconds for r in ok]),
        "latency_p50_ms": stats.percentile([r.latency_ms for r in ok], 50),
        "latency_p95_ms": stats.percentile([r.latency_ms for r in ok], 95),
    }
    if task_type == "classification":
        labelled = [r for r in rows if r.scored and r.expected_label is not None]
        metrics = classification_metrics(
            [r.expected_label for r in labelled], [r.predicted_label for r in labelled], labels
        )
        summary["accuracy"], summary["macro_f1"] = metrics["accuracy"], metrics["macro_f1"]
        y_true = [r.expected_label for r in labelled]
        y_pred = [r.predicted_label for r in labelled]
        summary["per_class"] = per_class_report(y_true, y_pred, labels) if labelled else None
        summary["confusion"] = confusion(y_true, y_pred, labels) if labelled else None
    if any(r.sample > 0 for r in rows):
        by_case: dict[int, list[SampleRow]] = {}
        for r in rows:
            if not r.error:
                by_case.setdefault(r.case_id, []).append(
                    SampleRow(answer=r.answer, score=r.score, passed=r.passed, format_ok=r.format_ok)
                )
        summary["consistency"] = arm_consistency(by_case)
    return summary


def _per_case(pairs: list[tuple[int, float]]) -> list[float]:
    by_case: dict[int, list[float]] = {}
    for case_id, value in pairs:
        by_case.setdefault(case_id, []).append(value)
    return [sum(v) / len(v) for v in by_case.values()]
