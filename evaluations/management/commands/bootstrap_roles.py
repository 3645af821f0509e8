"""Create the role groups (viewer, editor, reviewer, approver, admin) with their permissions."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from evaluations.roles import ROLE_NAMES, roles_bootstrap


class Command(BaseCommand):
    help = (
        "Create the role groups and set their permissions to what ftvp's roles allow (idempotent; "
        "`migrate` does it too). With --user NAME --role ROLE, also give a user a role."
    )

    def add_arguments(self, parser):
        parser.add_argument("--user", help="a username to give a role to")
        parser.add_argument("--role", action="append", choices=ROLE_NAMES, help="a role (repeatable)")

    def handle(self, *args, **opts):
        if bool(opts["user"]) != bool(opts["role"]):
            raise CommandError("give --user and --role together (e.g. --user alice --role editor)")
        with transaction.atomic():
            counts = roles_bootstrap()
            for role in ROLE_NAMES:
                self.stdout.write(f"{role:9} {counts[role]} permissions")
            if opts["user"]:
                from django.contrib.auth.models import Group

                user = get_user_model().objects.filter(username=opts["user"]).first()
                if user is None:
                    raise CommandError(
                        f"no user {opts['user']!r}: create it first (manage.py createsuperuser)"
                    )
                user.groups.add(*Group.objects.filter(name__in=opts["role"]))
                self.stdout.write(f"{user.get_username()} now has: {', '.join(opts['role'])}")
