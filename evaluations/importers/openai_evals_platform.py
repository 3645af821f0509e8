"""OpenAI Evals platform definitions (the hosted Evals API, shut down 2026-11-30) as ftvp suites.

An eval definition is the JSON ``GET /v1/evals/{id}`` returned (``"object": "eval"``, ``name``,
``data_source_config``, ``testing_criteria``), uploaded with its items: JSON Lines files whose lines are
``{"item": {...}}`` (optionally with a ``"sample"``) or bare item objects, and/or a run's JSON whose
``data_source.source`` is ``{"type": "file_content", "content": [{"item": ...}, ...]}``.

What becomes what
-----------------
- Each item is one case. The whole item is kept in ``metadata.item`` (a given ``sample`` in
  ``metadata.sample``); an ``id`` field of the item is the case's key.
- The case's ``input`` is the item field named by ``input_field`` (the importer's option, or the eval's
  ``metadata.ftvp_input_field``); else the first of ``input``, ``question``, ``prompt``, ``query`` the
  items have; else the first item field a model grader's messages use; else the first text field that
  no grader uses as its reference. The rule picks one field for the whole suite.
- The case's ``expected`` is the item field the first ``string_check`` (eq, like, ilike) or
  ``text_similarity`` grader uses as its reference (``{{item.answer}}``), when there is one.
- Graders (``testing_criteria``) become assertions on every case, their templates (``{{item.x}}``)
  resolved with the case's item; ``metric`` is the grader's name:

  ======================================  ===============================================================
  string_check eq / ne / like / ilike     equals / not-equals / contains / icontains (the reference)
  text_similarity cosine                  similar, threshold = pass_threshold
  text_similarity fuzzy_match             levenshtein, at most round((1 - pass_threshold) x len(reference))
                                          edits
  text_similarity bleu, gleu, meteor,     bleu, gleu, meteor, rouge-n: kept, skipped when scoring
  rouge_1..5, rouge_l
  label_model                             llm-rubric: the grader's messages, the labels and the passing
                                          labels; the judge scores 1 for a passing label (threshold 0.5)
  score_model                             llm-rubric: the messages and the range; the judge's 0-1 score is
                                          the range rescaled, threshold = pass_threshold rescaled
  python                                  python: kept (the source), skipped (ftvp never runs uploaded code)
  any other grader, or a string check      openai-grader: kept (the grader as written), skipped
  that does not test the model's output
  ======================================  ===============================================================

Problems name the file, the line (of an items file; an item of a run's content by its position) and the
field (``testing_criteria[2].operation``, ``item.answer``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from .base import (
    SourceFile,
    SuiteExtras,
    SuiteFormatError,
    SuiteReader,
    json_problem,
    json_type,
    loads_json,
)
from .peers import load_json

FORMAT = "openai-evals-platform"
INPUT_FIELD_NAMES = ("input", "question", "prompt", "query")
INPUT_OPTION_KEY = "ftvp_input_field"  # in the eval's metadata
ITEM_SUFFIXES = (".jsonl", ".ndjson")
GRADER_TYPES = ("string_check", "text_similarity", "label_model", "score_model", "python")
STRING_OPERATIONS = {"eq": "equals", "ne": "not-equals", "like": "contains", "ilike": "icontains"}
SIMILARITY_METRICS = (
    "cosine", "fuzzy_match", "bleu", "gleu", "meteor",
    "rouge_1", "rouge_2", "rouge_3", "rouge_4", "rouge_5", "rouge_l",
)  # fmt: skip
SKIPPED_METRICS = {"bleu": "bleu", "gleu": "gleu", "meteor": "meteor"}  # rouge_* -> rouge-n
UNSUPPORTED = "openai-grader"  # an UNRUNNABLE assertion type: the grader is kept as written

_TEMPLATE = re.compile(r"\{\{\s*(item|sample)\.([A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*)\s*\}\}")
_OUTPUT_TEXT = re.compile(r"^\s*\{\{\s*sample\.output_text\s*\}\}\s*$")
_ANSWER = "[the answer to grade]"
_SAMPLE_TEXT = {
    "output_text": _ANSWER,
    "output_json": "[the answer to grade, as JSON]",
    "output_tools": "[the tool calls of the answer]",
}


def looks_like_eval_definition(data: object) -> bool:
    """An OpenAI Evals platform eval: ``"object": "eval"``, or testing criteria with a data source."""
    if not isinstance(data, dict):
        return False
    if data.get("object") == "eval":
        return True
    return isinstance(data.get("testing_criteria"), list) and "data_source_config" in data


def looks_like_run(data: object) -> bool:
    """A run (or run-create body) whose data source carries its items inline (``file_content``)."""
    if not isinstance(data, dict):
        return False
    source = data.get("data_source")
    source = source.get("source") if isinstance(source, dict) else None
    return isinstance(source, dict) and source.get("type") == "file_content"


def _load_json(source: SourceFile) -> Any:
    return load_json(source, holds="the eval's JSON")


# -- templates ---------------------------------------------------------------------------------------------


def _path_value(item: Mapping[str, Any], path: str) -> Any:
    node: Any = item
    for step in path.split("."):
        if isinstance(node, dict) and step in node:
            node = node[step]
        elif isinstance(node, list) and step.isdigit() and int(step) < len(node):
            node = node[int(step)]
        else:
            return _MISSING
    return node


_MISSING = object()


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def _item_fields(text: str) -> list[str]:
    return [path for namespace, path in _TEMPLATE.findall(text) if namespace == "item"]


def _only_item_field(text: str) -> str | None:
    """``answer`` when the template is exactly ``{{item.answer}}``."""
    match = _TEMPLATE.fullmatch(text.strip())
    return match.group(2) if match and match.group(1) == "item" else None


# -- graders -----------------------------------------------------------------------------------------------


@dataclass
class _Grader:
    """One testing criterion, checked once; ``build`` makes a case's assertion from its item."""

    index: int
    name: str
    kind: str  # what it maps to (for the notes)
    raw: dict[str, Any]
    assertion_type: str
    value: str = ""  # a template, resolved per case
    threshold: float | None = None
    fuzzy_ratio: float | None = None  # fuzzy_match: the pass threshold as a share of the reference
    reference_field: str | None = None  # the item field the grader compares with
    prompt_fields: list[str] = field(default_factory=list)  # item fields its messages use

    @property
    def where(self) -> str:
        return f"testing_criteria[{self.index}]"


class _Definition:
    """The eval's testing criteria read into graders; problems recorded on the reader."""

    def __init__(self, reader: SuiteReader, criteria: list[Any], notes: list[str]) -> None:
        self.reader = reader
        self.notes = notes
        self.graders: list[_Grader] = []
        for index, raw in enumerate(criteria):
            grader = self._grader(index, raw)
            if grader is not None:
                self.graders.append(grader)

    def _error(self, where: str, reason: str) -> None:
        self.reader.error(None, where, reason)

    def _text(self, raw: dict[str, Any], where: str, name: str) -> str | None:
        value = raw.get(name)
        if not isinstance(value, str) or not value.strip():
            shown = "missing" if value is None else f"a {json_type(value)}"
            self._error(f"{where}.{name}", f"is {shown}; give the template text, e.g. '{{{{item.answer}}}}'")
            return None
        return value

    def _number(self, raw: dict[str, Any], where: str, name: str, *, required: bool) -> float | None:
        value = raw.get(name)
        if value is None:
            if required:
                self._error(f"{where}.{name}", "is missing; give a number such as 0.8")
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            self._error(f"{where}.{name}", f"is a {json_type(value)}; give a number such as 0.8")
            return None
        return float(value)

    def _grader(self, index: int, raw: object) -> _Grader | None:
        where = f"testing_criteria[{index}]"
        if not isinstance(raw, dict):
            self._error(where, f"is a {json_type(raw)}; give a grader object with a 'type'")
            return None
        kind = raw.get("type")
        name = raw.get("name") if isinstance(raw.get("name"), str) and raw.get("name") else f"grader {index}"
        if kind == "string_check":
            return self._string_check(index, name, raw)
        if kind == "text_similarity":
            return self._text_similarity(index, name, raw)
        if kind in ("label_model", "score_model"):
            return self._model(index, name, raw)
        if kind == "python":
            source = raw.get("source")
            if not isinstance(source, str) or not source.strip():
                self._error(f"{where}.source", "is missing; give the grader's Python source")
                return None
            threshold = self._number(raw, where, "pass_threshold", required=False)
            self.notes.append(
                f"{where} {name!r} (python): ftvp never runs uploaded code; kept, and skipped when scoring"
            )
            return _Grader(index, name, "python", raw, "python", value=source, threshold=threshold)
        if not isinstance(kind, str) or not kind.strip():
            self._error(f"{where}.type", f"is missing; use one of: {', '.join(GRADER_TYPES)}")
            return None
        return self._unsupported(index, name, raw, f"the {kind!r} grader has no ftvp equivalent")

    def _unsupported(self, index: int, name: str, raw: dict[str, Any], why: str) -> _Grader:
        self.notes.append(f"testing_criteria[{index}] {name!r}: {why}; kept, and skipped when scoring")
        return _Grader(index, name, UNSUPPORTED, raw, UNSUPPORTED)

    def _sides(self, raw: dict[str, Any], where: str) -> tuple[str, str, bool] | None:
        """(the side compared with the output, its field name, whether the output is the input side)."""
        given = self._text(raw, where, "input"), self._text(raw, where, "reference")
        if given[0] is None or given[1] is None:
            return None
        text_input, reference = given
        if _OUTPUT_TEXT.match(text_input):
            return reference, "reference", True
        if _OUTPUT_TEXT.match(reference):
            return text_input, "input", False
        return None

    def _string_check(self, index: int, name: str, raw: dict[str, Any]) -> _Grader | None:
        where = f"testing_criteria[{index}]"
        operation = raw.get("operation")
        if operation not in STRING_OPERATIONS:
            self._error(f"{where}.operation", f"is {operation!r}; use one of: eq, ne, like, ilike")
            return None
        errors = len(self.reader.errors)
        sides = self._sides(raw, where)
        if len(self.reader.errors) > errors:
            return None
        if sides is None:
            return self._unsupported(
                index, name, raw, "the string check does not compare the answer ({{sample.output_text}})"
            )
        other, _side, output_is_input = sides
        if not output_is_input and operation in ("like", "ilike"):
            return self._unsupported(
                index,
                name,
                raw,
                f"'{operation}' looks for the answer inside the reference, which ftvp cannot",
            )
        return _Grader(
            index, name, f"string_check {operation}", raw, STRING_OPERATIONS[operation], value=other,
            reference_field=_only_item_field(other) if operation != "ne" else None,
        )  # fmt: skip

    def _text_similarity(self, index: int, name: str, raw: dict[str, Any]) -> _Grader | None:
        where = f"testing_criteria[{index}]"
        metric = raw.get("evaluation_metric")
        if metric not in SIMILARITY_METRICS:
            self._error(
                f"{where}.evaluation_metric", f"is {metric!r}; use one of: {', '.join(SIMILARITY_METRICS)}"
            )
            return None
        threshold = self._number(raw, where, "pass_threshold", required=True)
        if threshold is None:
            return None
        if not 0 <= threshold <= 1:
            self._error(f"{where}.pass_threshold", f"is {threshold:g}; give a number between 0 and 1")
            return None
        errors = len(self.reader.errors)
        sides = self._sides(raw, where)
        if len(self.reader.errors) > errors:
            return None
        if sides is None:
            return self._unsupported(
                index, name, raw, "the similarity does not compare the answer ({{sample.output_text}})"
            )
        other = sides[0]
        reference = _only_item_field(other)
        kind = f"text_similarity {metric}"
        if metric == "cosine":
            self.notes.append(
                f"{where} {name!r} (cosine): scored by ftvp's 'similar' (cosine similarity of ftvp's "
                "embeddings, not OpenAI's), so scores near the threshold may differ"
            )
            return _Grader(index, name, kind, raw, "similar", other, threshold, reference_field=reference)
        if metric == "fuzzy_match":
            self.notes.append(
                f"{where} {name!r} (fuzzy_match): scored by ftvp's 'levenshtein', passing within "
                f"round((1 - {threshold:g}) x the reference's length) edits"
            )
            return _Grader(
                index, name, kind, raw, "levenshtein", other, fuzzy_ratio=threshold, reference_field=reference
            )
        skipped = SKIPPED_METRICS.get(metric, "rouge-n")
        self.notes.append(
            f"{where} {name!r} ({metric}): ftvp has no {metric} scorer; kept, and skipped when scoring"
        )
        return _Grader(index, name, kind, raw, skipped, other, threshold, reference_field=reference)

    def _model(self, index: int, name: str, raw: dict[str, Any]) -> _Grader | None:
        where = f"testing_criteria[{index}]"
        kind = raw["type"]
        errors = len(self.reader.errors)
        messages = self._messages(raw.get("input"), f"{where}.input")
        if kind == "label_model":
            labels, passing = raw.get("labels"), raw.get("passing_labels")
            for key, value in (("labels", labels), ("passing_labels", passing)):
                if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
                    self._error(f"{where}.{key}", "must be a non-empty list of texts")
            if len(self.reader.errors) > errors:
                return None
            outside = [p for p in passing if p not in labels]  # type: ignore[union-attr]
            if outside:
                self._error(f"{where}.passing_labels", f"{outside[0]!r} is not one of the labels {labels}")
                return None
            rubric = (
                f"{messages}\n\nLabel the answer with exactly one of these labels: "
                f"{', '.join(repr(x) for x in labels)}. Score 1 when the label is one of the passing labels "
                f"({', '.join(repr(x) for x in passing)}), else 0."
            )
            threshold = 0.5
        else:
            low, high = 0.0, 1.0
            span = raw.get("range")
            if span is not None:
                numbers = span if isinstance(span, list) and len(span) == 2 else None
                if numbers is None or not all(
                    isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
                    for x in numbers
                ):
                    self._error(f"{where}.range", "must be two numbers [low, high], e.g. [1, 7]")
                    return None
                low, high = float(numbers[0]), float(numbers[1])
                if low >= high:
                    self._error(f"{where}.range", f"is [{low:g}, {high:g}]; give low below high")
                    return None
            passing = self._number(raw, where, "pass_threshold", required=False)
            if len(self.reader.errors) > errors:
                return None
            if passing is not None and not low <= passing <= high:
                self._error(
                    f"{where}.pass_threshold",
                    f"is {passing:g}; give a number within the range [{low:g}, {high:g}]",
                )
                return None
            threshold = 0.5 if passing is None else (passing - low) / (high - low)
            shown = "" if passing is None else f"; on that scale it passes at {passing:g} or more"
            rubric = (
                f"{messages}\n\nScore the answer as these instructions ask, on their scale from {low:g} to "
                f"{high:g}{shown}. Report the score rescaled to 0-1: (score - {low:g}) / {high - low:g}."
            )
        model = raw.get("model")
        self.notes.append(
            f"{where} {name!r} ({kind}): graded by ftvp's judge endpoint (FTVP_JUDGE_ENDPOINT) with an "
            f"llm-rubric{f', not by {model}' if isinstance(model, str) else ''}; skipped while no judge "
            "is configured"
        )
        return _Grader(
            index, name, kind, raw, "llm-rubric", rubric, threshold, prompt_fields=_item_fields(messages)
        )

    def _messages(self, raw: object, where: str) -> str:
        """The grader's messages as one text (``role: content`` paragraphs), templates left in."""
        if not isinstance(raw, list) or not raw:
            self._error(where, "must be a non-empty list of messages ({'role': ..., 'content': ...})")
            return ""
        parts = []
        for index, message in enumerate(raw):
            if not isinstance(message, dict):
                self._error(f"{where}[{index}]", f"is a {json_type(message)}; give a message object")
                continue
            text = self._content(message.get("content"), f"{where}[{index}].content")
            role = message.get("role") if isinstance(message.get("role"), str) else "user"
            parts.append(f"{role}: {text}")
        return "\n\n".join(parts)

    def _content(self, raw: object, where: str) -> str:
        if isinstance(raw, str):
            return raw
        if isinstance(raw, dict):
            if isinstance(raw.get("text"), str):
                return raw["text"]
            kind = raw.get("type") if isinstance(raw.get("type"), str) else "content"
            self.notes.append(f"{where}: the {kind} part is not imported (the judge reads text only)")
            return f"[{kind}]"
        if isinstance(raw, list) and raw:
            return "\n".join(self._content(part, f"{where}[{i}]") for i, part in enumerate(raw))
        self._error(where, f"is {'missing' if raw is None else f'a {json_type(raw)}'}; give the message text")
        return ""


def _resolve(template: str, item: Mapping[str, Any]) -> tuple[str, str | None]:
    """The template with ``{{item.x}}`` filled from the item (``{{sample.output_text}}`` and friends
    described); the first item field missing, if any."""
    missing: list[str] = []

    def fill(match: re.Match[str]) -> str:
        namespace, path = match.groups()
        if namespace == "sample":
            return _SAMPLE_TEXT.get(path, f"[sample.{path}]")
        value = _path_value(item, path)
        if value is _MISSING:
            missing.append(path)
            return match.group(0)
        return _as_text(value)

    return _TEMPLATE.sub(fill, template), (missing[0] if missing else None)


# -- reading -----------------------------------------------------------------------------------------------


@dataclass
class _Item:
    file: str
    line: int
    item: dict[str, Any]
    sample: Any = None


def read_eval_definition(
    entry: SourceFile, files: Mapping[str, SourceFile], reader: SuiteReader, *, input_field: str | None = None
) -> SuiteExtras:
    """An eval definition and its items (every JSON Lines file uploaded with it, and any run JSON with
    ``file_content`` items) into cases; notes say how each grader maps and which are skipped."""
    extras = SuiteExtras()
    data = _load_json(entry)
    if not looks_like_eval_definition(data):
        raise SuiteFormatError(
            entry.name, 'is not an OpenAI Evals definition (no "object": "eval" with testing_criteria)'
        )
    criteria = data.get("testing_criteria")
    if not isinstance(criteria, list) or not criteria:
        raise SuiteFormatError(
            entry.name, "has no testing criteria; give at least one grader", field="testing_criteria"
        )
    if reader.numbers_check(None, data):
        return extras
    definition = _Definition(reader, criteria, extras.notes)
    if reader.errors:
        return extras
    metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    if input_field is None and isinstance(metadata.get(INPUT_OPTION_KEY), str):
        input_field = metadata[INPUT_OPTION_KEY]
    items = _items(entry, files, reader, extras)
    if reader.errors:
        return extras
    if not items:
        raise SuiteFormatError(
            entry.name,
            'was uploaded without its items; upload the items JSON Lines file (one {"item": {...}} per '
            "line) with it, or a zip of both",
        )
    chosen = input_field or _input_field(data, definition, items)
    if chosen is None:
        raise SuiteFormatError(
            entry.name,
            "cannot tell which item field is the prompt; name it in the eval's metadata "
            f"({INPUT_OPTION_KEY!r}) or with the input field option",
            field="data_source_config",
        )
    extras.notes.insert(0, f"the input is the items' {chosen!r} field")
    expected_from = next(
        (g for g in definition.graders if g.reference_field and g.reference_field != chosen), None
    )
    several = len({i.file for i in items}) > 1
    with_vars = bool(extras.prompts)
    before = reader.file
    try:
        for record in items:
            reader.file = record.file
            reader.key_prefix = f"{PurePosixPath(record.file).stem}-" if several else ""
            _add_item(reader, record, chosen, expected_from, definition.graders, several, with_vars)
    finally:
        reader.file, reader.key_prefix = before, ""
    if isinstance(data.get("name"), str):
        extras.notes.append(f"imported from the OpenAI eval {data['name']!r}")
    return extras


def _items(
    entry: SourceFile, files: Mapping[str, SourceFile], reader: SuiteReader, extras: SuiteExtras
) -> list[_Item]:
    notes = extras.notes
    found: list[_Item] = []
    for name in sorted(files):
        source = files[name]
        if source is entry or name == entry.name:
            continue
        suffix = PurePosixPath(name).suffix.lower()
        before = reader.file
        reader.file = source.name
        try:
            if suffix in ITEM_SUFFIXES:
                found += _jsonl_items(source, reader)
            elif suffix == ".json" and looks_like_run(data := _load_json(source)):
                found += _run_items(source, data, reader)
                _run_prompt(source, data, extras)
            else:
                notes.append(
                    f"{name} was uploaded but is neither items JSON Lines nor a run with items: not imported"
                )
        finally:
            reader.file = before
    return found


def _record(reader: SuiteReader, line: int, obj: object, file: str) -> _Item | None:
    if not isinstance(obj, dict):
        reader.error(line, None, f'is a JSON {json_type(obj)}; write each item as {{"item": {{...}}}}')
        return None
    if reader.numbers_check(line, obj):
        return None
    if "item" in obj:
        item = obj["item"]
        if not isinstance(item, dict):
            reader.error(line, "item", f"is a {json_type(item)}; give the item's fields as an object")
            return None
        return _Item(file, line, item, obj.get("sample"))
    return _Item(file, line, obj)


def _jsonl_items(source: SourceFile, reader: SuiteReader) -> list[_Item]:
    from .jsonl_format import ONE_OBJECT_PER_LINE

    items: list[_Item] = []
    for line, text in enumerate(reader.text_lines(source.open()), start=1):
        if not text.strip():
            continue
        reader.count_record(line)
        try:
            obj = loads_json(text)
        except json.JSONDecodeError as exc:
            reader.error(line, None, json_problem(exc, ONE_OBJECT_PER_LINE))
            continue
        if (record := _record(reader, line, obj, source.name)) is not None:
            items.append(record)
    return items


def _run_items(source: SourceFile, data: dict[str, Any], reader: SuiteReader) -> list[_Item]:
    content = data["data_source"]["source"].get("content")
    if not isinstance(content, list):
        reader.error(None, "data_source.source.content", 'must be a list of {"item": {...}} objects')
        return []
    items: list[_Item] = []
    for position, obj in enumerate(content, start=1):
        reader.count_record(position)
        if (record := _record(reader, position, obj, source.name)) is not None:
            items.append(record)
    return items


def _run_prompt(source: SourceFile, data: dict[str, Any], extras: SuiteExtras) -> None:
    """A run's ``input_messages`` template becomes a prompt template (an ftvp `template` strategy):
    its messages' texts, ``{{item.x}}`` filled from the case's vars (``metadata.vars``)."""
    messages = data["data_source"].get("input_messages")
    template = messages.get("template") if isinstance(messages, dict) else None
    if not isinstance(template, list):
        return
    texts = []
    for message in template:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, dict):
            content = content.get("text")
        if isinstance(content, str) and content.strip():
            texts.append(content.strip())
    text = "\n\n".join(texts)
    if not text or any(p["template"] == text for p in extras.prompts):
        return
    name = (
        data.get("name")
        if isinstance(data.get("name"), str) and data.get("name")
        else PurePosixPath(source.name).stem
    )
    extras.prompts.append({"name": name, "template": text})
    extras.notes.append(
        f"{source.name}: the run's input messages are the prompt template {name!r} (one user message)"
    )


def _input_field(data: dict[str, Any], definition: _Definition, items: list[_Item]) -> str | None:
    """The rule of the module's docstring: a conventional name, a field the model graders' messages use,
    else the first text field no grader compares with."""
    config = data.get("data_source_config")
    schema = config.get("schema", config.get("item_schema")) if isinstance(config, dict) else None
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if isinstance(properties, dict) and isinstance(properties.get("item"), dict):
        properties = properties["item"].get("properties")  # include_sample_schema wraps the item
    names = list(properties) if isinstance(properties, dict) else list(items[0].item)
    for name in INPUT_FIELD_NAMES:
        if name in names:
            return name
    for grader in definition.graders:
        for name in grader.prompt_fields:
            if "." not in name:
                return name
    references = {g.reference_field for g in definition.graders}
    first = items[0].item
    for name in names:
        if name not in references and isinstance(first.get(name), str):
            return name
    return None


def _add_item(
    reader: SuiteReader,
    record: _Item,
    input_field: str,
    expected_from: _Grader | None,
    graders: list[_Grader],
    several: bool,
    with_vars: bool,
) -> None:
    item, line = record.item, record.line
    if input_field not in item:
        reader.error(line, f"item.{input_field}", "is missing; every item needs the prompt field")
        return
    expected = None
    if expected_from is not None and expected_from.reference_field is not None:
        value = _path_value(item, expected_from.reference_field)
        if value is not _MISSING and value is not None:
            expected = (
                value
                if isinstance(value, list) and all(isinstance(v, str) for v in value)
                else _as_text(value)
            )
    assertions = []
    for grader in graders:
        assertion = _assertion(reader, record, grader)
        if assertion is None:
            return
        assertions.append(assertion)
    metadata: dict[str, Any] = {"item": item}
    if record.sample is not None:
        metadata["sample"] = record.sample
    if several:
        metadata["source_file"] = record.file
    if with_vars:  # a run's prompt template reads {{item.x}} from them
        metadata["vars"] = {f"item.{name}": _as_text(value) for name, value in item.items()}
    key = item.get("id")
    reader.add_case(
        line,
        key=key if isinstance(key, str | int) and not isinstance(key, bool) else None,
        input=item[input_field],
        input_field=f"item.{input_field}",
        expected=expected,
        expected_field=f"item.{expected_from.reference_field}" if expected_from else "expected",
        assertions=assertions,
        metadata=metadata,
    )


def _assertion(reader: SuiteReader, record: _Item, grader: _Grader) -> dict[str, Any] | None:
    assertion: dict[str, Any] = {"type": grader.assertion_type}
    if grader.assertion_type == UNSUPPORTED:
        assertion["value"] = grader.raw
    elif grader.assertion_type == "python":
        assertion["value"] = grader.value
    else:
        value, missing = _resolve(grader.value, record.item)
        if missing is not None:
            reader.error(
                record.line, f"item.{missing}", f"is missing; {grader.where} {grader.name!r} uses it"
            )
            return None
        if not value.strip() and grader.assertion_type in ("contains", "icontains", "llm-rubric", "similar"):
            used = _item_fields(grader.value)
            where = f"item.{used[0]}" if used else f"{grader.where}.reference"
            reader.error(record.line, where, f"is empty; {grader.where} {grader.name!r} compares with it")
            return None
        assertion["value"] = value
        if grader.fuzzy_ratio is not None:
            assertion["threshold"] = float(round((1 - grader.fuzzy_ratio) * len(value)))
    if grader.threshold is not None:
        assertion["threshold"] = grader.threshold
    assertion["metric"] = grader.name
    return assertion
