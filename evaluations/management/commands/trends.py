"""Trend points: count them per suite, or backfill them for runs finished before they existed."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count, Max

from evaluations.models import Suite, TrendPoint
from evaluations.services.trends import trends_backfill


class Command(BaseCommand):
    help = (
        "The trends page's stored points. --backfill records them for succeeded runs that lack them "
        "(runs finished before this feature); without it, prints how many each suite has."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--backfill", action="store_true", help="record trend points for succeeded runs lacking them"
        )
        parser.add_argument("--suite", default=None, metavar="NAME", help="only this suite")

    def handle(self, *args, **opts):
        suite = None
        if opts["suite"]:
            suite = Suite.objects.filter(name=opts["suite"]).first()
            if suite is None:
                raise CommandError(
                    f"--suite {opts['suite']!r}: no such suite (the dashboard's suite list shows them all)",
                    returncode=2,
                )
        if opts["backfill"]:
            recorded = trends_backfill(suite=suite)
            self.stdout.write(
                f"Trend points recorded for {recorded} run{'s' if recorded != 1 else ''}"
                + ("." if recorded else ": every succeeded run already had them.")
            )
            return
        points = TrendPoint.objects.order_by()
        if suite is not None:
            points = points.filter(suite=suite)
        rows = points.values("suite__name").annotate(n=Count("id"), last=Max("at")).order_by("suite__name")
        if not rows:
            self.stdout.write("No trend points yet: they are recorded as runs finish (or by --backfill).")
        for row in rows:
            self.stdout.write(f"{row['suite__name']}: {row['n']} points, latest {row['last']:%Y-%m-%d %H:%M}")
