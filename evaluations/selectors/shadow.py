"""Reads for shadow evaluation: the configurations, and for one its agreement with the live answers,
the cost and latency of the candidate against the live calls, per day (the chart) and in all."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from django.db.models import QuerySet
from django.utils import timezone

from evaluations.analysis.stats import percentile
from evaluations.models import ShadowConfig, ShadowPair

MAX_DAYS = 90


def live_answer(response: object) -> str | None:
    """The live answer a recorded chat call returned (a stream's assembled text), or None."""
    if not isinstance(response, dict):
        return None
    choices = response.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        message = choices[0].get("message") or choices[0].get("delta") or {}
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            return content
    for key in ("content", "text", "output"):
        if isinstance(response.get(key), str):
            return response[key]
    return None


def shadow_configs() -> QuerySet[ShadowConfig]:
    return ShadowConfig.objects.select_related("live_endpoint", "candidate", "strategy", "suite")


def shadow_pairs(config: ShadowConfig) -> QuerySet[ShadowPair]:
    """The configuration's pairs, newest first, with their live call."""
    return ShadowPair.objects.filter(config=config).select_related("call").order_by("-created_at", "-id")


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _figures(rows: list[tuple]) -> dict:
    """rows: (agreed, agreement, cost, latency, live cost, live latency, error)."""
    judged = [r for r in rows if r[0] is not None]
    ok = [r for r in rows if not r[6]]
    return {
        "pairs": len(rows),
        "judged": len(judged),
        "errors": sum(1 for r in rows if r[6]),
        "agreement_rate": _mean([1.0 if r[0] else 0.0 for r in judged]),
        "agreement_mean": _mean([r[1] for r in judged if r[1] is not None]),
        "candidate_cost_per_request": _mean([r[2] for r in ok if r[2] is not None]),
        "live_cost_per_request": _mean([r[4] for r in ok if r[4] is not None]),
        "candidate_latency_p50_ms": percentile([r[3] for r in ok if r[3] is not None], 50),
        "live_latency_p50_ms": percentile([r[5] for r in ok if r[5] is not None], 50),
        "candidate_latency_p95_ms": percentile([r[3] for r in ok if r[3] is not None], 95),
        "live_latency_p95_ms": percentile([r[5] for r in ok if r[5] is not None], 95),
    }


def shadow_summary(config: ShadowConfig, *, days: int = 30) -> dict:
    """The configuration's figures over its pairs of the last `days` days, in all and per day."""
    days = max(1, min(int(days), MAX_DAYS))
    since = timezone.now() - timedelta(days=days)
    rows = list(
        ShadowPair.objects.filter(config=config, created_at__gte=since)
        .order_by("created_at")
        .values_list("created_at", "agreed", "agreement", "cost", "latency_ms", "call__cost",
                     "call__latency_ms", "error")
        .iterator(chunk_size=5000)
    )  # fmt: skip
    by_day: dict[str, list[tuple]] = defaultdict(list)
    for created, *rest in rows:
        by_day[timezone.localdate(created).isoformat()].append(tuple(rest))
    total = _figures([tuple(r[1:]) for r in rows])
    return {
        "config": config.name,
        "live": config.live_endpoint.name,
        "candidate": config.candidate.name,
        "compare": config.compare,
        "share": config.share,
        "window_days": days,
        **total,
        "daily": [{"day": day, **_figures(day_rows)} for day, day_rows in sorted(by_day.items())],
    }
