from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from evaluations.importers import SourceFile, SuiteFormatError
from evaluations.importers.sources import FORMATS, upload_size_check
from evaluations.models import TaskType
from evaluations.services.suites import suite_import


class Command(BaseCommand):
    help = (
        "Import a test suite as a new version of the named suite (all cases or none): ftvp CSV/JSONL/YAML, "
        "promptfoo, OpenAI evals, OpenAI chat fine-tuning JSONL, DeepEval or Langfuse; the format is "
        "detected. Give a config with the files it refers to, or a zip."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", metavar="path", help="the suite file(s), or a zip")
        parser.add_argument("--format", default=None, choices=FORMATS, help="force a format")
        parser.add_argument(
            "--test-fraction",
            type=float,
            default=None,
            help="split the cases: this share is test, the rest train",
        )
        parser.add_argument("--seed", type=int, default=0, help="seed of that split")
        parser.add_argument("--name", required=True, help="suite name; an existing suite gets a new version")
        parser.add_argument("--task-type", choices=TaskType.values, default=None)
        parser.add_argument("--quality-target", type=float, default=None, help="mean score goal, 0..1")
        parser.add_argument("--monthly-volume", type=int, default=None, help="production requests per month")
        parser.add_argument(
            "--input-field", default=None,
            help="OpenAI Evals platform definitions: the item field that is the prompt (default: input, "
            "question, prompt or query, else the field the model graders read)",
        )  # fmt: skip

    def handle(self, *args, **opts):
        paths = []
        for raw in opts["paths"]:
            path = Path(raw)
            if not path.is_file():
                raise CommandError(f"{path}: no such file")
            paths.append(path)
        try:
            # The sizes on disk first: a huge file is refused before it is read into memory.
            sizes = [(p.name, p.stat().st_size) for p in paths]
            upload_size_check(sizes, limit=settings.FTVP_MAX_UPLOAD_BYTES)
            files = [SourceFile(p.name, p.read_bytes()) for p in paths]
            version = suite_import(
                name=opts["name"],
                files=files,
                fmt=opts["format"],
                test_fraction=opts["test_fraction"],
                seed=opts["seed"],
                task_type=opts["task_type"],
                quality_target=opts["quality_target"],
                monthly_volume=opts["monthly_volume"],
                input_field=opts["input_field"],
            )
        except SuiteFormatError as exc:
            raise CommandError(f"nothing imported: {exc}", returncode=2) from None
        for note in version.notes:
            self.stdout.write(f"note: {note}")
        counts = {split: version.cases.filter(split=split).count() for split in ("test", "train")}
        self.stdout.write(
            f"imported {version} ({version.task_type}, {version.source_format}): "
            f"{counts['test']} test and {counts['train']} train cases"
        )
