"""Move the capture proxy's spool into the database now (docs/capture.md), then apply retention."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from evaluations.services.spool import spool_connect, spool_count
from evaluations.services.traffic import traffic_drain, traffic_prune


class Command(BaseCommand):
    help = (
        "Write the calls the capture proxy spooled on this host into the database (each once), delete "
        "captured calls older than FTVP_TRAFFIC_RETENTION_DAYS, and print what was done. The proxy drains "
        "by itself; this is for a proxy that is stopped, or a spool copied from another host (--spool)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--spool", metavar="FILE", help="a spool file (default: FTVP_SPOOL_DIR's)")

    def handle(self, *args, **opts):
        conn = spool_connect(opts.get("spool") or None)
        moved = 0
        try:
            while batch := traffic_drain(conn=conn):
                moved += batch
            left = spool_count(conn)
        except Exception as exc:
            raise CommandError(f"{moved} calls written, then the database failed: {exc}") from exc
        finally:
            conn.close()
        pruned = traffic_prune()
        self.stdout.write(
            f"{moved} spooled calls written to the database, {left} left; {pruned} old calls deleted"
        )
