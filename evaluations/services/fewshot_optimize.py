"""Optimised few-shot: search the train split for the demonstrations (and their order) that score best
on a dev slice, with the suite's own assertions and a chosen endpoint, and freeze the winner as a new
version of a `few-shot-optimized` strategy.

The search (analysis/fewshot_search.py) is seeded: the dev slice is carved from the labelled train
cases, the candidates are seeded draws from the rest (plus a label-balanced one for classification
suites). Each candidate's prompts for the dev cases are rendered exactly as a run renders a
`few-shot-optimized` strategy, sent to the endpoint (its own timeout, concurrency and retries), the
answers extracted and scored as a run scores them (services/result_scores.score_results, with the
version's default assertions, task type, labels and pass threshold). The winner's examples go into
the new strategy's params in the shape the run pipeline reads (`examples`: key, input, output), with
what the search cost (calls, tokens, USD) and found (`search`), so later runs and schedules reuse it
as it is, without searching again. Nothing of the test split is ever read.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils.text import slugify

from evaluations import strategies
from evaluations.analysis import fewshot_search as search
from evaluations.analysis.costs import token_cost
from evaluations.models import (
    Case,
    Endpoint,
    Result,
    Split,
    Strategy,
    StrategyKind,
    Suite,
    SuiteVersion,
    TaskType,
)
from evaluations.providers.base import Completion, GenerationParams, ProviderError
from evaluations.services import queue
from evaluations.services.audit import audit_record
from evaluations.services.endpoints import endpoint_provider
from evaluations.services.result_scores import score_results
from evaluations.services.scorings import version_default_assertions
from evaluations.services.secrets import redactor

log = logging.getLogger(__name__)

KIND = StrategyKind.FEW_SHOT_OPTIMIZED
NAME_PREFIX = "few-shot-optimized-"
NAME_MAX = 100  # Strategy.name's max_length

# What a search may ask for: enough for any real use, small enough that a typo does not spend a
# fortune (calls = candidates x dev cases).
MAX_K = 32
MAX_CANDIDATES = 200
MAX_DEV_SIZE = 1000
MAX_SEED = 2**31 - 1

Progress = Callable[[int, int, "float | None"], None]


class OptimizeError(ValueError):
    """The search cannot be made as asked (too few train cases, a bad number, a name taken)."""


class SearchFailed(OptimizeError):
    """The search was made and gave nothing to freeze (the endpoint unusable, every call failed)."""


@dataclass(frozen=True)
class Demo:
    """A labelled train case as a demonstration: its key, its input and the output it shows."""

    case: Case
    output: str

    @property
    def example(self) -> strategies.Example:
        return strategies.Example(input=self.case.input, output=self.output)

    def as_param(self) -> dict:
        return {"key": self.case.key, "input": self.case.input, "output": self.output}


@dataclass(frozen=True)
class Plan:
    """What a search will use, checked before anything is called."""

    version: SuiteVersion
    name: str
    dev: list[Demo]
    pool: list[Demo]


def _demonstration(expected: object) -> str | None:
    """The output a labelled case shows as a demonstration (its first acceptable output), as the run
    pipeline takes it; None for a case without a usable expected output."""
    if expected is None:
        return None
    output = expected[0] if isinstance(expected, list) and expected else expected
    if isinstance(output, bool) or not isinstance(output, str | int | float):
        return None
    return str(output)


def labelled_train(version: SuiteVersion) -> list[Demo]:
    """The version's train cases with an expected output, in train order."""
    demos = []
    for case in version.cases.filter(split=Split.TRAIN).order_by("position"):
        output = _demonstration(case.expected)
        if output is not None:
            demos.append(Demo(case=case, output=output))
    return demos


def default_name(suite: Suite) -> str:
    slug = slugify(suite.name) or f"suite-{suite.pk}"
    return (NAME_PREFIX + slug)[:NAME_MAX].rstrip("-")


def _check_number(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise OptimizeError(f"{name} must be a whole number from {low} to {high}; got {value!r}")
    return value


def _check_name(name: str | None, suite: Suite) -> str:
    if name is None or not str(name).strip():
        return default_name(suite)
    name = str(name).strip()
    if len(name) > NAME_MAX:
        raise OptimizeError(f"name may be up to {NAME_MAX} characters; got {len(name)}")
    other = Strategy.objects.filter(name=name).exclude(kind=KIND).order_by("-version").first()
    if other is not None:
        raise OptimizeError(
            f"name {name!r} is taken by strategy {other} of kind {other.kind}: give a name of its own "
            f"(default: {default_name(suite)})"
        )
    return name


def optimize_plan(
    *,
    suite: Suite,
    k: int = 3,
    candidates: int = 8,
    dev_size: int = 20,
    seed: int = 0,
    name: str | None = None,
) -> Plan:
    """Check a search before it is made (and before it is queued): the numbers, the name, and a
    latest suite version whose train split holds at least k+2 labelled cases. OptimizeError says
    what is wrong."""
    _check_number("k", k, 1, MAX_K)
    _check_number("candidates", candidates, 1, MAX_CANDIDATES)
    _check_number("dev_size", dev_size, 1, MAX_DEV_SIZE)
    _check_number("seed", seed, 0, MAX_SEED)
    strategy_name = _check_name(name, suite)
    version = suite.latest_version()
    if version is None:
        raise OptimizeError(f"suite {suite.name!r} has no version yet: import one first")
    demos = labelled_train(version)
    needed = search.minimum_train(k)
    if len(demos) < needed:
        raise OptimizeError(
            f"{version} has {len(demos)} labelled train case(s); a search with k={k} needs at least "
            f"{needed} ({k} to draw demonstrations from and 2 for the dev slice): add train cases "
            "(split: train, with an expected output) or lower k"
        )
    dev, pool = search.carve(len(demos), k=k, dev_size=dev_size, seed=seed)
    return Plan(
        version=version, name=strategy_name, dev=[demos[i] for i in dev], pool=[demos[i] for i in pool]
    )


def _params(k: int, chosen: list[Demo]) -> dict:
    return {"k": k, "examples": [d.as_param() for d in chosen]}


def _render(version: SuiteVersion, case: Case, chosen: list[Demo], params: dict) -> list[dict]:
    """The prompt of `case` with `chosen` as demonstrations, as a run renders the frozen strategy."""
    variables = (case.metadata or {}).get("vars")
    ctx = strategies.RenderContext(
        task_type=version.task_type,
        labels=tuple(version.labels),
        examples=tuple(d.example for d in chosen),
        params=params,
        vars=variables if isinstance(variables, dict) else {},
    )
    return strategies.render(KIND, case.input, ctx)


def _call_cost(endpoint: Endpoint, c: Completion) -> float:
    """USD of one answered call, as a run records it: the provider's measured cost (local models'
    compute), else tokens x the endpoint's prices; a failed call costs nothing."""
    if not c.ok:
        return 0.0
    if c.cost is not None:
        return c.cost
    return token_cost(
        c.prompt_tokens, c.completion_tokens, float(endpoint.price_in), float(endpoint.price_out)
    )


def _priced(endpoint: Endpoint) -> bool:
    return any(float(p) for p in (endpoint.price_in, endpoint.price_out, endpoint.price_hour))


def _score(
    version: SuiteVersion, endpoint: Endpoint, dev: list[Demo], completions: list[Completion], params: dict
) -> list[float | None]:
    """Each dev case's score for these answers, exactly as a run scores its results: the answer
    extracted as for the strategy, the version's default assertions (else the task type's), the
    case's own, its labels and the suite's pass threshold. A failed call scores 0."""
    redact = redactor()
    results = [
        Result(
            case=demo.case,
            output=redact(c.text),
            answer=strategies.extract(KIND, redact(c.text), params) if c.ok else "",
            prompt_tokens=c.prompt_tokens,
            completion_tokens=c.completion_tokens,
            latency_ms=c.latency_ms,
            compute_seconds=c.compute_seconds,
            cost=_call_cost(endpoint, c),
            error=redact(c.error)[:2000],
        )
        for demo, c in zip(dev, completions, strict=True)
    ]
    score_results(
        results,
        task_type=version.task_type,
        labels=list(version.labels),
        pass_threshold=version.suite.pass_threshold,
        default_assertions=version_default_assertions(version),
    )
    return [r.score for r in results]


def _next_version(name: str) -> int:
    return (Strategy.objects.filter(name=name).aggregate(n=Max("version"))["n"] or 0) + 1


def _description(
    *, suite: Suite, plan: Plan, endpoint: Endpoint, k: int, chosen: list[Demo], found: dict
) -> str:
    scores = [s for s in found["scores"] if s is not None]
    mean = sum(scores) / len(scores) if scores else None
    vs = f" (the candidates' mean: {mean:.3f})" if mean is not None else ""
    keys = ", ".join(d.case.key for d in chosen)
    return (
        f"Few-shot with {len(chosen)} frozen demonstration(s) from the train split of {plan.version}: "
        f"{keys}. Chosen by a seeded search (seed {found['seed']}, {len(found['scores'])} candidate(s) of "
        f"k={k}) on {found['dev_cases']} dev case(s) carved from the train split, scored with the suite's "
        f"assertions on endpoint {endpoint.name}: dev score {found['winner_dev_score']:.3f}{vs}. Runs and "
        "schedules use these examples as they are; optimise again for a new version."
    )


def _existing(request_id: str | None) -> Strategy | None:
    """The strategy a queued request already froze (a task delivered twice searches once)."""
    if not request_id:
        return None
    return Strategy.objects.filter(kind=KIND, params__search__request=request_id).order_by("-pk").first()


def strategy_optimize(
    *,
    suite: Suite,
    endpoint: Endpoint,
    k: int = 3,
    candidates: int = 8,
    dev_size: int = 20,
    seed: int = 0,
    name: str | None = None,
    user=None,
    progress: Progress | None = None,
    request_id: str | None = None,
) -> Strategy:
    """Search the suite's latest train split for the best k demonstrations (and order) on a dev
    slice with `endpoint`, and freeze the winner as the next version of strategy `name` (default
    few-shot-optimized-<suite>). `progress(i, n, dev_score)` is called after each candidate.

    OptimizeError when the search cannot be made (numbers, name, fewer than k+2 labelled train
    cases, an endpoint that cannot be called, every call failed); nothing is stored then."""
    done = _existing(request_id)
    if done is not None:
        return done
    plan = optimize_plan(suite=suite, k=k, candidates=candidates, dev_size=dev_size, seed=seed, name=name)
    version = plan.version
    labels = [d.output for d in plan.pool] if version.task_type == TaskType.CLASSIFICATION else None
    proposals = search.propose(len(plan.pool), k=k, candidates=candidates, seed=seed, labels=labels)
    gen_params = GenerationParams.from_dict(dict(endpoint.params or {}))
    started = time.monotonic()
    try:
        provider = endpoint_provider(endpoint)
    except ProviderError as exc:
        raise SearchFailed(f"endpoint {endpoint.name!r} cannot be called: {redactor()(str(exc))}") from None
    calls = prompt_tokens = completion_tokens = errors = 0
    cost = 0.0
    first_error = ""
    scores: list[float | None] = []
    measured: list[int | None] = []  # each candidate's prompt tokens, None when some call had none
    try:
        for i, proposal in enumerate(proposals, start=1):
            chosen = [plan.pool[j] for j in proposal]
            params = _params(k, chosen)
            prompts = [_render(version, d.case, chosen, params) for d in plan.dev]
            try:
                got = provider.complete_many(prompts, gen_params)
            except ProviderError as exc:  # the endpoint as a whole is unusable (e.g. model missing)
                got = [Completion(error=str(exc)) for _ in prompts]
            calls += len(prompts)
            for c in got:
                prompt_tokens += c.prompt_tokens or 0
                completion_tokens += c.completion_tokens or 0
                cost += _call_cost(endpoint, c)
                if not c.ok:
                    errors += 1
                    first_error = first_error or c.error
            tokens = [c.prompt_tokens for c in got]
            measured.append(None if any(t is None for t in tokens) else sum(tokens))
            score = search.dev_score(_score(version, endpoint, plan.dev, got, params))
            scores.append(score)
            if progress is not None:
                progress(i, len(proposals), score)
    finally:
        close = getattr(provider, "close", None)
        if close is not None:
            close()
    if errors == calls:
        raise SearchFailed(
            f"every call to endpoint {endpoint.name!r} failed ({calls} calls), nothing was frozen; the "
            f"first error: {redactor()(first_error)[:500]}"
        )
    if all(s is None for s in scores):
        raise SearchFailed(
            f"no dev answer could be scored with the assertions of {version} (nothing to compare the "
            "candidates on); nothing was frozen"
        )
    if all(m is not None for m in measured):
        sizes = [float(m) for m in measured]
    else:  # tokens not reported: the demonstrations' length in characters ranks the ties
        sizes = [
            float(
                sum(len(strategies.input_text(plan.pool[j].case.input)) + len(plan.pool[j].output) for j in p)
            )
            for p in proposals
        ]
    winner = search.pick(scores, sizes)
    chosen = [plan.pool[j] for j in proposals[winner]]
    found = {
        "seed": seed,
        "candidates": len(proposals),
        "dev_cases": len(plan.dev),
        "dev_keys": [d.case.key for d in plan.dev],
        "endpoint": endpoint.name,
        "suite": suite.name,
        "suite_version": version.number,
        "winner": winner,
        "winner_dev_score": scores[winner],
        "scores": scores,
        "candidate_keys": [[plan.pool[j].case.key for j in p] for p in proposals],
        "calls": calls,
        "errors": errors,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "cost_usd": cost if _priced(endpoint) else None,
        "seconds": round(time.monotonic() - started, 3),
    }
    if request_id:
        found["request"] = request_id
    params = _params(k, chosen) | {"search": found}
    description = _description(suite=suite, plan=plan, endpoint=endpoint, k=k, chosen=chosen, found=found)
    return _freeze(plan=plan, suite=suite, params=params, description=description, user=user)


def _freeze(*, plan: Plan, suite: Suite, params: dict, description: str, user) -> Strategy:
    """The next version of the strategy, audited; a version number taken meanwhile is taken again."""
    for attempt in range(3):
        try:
            with transaction.atomic():
                # A redelivered task that searched alongside this one: the first to freeze wins.
                Suite.objects.select_for_update().filter(pk=suite.pk).first()
                request_id = params["search"].get("request")
                done = _existing(request_id)
                if done is not None:
                    return done
                strategy = Strategy.objects.create(
                    name=plan.name, version=_next_version(plan.name), kind=KIND, params=params,
                    description=description,
                )  # fmt: skip
                found = params["search"]
                audit_record(
                    actor=user,
                    action="strategy.optimize",
                    obj=strategy,
                    suite_id=suite.pk,
                    after={
                        "name": strategy.name,
                        "version": strategy.version,
                        "kind": strategy.kind,
                        "k": params["k"],
                        "examples": [e["key"] for e in params["examples"]],
                        "search": {key: value for key, value in found.items() if key != "candidate_keys"},
                    },
                )
                return strategy
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def strategy_optimize_request(
    *,
    suite: Suite,
    endpoint: Endpoint,
    k: int = 3,
    candidates: int = 8,
    dev_size: int = 20,
    seed: int = 0,
    name: str | None = None,
    user=None,
) -> dict:
    """Check a search (OptimizeError at once when it cannot be made) and queue it for a worker (the
    `llm` queue); the strategy appears when the worker has frozen it. What was queued comes back:
    the strategy's name, the calls it will make and the request's id (in its `search.request`)."""
    plan = optimize_plan(suite=suite, k=k, candidates=candidates, dev_size=dev_size, seed=seed, name=name)
    request_id = uuid.uuid4().hex
    queue.enqueue(
        "optimize_fewshot",
        suite.pk, endpoint.pk, k, candidates, dev_size, seed, plan.name,
        getattr(user, "pk", None), request_id,
    )  # fmt: skip
    return {
        "name": plan.name,
        "suite_version": plan.version.number,
        "dev_cases": len(plan.dev),
        "pool": len(plan.pool),
        "max_calls": candidates * len(plan.dev),
        "request": request_id,
    }


def strategy_optimize_execute(
    *,
    suite_id: int,
    endpoint_id: int,
    k: int,
    candidates: int,
    dev_size: int,
    seed: int,
    name: str,
    user_id: int | None,
    request_id: str,
) -> Strategy | None:
    """The queued search (the `optimize_fewshot` task): once per request, however often delivered.
    A search that cannot be made any more (the suite or endpoint gone or changed) is logged."""
    suite = Suite.objects.filter(pk=suite_id).first()
    endpoint = Endpoint.objects.filter(pk=endpoint_id).first()
    if suite is None or endpoint is None:
        log.warning("few-shot search %s: suite #%s or endpoint #%s gone", request_id, suite_id, endpoint_id)
        return None
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    try:
        return strategy_optimize(
            suite=suite, endpoint=endpoint, k=k, candidates=candidates, dev_size=dev_size, seed=seed,
            name=name or None, user=user, request_id=request_id,
        )  # fmt: skip
    except OptimizeError as exc:
        log.warning("few-shot search %s of suite %r failed: %s", request_id, suite.name, exc)
        # Whoever queued it sees why in the audit log (the Audit page).
        audit_record(
            actor=user,
            action="strategy.optimize.failed",
            obj=suite,
            suite_id=suite.pk,
            after={"request": request_id, "name": name, "endpoint": endpoint.name, "error": str(exc)[:2000]},
        )
        return None
