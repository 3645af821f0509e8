"""Reads for the decision page, its API and its command: the measured arms of a run, the suite's
profile, and the verdict of `analysis.decision` on them."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Avg, Count, Min
from django.utils import timezone

from evaluations.analysis.verdict import (
    FINE_TUNED,
    HYBRID,
    PROMPTING,
    ArmEvidence,
    Decision,
    Prices,
    Profile,
    decide,
)
from evaluations.jsonsafe import json_ready
from evaluations.models import (
    Arm,
    Case,
    Endpoint,
    EndpointKind,
    FineTuneJob,
    Provider,
    Result,
    Run,
    RunStatus,
    Split,
    Suite,
    SuiteVersion,
    Trigger,
)
from evaluations.selectors.runs import run_arms_with_summaries
from evaluations.selectors.traffic import TrafficFilter, traffic_calls

# Without a measurement, about four characters make a token (English text, GPT-style tokenizers).
DEFAULT_TOKENS_PER_CHAR = 0.25
_SAMPLE = 2000


class DecisionError(ValueError):
    pass


@dataclass
class SuiteDecision:
    suite: Suite
    run: Run | None
    decision: Decision
    arms: list[Arm]
    train_examples: int
    tokens_per_char: float
    tokens_per_char_measured: bool

    def to_dict(self) -> dict:
        return {
            "suite": {"id": self.suite.pk, "name": self.suite.name},
            "run": None
            if self.run is None
            else {
                "id": self.run.pk,
                "suite_version": self.run.suite_version.number,
                "finished_at": self.run.finished_at.isoformat() if self.run.finished_at else None,
            },
            "train_examples": self.train_examples,
            "tokens_per_char": self.tokens_per_char,
            "tokens_per_char_measured": self.tokens_per_char_measured,
            **self.decision.to_dict(),
        }


def decision_runs(suite: Suite):
    """Finished runs of the suite a decision can be based on, newest first."""
    return (
        Run.objects.filter(suite_version__suite=suite, status=RunStatus.SUCCEEDED, split=Split.TEST)
        .exclude(trigger=Trigger.CAPTURE)  # captured answers, not an evaluation
        .select_related("suite_version")
        .order_by("-finished_at", "-id")
    )


def suite_decision(suite: Suite, *, run_id: int | None = None) -> SuiteDecision:
    """The decision on the suite's latest finished run, or on the run given."""
    runs = decision_runs(suite)
    if run_id is not None:
        run = runs.filter(pk=run_id).first()
        if run is None:
            raise DecisionError(f"run #{run_id} is not a finished run of suite {suite.name!r}")
    else:
        run = runs.first()
    version = run.suite_version if run else suite.latest_version()
    train_examples = _train_examples(version)
    ratio, measured = _tokens_per_char(run)
    profile = suite_profile(suite, version=version, train_examples=train_examples, tokens_per_char=ratio)
    pairs = run_arms_with_summaries(run) if run is not None else []
    arms = [a for a, _ in pairs]
    evidence = arm_evidence(run, pairs) if run is not None else []
    decision = decide(evidence, profile)
    return SuiteDecision(suite, run, decision, arms, train_examples, ratio, measured)


TRAFFIC_WINDOW_DAYS = 30
DAYS_PER_MONTH = 30.4375
MIN_SPAN_DAYS = 1.0  # a volume is not extrapolated from less than a day of traffic


def measured_traffic(suite: Suite, *, now=None) -> dict | None:
    """The suite's production figures measured on its endpoint's captured traffic (the last 30 days,
    or since the first call when that is later, at least a day): calls, the span, the monthly volume
    at that rate, the mean prompt and completion tokens of a request. None without a traffic
    endpoint or without a call in the window."""
    if suite.traffic_endpoint_id is None:
        return None
    now = now or timezone.now()
    since = now - timedelta(days=TRAFFIC_WINDOW_DAYS)
    calls = traffic_calls(
        TrafficFilter(endpoint=suite.traffic_endpoint.name, tag=suite.traffic_tag or None, kind="chat")
    ).filter(started_at__gte=since, started_at__lte=now, status__lt=400, error="")
    figures = calls.aggregate(
        n=Count("id"),
        first=Min("started_at"),
        prompt=Avg("prompt_tokens"),
        completion=Avg("completion_tokens"),
    )
    if not figures["n"]:
        return None
    span = max(MIN_SPAN_DAYS, (now - max(figures["first"], since)).total_seconds() / 86400)
    return {
        "endpoint": suite.traffic_endpoint.name,
        "tag": suite.traffic_tag,
        "calls": figures["n"],
        "days": round(span, 2),
        "window_days": TRAFFIC_WINDOW_DAYS,
        "monthly_volume": figures["n"] / span * DAYS_PER_MONTH,
        "prompt_tokens": figures["prompt"],
        "completion_tokens": figures["completion"],
    }


def suite_profile(
    suite: Suite, *, version: SuiteVersion | None, train_examples: int, tokens_per_char: float
) -> Profile:
    measured = measured_traffic(suite)
    return Profile(
        quality_target=suite.quality_target,
        monthly_volume=measured["monthly_volume"] if measured else float(suite.monthly_volume),
        measured_endpoint=measured["endpoint"] if measured else None,
        measured_calls=measured["calls"] if measured else 0,
        measured_days=measured["days"] if measured else 0.0,
        measured_prompt_tokens=measured["prompt_tokens"] if measured else None,
        measured_completion_tokens=measured["completion_tokens"] if measured else None,
        horizon_months=float(suite.horizon_months),
        retrains_per_year=float(suite.retrains_per_year),
        examples_available=suite.examples_available
        if suite.examples_available is not None
        else train_examples,
        train_tokens_per_example=_train_tokens_per_example(version, tokens_per_char),
        training_epochs=suite.training_epochs,
        training_price_per_1m=float(suite.training_price_per_1m),
        urgency=suite.urgency,
        monthly_budget=None if suite.monthly_budget is None else float(suite.monthly_budget),
        # A rag run retrieves from the knowledge of the version it runs (and is refused without any):
        # the run's version, or without a run the suite's latest.
        knowledge=version is not None and version.chunks.exists(),
    )


def arm_evidence(run: Run, pairs: list[tuple[Arm, dict]]) -> list[ArmEvidence]:
    """What the decision needs of each arm: its summary, its prices and its per-case scores."""
    arms = [a for a, _ in pairs]
    by_case: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    rows = Result.objects.filter(arm__run=run, score__isnull=False).values_list(
        "arm_id", "case__key", "score"
    )
    for arm_id, key, score in rows.iterator(chunk_size=5000):
        by_case[arm_id][key].append(score)
    base_names = {a.endpoint.name for a in arms if a.endpoint.kind == EndpointKind.BASE}
    names = dict(
        Endpoint.objects.filter(pk__in={a.endpoint.base_endpoint_id for a in arms}).values_list("pk", "name")
    )
    # Fine-tuned endpoints made by a job: what its training data cost, and its teacher's arm here.
    arm_of = {(a.endpoint_id, a.strategy_id): str(a.pk) for a in arms}
    jobs = {
        endpoint_id: (data_cost, arm_of.get((teacher, strategy)))
        for endpoint_id, data_cost, teacher, strategy in FineTuneJob.objects.filter(
            endpoint_id__in=[a.endpoint_id for a in arms if a.endpoint.kind == EndpointKind.FINE_TUNED]
        ).values_list("endpoint_id", "data_cost", "teacher_endpoint_id", "teacher_strategy_id")
    }
    out = []
    for arm, summary in pairs:
        summary = summary or {}
        endpoint = arm.endpoint
        if endpoint.kind == EndpointKind.FINE_TUNED:
            # The fine-tuned model alone (plain, zero-shot), or with a prompt: hybrid. A retrieval
            # kind (rag, rag+few-shot-nearest) makes it fine-tuned + RAG, a hybrid whose ladder level
            # tells it apart (ArmEvidence.level). On a base endpoint every kind, retrieval included,
            # is prompting: the "prompting-or-retrieval" family the verdict weighs fine-tuning against.
            family = FINE_TUNED if arm.strategy.kind in ("plain", "zero-shot") else HYBRID
            if endpoint.base_endpoint_id:
                base = names[endpoint.base_endpoint_id]
            else:  # no base recorded: the run's only base model, if it has one
                base = next(iter(base_names)) if len(base_names) == 1 else endpoint.name
        else:
            family, base = PROMPTING, endpoint.name
        consistency = (summary.get("consistency") or {}).get("mean_agreement")
        out.append(
            ArmEvidence(
                key=str(arm.pk),
                label=arm.label,
                endpoint=endpoint.name,
                strategy=arm.strategy.kind,
                family=family,
                base=base,
                mean=summary.get("mean_score"),
                ci=tuple(summary.get("score_ci") or (None, None)),
                pass_rate=summary.get("pass_rate"),
                pass_ci=tuple(summary.get("pass_ci") or (None, None)),
                consistency=consistency,
                cases=summary.get("cases", 0),
                results=summary.get("results", 0),
                errors=summary.get("errors", 0),
                local=endpoint.provider == Provider.LOCAL,
                prompt_tokens=summary.get("prompt_tokens_mean"),
                completion_tokens=summary.get("completion_tokens_mean"),
                compute_seconds=summary.get("compute_seconds_mean"),
                latency_p50_ms=summary.get("latency_p50_ms"),
                latency_p95_ms=summary.get("latency_p95_ms"),
                measured_cost_per_request=summary.get("cost_per_request"),
                prices=Prices(
                    price_in=float(endpoint.price_in),
                    price_out=float(endpoint.price_out),
                    price_hour=float(endpoint.price_hour),
                    hosting_monthly=float(endpoint.hosting_monthly),
                ),
                training_cost=None if endpoint.training_cost is None else float(endpoint.training_cost),
                setup_cost=_setup_cost(arm),
                data_cost=float(jobs.get(endpoint.pk, (None, None))[0] or 0.0),
                distilled_from=jobs.get(endpoint.pk, (None, None))[1],
                scores={k: sum(v) / len(v) for k, v in by_case[arm.pk].items()},
            )
        )
    return out


def _setup_cost(arm: Arm) -> float:
    """What the arm's prompt cost to make, once: an optimised few-shot strategy's search (USD)."""
    search = (arm.strategy.params or {}).get("search") if arm.strategy.kind == "few-shot-optimized" else None
    cost = search.get("cost_usd") if isinstance(search, dict) else None
    return float(cost) if isinstance(cost, int | float) and cost > 0 else 0.0


def _train_examples(version: SuiteVersion | None) -> int:
    if version is None:
        return 0
    return version.cases.filter(split=Split.TRAIN).count()


def _train_tokens_per_example(version: SuiteVersion | None, tokens_per_char: float) -> float | None:
    """Mean tokens of a training example (input and expected output), from up to 2,000 of them."""
    if version is None:
        return None
    rows = Case.objects.filter(version=version, split=Split.TRAIN).order_by("position")
    chars = n = 0
    for case_input, expected in rows.values_list("input", "expected")[:_SAMPLE]:
        chars += _text_length(case_input) + _text_length(expected)
        n += 1
    return chars * tokens_per_char / n if n else None


def _tokens_per_char(run: Run | None) -> tuple[float, bool]:
    """Tokens per character measured on the run's prompts (the endpoints' own tokenizers)."""
    if run is None:
        return DEFAULT_TOKENS_PER_CHAR, False
    rows = (
        Result.objects.filter(arm__run=run, prompt_tokens__gt=0)
        .order_by("id")
        .values_list("prompt", "prompt_tokens")[:_SAMPLE]
    )
    chars = tokens = 0
    for prompt, prompt_tokens in rows:
        chars += _text_length(prompt)
        tokens += prompt_tokens
    if chars < 1000 or tokens == 0:
        return DEFAULT_TOKENS_PER_CHAR, False
    return tokens / chars, True


def _text_length(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(_text_length(m.get("content") if isinstance(m, dict) else m) for m in value)
    if isinstance(value, dict):
        return _text_length(value.get("content"))
    return len(str(value))


def decision_payload(suite: Suite, *, run_id: int | None = None) -> dict:
    """The decision on the suite (its latest finished run, or `run_id`) as a JSON-ready dict.

    Raises `DecisionError` when `run_id` is not a finished run of the suite."""
    return json_ready(suite_decision(suite, run_id=run_id).to_dict())


def parse_run_id(raw: str | int | None) -> int | None:
    """A run id given as text (a query parameter, a command option); ValueError when it is not one."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    text = str(raw).strip()
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{raw!r} is not a run id (a positive whole number)")
    return int(text)
