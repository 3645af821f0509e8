"""Check the audit log's hash chain; exit 1 and name the events when it was tampered with."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from evaluations.services.audit import audit_verify


class Command(BaseCommand):
    help = (
        "Recompute the audit log's hash chain. Exits 0 when every event is intact (and prints the head "
        "to keep elsewhere), 1 (naming the events) when a row was edited, removed or reordered, or when "
        "--expect-head names a hash the intact chain does not contain."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--expect-head",
            metavar="HASH",
            help="a head hash printed by an earlier run and kept outside the database: fail unless the "
            "intact chain still contains the event with that hash (nothing up to it was rewritten)",
        )

    def handle(self, *args, **opts):
        expected = opts.get("expect_head")
        check = audit_verify(expect_head=expected)
        if check.ok:
            self.stdout.write(f"audit log intact: {check.checked} events, hash chain verified")
            self.stdout.write(f"head: event #{check.head_seq} {check.head_hash}")
            if expected:
                self.stdout.write(
                    f"the expected head {expected.strip().lower()} is event #{check.expected_seq}: "
                    "nothing up to it was rewritten"
                )
            self.stdout.write(
                "keep this hash elsewhere; verify_audit --expect-head HASH proves later that nothing was "
                "rewritten up to it"
            )
            return
        for problem in check.problems:
            self.stderr.write(problem)
        raise CommandError(
            f"audit log tampered with: {len(check.problems)} problem(s) in {check.checked} events"
        )
