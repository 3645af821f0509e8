"""Create an API token for a user and print it once (only its hash is stored)."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from evaluations.services.tokens import TokenError, api_token_create


class Command(BaseCommand):
    help = (
        "Create an API token for a user and print it (once: only its hash is kept). "
        "Send it as `Authorization: Bearer <token>`."
    )

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="the username the token acts as")
        parser.add_argument("--name", required=True, help="what the token is for, e.g. CI")
        parser.add_argument(
            "--expires-days", type=int, default=None, help="days until it expires (default: never)"
        )

    def handle(self, *args, **opts):
        user = get_user_model().objects.filter(username=opts["user"]).first()
        if user is None:
            raise CommandError(
                f"--user {opts['user']!r}: no such user (create one with `manage.py createsuperuser`)"
            )
        days = opts["expires_days"]
        if days is not None and days < 1:
            raise CommandError("--expires-days: give a whole number of days, 1 or more")
        try:
            row, token = api_token_create(
                user=user,
                name=opts["name"],
                expires_at=timezone.now() + timedelta(days=days) if days else None,
            )
        except TokenError as exc:
            raise CommandError(str(exc)) from None
        until = f"until {row.expires_at:%Y-%m-%d}" if row.expires_at else "no expiry"
        self.stderr.write(
            f"token {row.name!r} for {user.get_username()} ({until}); it is shown once, store it now:"
        )
        self.stdout.write(token)
