"""The traffic summary (docs/traffic.md): the figures of the traffic page, as text or JSON."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from evaluations.selectors.traffic import (
    DEFAULT_DAYS,
    MAX_DAYS,
    TrafficFilter,
    TrafficFilterError,
    traffic_summary,
)


def _ms(value) -> str:
    return "—" if value is None else f"{value:,.0f} ms"


class Command(BaseCommand):
    help = (
        "Captured traffic over the last N days: calls, errors, cost, latency p50/p95 and tokens per request, "
        "per day, per endpoint and per tag (the traffic page's and GET /api/v1/traffic/summary/'s figures)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--endpoint", default=None, help="only calls to this endpoint (its name)")
        parser.add_argument("--tag", default=None, help="only calls with this tag")
        parser.add_argument("--status", choices=["ok", "error"], default=None)
        parser.add_argument("--kind", choices=["chat", "embeddings"], default=None)
        parser.add_argument(
            "--days", type=int, default=DEFAULT_DAYS, help=f"the window (default {DEFAULT_DAYS})"
        )
        parser.add_argument("--json", action="store_true", help="print the whole summary as one JSON object")

    def handle(self, *args, **opts):
        if not 1 <= opts["days"] <= MAX_DAYS:
            raise CommandError(f"--days: a whole number from 1 to {MAX_DAYS}", returncode=2)
        try:
            filters = TrafficFilter(
                endpoint=opts["endpoint"], tag=opts["tag"], status=opts["status"], kind=opts["kind"]
            )
            summary = traffic_summary(filters, days=opts["days"])
        except TrafficFilterError as exc:
            raise CommandError(str(exc), returncode=2) from None
        if opts["json"]:
            self.stdout.write(json.dumps(summary, allow_nan=False))
            return
        w, t = summary["window"], summary["totals"]
        self.stdout.write(f"traffic {w['since']} to {w['until']} ({w['days']} days)")
        self.stdout.write(
            f"{t['calls']:,} calls, {t['errors']:,} errors, cost ${t['cost']:.4f}, latency p50 "
            f"{_ms(t['latency_p50'])}, p95 {_ms(t['latency_p95'])}, tokens per request "
            f"{t['tokens_per_request'] if t['tokens_per_request'] is not None else '—'}"
        )
        for title, rows in (("by endpoint", summary["by_endpoint"]), ("by tag", summary["by_tag"])):
            if rows:
                self.stdout.write(f"\n{title}:")
            for r in rows:
                self.stdout.write(
                    f"  {r['name']}: {r['calls']:,} calls, {r['errors']:,} errors, ${r['cost']:.4f}, "
                    f"p50 {_ms(r['latency_p50'])}, p95 {_ms(r['latency_p95'])}"
                )
