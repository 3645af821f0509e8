"""Finished runs with known arm results, written straight to the database (no model is called).

For tests of what is computed from runs (decisions, pages, the API): each arm gets the per-case
scores it is given, its tokens and costs, and the summary `finalize` would store.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.utils import timezone

from evaluations.analysis.costs import token_cost
from evaluations.models import Arm, Case, Endpoint, Result, Run, RunStatus, SuiteVersion
from evaluations.selectors.runs import arm_summaries
from evaluations.services.trends import trends_record
from tests.factories import CaseFactory, EndpointFactory, SuiteVersionFactory, strategy


@dataclass
class ArmSpec:
    endpoint: Endpoint
    strategy: str
    scores: list[float]  # one per test case, in case order
    prompt_tokens: int = 100
    completion_tokens: int = 5
    compute_seconds: float | None = None
    errors: set[int] = field(default_factory=set)  # case indices whose call failed


def scores_with_mean(n: int, right: int) -> list[float]:
    """n pass/fail scores (1.0 / 0.0) of which `right` pass, spread evenly over the cases."""
    out = [0.0] * n
    for i in range(right):
        out[(i * n) // right] = 1.0
    return out


def suite_version(*, test_cases: int = 100, train_cases: int = 0, **suite_fields) -> SuiteVersion:
    version = SuiteVersionFactory(**{f"suite__{k}": v for k, v in suite_fields.items()})
    for i in range(test_cases):
        CaseFactory(version=version, key=f"t{i:04d}", position=i, input=f"question {i}", expected=f"a{i}")
    for i in range(train_cases):
        CaseFactory(
            version=version,
            key=f"x{i:04d}",
            position=test_cases + i,
            input=f"training question number {i} " + "word " * 20,
            expected=f"answer {i}",
            split="train",
        )
    return version


def finished_run(version: SuiteVersion, arms: list[ArmSpec], *, pass_threshold: float = 0.8) -> Run:
    cases = list(Case.objects.filter(version=version, split="test").order_by("position"))
    now = timezone.now()
    run = Run.objects.create(
        suite_version=version, status=RunStatus.SUCCEEDED, started_at=now, finished_at=now
    )
    for position, spec in enumerate(arms):
        if len(spec.scores) != len(cases):
            raise ValueError(f"{len(spec.scores)} scores for {len(cases)} cases")
        arm = Arm.objects.create(
            run=run, endpoint=spec.endpoint, strategy=strategy(spec.strategy), position=position
        )
        price_in, price_out = float(spec.endpoint.price_in), float(spec.endpoint.price_out)
        rows = []
        for i, (case, score) in enumerate(zip(cases, spec.scores, strict=True)):
            failed = i in spec.errors
            cost = token_cost(spec.prompt_tokens, spec.completion_tokens, price_in, price_out)
            if spec.compute_seconds is not None:
                cost += spec.compute_seconds * float(spec.endpoint.price_hour) / 3600
            rows.append(
                Result(
                    arm=arm,
                    case=case,
                    prompt=[{"role": "user", "content": "x" * (spec.prompt_tokens * 4)}],
                    output="" if failed else f"out {i}",
                    answer="" if failed else f"out {i}",
                    prompt_tokens=None if failed else spec.prompt_tokens,
                    completion_tokens=None if failed else spec.completion_tokens,
                    compute_seconds=None if failed else spec.compute_seconds,
                    latency_ms=100.0,
                    cost=0.0 if failed else cost,
                    error="boom" if failed else "",
                    score=0.0 if failed else score,
                    passed=False if failed else score >= pass_threshold,
                    scored_at=now,
                )
            )
        Result.objects.bulk_create(rows)
    run_summarise(run, trends=False)
    return run


def run_summarise(run: Run, *, trends: bool = True) -> None:
    """What finalize stores for a run whose results were written straight to the database: each
    arm's summary and (unless `trends` is False) the run's trend points."""
    summaries = arm_summaries(run)
    for arm in run.arms.all():
        arm.summary = summaries[arm.pk]
        arm.save(update_fields=["summary"])
    if trends:
        trends_record(run=run)


def endpoints(*, base_price: tuple[float, float] = (1.0, 2.0), tuned_price: tuple[float, float] = (1.0, 2.0),
              training_cost: float | None = 10.0, hosting: float = 0.0):  # fmt: skip
    """A base endpoint and a fine-tuned endpoint on it."""
    base = EndpointFactory(name="base-model", price_in=base_price[0], price_out=base_price[1])
    tuned = EndpointFactory(
        name="tuned-model",
        kind="fine_tuned",
        base_endpoint=base,
        price_in=tuned_price[0],
        price_out=tuned_price[1],
        training_cost=training_cost,
        hosting_monthly=hosting,
    )
    return base, tuned
