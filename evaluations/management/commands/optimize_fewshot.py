from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from evaluations.models import Endpoint, Suite
from evaluations.services.fewshot_optimize import OptimizeError, SearchFailed, strategy_optimize


def fail(message: str) -> CommandError:
    return CommandError(message, returncode=2)


def _known(names: list[str], what: str, how: str) -> str:
    return f"(known: {', '.join(names)})" if names else f"(no {what} yet: {how})"


def summary(strategy) -> dict:
    """What the command reports of a frozen strategy (its --json output)."""
    found = strategy.params.get("search") or {}
    scores = [s for s in found.get("scores") or [] if s is not None]
    return {
        "strategy": str(strategy),  # as `evaluate --arm ENDPOINT:STRATEGY` takes it (name@vN)
        "id": strategy.pk,
        "name": strategy.name,
        "version": strategy.version,
        "kind": strategy.kind,
        "k": strategy.params.get("k"),
        "examples": [e["key"] for e in strategy.params.get("examples") or []],
        "suite": found.get("suite"),
        "suite_version": found.get("suite_version"),
        "endpoint": found.get("endpoint"),
        "seed": found.get("seed"),
        "candidates": found.get("candidates"),
        "dev_cases": found.get("dev_cases"),
        "winner_dev_score": found.get("winner_dev_score"),
        "candidates_mean_dev_score": sum(scores) / len(scores) if scores else None,
        "scores": found.get("scores"),
        "calls": found.get("calls"),
        "errors": found.get("errors"),
        "prompt_tokens": found.get("prompt_tokens"),
        "completion_tokens": found.get("completion_tokens"),
        "cost_usd": found.get("cost_usd"),
        "seconds": found.get("seconds"),
    }


def report(d: dict) -> list[str]:
    mean = d["candidates_mean_dev_score"]
    cost = "no prices set" if d["cost_usd"] is None else f"${d['cost_usd']:.6f}"
    return [
        f"Frozen {d['strategy']} (few-shot-optimized, k={d['k']}): {', '.join(d['examples'])}",
        f"Dev score {d['winner_dev_score']:.3f} on {d['dev_cases']} dev case(s) of {d['suite']} "
        f"v{d['suite_version']}; the {d['candidates']} candidate(s) averaged "
        + ("n/a" if mean is None else f"{mean:.3f}"),
        f"Search cost: {d['calls']} call(s) to {d['endpoint']} ({d['errors']} failed), "
        f"{d['prompt_tokens']:,} prompt + {d['completion_tokens']:,} completion tokens, {cost}, "
        f"{d['seconds']:.1f} s",
        f"Runs and schedules use {d['strategy']} as it is: pick it as an arm's strategy.",
    ]


class Command(BaseCommand):
    help = (
        "Search a suite's train split for the few-shot demonstrations (and order) that score best on a "
        "dev slice with an endpoint, and freeze them as a new version of a few-shot-optimized strategy."
    )

    def add_arguments(self, parser):
        parser.add_argument("--suite", required=True, metavar="NAME", help="suite name (its latest version)")
        parser.add_argument("--endpoint", required=True, metavar="NAME", help="endpoint that answers")
        parser.add_argument("--k", type=int, default=3, help="demonstrations per prompt (3)")
        parser.add_argument("--candidates", type=int, default=8, help="candidate sets tried (8)")
        parser.add_argument(
            "--dev-size", type=int, default=20, help="dev cases carved from the train split, at most (20)"
        )
        parser.add_argument("--seed", type=int, default=0, help="the same seed gives the same search (0)")
        parser.add_argument("--name", default=None, help="strategy name (few-shot-optimized-<suite>)")
        parser.add_argument("--json", action="store_true", help="print the result as one JSON object")

    def handle(self, *args, **opts):
        suite = Suite.objects.filter(name=opts["suite"]).first()
        if suite is None:
            names = list(Suite.objects.order_by("name").values_list("name", flat=True)[:20])
            raise fail(f"--suite {opts['suite']!r}: no such suite " + _known(names, "suite", "import one"))
        endpoint = Endpoint.objects.filter(name=opts["endpoint"]).first()
        if endpoint is None:
            names = list(Endpoint.objects.order_by("name").values_list("name", flat=True)[:20])
            raise fail(
                f"--endpoint {opts['endpoint']!r}: no such endpoint "
                + _known(names, "endpoint", "add one with add_endpoint")
            )

        def progress(i: int, n: int, score: float | None) -> None:
            shown = "n/a" if score is None else f"{score:.3f}"
            self.stderr.write(f"candidate {i}/{n}: dev score {shown}")

        try:
            strategy = strategy_optimize(
                suite=suite, endpoint=endpoint, k=opts["k"], candidates=opts["candidates"],
                dev_size=opts["dev_size"], seed=opts["seed"], name=opts["name"], progress=progress,
            )  # fmt: skip
        except SearchFailed as exc:  # made, but nothing to freeze: not a usage error
            raise CommandError(str(exc)) from None
        except OptimizeError as exc:
            raise fail(str(exc)) from None
        d = summary(strategy)
        if opts["json"]:
            self.stdout.write(json.dumps(d, allow_nan=False))
            return
        for line in report(d):
            self.stdout.write(line)
