from __future__ import annotations

import json
import time

from django.core.management.base import BaseCommand, CommandError

from evaluations.models import Endpoint, Suite, SyntheticGeneration
from evaluations.services.synthetic import (
    DEFAULT_THRESHOLD,
    SyntheticError,
    synthesize_strategy,
    synthetic_create,
    synthetic_execute,
)


def fail(message: str) -> CommandError:
    return CommandError(message, returncode=2)


def summary(generation: SyntheticGeneration) -> dict:
    """What the command reports of a generation (its --json output)."""
    return {
        "id": generation.pk,
        "suite": generation.suite_version.suite.name,
        "suite_version": generation.suite_version.number,
        "endpoint": generation.endpoint.name,
        "strategy": str(generation.strategy),
        "seeds": generation.seed_keys,
        "requested": generation.requested,
        "threshold": generation.threshold,
        "status": generation.status,
        "calls": generation.calls,
        "generated": generation.generated,
        "dropped_duplicates": generation.dropped_duplicates,
        "dropped_test_copies": generation.dropped_test_copies,
        "unparseable": generation.unparseable,
        "pending": generation.candidates.filter(status="pending").count(),
        "prompt_tokens": generation.prompt_tokens,
        "completion_tokens": generation.completion_tokens,
        "cost_usd": generation.cost,
        "error": generation.error,
    }


class Command(BaseCommand):
    help = (
        "Generate synthetic train examples: an endpoint writes N new input/expected pairs like the seed "
        "train cases; near-duplicates and copies of test cases are dropped; the rest wait for review on "
        "the generation's page (or the API), then are promoted into a new suite version as train cases."
    )

    def add_arguments(self, parser):
        parser.add_argument("--suite", required=True, metavar="NAME", help="suite name")
        parser.add_argument(
            "--suite-version", type=int, default=None, help="suite version number (the latest)"
        )
        parser.add_argument("--endpoint", required=True, metavar="NAME", help="endpoint that writes them")
        parser.add_argument(
            "--seeds", required=True, metavar="KEY,KEY", help="the seed train cases' keys, comma-separated"
        )
        parser.add_argument("--n", type=int, required=True, help="candidates to write (1-1000)")
        parser.add_argument(
            "--strategy-version", type=int, default=None, help="version of the synthesize prompt (the latest)"
        )
        parser.add_argument(
            "--threshold",
            type=float,
            default=DEFAULT_THRESHOLD,
            help="near-duplicate cosine similarity (0.92)",
        )
        parser.add_argument(
            "--wait", action="store_true", help="generate now, in this process, and report the outcome"
        )
        parser.add_argument("--json", action="store_true", help="print the result as one JSON object")

    def handle(self, *args, **opts):
        suite = Suite.objects.filter(name=opts["suite"]).first()
        if suite is None:
            raise fail(f"no suite named {opts['suite']!r}")
        version = (
            suite.versions.filter(number=opts["suite_version"]).first()
            if opts["suite_version"]
            else suite.latest_version()
        )
        if version is None:
            raise fail(f"suite {suite.name!r} has no version {opts['version'] or ''}".rstrip())
        endpoint = Endpoint.objects.filter(name=opts["endpoint"]).first()
        if endpoint is None:
            raise fail(f"no endpoint named {opts['endpoint']!r}")
        seeds = [k.strip() for k in opts["seeds"].split(",") if k.strip()]
        try:
            strategy = synthesize_strategy(opts["strategy_version"])
            generation = synthetic_create(
                suite_version=version, endpoint=endpoint, seed_keys=seeds, n=opts["n"], strategy=strategy,
                threshold=opts["threshold"],
            )  # fmt: skip
        except SyntheticError as exc:
            raise fail(str(exc)) from None
        if opts["wait"]:
            synthetic_execute(generation_id=generation.pk)  # a worker that took it first: wait for it
            while True:
                generation.refresh_from_db()
                if generation.is_finished:
                    break
                time.sleep(0.5)
        data = summary(generation)
        if opts["json"]:
            self.stdout.write(json.dumps(data))
        else:
            self.stdout.write(
                f"Generation #{generation.pk} ({generation.status}): {data['requested']} asked of "
                f"{endpoint.name} with {data['strategy']} from {len(seeds)} seed(s)."
            )
            if generation.is_finished:
                self.stdout.write(
                    f"{data['generated']} read, {data['dropped_duplicates']} near-duplicate(s) and "
                    f"{data['dropped_test_copies']} test-case copy(ies) dropped, {data['unparseable']} "
                    f"unparseable line(s); {data['pending']} to review. {data['calls']} call(s), "
                    f"{data['prompt_tokens']:,} + {data['completion_tokens']:,} tokens, "
                    f"${data['cost_usd'] or 0:.6f}."
                )
            else:
                self.stdout.write("A worker on the llm queue generates it; follow it on its page or the API.")
        if generation.status == "failed":
            raise CommandError(generation.error or "the generation failed", returncode=1)
