"""Trend points: each arm of a finished run, reduced at finalize to the figures the trends page
charts, so that page reads one narrow row per arm and run and never aggregates raw results."""

from __future__ import annotations

import hashlib
import json

from django.db.models import Avg
from django.db.models.functions import Length

from evaluations.models import Endpoint, Result, Run, RunStatus, Split, TrendPoint, Trigger, run_is_evidence


def endpoint_fingerprint(endpoint: Endpoint) -> str:
    """What makes an endpoint answer differently: provider, model, URL, parameters and adapter."""
    payload = {
        "provider": endpoint.provider,
        "model": endpoint.model,
        "base_url": endpoint.base_url,
        "params": endpoint.params or {},
        "adapter": endpoint.adapter,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def series_name(endpoint: Endpoint, strategy) -> str:
    return f"{endpoint.name} · {strategy.name}"


def trends_record(*, run: Run) -> list[TrendPoint]:
    """Store (or refresh, after a re-score) the run's trend points from its arms' summaries."""
    if run.status != RunStatus.SUCCEEDED or run.finished_at is None or not run_is_evidence(run):
        return []
    arms = list(run.arms.select_related("endpoint", "strategy"))
    chars = dict(
        Result.objects.filter(arm__run=run, error="")
        .values("arm_id")
        .annotate(n=Avg(Length("output")))
        .values_list("arm_id", "n")
    )
    suite_id = run.suite_version.suite_id
    points = []
    for arm in arms:
        s = arm.summary or {}
        ci = s.get("score_ci") or [None, None]
        point, _ = TrendPoint.objects.update_or_create(
            arm=arm,
            defaults={
                "suite_id": suite_id,
                "run": run,
                "at": run.finished_at,
                "series": series_name(arm.endpoint, arm.strategy),
                "endpoint": arm.endpoint,
                "strategy": arm.strategy,
                "suite_version_number": run.suite_version.number,
                "strategy_version": arm.strategy.version,
                "endpoint_fingerprint": endpoint_fingerprint(arm.endpoint),
                "mean_score": s.get("mean_score"),
                "score_ci_low": ci[0],
                "score_ci_high": ci[1],
                "pass_rate": s.get("pass_rate"),
                "cost_per_request": s.get("cost_per_request"),
                "latency_p95_ms": s.get("latency_p95_ms"),
                "completion_tokens_mean": s.get("completion_tokens_mean"),
                "output_chars_mean": chars.get(arm.pk),
            },
        )
        points.append(point)
    return points


def trends_backfill(*, suite=None) -> int:
    """Trend points for succeeded runs finished before trend points existed (any arm lacking one);
    returns how many runs were recorded. Safe to repeat: recording refreshes, never duplicates."""
    runs = Run.objects.filter(
        status=RunStatus.SUCCEEDED, finished_at__isnull=False, arms__trend__isnull=True, split=Split.TEST
    ).exclude(trigger=Trigger.CAPTURE)
    if suite is not None:
        runs = runs.filter(suite_version__suite=suite)
    recorded = 0
    for run in list(runs.select_related("suite_version").distinct().order_by("finished_at", "pk")):
        trends_record(run=run)
        recorded += 1
    return recorded
