"""Check the audit log's hash chain; exit 1 and name the events when it was tampered with."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from evaluations.services.audit import audit_verify


class Command(BaseCommand):
    help = (
        "Recompute the audit log's hash chain. Exits 0 when every event is intact, 1 (naming the "
        "events) when a row was edited, removed or reordered."
    )

    def handle(self, *args, **opts):
        check = audit_verify()
        if check.ok:
            self.stdout.write(f"audit log intact: {check.checked} events, hash chain verified")
            return
        for problem in check.problems:
            self.stderr.write(problem)
        raise CommandError(
            f"audit log tampered with: {len(check.problems)} problem(s) in {check.checked} events"
        )
