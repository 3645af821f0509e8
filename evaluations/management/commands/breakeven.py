from __future__ import annotations

import json
import math

from django.core.management.base import BaseCommand, CommandError

from evaluations.analysis.costs import calculator
from evaluations.jsonsafe import json_ready

# option name -> (flag, default); None: required
NUMBERS = {
    "tokens_saved": ("--tokens-saved", None),
    "requests_per_month": ("--requests-per-month", None),
    "price_per_1k_tokens": ("--price-per-1k-tokens", None),
    "training_cost": ("--training-cost", None),
    "horizon_months": ("--horizon-months", "12"),
    "retrains_per_year": ("--retrains-per-year", "0"),
    "hosting_per_month": ("--hosting-per-month", "0"),
}


def fail(message: str) -> CommandError:
    return CommandError(message, returncode=2)


def number(flag: str, raw: object, *, positive: bool = False) -> float:
    """The option's value as a finite number >= 0 (> 0 when `positive`), or a CommandError naming it."""
    bound = "> 0" if positive else ">= 0"
    try:
        value = float(str(raw).replace(",", "").replace("_", "").strip().lstrip("$"))
    except ValueError:
        raise fail(f"{flag} {raw!r}: not a number (give a number {bound})") from None
    if not math.isfinite(value):
        raise fail(f"{flag} {raw!r}: must be a finite number {bound}")
    if value < 0 or (positive and value == 0):
        raise fail(f"{flag} {raw!r}: must be {bound}")
    return value


def usd(value: float | None) -> str:
    if value is None:
        return "unknown"
    sign = "-" if value < 0 else ""
    if value and abs(value) < 0.01:
        return f"{sign}${abs(value):.6g}"
    return f"{sign}${abs(value):,.2f}"


class Command(BaseCommand):
    help = (
        "Break-even of a fine-tuned model that saves prompt tokens on every request: the saving per "
        "request and per month, and the requests (and months, days) until its training cost is paid back."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--tokens-saved",
            required=True,
            metavar="N",
            help="prompt tokens the fine-tuned model saves per request",
        )
        parser.add_argument(
            "--requests-per-month", required=True, metavar="N", help="production requests a month"
        )
        parser.add_argument(
            "--price-per-1k-tokens", required=True, metavar="USD", help="USD per 1K input tokens"
        )
        parser.add_argument(
            "--training-cost", required=True, metavar="USD", help="one-time USD to train the model"
        )
        parser.add_argument(
            "--horizon-months", default="12", metavar="N", help="months to pay it back in (default 12)"
        )
        parser.add_argument(
            "--retrains-per-year",
            default="0",
            metavar="N",
            help="retrainings a year, each at the training cost",
        )
        parser.add_argument(
            "--hosting-per-month",
            default="0",
            metavar="USD",
            help="extra USD a month to host the fine-tuned model",
        )
        parser.add_argument("--json", action="store_true", help="print the calculation as one JSON object")

    def handle(self, *args, **opts):
        values = {}
        for name, (flag, default) in NUMBERS.items():
            raw = opts.get(name, default)
            if raw is None:
                raise fail(f"{flag} is required")
            values[name] = number(flag, raw, positive=name == "horizon_months")
        try:
            result = calculator(**values)
        except ValueError as exc:  # the calculator's own checks (kept in case they grow)
            raise fail(str(exc)) from None
        if opts["json"]:
            self.stdout.write(json.dumps(json_ready(result), allow_nan=False))
            return
        for line in report(result):
            self.stdout.write(line)


def report(r: dict) -> list[str]:
    """The calculation in a few lines."""
    horizon = f"{r['horizon_months']:g}-month horizon"
    fixed = f"training {usd(r['training_cost'])}"
    if r["retrains"]:
        fixed += f" + {r['retrains']} retraining(s) x {usd(r['retraining_cost'])}"
    if r["hosting_per_month"]:
        fixed += f" + hosting {usd(r['hosting_per_month'])} a month x {r['horizon_months']:g}"
    lines = [
        f"saving per request:  {usd(r['saving_per_request'])} "
        f"({r['tokens_saved']:,g} tokens at {usd(r['price_per_1k_tokens'])} per 1K)",
        f"monthly saving:      {usd(r['monthly_saving'])} at {r['requests_per_month']:,.0f} requests a month",
        f"fixed costs:         {usd(r['fixed_costs'])} ({fixed})",
    ]
    if r["break_even_requests"] is None:
        lines.append("break-even:          never")
    elif r["break_even_months"] is None:
        lines.append(
            f"break-even:          {r['break_even_requests']:,.0f} requests (no volume: never reached)"
        )
    else:
        lines.append(
            f"break-even:          {r['break_even_requests']:,.0f} requests, "
            f"{r['break_even_months']:,.2f} months ({r['break_even_days']:,.1f} days)"
        )
    lines.append(
        f"pays back within the {horizon}: {'yes' if r['pays_back_within_horizon'] else 'no'} "
        f"(net saving over the horizon {usd(r['net_saving_over_horizon'])})"
    )
    lines.append(r["reason"])
    return lines
