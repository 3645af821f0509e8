from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from evaluations.models import Suite
from evaluations.selectors.decisions import DecisionError, decision_payload, parse_run_id


def fail(message: str) -> CommandError:
    return CommandError(message, returncode=2)


class Command(BaseCommand):
    help = (
        "Is prompting enough, or does fine-tuning pay off? The verdict on a suite's latest finished run "
        "(or the run given), with its evidence, caveats and break-even."
    )

    def add_arguments(self, parser):
        parser.add_argument("--suite", required=True, metavar="NAME", help="suite name")
        parser.add_argument(
            "--run", default=None, metavar="ID", help="a finished run of the suite (default: its latest)"
        )
        parser.add_argument("--json", action="store_true", help="print the whole decision as one JSON object")

    def handle(self, *args, **opts):
        name = opts["suite"]
        suite = Suite.objects.filter(name=name).first()
        if suite is None:
            known = ", ".join(Suite.objects.order_by("name").values_list("name", flat=True)[:20])
            raise fail(
                f"--suite {name!r}: no such suite "
                + (f"(known: {known}; " if known else "(none yet: import one with import_suite; ")
                + "the dashboard's suite list shows them all)"
            )
        try:
            run_id = parse_run_id(opts["run"])
        except ValueError as exc:
            raise fail(f"--run: {exc}") from None
        try:
            payload = decision_payload(suite, run_id=run_id)
        except DecisionError as exc:
            raise fail(f"--run: {exc}") from None
        if opts["json"]:
            self.stdout.write(json.dumps(payload, allow_nan=False))
            return
        for line in report(payload):
            self.stdout.write(line)


def report(d: dict) -> list[str]:
    run = d["run"]
    if run is None:
        source = "no finished run"
    else:
        source = f"run #{run['id']} (suite version {run['suite_version']}"
        source += f", finished {run['finished_at']})" if run.get("finished_at") else ")"
    lines = [f"{d['suite']['name']}: {source}", "", f"{d['title']} [{d['verdict']}]", d["summary"]]
    if d.get("arm"):
        lines.append(f"Recommended arm: {d['arm']}")
    for heading, items in (("Evidence", d.get("evidence")), ("Caveats", d.get("caveats"))):
        if items:
            lines += ["", f"{heading}:"] + [f"  - {item}" for item in items]
    if d.get("cases_needed"):
        lines += ["", f"Cases needed to settle it: about {d['cases_needed']:,}"]
    lines += ["", f"Break-even: {break_even_line(d.get('break_even'))}"]
    return lines


def break_even_line(be: dict | None) -> str:
    if not be:
        return "not computed (it needs a prompting arm and a fine-tuned arm in the same run)"
    if not be.get("available"):
        return be.get("reason") or "not computed"
    pair = f"{be['fine_tuned_arm']} against {be['prompting_arm']}"
    if be.get("break_even_days") is None:
        return f"{pair}: {be['reason']}"
    horizon = f"{be['horizon_months']:g}-month horizon"
    within = "within" if be.get("pays_back_within_horizon") else "beyond"
    return f"{pair}: {be['reason']} ({within} the {horizon})"
