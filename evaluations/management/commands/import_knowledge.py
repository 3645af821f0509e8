from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from evaluations.importers import SourceFile, SuiteFormatError
from evaluations.importers.knowledge import KNOWLEDGE_SUFFIXES
from evaluations.importers.sources import upload_size_check
from evaluations.models import Suite
from evaluations.selectors.knowledge import knowledge_totals
from evaluations.services.knowledge import knowledge_import


class Command(BaseCommand):
    help = (
        "Add knowledge documents (what the rag strategies retrieve from) to a suite as its next version, "
        "with the latest version's cases: .txt and .md files (one document each), .jsonl (one "
        '{"id", "text", "title"} per line), .csv (columns id, text, title), a zip of them, or folders '
        "holding them. All or nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", metavar="path", help="knowledge files, or folders of them")
        parser.add_argument("--suite", required=True, help="the suite's name")
        parser.add_argument(
            "--replace",
            action="store_true",
            help="the new version's documents are these only (default: added to the latest version's, a "
            "document with an existing id replacing it)",
        )

    def handle(self, *args, **opts):
        suite = Suite.objects.filter(name=opts["suite"]).first()
        if suite is None:
            raise CommandError(
                f"nothing imported: no suite named {opts['suite']!r}; import its cases first (import_suite)",
                returncode=2,
            )
        paths = _files(opts["paths"])
        try:
            # The sizes on disk first: a huge file is refused before it is read into memory.
            upload_size_check(
                [(name, p.stat().st_size) for name, p in paths], limit=settings.FTVP_MAX_UPLOAD_BYTES
            )
            files = [SourceFile(name, p.read_bytes()) for name, p in paths]
            version = knowledge_import(suite=suite, files=files, replace=opts["replace"])
        except SuiteFormatError as exc:
            raise CommandError(f"nothing imported: {exc}", returncode=2) from None
        totals = knowledge_totals(version)
        self.stdout.write(
            f"imported {version}: {totals['documents']} documents, {totals['chunks']} chunks "
            f"({version.cases.count()} cases of v{version.number - 1} kept)"
        )
        for note in version.notes:
            self.stdout.write(f"note: {note}")


def _files(raw_paths: list[str]) -> list[tuple[str, Path]]:
    """(name, path) of every file given: a file as it is (its name), a folder's knowledge files (and
    zips) at any depth, named by their path inside it; hidden files skipped."""
    out: list[tuple[str, Path]] = []
    for raw in raw_paths:
        path = Path(raw)
        if path.is_file():
            out.append((path.name, path))
        elif path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in (*KNOWLEDGE_SUFFIXES, ".zip")
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                raise CommandError(
                    f"nothing imported: {path} holds no knowledge file ({', '.join(KNOWLEDGE_SUFFIXES)})",
                    returncode=2,
                )
            out += [(p.relative_to(path).as_posix(), p) for p in found]
        else:
            raise CommandError(f"nothing imported: {path}: no such file or folder", returncode=2)
    return out
