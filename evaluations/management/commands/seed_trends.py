"""Bench data for the trends page: years of nightly runs of one suite, written in bulk."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from evaluations.demo_data.trends import MAX_ARMS, trends_seed_bench


class Command(BaseCommand):
    help = (
        "Seed a suite with one succeeded nightly run per day (one arm per endpoint x strategy, each with "
        "its summary and trend point) for the trends page and its benchmark. No model is called and no "
        "results are written: the trends page reads trend points only. Idempotent: nights that already "
        "have a run are skipped."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=730, help="nights to seed, ending last night (730)")
        parser.add_argument("--arms", type=int, default=5, help=f"arms per run, 1..{MAX_ARMS} (5)")
        parser.add_argument(
            "--suite", default="trends-bench", metavar="NAME", help="suite name (trends-bench)"
        )

    def handle(self, *args, **opts):
        started = time.monotonic()
        try:
            seeded = trends_seed_bench(suite_name=opts["suite"], days=opts["days"], arms=opts["arms"])
        except ValueError as exc:
            raise CommandError(f"{exc}", returncode=2) from None
        self.stdout.write(
            f"{seeded['suite'].name}: {seeded['runs']} runs and {seeded['points']} trend points added "
            f"({opts['days']} nights x {opts['arms']} arms wanted; nights already seeded were kept) "
            f"in {time.monotonic() - started:.1f} s. Trends page: /suites/{seeded['suite'].pk}/trends/"
        )
