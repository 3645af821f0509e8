from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from evaluations.importers import SuiteFormatError
from evaluations.models import TaskType
from evaluations.services.suites import suite_import


class Command(BaseCommand):
    help = "Import a CSV or JSONL test suite as a new version of the named suite (all cases or none)."

    def add_arguments(self, parser):
        parser.add_argument("path", help="the suite file (.csv, .jsonl)")
        parser.add_argument("--name", required=True, help="suite name; an existing suite gets a new version")
        parser.add_argument("--task-type", choices=TaskType.values, default=None)
        parser.add_argument("--quality-target", type=float, default=None, help="mean score goal, 0..1")
        parser.add_argument("--monthly-volume", type=int, default=None, help="production requests per month")

    def handle(self, *args, **opts):
        path = Path(opts["path"])
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        try:
            with path.open("rb") as fh:
                version = suite_import(
                    name=opts["name"],
                    fileobj=fh,
                    filename=path.name,
                    task_type=opts["task_type"],
                    quality_target=opts["quality_target"],
                    monthly_volume=opts["monthly_volume"],
                )
        except SuiteFormatError as exc:
            raise CommandError(f"nothing imported: {exc}", returncode=2) from None
        counts = {split: version.cases.filter(split=split).count() for split in ("test", "train")}
        self.stdout.write(
            f"imported {version} ({version.task_type}): "
            f"{counts['test']} test and {counts['train']} train cases"
        )
