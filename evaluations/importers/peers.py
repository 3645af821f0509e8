"""Suites written for other tools: DeepEval goldens and Langfuse dataset items (JSON arrays), the
OpenAI evals registry YAML, and ftvp's own YAML.

JSON Lines and CSV files of those tools (OpenAI evals samples and few-shot files, OpenAI chat
fine-tuning files, Langfuse items exported as JSON Lines, DeepEval's CSV) are read by the JSON Lines
and CSV readers, which know their field names (``ideal``, ``sample``, ``messages``,
``expected_output``, ``expectedOutput``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from .base import (
    JSONTooDeep,
    SourceFile,
    SuiteExtras,
    SuiteFormatError,
    SuiteReader,
    decode_utf8,
    json_problem,
    json_type,
    load_yaml,
    loads_json,
)
from .jsonl_format import _add_object, read_jsonl

# DeepEval golden fields kept in metadata (the rest of a golden is kept there too).
DEEPEVAL_FIELDS = (
    "context",
    "retrieval_context",
    "actual_output",
    "additional_metadata",
    "comments",
    "source_file",
)


def load_json(source: SourceFile, *, holds: str = "a JSON list of cases") -> Any:
    """Parse a JSON file (UTF-8); SuiteFormatError with the line and column, or for deep nesting.
    `holds`: what the file should hold, for the sentence when it is empty."""
    text = decode_utf8(source)
    if not text.strip():
        raise SuiteFormatError(source.name, f"is empty; it should hold {holds}")
    try:
        return loads_json(text)
    except json.JSONDecodeError as exc:
        line = None if isinstance(exc, JSONTooDeep) else exc.lineno
        raise SuiteFormatError(
            source.name, json_problem(exc, "fix it and upload the file again"), line
        ) from None


def read_json_cases(source: SourceFile, reader: SuiteReader) -> None:
    """A JSON array of case objects: DeepEval goldens, Langfuse dataset items, or ftvp cases.

    ``{"goldens": [...]}`` / ``{"items": [...]}`` / ``{"cases": [...]}`` wrappers are accepted too. The
    "line" of a case is its position in the array (1-based)."""
    data = load_json(source)
    if isinstance(data, dict):
        for wrapper in ("goldens", "items", "cases", "data"):
            if isinstance(data.get(wrapper), list):
                data = data[wrapper]
                break
    if not isinstance(data, list):
        raise SuiteFormatError(
            source.name, f"is a JSON {json_type(data)}; it should be a list of case objects"
        )
    for index, obj in enumerate(data, start=1):
        reader.count_record(index)
        if not isinstance(obj, dict):
            reader.error(index, None, f"item {index} is a JSON {json_type(obj)}, not an object")
            continue
        if reader.numbers_check(index, obj):  # before structured inputs are written out as text
            continue
        _add_object(reader, index, _normalise_peer_object(obj))


def _normalise_peer_object(obj: dict[str, Any]) -> dict[str, Any]:
    """DeepEval / Langfuse field shapes onto ftvp's: structured inputs as text, their metadata kept."""
    obj = dict(obj)
    if "input" in obj and not isinstance(obj["input"], str | list) and obj["input"] is not None:
        obj["input"] = json.dumps(obj["input"], ensure_ascii=False, sort_keys=True)
    for name in ("expected_output", "expectedOutput"):
        value = obj.get(name)
        if value is not None and not isinstance(value, str | list):
            obj[name] = json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(obj.get("metadata"), dict) is False and obj.get("metadata") is not None:
        obj["metadata"] = {"value": obj["metadata"]}
    return obj


def looks_like_openai_evals_registry(data: object) -> bool:
    return isinstance(data, dict) and any(
        isinstance(v, dict) and ("class" in v or "id" in v) and ("args" in v or "id" in v)
        for v in data.values()
    )


def read_openai_evals_registry(
    entry: SourceFile, files: Mapping[str, SourceFile], reader: SuiteReader
) -> SuiteExtras:
    """An OpenAI evals registry YAML: its samples file becomes the test split, its few-shot file the
    train split (the few-shot pool). Both must be uploaded with it."""
    data = load_yaml(entry)
    if not looks_like_openai_evals_registry(data):
        raise SuiteFormatError(
            entry.name, "is not an OpenAI evals registry file (no eval with 'class' and 'args')"
        )
    extras = SuiteExtras()
    specs = [
        (name, spec)
        for name, spec in data.items()
        if isinstance(spec, dict) and isinstance(spec.get("args"), dict)
    ]
    if not specs:
        raise SuiteFormatError(entry.name, "names no eval with 'args' (samples_jsonl)", field="args")
    name, spec = specs[0]
    if len(specs) > 1:
        extras.notes.append(f"{entry.name} defines {len(specs)} evals; imported the first, {name!r}")
    args = spec["args"]
    samples = args.get("samples_jsonl")
    if not isinstance(samples, str):
        raise SuiteFormatError(
            entry.name, "has no samples_jsonl to import", field=f"{name}.args.samples_jsonl"
        )
    _read_referenced(entry, files, samples, f"{name}.args.samples_jsonl", reader, split="test")
    few_shot = args.get("few_shot_jsonl")
    if isinstance(few_shot, str):
        _read_referenced(entry, files, few_shot, f"{name}.args.few_shot_jsonl", reader, split="train")
    if spec.get("class"):
        extras.notes.append(
            f"eval class {spec['class']}: scored here with ftvp's assertions for the task type"
        )
    return extras


def _read_referenced(
    entry: SourceFile,
    files: Mapping[str, SourceFile],
    path: str,
    field: str,
    reader: SuiteReader,
    *,
    split: str,
) -> None:
    source = find_file(files, path, relative_to=entry.name)
    if source is None:
        raise SuiteFormatError(
            entry.name,
            f"refers to {path!r}, which was not uploaded; upload it together with {entry.name}",
            field=field,
        )
    first = len(reader.cases)
    entry_file, reader.file, reader.key_prefix = reader.file, source.name, f"{split}-"
    try:
        read_jsonl(source.open(), reader)
    finally:
        reader.file, reader.key_prefix = entry_file, ""
    for case in reader.cases[first:]:
        case["split"] = split  # type: ignore[typeddict-item]
        case["metadata"] = {**case["metadata"], "source_file": source.name}


def find_file(files: Mapping[str, SourceFile], path: str, *, relative_to: str = "") -> SourceFile | None:
    """An uploaded file by a path a config wrote: relative to the config, as given, or by its name."""
    path = path.removeprefix("file://")
    base = PurePosixPath(relative_to).parent
    for candidate in (str(base / path), path, PurePosixPath(path).name):
        normal = str(PurePosixPath(candidate))
        if normal in files:
            return files[normal]
    by_name = [f for name, f in files.items() if PurePosixPath(name).name == PurePosixPath(path).name]
    return by_name[0] if len(by_name) == 1 else None


def looks_like_ftvp_yaml(data: object) -> bool:
    return isinstance(data, dict) and isinstance(data.get("cases"), list)


def read_ftvp_yaml(entry: SourceFile, reader: SuiteReader) -> SuiteExtras:
    """ftvp's own YAML: ``cases`` (objects with the JSON Lines fields), optional ``default_assertions``
    (checked on every case) and ``description``."""
    data = load_yaml(entry)
    if not looks_like_ftvp_yaml(data):
        raise SuiteFormatError(entry.name, "has no 'cases' list", field="cases")
    reader.has_default_assertions = bool(data.get("default_assertions"))
    for index, obj in enumerate(data["cases"], start=1):
        reader.count_record(index)
        if not isinstance(obj, dict):
            reader.error(index, f"cases[{index - 1}]", f"is a {json_type(obj)}, not an object")
            continue
        _add_object(reader, index, obj)
    extras = SuiteExtras()
    defaults = data.get("default_assertions") or []
    if not isinstance(defaults, list):
        raise SuiteFormatError(entry.name, "must be a list of assertions", field="default_assertions")
    extras.default_assertions = list(defaults)
    return extras
