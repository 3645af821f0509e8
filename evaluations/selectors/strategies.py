"""Reads of strategies: the list (with what an optimised few-shot strategy froze and cost), one
strategy with its examples, and what changed from the previous version of the same name."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from django.db.models import QuerySet

from evaluations import strategies as prompting
from evaluations.analysis.textdiff import word_diff
from evaluations.models import Strategy, StrategyKind


def strategies_listed() -> QuerySet[Strategy]:
    return Strategy.objects.order_by("name", "-version")


@dataclass
class Search:
    """An optimised few-shot strategy's search, as the pages show it."""

    examples: list[str]
    dev_score: float | None
    mean_score: float | None
    candidates: int | None
    dev_cases: int | None
    calls: int | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: float | None
    seconds: float | None
    endpoint: str
    suite: str
    suite_version: int | None
    seed: int | None
    rows: list[dict] = field(default_factory=list)  # each candidate: its keys and dev score


def strategy_search(strategy: Strategy) -> Search | None:
    """What an optimised few-shot strategy froze and what the search cost; None for other kinds."""
    if strategy.kind != StrategyKind.FEW_SHOT_OPTIMIZED:
        return None
    params = strategy.params if isinstance(strategy.params, dict) else {}
    found = params.get("search") if isinstance(params.get("search"), dict) else {}
    scores = found.get("scores") if isinstance(found.get("scores"), list) else []
    scored = [s for s in scores if isinstance(s, int | float)]
    keys = found.get("candidate_keys") if isinstance(found.get("candidate_keys"), list) else []
    rows = [
        {
            "index": i,
            "keys": keys[i] if i < len(keys) else [],
            "score": score,
            "winner": i == found.get("winner"),
        }
        for i, score in enumerate(scores)
    ]
    return Search(
        examples=[str(e.get("key", "")) for e in params.get("examples") or [] if isinstance(e, dict)],
        dev_score=found.get("winner_dev_score"),
        mean_score=sum(scored) / len(scored) if scored else None,
        candidates=found.get("candidates"),
        dev_cases=found.get("dev_cases"),
        calls=found.get("calls"),
        prompt_tokens=found.get("prompt_tokens"),
        completion_tokens=found.get("completion_tokens"),
        cost_usd=found.get("cost_usd"),
        seconds=found.get("seconds"),
        endpoint=str(found.get("endpoint") or ""),
        suite=str(found.get("suite") or ""),
        suite_version=found.get("suite_version"),
        seed=found.get("seed"),
        rows=rows,
    )


def strategy_rows() -> list[tuple[Strategy, Search | None]]:
    """Every strategy (by name, newest version first) with its search when it has one."""
    return [(s, strategy_search(s)) for s in strategies_listed()]


def strategy_examples(strategy: Strategy) -> list[dict]:
    """A frozen strategy's demonstrations as shown: key, input as text, output."""
    params = strategy.params if isinstance(strategy.params, dict) else {}
    return [
        {
            "key": str(e.get("key", "")),
            "input": prompting.input_text(e.get("input") or ""),
            "output": str(e.get("output", "")),
        }
        for e in params.get("examples") or []
        if isinstance(e, dict)
    ]


def strategy_previous(strategy: Strategy) -> Strategy | None:
    return (
        Strategy.objects.filter(name=strategy.name, version__lt=strategy.version).order_by("-version").first()
    )


def _as_text(strategy: Strategy) -> str:
    """A strategy's recipe as stable text: what a diff between two versions compares."""
    recipe = {"kind": strategy.kind, "params": strategy.params, "description": strategy.description}
    return json.dumps(recipe, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def strategy_diff(previous: Strategy, strategy: Strategy) -> list[tuple[str, str]]:
    """Word-level diff of the previous version's recipe against this one's ("missing": only in the
    previous version, "added": only in this one)."""
    return word_diff(_as_text(previous), _as_text(strategy))


def frozen_example_leaks(strategy: Strategy, version) -> list[str]:
    """The frozen demonstrations of a `few-shot-optimized` strategy that are not train cases of
    `version` (its test cases, or cases it does not have: a search on another version), by key.
    An empty list: every demonstration is one of the version's train cases, input and all."""
    examples = [e for e in (strategy.params or {}).get("examples") or [] if isinstance(e, dict)]
    train = dict(version.cases.filter(split="train").values_list("key", "input"))
    return [
        str(e.get("key"))
        for e in examples
        if e.get("key") not in train or train[e.get("key")] != e.get("input")
    ]


def optimized_strategy(version) -> Strategy | None:
    """The newest `few-shot-optimized` strategy frozen for the version's suite whose demonstrations
    are all train cases of this version (a search on an older version whose examples became test
    cases, or a namesake suite's, is not taken), if any."""
    frozen = Strategy.objects.filter(
        kind=StrategyKind.FEW_SHOT_OPTIMIZED, params__search__suite=version.suite.name
    ).order_by("-created_at", "-pk")
    for strategy in frozen[:20]:
        if not frozen_example_leaks(strategy, version):
            return strategy
    return None
