"""`manage.py shadow`: shadow evaluation of live traffic (docs/capture.md).

    shadow create NAME --live ENDPOINT --candidate ENDPOINT [--share 0.1] [--strategy NAME[@vN]]
                  [--compare assertions|pairwise] [--suite NAME]
    shadow list [--json]
    shadow report NAME [--days 30] [--json]
    shadow run NAME          # look at the calls recorded since, now (the workers' sweep does it too)

Exit 0, or 2 on a usage error."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from evaluations.jsonsafe import json_ready
from evaluations.models import Endpoint, ShadowCompare, Strategy, Suite
from evaluations.selectors.shadow import shadow_configs, shadow_summary
from evaluations.services.shadow import ShadowError, shadow_config_create, shadow_sweep


def fail(message: str) -> CommandError:
    return CommandError(message, returncode=2)


def _endpoint(name: str, option: str) -> Endpoint:
    found = Endpoint.objects.filter(name=name).first()
    if found is None:
        known = ", ".join(Endpoint.objects.values_list("name", flat=True)[:30]) or "none"
        raise fail(f"{option} {name!r}: no such endpoint (endpoints: {known})")
    return found


class Command(BaseCommand):
    help = "Shadow evaluation: mirror a share of an endpoint's captured calls to a candidate and compare."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="start shadowing an endpoint's live calls")
        create.add_argument("name")
        create.add_argument("--live", required=True, help="the endpoint whose captured calls are mirrored")
        create.add_argument("--candidate", required=True, help="the endpoint they are sent to as well")
        create.add_argument("--share", type=float, default=0.1, help="the share of calls mirrored, (0, 1]")
        create.add_argument("--strategy", default="", help="NAME[@vN]; default: the requests as they are")
        create.add_argument("--compare", choices=ShadowCompare.values, default=ShadowCompare.ASSERTIONS)
        create.add_argument("--suite", default=None, help="whose assertions compare the pairs (name)")
        listing = sub.add_parser("list", help="the shadows with their agreement")
        listing.add_argument("--json", action="store_true")
        report = sub.add_parser("report", help="one shadow's figures, in all and per day")
        report.add_argument("name")
        report.add_argument("--days", type=int, default=30)
        report.add_argument("--json", action="store_true")
        run = sub.add_parser("run", help="shadow the calls recorded since the last look, now")
        run.add_argument("name")

    def handle(self, *args, **opts):
        return getattr(self, f"_{opts['action']}")(opts)

    def _config(self, name: str):
        config = shadow_configs().filter(name=name).first()
        if config is None:
            known = ", ".join(shadow_configs().values_list("name", flat=True)[:30]) or "none"
            raise fail(f"no shadow named {name!r} (shadows: {known})")
        return config

    def _create(self, opts) -> None:
        strategy = None
        if opts["strategy"]:
            name, _, version = opts["strategy"].partition("@v")
            strategy = Strategy.objects.filter(
                name=name, version=int(version) if version.isdigit() else 1
            ).first()
            if strategy is None:
                raise fail(f"--strategy {opts['strategy']!r}: no such strategy")
        suite = None
        if opts["suite"]:
            suite = Suite.objects.filter(name=opts["suite"]).first()
            if suite is None:
                raise fail(f"--suite {opts['suite']!r}: no such suite")
        try:
            config = shadow_config_create(
                name=opts["name"],
                live_endpoint=_endpoint(opts["live"], "--live"),
                candidate=_endpoint(opts["candidate"], "--candidate"),
                share=opts["share"],
                strategy=strategy,
                compare=opts["compare"],
                suite=suite,
            )
        except ShadowError as exc:
            raise fail(str(exc)) from None
        self.stdout.write(
            f"shadow {config.name!r}: {config.share:.0%} of {config.live_endpoint.name}'s calls from now on "
            f"go to {config.candidate.name} as well (a worker's sweep sends them)"
        )

    def _list(self, opts) -> None:
        rows = [shadow_summary(c) | {"enabled": c.enabled} for c in shadow_configs()]
        if opts["json"]:
            self.stdout.write(json.dumps(json_ready(rows)))
            return
        if not rows:
            self.stdout.write(
                "no shadows (start one with: manage.py shadow create NAME --live X --candidate Y)"
            )
        for r in rows:
            rate = "—" if r["agreement_rate"] is None else f"{r['agreement_rate']:.1%}"
            self.stdout.write(
                f"{r['config']}: {r['live']} -> {r['candidate']} ({r['share']:.0%}, {r['compare']}"
                f"{'' if r['enabled'] else ', paused'}): {r['pairs']} pairs, agreement {rate}"
            )

    def _report(self, opts) -> None:
        summary = shadow_summary(self._config(opts["name"]), days=opts["days"])
        if opts["json"]:
            self.stdout.write(json.dumps(json_ready(summary)))
            return
        for key, value in summary.items():
            if key != "daily":
                self.stdout.write(f"{key}: {value}")
        for day in summary["daily"]:
            rate = "—" if day["agreement_rate"] is None else f"{day['agreement_rate']:.1%}"
            self.stdout.write(f"  {day['day']}: {day['pairs']} pairs, agreement {rate}")

    def _run(self, opts) -> None:
        config = self._config(opts["name"])
        if not config.enabled:
            raise fail(f"shadow {config.name!r} is paused; resume it on its page or through the API")
        total = 0
        while True:
            stored = shadow_sweep(config_id=config.pk)
            total += stored
            config.refresh_from_db()
            if not stored and not config.live_endpoint.calls.filter(pk__gt=config.watermark).exists():
                break
        self.stdout.write(f"shadow {config.name!r}: {total} new pair(s)")
