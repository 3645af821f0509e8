"""Bench data for the trends page: a suite with years of nightly runs, written in bulk.

Each night gets one succeeded run (trigger `schedule`) with one arm per endpoint x strategy, each arm
with the summary finalize would store and its trend point, values plausible and deterministic
(seeded by suite, arm and night). No results are written: the trends page reads trend points only.
Along the way the suite gets two new versions, one prompt a new version and one endpoint a silent
model update (a new fingerprint, a drop in score and latency, drift AUC up).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from evaluations.models import (
    Arm,
    Endpoint,
    Run,
    RunStatus,
    Strategy,
    Suite,
    SuiteVersion,
    TrendPoint,
    Trigger,
)
from evaluations.services.trends import endpoint_fingerprint, series_name

ENDPOINTS = (  # name suffix, model, $ per 1M input / output tokens, base latency ms, quality bonus
    ("small", "bench-small", 0.15, 0.60, 600.0, 0.0),
    ("large", "bench-large", 2.50, 10.00, 1400.0, 0.06),
)
STRATEGIES = (  # kind, base score, prompt tokens, completion tokens, latency factor
    ("zero-shot", 0.62, 150, 40, 1.0),
    ("few-shot", 0.72, 900, 40, 1.2),
    ("cot", 0.78, 220, 240, 2.5),
    ("system", 0.68, 400, 40, 1.1),
    ("structured", 0.70, 350, 60, 1.1),
)
MAX_ARMS = len(ENDPOINTS) * len(STRATEGIES)
# Where things change, as a fraction of the seeded period (suite v2, suite v3, few-shot prompt v2,
# the large endpoint's silent update, the first night drift is measured against a baseline).
SUITE_V2, SUITE_V3, PROMPT_V2, ENDPOINT_UPDATE, BASELINE = 0.25, 0.70, 0.60, 0.90, 0.05
NIGHT_HOUR = 2


@dataclass(frozen=True)
class BenchArm:
    endpoint: Endpoint
    strategies: tuple[Strategy, Strategy]  # version 1, version 2 (the prompt change)
    kind: str
    base: float
    prompt_tokens: int
    completion_tokens: int
    latency_factor: float
    price_in: float
    price_out: float
    latency: float
    bonus: float


def _clamp(value: float, low: float = 0.0, high: float = 1.0) -> float:
    return max(low, min(high, value))


def _nights(days: int, now: datetime) -> list[datetime]:
    """The last `days` nights at 02:00 local time, oldest first, ending with the latest one finished."""
    local = timezone.localtime(now)
    last = local.replace(hour=NIGHT_HOUR, minute=0, second=0, microsecond=0)
    if last + timedelta(minutes=30) > local:  # a run finishes up to 25 minutes after it starts
        last -= timedelta(days=1)
    return [last - timedelta(days=days - 1 - i) for i in range(days)]


def _arms(suite_name: str, count: int) -> list[BenchArm]:
    endpoints = []
    for suffix, model, price_in, price_out, latency, bonus in ENDPOINTS:
        endpoint, _ = Endpoint.objects.get_or_create(
            name=f"{suite_name}-{suffix}",
            defaults={
                "provider": "openai",
                "model": model,
                "base_url": "http://127.0.0.1:9/v1",  # never called: bench data only
                "params": {"temperature": 0},
                "price_in": price_in,
                "price_out": price_out,
            },
        )
        endpoints.append((endpoint, price_in, price_out, latency, bonus))
    arms = []
    for i in range(count):  # endpoints interleaved: small and large under the first strategies
        endpoint, price_in, price_out, latency, bonus = endpoints[i % len(endpoints)]
        kind, base, pt, ct, factor = STRATEGIES[i // len(endpoints)]
        versions = tuple(
            Strategy.objects.get_or_create(name=f"{suite_name}-{kind}", version=v, defaults={"kind": kind})[0]
            for v in (1, 2)
        )
        arms.append(
            BenchArm(endpoint, versions, kind, base, pt, ct, factor, price_in, price_out, latency, bonus)
        )
    return arms


def _figures(arm: BenchArm, *, suite_name: str, night: datetime, i: int, days: int) -> dict:
    """One arm's figures on night i of `days`: deterministic, with the period's changes applied."""
    rng = random.Random(f"{suite_name}:{arm.endpoint.name}:{arm.kind}:{night:%Y-%m-%d}")
    frac = i / days
    prompt_v2 = arm.kind == "few-shot" and frac >= PROMPT_V2
    updated = arm.endpoint.name.endswith("-large") and frac >= ENDPOINT_UPDATE
    mean = arm.base + arm.bonus + 0.01 * math.sin(i / 30) + rng.gauss(0, 0.012)
    mean += -0.03 if SUITE_V2 <= frac < SUITE_V3 else (0.01 if frac >= SUITE_V3 else 0.0)
    mean += 0.05 if prompt_v2 else 0.0
    mean -= 0.04 if updated else 0.0
    mean = _clamp(mean)
    half = 0.035 + rng.uniform(0, 0.01)
    completion = arm.completion_tokens * (1.6 if updated else 1.0) * rng.uniform(0.95, 1.05)
    prompt = arm.prompt_tokens * (1.3 if prompt_v2 else 1.0)
    cost = (prompt * arm.price_in + completion * arm.price_out) / 1e6
    latency = arm.latency * arm.latency_factor * (0.8 if updated else 1.0) * rng.uniform(0.9, 1.15)
    measured = frac >= BASELINE
    return {
        "mean_score": mean,
        "score_ci": [_clamp(mean - half), _clamp(mean + half)],
        "pass_rate": _clamp(mean + 0.04 + rng.gauss(0, 0.015)),
        "cost_per_request": cost,
        "latency_p95_ms": latency,
        "latency_p50_ms": latency * 0.55,
        "prompt_tokens_mean": prompt,
        "completion_tokens_mean": completion,
        "output_chars_mean": completion * 4.1,
        "drift_auc": (_clamp(0.78 + rng.gauss(0, 0.03)) if updated else _clamp(0.52 + rng.gauss(0, 0.02)))
        if measured
        else None,
        "centroid_distance": (0.15 if updated else 0.02) + rng.uniform(0, 0.01) if measured else None,
        "strategy": arm.strategies[1 if prompt_v2 else 0],
        "fingerprint": _fingerprint(arm.endpoint, updated),
    }


def _fingerprint(endpoint: Endpoint, updated: bool) -> str:
    if not updated:
        return endpoint_fingerprint(endpoint)
    before = Endpoint(
        provider=endpoint.provider,
        model=endpoint.model + "-2",
        base_url=endpoint.base_url,
        params=endpoint.params,
        adapter=endpoint.adapter,
    )  # fmt: skip  (the model behind the name changed)
    return endpoint_fingerprint(before)


def trends_seed_bench(*, suite_name: str = "trends-bench", days: int = 730, arms: int = 5,
                      now: datetime | None = None) -> dict:  # fmt: skip
    """Seed (idempotently: only nights without a run) `days` nightly runs of `arms` arms."""
    if days < 1:
        raise ValueError(f"days must be at least 1 (got {days})")
    if not 1 <= arms <= MAX_ARMS:
        raise ValueError(
            f"arms must be between 1 and {MAX_ARMS} ({len(ENDPOINTS)} endpoints x "
            f"{len(STRATEGIES)} strategies; got {arms})"
        )
    now = now or timezone.now()
    with transaction.atomic():
        suite, _ = Suite.objects.get_or_create(
            name=suite_name,
            defaults={
                "description": "Bench data for the trends page (seed_trends): nightly runs with "
                "summaries and trend points, no results."
            },
        )
        versions = {
            n: SuiteVersion.objects.get_or_create(
                suite=suite, number=n, defaults={"source_name": "seed_trends"}
            )[0]
            for n in (1, 2, 3)
        }
        bench_arms = _arms(suite_name, arms)
        nights = _nights(days, now)
        done = {
            timezone.localtime(at).date()
            for at in Run.objects.filter(suite_version__suite=suite).values_list("finished_at", flat=True)
            if at is not None
        }
        todo = [(i, night) for i, night in enumerate(nights) if night.date() not in done]
        runs = []
        for i, night in todo:
            frac = i / days
            number = 1 if frac < SUITE_V2 else (2 if frac < SUITE_V3 else 3)
            finished = night + timedelta(minutes=5 + (i * 7) % 20)
            runs.append(
                Run(
                    suite_version=versions[number],
                    status=RunStatus.SUCCEEDED,
                    trigger=Trigger.SCHEDULE,
                    use_cache=False,
                    started_at=night,
                    finished_at=finished,
                    analysed_at=finished,  # its figures are seeded: nothing for the analysis to do
                    created_at=night,
                )
            )
        runs = Run.objects.bulk_create(runs, batch_size=500)
        for run in runs:  # auto_now_add overrode the night on insert
            run.created_at = run.started_at
        Run.objects.bulk_update(runs, ["created_at"], batch_size=500)
        arm_rows, figures = [], []
        for (i, night), run in zip(todo, runs, strict=True):
            for position, arm in enumerate(bench_arms):
                f = _figures(arm, suite_name=suite_name, night=night, i=i, days=days)
                summary = {
                    "cases": 100,
                    "results": 100,
                    "scored": 100,
                    "errors": 0,
                    "mean_score": f["mean_score"],
                    "score_ci": f["score_ci"],
                    "pass_rate": f["pass_rate"],
                    "accuracy": None,
                    "macro_f1": None,
                    "cost_total": f["cost_per_request"] * 100,
                    "cost_per_request": f["cost_per_request"],
                    "monthly_cost": f["cost_per_request"] * suite.monthly_volume,
                    "prompt_tokens_mean": f["prompt_tokens_mean"],
                    "completion_tokens_mean": f["completion_tokens_mean"],
                    "latency_p50_ms": f["latency_p50_ms"],
                    "latency_p95_ms": f["latency_p95_ms"],
                }
                arm_rows.append(
                    Arm(
                        run=run,
                        endpoint=arm.endpoint,
                        strategy=f["strategy"],
                        position=position,
                        summary=summary,
                    )
                )
                figures.append((run, arm, f))
        arm_rows = Arm.objects.bulk_create(arm_rows, batch_size=500)
        points = [
            TrendPoint(
                arm=arm_row,
                suite=suite,
                run=run,
                at=run.finished_at,
                series=series_name(arm.endpoint, f["strategy"]),
                endpoint=arm.endpoint,
                strategy=f["strategy"],
                suite_version_number=run.suite_version.number,
                strategy_version=f["strategy"].version,
                endpoint_fingerprint=f["fingerprint"],
                mean_score=f["mean_score"],
                score_ci_low=f["score_ci"][0],
                score_ci_high=f["score_ci"][1],
                pass_rate=f["pass_rate"],
                cost_per_request=f["cost_per_request"],
                latency_p95_ms=f["latency_p95_ms"],
                completion_tokens_mean=f["completion_tokens_mean"],
                output_chars_mean=f["output_chars_mean"],
                drift_auc=f["drift_auc"],
                centroid_distance=f["centroid_distance"],
            )
            for arm_row, (run, arm, f) in zip(arm_rows, figures, strict=True)
        ]
        TrendPoint.objects.bulk_create(points, batch_size=500)
    return {"suite": suite, "runs": len(runs), "points": len(points), "nights": days, "arms": arms}
