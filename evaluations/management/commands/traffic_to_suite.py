"""Sample captured chat calls into a suite's next version and a captured labelling run (docs/traffic.md)."""

from __future__ import annotations

import json
from datetime import date

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from evaluations.selectors.traffic import TrafficFilter, TrafficFilterError
from evaluations.services.traffic_suite import TrafficSuiteError, traffic_to_suite


def _day(name: str, text: str | None) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--{name}: {text!r} is not a date (YYYY-MM-DD)", returncode=2) from None


class Command(BaseCommand):
    help = (
        "Sample captured chat calls (seeded, deduplicated, split train/test by a hash of the input) into "
        "the suite's next version (a new suite if the name is new). The cases have no expected output; "
        "the train cases' captured answers become a finished labelling run to review and to distil from "
        "(`finetune --source run:RUN:ARM:all` or `reviewed:RUN`)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--suite", required=True, help="the suite's name (a new name makes a new suite)")
        parser.add_argument("--endpoint", default=None, help="only calls to this endpoint")
        parser.add_argument("--tag", default=None, help="only calls with this tag")
        parser.add_argument("--from", dest="date_from", default=None, help="from this day (YYYY-MM-DD)")
        parser.add_argument("--to", dest="date_to", default=None, help="to this day (YYYY-MM-DD), inclusive")
        parser.add_argument("--sample", type=int, default=100, help="distinct inputs to take (default 100)")
        parser.add_argument("--seed", default="0", help="the sample's seed (default 0)")
        parser.add_argument("--test-share", type=float, default=0.2, help="share of inputs in the test split")
        parser.add_argument("--user", default=None, help="the username recorded as the author")
        parser.add_argument("--json", action="store_true", help="print the outcome as one JSON object")

    def handle(self, *args, **opts):
        user = None
        if opts["user"]:
            user = get_user_model().objects.filter(username=opts["user"]).first()
            if user is None:
                raise CommandError(f"--user {opts['user']!r}: no such user", returncode=2)
        try:
            filters = TrafficFilter(
                endpoint=opts["endpoint"], tag=opts["tag"],
                date_from=_day("from", opts["date_from"]), date_to=_day("to", opts["date_to"]),
            )  # fmt: skip
            outcome = traffic_to_suite(
                suite_name=opts["suite"], filters=filters, sample_size=opts["sample"], seed=opts["seed"],
                test_share=opts["test_share"], user=user,
            )  # fmt: skip
        except (TrafficSuiteError, TrafficFilterError) as exc:
            raise CommandError(str(exc), returncode=2) from None
        payload = outcome.as_dict()
        if opts["json"]:
            self.stdout.write(json.dumps(payload))
            return
        self.stdout.write(
            f"{payload['sampled']:,} case(s) from {payload['matched']:,} matching calls into "
            f"{payload['suite']['name']} v{payload['suite_version']} ({payload['train']:,} train, "
            f"{payload['test']:,} test; {payload['duplicates']:,} duplicate(s), "
            f"{payload['skipped']:,} without an answer)"
        )
        if payload["run"] is not None:
            arms = ", ".join(f"{a['id']} ({a['endpoint']})" for a in payload["arms"])
            self.stdout.write(
                f"captured answers: labelling run #{payload['run']}, arm(s) {arms}; review them, then "
                f"`manage.py finetune --source reviewed:{payload['run']}` or run:{payload['run']}:ARM:all"
            )
