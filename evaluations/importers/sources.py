"""One upload, any format: the files (several, or a zip), which format they are in, and the cases.

    result = read_sources([SourceFile("promptfooconfig.yaml", data), SourceFile("tests.csv", data2)])
    result.cases, result.format, result.extras.prompts

The format is detected from the files (their extension and what they hold) unless given. Nothing is
written anywhere: a problem raises SuiteFormatError / SuiteValidationError naming file, line and field.
"""

from __future__ import annotations

import io
import json
import random
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from evaluations.scoring.assertions import validate_assertion

from .base import (
    DEFAULT_MAX_ERRORS,
    CaseDict,
    SourceFile,
    SuiteExtras,
    SuiteFormatError,
    SuiteReader,
    SuiteValidationError,
    TooManyErrors,
    load_yaml,
    loads_json,
    upload_size_check,
)
from .csv_format import read_csv
from .jsonl_format import read_jsonl
from .knowledge import KnowledgeDocument, is_knowledge_path, read_knowledge
from .openai_evals_platform import looks_like_eval_definition, read_eval_definition
from .peers import (
    looks_like_ftvp_yaml,
    looks_like_openai_evals_registry,
    read_ftvp_yaml,
    read_json_cases,
    read_openai_evals_registry,
)
from .promptfoo import looks_like_promptfoo_csv, looks_like_promptfoo_jsonl

FORMAT_CHOICES = (
    ("", "detect from the file"),
    ("csv", "ftvp CSV"),
    ("jsonl", "ftvp JSON Lines"),
    ("yaml", "ftvp YAML"),
    ("json", "JSON list of cases"),
    ("promptfoo", "promptfoo (config, test CSV/JSONL/YAML)"),
    ("openai-evals", "OpenAI evals (samples JSONL or registry YAML)"),
    ("openai-chat", "OpenAI chat fine-tuning JSONL"),
    ("openai-evals-platform", "OpenAI Evals platform (eval definition JSON with its items JSONL)"),
    ("deepeval", "DeepEval goldens (JSON or CSV)"),
    ("langfuse", "Langfuse dataset items (JSON or JSON Lines)"),
)
FORMATS = tuple(value for value, _ in FORMAT_CHOICES if value)
CONFIG_SUFFIXES = (".yaml", ".yml")
MAX_ZIP_MEMBERS = 2000


@dataclass
class ImportResult:
    cases: list[CaseDict]
    format: str
    extras: SuiteExtras = field(default_factory=SuiteExtras)
    files: list[str] = field(default_factory=list)
    # The documents of a `knowledge/` folder in the upload (a zip); None when it had none.
    knowledge: list[KnowledgeDocument] | None = None


def read_sources(
    files: list[SourceFile],
    *,
    fmt: str | None = None,
    test_fraction: float | None = None,
    seed: int = 0,
    max_errors: int = DEFAULT_MAX_ERRORS,
    max_bytes: int = 200 * 1024 * 1024,
    input_field: str | None = None,
) -> ImportResult:
    """Read an upload of one or more files (zips are opened) into validated cases; the files of a
    `knowledge/` folder in a zip are the version's knowledge documents (`result.knowledge`), not cases.
    `input_field` names the item field that is the prompt (OpenAI Evals platform definitions)."""
    if fmt and fmt not in FORMATS:
        raise SuiteFormatError("--format", f"{fmt!r} is not a format; use one of: {', '.join(FORMATS)}")
    if test_fraction is not None and not 0 < test_fraction < 1:
        raise SuiteFormatError("--test-fraction", f"{test_fraction} must be between 0 and 1 (e.g. 0.2)")
    files, knowledge_files = _knowledge_apart(_expand(files, max_bytes=max_bytes))
    if not files:
        if knowledge_files:
            raise SuiteFormatError(
                "upload",
                "holds only knowledge/ files; put the suite's cases file next to the knowledge folder, or "
                "add documents to an existing suite with its Knowledge upload (or import_knowledge)",
            )
        raise SuiteFormatError("upload", "holds no file; upload a suite file")
    by_name = {str(PurePosixPath(f.name)): f for f in files}
    entry, kind = _entry(files, fmt)
    reader = SuiteReader(entry.name, max_errors=max_errors)
    try:
        if kind == "openai-evals-platform":
            extras = read_eval_definition(entry, by_name, reader, input_field=input_field)
        else:
            extras = READERS[kind](entry, by_name, reader) or SuiteExtras()
        for index, assertion in enumerate(extras.default_assertions):
            if reader.numbers_check(None, assertion, f"default assertions[{index}]"):
                continue
            problem = validate_assertion(assertion)
            if problem:
                reader.error(None, f"default assertions[{index}]", problem)
        for case in reader.cases:  # the readers check every raw value; this keeps a slip from the database
            reader.numbers_check(case["line"], {k: v for k, v in case.items() if k != "line"})
    except TooManyErrors:
        raise SuiteValidationError(entry.name, reader.errors, truncated=True) from None
    if reader.errors:
        raise SuiteValidationError(entry.name, reader.errors)
    if not reader.cases:
        raise SuiteFormatError(entry.name, "holds no case; write one case per record (input and expected)")
    extras.notes = [*reader.notes, *extras.notes]
    cases = reader.cases
    if test_fraction is not None:
        _split(cases, test_fraction, seed)
    knowledge = read_knowledge(knowledge_files, max_bytes=max_bytes) if knowledge_files else None
    return ImportResult(
        cases=cases, format=kind, extras=extras, files=[f.name for f in files], knowledge=knowledge
    )


def read_knowledge_files(
    files: list[SourceFile], *, max_bytes: int = 200 * 1024 * 1024
) -> list[KnowledgeDocument]:
    """An upload of knowledge documents (txt, md, jsonl, csv; zips are opened): the checked documents
    with their chunks (see knowledge.py)."""
    uploaded = {f.name for f in files}
    expanded = [f for f in _expand(files, max_bytes=max_bytes) if f.name in uploaded or not _hidden(f.name)]
    return read_knowledge(expanded, max_bytes=max_bytes)


def _hidden(name: str) -> bool:
    """A file the system put in a zip, not its author: `.DS_Store`, `._refunds.md`."""
    return PurePosixPath(name).name.startswith(".")


def _knowledge_apart(files: list[SourceFile]) -> tuple[list[SourceFile], list[SourceFile]]:
    """The upload's suite files, and those of its `knowledge/` folder (hidden files there dropped)."""
    knowledge = [f for f in files if is_knowledge_path(f.name)]
    if not knowledge:
        return files, []
    return [f for f in files if not is_knowledge_path(f.name)], [f for f in knowledge if not _hidden(f.name)]


def _split(cases: list[CaseDict], fraction: float, seed: int) -> None:
    """Seeded split: round(n x fraction) cases (at least one) become the test split, the rest train."""
    order = list(range(len(cases)))
    random.Random(seed).shuffle(order)
    n_test = max(1, round(len(cases) * fraction))
    test = set(order[:n_test])
    for i, case in enumerate(cases):
        case["split"] = "test" if i in test else "train"  # type: ignore[typeddict-item]


# Said when a request is refused before its body (and so the files' names) is read.
TOO_LARGE = (
    "the upload is larger than the limit of {limit:,} bytes (FTVP_MAX_UPLOAD_BYTES); split the suite "
    "into smaller uploads, or ask an admin to raise the limit"
)


def _expand(files: list[SourceFile], *, max_bytes: int) -> list[SourceFile]:
    """Zip members become files of their own (paths kept); limits guard against zip bombs."""
    upload_size_check([(f.name, len(f.data)) for f in files], limit=max_bytes)
    out: list[SourceFile] = []
    total = 0
    for f in files:
        if not f.name.lower().endswith(".zip"):
            out.append(f)
            total += len(f.data)
            continue
        try:
            archive = zipfile.ZipFile(io.BytesIO(f.data))
        except zipfile.BadZipFile:
            raise SuiteFormatError(f.name, "is not a valid zip file") from None
        members = [m for m in archive.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX/")]
        if len(members) > MAX_ZIP_MEMBERS:
            raise SuiteFormatError(f.name, f"holds {len(members):,} files; the limit is {MAX_ZIP_MEMBERS:,}")
        for member in members:
            name = member.filename
            if member.flag_bits & 0x1:
                raise SuiteFormatError(f.name, f"{name} is encrypted; upload an unencrypted zip")
            if name.lower().endswith(".zip"):
                raise SuiteFormatError(f.name, f"{name} is a zip inside the zip; unpack it first")
            if PurePosixPath(name).is_absolute() or ".." in PurePosixPath(name).parts:
                raise SuiteFormatError(f.name, f"{name!r} is not a relative path inside the archive")
            if total + member.file_size > max_bytes:
                raise SuiteFormatError(
                    f.name,
                    f"unpacks to more than {max_bytes:,} bytes (FTVP_MAX_UPLOAD_BYTES); upload less at once",
                )
            try:
                with archive.open(member) as fh:
                    data = fh.read(max_bytes - total + 1)  # the header's size may lie: read no more
            except (zipfile.BadZipFile, zlib.error, NotImplementedError, EOFError, OSError) as exc:
                raise SuiteFormatError(f.name, f"{name} cannot be unpacked ({exc}); zip it again") from None
            total += len(data)
            if total > max_bytes:
                raise SuiteFormatError(
                    f.name,
                    f"unpacks to more than {max_bytes:,} bytes (FTVP_MAX_UPLOAD_BYTES); upload less at once",
                )
            out.append(SourceFile(name, data))
    return out


def _suffix(name: str) -> str:
    return PurePosixPath(name).suffix.lower()


def _entry(files: list[SourceFile], fmt: str | None) -> tuple[SourceFile, str]:
    """The file to start from and the reader to use."""
    configs = [f for f in files if _suffix(f.name) in CONFIG_SUFFIXES]
    if len(files) == 1:
        entry = files[0]
    else:
        roots = [f for f in configs if _config_kind(f) in ("promptfoo", "openai-evals")]
        roots += [f for f in files if _suffix(f.name) == ".json" and _is_eval_definition(f)]
        if len(roots) > 1:  # e.g. a tests.yaml written as {tests: [...]}: the config is the one named so
            named = [f for f in roots if PurePosixPath(f.name).stem.startswith("promptfooconfig")]
            roots = named or roots
        if len(roots) != 1:
            names = ", ".join(f.name for f in files[:5])
            raise SuiteFormatError(
                names,
                "are several files but not one promptfoo config, OpenAI evals registry or OpenAI Evals "
                "definition that refers to the others; upload one suite file, or the config together with "
                "its files",
            )
        entry = roots[0]
    if entry.data == b"" or not entry.data.strip():
        raise SuiteFormatError(entry.name, "is empty (0 bytes of cases); upload the file with its cases")
    return entry, (_forced(entry, fmt) if fmt else _detect(entry))


def _config_kind(source: SourceFile) -> str | None:
    try:
        data = load_yaml(source)
    except SuiteFormatError:
        return None
    try:
        from .promptfoo import looks_like_promptfoo_config
    except ImportError:  # pragma: no cover - the module ships with ftvp
        looks_like_promptfoo_config = None
    if looks_like_promptfoo_config is not None and looks_like_promptfoo_config(data):
        return "promptfoo"
    if looks_like_openai_evals_registry(data):
        return "openai-evals"
    if looks_like_ftvp_yaml(data):
        return "yaml"
    if isinstance(data, list):
        return "promptfoo-tests"
    return None


def _is_eval_definition(source: SourceFile) -> bool:
    """An OpenAI Evals platform definition (the JSON GET /v1/evals/{id} returned)."""
    from .peers import load_json

    try:
        return looks_like_eval_definition(load_json(source))
    except SuiteFormatError:
        return False


def _first_object(source: SourceFile) -> dict | None:
    for raw in source.data.splitlines()[:50]:
        if raw.strip():
            try:
                obj = loads_json(raw.decode("utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
                return None
            return obj if isinstance(obj, dict) else None
    return None


def _csv_header(source: SourceFile) -> list[str]:
    import csv

    first = source.data.split(b"\n", 1)[0].decode("utf-8-sig", "replace")
    try:
        return [c.strip() for c in next(csv.reader([first]))]
    except (StopIteration, csv.Error):
        return []


def _detect(entry: SourceFile) -> str:
    suffix = _suffix(entry.name)
    if suffix in CONFIG_SUFFIXES:
        kind = _config_kind(entry)
        if kind is None:
            load_yaml(entry)  # a syntax error says where
            raise SuiteFormatError(
                entry.name,
                "is YAML but neither a promptfoo config (prompts/tests), an OpenAI evals registry, a list of "
                "promptfoo tests, nor an ftvp suite (cases:)",
            )
        return kind
    if suffix == ".json":
        from .peers import load_json

        data = load_json(entry)
        if looks_like_eval_definition(data):
            return "openai-evals-platform"
        items = data if isinstance(data, list) else []
        keys = {k for item in items[:20] if isinstance(item, dict) for k in item}
        if keys & {"expected_output", "actual_output", "retrieval_context", "context"}:
            return "deepeval"
        if "expectedOutput" in keys or "datasetId" in keys:
            return "langfuse"
        return "json"
    if suffix in (".jsonl", ".ndjson"):
        first = _first_object(entry) or {}
        if looks_like_promptfoo_jsonl(first):
            return "promptfoo-jsonl"
        if "messages" in first:
            return "openai-chat"
        if "sample" in first or "ideal" in first:
            return "openai-evals-jsonl"
        if "expectedOutput" in first:
            return "langfuse-jsonl"
        return "jsonl"
    if suffix == ".csv":
        if looks_like_promptfoo_csv(_csv_header(entry)):
            return "promptfoo-csv"
        return "csv"
    what = f"file type {suffix!r} is not supported" if suffix else "the file name has no extension"
    raise SuiteFormatError(
        entry.name,
        f"{what}; upload CSV, JSON Lines, JSON or YAML (promptfoo, OpenAI evals, DeepEval, Langfuse, ftvp), "
        "or a zip of them",
    )


def _forced(entry: SourceFile, fmt: str) -> str:
    suffix = _suffix(entry.name)
    if fmt == "promptfoo":
        if suffix in CONFIG_SUFFIXES:
            return "promptfoo" if _config_kind(entry) != "promptfoo-tests" else "promptfoo-tests"
        return "promptfoo-csv" if suffix == ".csv" else "promptfoo-jsonl"
    if fmt == "openai-evals":
        return "openai-evals" if suffix in CONFIG_SUFFIXES else "openai-evals-jsonl"
    if fmt in ("deepeval", "langfuse"):
        if suffix == ".csv":
            return "csv"
        return "json" if suffix == ".json" else "langfuse-jsonl"
    if fmt == "openai-chat":
        return "openai-chat"
    if fmt == "openai-evals-platform" and suffix != ".json":
        raise SuiteFormatError(
            entry.name,
            "is not the eval definition; the OpenAI Evals platform format starts from the eval's JSON "
            "(GET /v1/evals/{id}), uploaded with its items JSON Lines",
        )
    return fmt


def _jsonl(entry: SourceFile, files, reader: SuiteReader) -> SuiteExtras:
    read_jsonl(entry.open(), reader)
    return SuiteExtras()


def _csv(entry: SourceFile, files, reader: SuiteReader) -> SuiteExtras:
    read_csv(entry.open(), reader)
    return SuiteExtras()


def _peer_jsonl(entry: SourceFile, files, reader: SuiteReader) -> SuiteExtras:
    from .peers import _normalise_peer_object

    read_jsonl(entry.open(), reader, transform=_normalise_peer_object)
    return SuiteExtras()


def _json(entry: SourceFile, files, reader: SuiteReader) -> SuiteExtras:
    read_json_cases(entry, reader)
    return SuiteExtras()


def _yaml(entry: SourceFile, files, reader: SuiteReader) -> SuiteExtras:
    return read_ftvp_yaml(entry, reader)


def _promptfoo(entry: SourceFile, files, reader: SuiteReader) -> SuiteExtras:
    from .promptfoo import read_promptfoo_config

    return read_promptfoo_config(entry, files, reader)


def _promptfoo_tests(entry: SourceFile, files, reader: SuiteReader) -> SuiteExtras:
    from .promptfoo import read_promptfoo_config

    # A bare list of tests is a config with only `tests`.
    reference = json.dumps("file://" + PurePosixPath(entry.name).name)  # a JSON string is valid YAML
    wrapped = SourceFile(entry.name, b"tests: " + reference.encode())
    return read_promptfoo_config(wrapped, {**files, PurePosixPath(entry.name).name: entry}, reader)


def _promptfoo_csv(entry: SourceFile, files, reader: SuiteReader) -> SuiteExtras:
    from .promptfoo import read_promptfoo_tests_csv

    read_promptfoo_tests_csv(entry, reader)
    return SuiteExtras()


def _promptfoo_jsonl(entry: SourceFile, files, reader: SuiteReader) -> SuiteExtras:
    from .promptfoo import read_promptfoo_tests_jsonl

    read_promptfoo_tests_jsonl(entry, reader)
    return SuiteExtras()


def _openai_evals(entry: SourceFile, files, reader: SuiteReader) -> SuiteExtras:
    return read_openai_evals_registry(entry, files, reader)


READERS: dict[str, Callable[..., SuiteExtras]] = {
    "csv": _csv,
    "jsonl": _jsonl,
    "json": _json,
    "yaml": _yaml,
    "promptfoo": _promptfoo,
    "promptfoo-tests": _promptfoo_tests,
    "promptfoo-csv": _promptfoo_csv,
    "promptfoo-jsonl": _promptfoo_jsonl,
    "openai-evals": _openai_evals,
    "openai-evals-jsonl": _jsonl,
    "openai-chat": _jsonl,
    "langfuse-jsonl": _peer_jsonl,
    "deepeval": _json,
    "langfuse": _json,
    "openai-evals-platform": read_eval_definition,
}
