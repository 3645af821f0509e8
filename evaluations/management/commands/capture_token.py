"""Capture tokens from a shell: create (printed once), revoke, list (docs/traffic.md)."""

from __future__ import annotations

import json
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from evaluations.models import CaptureToken
from evaluations.selectors.traffic import capture_tokens
from evaluations.services.capture_tokens import CaptureTokenError, capture_token_create, capture_token_revoke


def _row(t: CaptureToken) -> dict:
    return {
        "id": t.pk,
        "name": t.name,
        "prefix": t.prefix,
        "endpoints": [e.name for e in t.endpoints.all()],
        "rate_per_minute": t.rate_per_minute,
        "tags": t.tags,
        "calls": t.call_count,
        "created_at": t.created_at.isoformat(),
        "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
        "expires_at": t.expires_at.isoformat() if t.expires_at else None,
        "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
    }


class Command(BaseCommand):
    help = (
        "Capture tokens of the proxy: `create --name APP --endpoint NAME [--endpoint ...]` prints the "
        "token once (only its hash is kept); `revoke ID|PREFIX`; `list [--json]`."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a token and print it once")
        create.add_argument("--name", required=True, help="the application, e.g. support-bot")
        create.add_argument(
            "--endpoint", action="append", required=True, help="an endpoint it may call (repeat)"
        )
        create.add_argument(
            "--rate", type=int, default=600, help="calls a minute (per proxy process); 0: no limit"
        )
        create.add_argument(
            "--tag", action="append", default=[], help="a tag its calls are recorded with (repeat)"
        )
        create.add_argument(
            "--expires-days", type=int, default=None, help="days until it expires (default: never)"
        )
        create.add_argument("--user", default=None, help="the username recorded as its creator")
        revoke = sub.add_parser("revoke", help="revoke a token for good")
        revoke.add_argument("token", help="its id, or its prefix (ftvpc_...)")
        listing = sub.add_parser("list", help="the tokens, newest first")
        listing.add_argument("--json", action="store_true", help="as one JSON list")

    def handle(self, *args, **opts):
        getattr(self, "_" + opts["action"])(opts)

    def _create(self, opts) -> None:
        user = None
        if opts["user"]:
            user = get_user_model().objects.filter(username=opts["user"]).first()
            if user is None:
                raise CommandError(f"--user {opts['user']!r}: no such user")
        days = opts["expires_days"]
        if days is not None and days < 1:
            raise CommandError("--expires-days: give a whole number of days, 1 or more")
        try:
            row, token = capture_token_create(
                name=opts["name"], endpoints=opts["endpoint"], rate_per_minute=opts["rate"], tags=opts["tag"],
                expires_at=timezone.now() + timedelta(days=days) if days else None, user=user,
            )  # fmt: skip
        except CaptureTokenError as exc:
            raise CommandError(str(exc)) from None
        scope = ", ".join(sorted(e.name for e in row.endpoints.all()))
        self.stderr.write(
            f"capture token {row.name!r} (#{row.pk}) for {scope}; it is shown once, store it now:"
        )
        self.stdout.write(token)

    def _revoke(self, opts) -> None:
        ref = opts["token"].strip()
        rows = CaptureToken.objects.filter(pk=int(ref)) if ref.isdigit() else CaptureToken.objects.filter(
            prefix__startswith=ref[:16]
        )  # fmt: skip
        found = list(rows[:2])
        if not found:
            raise CommandError(f"{ref!r}: no such capture token (`manage.py capture_token list` shows them)")
        if len(found) > 1:
            raise CommandError(f"{ref!r}: names several tokens; give the id")
        row = capture_token_revoke(token=found[0])
        self.stdout.write(f"revoked {row.name!r} ({row.prefix}…) at {row.revoked_at:%Y-%m-%d %H:%M} UTC")

    def _list(self, opts) -> None:
        rows = [_row(t) for t in capture_tokens()]
        if opts["json"]:
            self.stdout.write(json.dumps(rows))
            return
        if not rows:
            self.stdout.write("no capture tokens")
        for r in rows:
            state = "revoked" if r["revoked_at"] else "active"
            used = r["last_used_at"] or "never"
            self.stdout.write(
                f"#{r['id']} {r['name']} {r['prefix']}… [{state}] endpoints: {', '.join(r['endpoints'])}; "
                f"{r['calls']} calls, last used {used}"
            )
