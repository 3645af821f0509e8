#!/usr/bin/env python3
"""CI check: every file of a folder of suites written for other tools imports through ftvp's importers.

    .venv/bin/python .ci/peer_formats.py [FOLDER]      (FOLDER: ../shared/fixtures/peer-formats)

Each file is imported as a suite of its own by ``suite_import`` (the service behind the upload page, the
API and ``manage.py import_suite``) into a throwaway SQLite database in a temporary FTVP_DATA_DIR:
DATABASE_URL and REDIS_URL are ignored, so the check never writes to a real database.

Files are named ``<origin>__<folder>__<file name>`` (as in tests/fixtures/peer-formats) and are uploaded
as ``<folder>/<file name>``, the layout their configs expect:

- a file that refers to others (a promptfoo config's prompts or tests, an OpenAI evals registry's
  samples) is imported together with them when the folder holds them; a file only read that way
  (prompts.txt) counts as imported with the file that read it;
- a promptfoo tests file that checks nothing by itself (its config's defaultTest does) is imported
  under a stand-in config holding one default assertion;
- a file that needs one the folder does not hold is reported "incomplete", not failed;
- documentation (``*.md``) and hidden files are skipped.

Exit status: 0 when every file imported (or is incomplete), 1 naming the files that failed, 2 when
the folder does not exist.
"""

from __future__ import annotations

import argparse
import json
import os
import posixpath
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FOLDER = ROOT.parent / "shared" / "fixtures" / "peer-formats"
SKIPPED_SUFFIXES = (".md",)
CONFIG_SUFFIXES = (".yaml", ".yml")
# The importers' wording for a referenced file that was not uploaded (promptfoo and OpenAI evals).
MISSING = re.compile(r"refers to '([^']+)'.*not uploaded")
# The promptfoo importer's wording for tests that rely on a config's defaultTest.assert.
CHECKS_NOTHING = ("has no __expected column", "checks nothing")
STAND_IN_NAME = "ftvp-ci-stand-in/promptfooconfig.yaml"
MAX_COMPANIONS = 50


@dataclass
class Outcome:
    file: str
    status: str  # "ok", "incomplete" or "failed"
    detail: str
    companions: list[str] = field(default_factory=list)


def upload_name(path: Path) -> str:
    """``promptfoo__help-desk__prompts.txt`` -> ``help-desk/prompts.txt``."""
    parts = path.name.split("__")
    return "/".join(parts[1:]) if len(parts) > 1 else path.name


def suite_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() not in SKIPPED_SUFFIXES
    )


def find_companion(by_upload: dict[str, Path], ref: str, *, relative_to: str) -> Path | None:
    """The folder's file a reference names, relative to the referring file or as written. Never by base
    name alone: the folder holds several examples, and another one's samples.jsonl is not this one's."""
    ref = ref.removeprefix("file://")
    for candidate in (posixpath.join(posixpath.dirname(relative_to), ref), ref):
        found = by_upload.get(posixpath.normpath(candidate))
        if found is not None:
            return found
    return None


def _stand_in_config(target: str) -> bytes:
    reference = json.dumps("file://../" + target)  # relative to ftvp-ci-stand-in/
    return (
        f"tests: {reference}\n"
        "defaultTest:\n"
        "  assert:\n"
        "    - type: llm-rubric\n"
        "      value: stand-in check (the folder holds no config for this file)\n"
    ).encode()


def import_file(path: Path, by_upload: dict[str, Path], suite_name: str) -> Outcome:
    """Import one file (with the companions it asks for) as a new suite; never raises."""
    from evaluations.importers import SourceFile, SuiteFormatError
    from evaluations.services.suites import suite_import

    entry = upload_name(path)
    files = {entry: SourceFile(entry, path.read_bytes())}
    companions: list[str] = []
    stand_in = False
    while True:
        try:
            version = suite_import(name=suite_name, files=list(files.values()))
        except SuiteFormatError as exc:
            message = str(exc)
            missing = MISSING.search(message)
            if missing:
                ref = missing.group(1)
                referrer = STAND_IN_NAME if stand_in else entry
                companion = find_companion(by_upload, ref, relative_to=referrer)
                if companion is None:
                    return Outcome(path.name, "incomplete", f"needs {ref}, which the folder does not hold")
                name = upload_name(companion)
                if name in files or len(companions) >= MAX_COMPANIONS:
                    return Outcome(path.name, "failed", message)
                files[name] = SourceFile(name, companion.read_bytes())
                companions.append(companion.name)
                continue
            if not stand_in and any(text in message for text in CHECKS_NOTHING):
                stand_in = True
                files[STAND_IN_NAME] = SourceFile(STAND_IN_NAME, _stand_in_config(entry))
                continue
            return Outcome(path.name, "failed", message)
        except Exception as exc:  # a crash in an importer is a failure of this file, not of the check
            return Outcome(path.name, "failed", f"{type(exc).__name__}: {exc}")
        counts = {split: version.cases.filter(split=split).count() for split in ("test", "train")}
        detail = f"{version.source_format}, {counts['test']} test and {counts['train']} train cases"
        if stand_in:
            detail += " (under a stand-in config: the folder holds none for it)"
        if companions:
            detail += f"; read with {', '.join(companions)}"
        return Outcome(path.name, "ok", detail, companions)


def check_folder(folder: Path) -> list[Outcome]:
    """Import every suite file of `folder` (Django set up, its database migrated) and say how each went."""
    paths = suite_files(folder)
    by_upload = {upload_name(p): p for p in paths}
    # Configs first: a file they read as a companion (prompts.txt) needs no import of its own.
    order = sorted(paths, key=lambda p: (p.suffix.lower() not in CONFIG_SUFFIXES, p.name))
    read_by: dict[str, str] = {}
    outcomes: dict[str, Outcome] = {}
    for number, path in enumerate(order, start=1):
        if path.name in read_by:
            outcomes[path.name] = Outcome(path.name, "ok", f"read with {read_by[path.name]}")
            continue
        outcome = import_file(path, by_upload, suite_name=f"peer-formats check {number}")
        if outcome.status == "ok":
            for name in outcome.companions:
                read_by.setdefault(name, path.name)
        outcomes[path.name] = outcome
    return [outcomes[p.name] for p in paths]


def _setup_django(data_dir: Path) -> None:
    """Django on a fresh SQLite database in `data_dir`, whatever the environment names."""
    for name in ("DATABASE_URL", "REDIS_URL", "FTVP_SQLITE_PATH", "FTVP_MEDIA_ROOT", "FTVP_STATIC_ROOT"):
        os.environ.pop(name, None)
    os.environ["FTVP_DATA_DIR"] = str(data_dir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "ftvp_site.settings"
    os.environ.setdefault("FTVP_LOG_LEVEL", "WARNING")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT_FOLDER)
    folder = parser.parse_args(argv).folder.resolve()
    if not folder.is_dir():
        print(f"peer formats: {folder} is not a folder", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="ftvp-peer-formats-") as data_dir:
        _setup_django(Path(data_dir))
        outcomes = check_folder(folder)
    print(f"peer formats: importing the files of {folder}")
    for outcome in outcomes:
        detail = outcome.detail.replace("\n", "\n" + " " * 13)  # a multi-line error stays under its file
        print(f"  {outcome.status:<10} {outcome.file}: {detail}")
    failed = [o.file for o in outcomes if o.status == "failed"]
    incomplete = sum(o.status == "incomplete" for o in outcomes)
    print(
        f"peer formats: {len(outcomes)} files, {len(outcomes) - len(failed) - incomplete} imported, "
        f"{incomplete} incomplete, {len(failed)} failed"
    )
    if not outcomes:
        print(f"peer formats: {folder} holds no suite file", file=sys.stderr)
        return 1
    if failed:
        print(f"peer formats: these files failed to import: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
