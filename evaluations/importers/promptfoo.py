"""promptfoo suites: a ``promptfooconfig.yaml`` with the files it refers to, test CSVs and test JSONL.

What becomes what
-----------------
- Each promptfoo test is one case. ``metadata["vars"]`` holds all of its vars as strings (numbers and
  booleans as JSON writes them, objects as JSON; a list var expands into one case per value, as in
  promptfoo). The case's ``input`` is the value of the one var the prompts use, when they use exactly
  one; otherwise a ``name: value`` line per var (so a run without a prompt template still sends
  something readable); a test without vars takes the first prompt's text.
- ``assert`` -> ``assertions`` with ``type``, ``value``, ``threshold``, ``weight`` and ``metric`` kept as
  written (other fields such as ``transform`` or ``provider`` are left out, with a note). Types ftvp
  cannot run (``javascript``, ``python``...) are kept and reported as skipped; any other type ftvp
  does not know is an error. ``$ref: '#/...'`` (e.g. to ``assertionTemplates``) is resolved.
- The first ``equals`` assertion with a text value also becomes the case's ``expected`` output.
- ``description``, ``metadata`` (its ``tags`` become the case's tags), ``threshold``, ``options.prefix``
  / ``options.suffix`` and ``providerOutput`` go to the case's metadata (``description``, its own keys,
  ``threshold``, ``prefix``, ``suffix``, ``provider_output``); ftvp does not apply them.
- A case's ``line`` is the record's first line in a CSV or JSONL file, and the test's position (from 1)
  in a YAML list, where errors also name the field (``tests[2].assert[0]``). Errors found in a file a
  config refers to carry that file's name.
- ``defaultTest``: its ``vars``, ``metadata`` and ``threshold`` apply to every test (the test's own
  win); its ``assert`` become the suite's default assertions (``SuiteExtras.default_assertions``),
  checked on every case, so a test without assertions of its own is then valid.
- ``prompts`` become prompt templates (ftvp strategies): inline strings, ``{raw, label}`` / ``{id,
  label}`` objects, the legacy ``{path: label}`` mapping and ``file://`` files (globs too): a ``.txt``
  file holds several prompts separated by lines of ``---``, a ``.jsonl`` file one chat prompt per line,
  ``.json`` / ``.yaml`` / ``.md`` / ``.j2`` files one prompt each. Prompt functions (``.py``/``.js``) are
  not imported (noted).
- ``providers`` are not imported (noted: register them as endpoints).
- ``tests`` may be inline tests, a ``file://`` path (CSV, JSONL, YAML or JSON list; globs allowed) or a
  list mixing both; paths are relative to the config and looked up among the uploaded files (also by
  their base name). A missing file is an error that asks for it to be uploaded too. Test generators
  (``.py``/``.js``), spreadsheets and remote datasets are errors with what to do instead.

Test CSVs (``read_promptfoo_tests_csv``)
----------------------------------------
Every column not starting with ``__`` is a var (so is an unknown ``__name``, as in promptfoo). Special
columns: ``__expected`` / ``__expected1`` ... ``__expectedN`` (any column starting with ``__expected``),
``__description``, ``__metadata:<key>``, ``__metadata:<key>[]`` (a comma-separated list; ``\\,`` is a
literal comma; ``__metadata:tags[]`` gives the case's tags), ``__threshold`` (a number), ``__metric``
(the ``metric`` of the row's assertions), ``__prefix``, ``__suffix``, ``__providerOutput`` and
``__config:__expected<N>:threshold`` (the threshold of one assertion).

An ``__expected`` cell follows promptfoo's grammar (``src/csv.ts``, ``assertionFromString``):

- ``fn: <js>``, ``javascript: <js>``, ``eval: <js>`` and ``file://<x>.js`` (or .ts/.mjs/.cjs, with an
  optional ``:function``) -> ``javascript`` (kept, skipped when scoring);
- ``python: <code>`` and ``file://<x>.py`` -> ``python`` (kept, skipped);
- ``grade: <rubric>`` and ``llm-rubric: <rubric>`` -> ``llm-rubric``;
- ``[not-]<type>[(<threshold>)][: <value>]`` for any of promptfoo's assertion types, e.g.
  ``contains: Paris``, ``not-icontains: sorry``, ``similar(0.8): Hello there``, ``is-json``,
  ``levenshtein(3): Paris``. The ``contains-any`` / ``contains-all`` family splits its value on commas.
  As in promptfoo, ``similar`` without a threshold gets 0.8, and ``starts-with``, ``levenshtein``,
  ``cost``, ``latency`` and the model-graded types get 0.75; other types ignore a threshold;
- anything else (e.g. ``Paris``, or a misspelt ``contain: Paris``) is ``equals`` with the whole cell as
  its value, and sets the case's ``expected``.
"""

from __future__ import annotations

import csv
import fnmatch
import itertools
import json
import math
import posixpath
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from typing import Any

from evaluations.scoring.assertions import NOT_PREFIX, unrunnable_reason, validate_assertion

from .base import (
    MAX_FIELD_CHARS,
    MAX_YAML_BYTES,
    JSONTooDeep,
    SourceFile,
    SuiteExtras,
    SuiteFormatError,
    SuiteReader,
    _NoAliasLoader,
    json_problem,
    json_type,
    load_yaml,
    loads_json,
)
from .jsonl_format import ONE_OBJECT_PER_LINE

# promptfoo's assertion types (BaseAssertionTypesSchema), in its order: the CSV shorthand recognises
# exactly these, and the order decides how ``similar:cosine`` style names match (as in promptfoo).
PROMPTFOO_TYPES = (
    "answer-relevance", "bleu", "classifier", "contains", "contains-all", "contains-any",
    "contains-html", "contains-json", "contains-sql", "contains-xml", "context-faithfulness",
    "context-recall", "context-relevance", "conversation-relevance", "cost", "equals", "factuality",
    "finish-reason", "g-eval", "gleu", "guardrails", "icontains", "icontains-all", "icontains-any",
    "is-html", "is-json", "is-refusal", "is-sql", "is-valid-function-call",
    "is-valid-openai-function-call", "is-valid-openai-tools-call", "is-xml", "javascript", "latency",
    "levenshtein", "llm-rubric", "pi", "meteor", "model-graded-closedqa", "model-graded-factuality",
    "moderation", "perplexity", "perplexity-score", "python", "regex", "rouge-n", "ruby", "similar",
    "similar:cosine", "similar:dot", "similar:euclidean", "starts-with", "tool-call-f1", "skill-used",
    "trajectory:goal-success", "trajectory:tool-args-match", "trajectory:step-count",
    "trajectory:tool-sequence", "trajectory:tool-used", "trace-error-spans", "trace-span-count",
    "trace-span-duration", "search-rubric", "webhook", "word-count",
)  # fmt: skip
_LIST_TYPES = {"contains-all", "contains-any", "icontains-all", "icontains-any"}
_THRESHOLD_TYPES = {
    "answer-relevance", "classifier", "context-faithfulness", "context-recall", "context-relevance",
    "cost", "latency", "levenshtein", "perplexity-score", "perplexity", "rouge-n", "similar", "starts-with",
}  # fmt: skip
_SIMILAR_DEFAULT_THRESHOLD = 0.8
_OTHER_DEFAULT_THRESHOLD = 0.75
_SHORTHAND = re.compile(
    r"^(not-)?(" + "|".join(map(re.escape, PROMPTFOO_TYPES)) + r")(?:\((\d+(?:\.\d+)?)\))?(?::([\s\S]*))?$"
)
_JS_FILE = re.compile(r"\.(?:js|cjs|mjs|ts|cts|mts)(?::[\w.]+)?$")
_PY_FILE = re.compile(r"\.py(?::[\w.]+)?$")

# Assertion fields ftvp keeps; any other (transform, provider, rubricPrompt, config...) is noted.
ASSERTION_FIELDS = ("type", "value", "threshold", "weight", "metric")
# Test fields read into the case; the others are noted as not imported.
TEST_FIELDS = {"vars", "assert", "description", "metadata", "threshold", "options", "providerOutput"}
CSV_SPECIAL = ("__prefix", "__suffix", "__description", "__providerOutput", "__metric", "__threshold")

CODE_SUFFIXES = (".py", ".js", ".cjs", ".mjs", ".ts", ".cts", ".mts")
TEXT_SUFFIXES = (".txt", ".md", ".j2", ".json", ".jsonl", ".yaml", ".yml", ".csv", ".html", ".xml")
MAX_EXPANSION = 1_000  # cases one test may expand into through list vars
MAX_REF_NODES = 100_000  # values copied through $ref (a few refs can otherwise expand enormously)
MAX_REF_DEPTH = 64

_PLACEHOLDER = re.compile(r"\{\{-?\s*([A-Za-z_]\w*)")
_PROMPT_SEPARATOR = "---"
_MISSING = object()
# Stands in for defaultTest.assert when add_case checks that a case has something to check (removed
# from the case right after): see _add.
_STAND_IN = {"type": "equals"}


# -- format detection ----------------------------------------------------------------------------------------


def looks_like_promptfoo_config(data: object) -> bool:
    """A parsed YAML mapping that reads like a promptfooconfig.yaml."""
    if not isinstance(data, dict):
        return False
    has_tests = any(name in data for name in ("tests", "defaultTest", "scenarios"))
    if has_tests and any(name in data for name in ("prompts", "providers", "targets")):
        return True
    tests = data.get("tests")
    if isinstance(tests, str):
        return tests.startswith("file://")
    return isinstance(tests, list) and any(
        isinstance(t, dict) and ("vars" in t or "assert" in t) for t in tests[:20]
    )


def looks_like_promptfoo_csv(header: list[str]) -> bool:
    """A CSV header with promptfoo's special columns (``__expected``, ``__description``...)."""
    special = ("__expected", "__description", "__metadata", "__threshold", "__prefix", "__suffix", "__config")
    return any(isinstance(name, str) and name.strip().startswith(special) for name in header)


def looks_like_promptfoo_jsonl(first_object: dict) -> bool:
    """A JSON Lines test of promptfoo's: ``{"vars": {...}, "assert": [...]}`` (and no ftvp ``input``)."""
    return (
        isinstance(first_object, dict)
        and "vars" in first_object
        and not any(name in first_object for name in ("input", "messages", "sample"))
    )


# -- YAML as promptfoo reads it ------------------------------------------------------------------------------

_BOOL, _INT, _FLOAT = (f"tag:yaml.org,2002:{name}" for name in ("bool", "int", "float"))
_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class _Yaml12Loader(_NoAliasLoader):
    """YAML 1.2 scalars, as promptfoo's js-yaml reads them: ``Yes``/``no``/``on`` stay strings, ``1:20``
    is not a number; dates stay text too. Aliases stay refused (see _NoAliasLoader)."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _INT, _FLOAT, _TIMESTAMP)]
    for first, resolvers in _NoAliasLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Yaml12Loader.add_implicit_resolver(
    _INT, re.compile(r"^(?:[-+]?(?:0|[1-9][0-9]*)|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
_Yaml12Loader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def _load_yaml(source: SourceFile) -> Any:
    """Parse a YAML file of promptfoo's (YAML 1.2 scalars, as promptfoo reads them)."""
    if len(source.data) > MAX_YAML_BYTES:  # promptfoo's wording: test files, not suites
        raise SuiteFormatError(
            source.name, f"is larger than {MAX_YAML_BYTES // 2**20} MB of YAML; write big test files as JSONL"
        )
    _decode(source)  # promptfoo's UTF-8 message, with the byte's value
    return load_yaml(source, _Yaml12Loader)


def _load_json(source: SourceFile) -> Any:
    try:
        return loads_json(_decode(source))
    except json.JSONDecodeError as exc:
        line = None if isinstance(exc, JSONTooDeep) else exc.lineno
        raise SuiteFormatError(
            source.name, json_problem(exc, "fix it and upload the file again"), line
        ) from None
    except RecursionError:
        raise SuiteFormatError(source.name, "nests too deeply to be read; flatten it") from None


def _decode(source: SourceFile) -> str:
    try:
        return source.data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SuiteFormatError(
            source.name,
            f"is not valid UTF-8 (byte 0x{source.data[exc.start]:02x} at offset {exc.start}); "
            "save the file with UTF-8 encoding",
        ) from None


def _resolve_refs(name: str, root: Any) -> Any:
    """Replace ``{"$ref": "#/a/b"}`` by what the JSON pointer names in the same file (keys beside the
    $ref override the target's). A $ref under an assertion's ``value`` that names nothing is left as it
    is: it belongs to a JSON schema."""
    budget = [MAX_REF_NODES]

    def target(ref: str, where: str) -> Any:
        if not ref.startswith("#/"):
            raise SuiteFormatError(
                name,
                f"$ref {ref!r} points outside this file; only references within it ('#/...') are read, "
                "so copy the referenced part in",
                field=where or None,
            )
        node = root
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return _MISSING
        return node

    def walk(node: Any, where: str, depth: int, in_value: bool, copied: bool) -> Any:
        if depth > MAX_REF_DEPTH:
            raise SuiteFormatError(
                name, "nests too deeply (or a $ref refers to itself); flatten it", field=where or None
            )
        if copied:
            budget[0] -= 1
            if budget[0] < 0:
                raise SuiteFormatError(name, "expands to too much data through $ref; write it out flatter")
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                found = target(ref, where)
                if found is not _MISSING:
                    rest = {k: v for k, v in node.items() if k != "$ref"}
                    merged = {**found, **rest} if isinstance(found, dict) else found
                    return walk(merged, where, depth + 1, in_value, True)
                if not in_value:
                    raise SuiteFormatError(
                        name, f"$ref {ref!r} names nothing in this file; check the path", field=where or None
                    )
            return {
                k: walk(v, f"{where}.{k}" if where else k, depth + 1, in_value or k == "value", copied)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [walk(v, f"{where}[{i}]", depth + 1, in_value, copied) for i, v in enumerate(node)]
        return node

    return walk(root, "", 0, False, False)


# -- reading state -------------------------------------------------------------------------------------------


@dataclass
class _Context:
    """What reading one test needs besides the test: the config's defaults, prompts and files."""

    reader: SuiteReader
    notes: list[str]
    files: dict[str, SourceFile] = field(default_factory=dict)  # normalised path -> file
    config: str | None = None  # the config's name; None when a test file is imported on its own
    prompt_vars: tuple[str, ...] = ()
    first_prompt: str | None = None
    default_vars: dict[str, Any] = field(default_factory=dict)
    default_metadata: dict[str, Any] = field(default_factory=dict)
    default_threshold: object = None
    has_default_assertions: bool = False
    key_prefix: str | None = None  # set when the config's tests come from several sources
    source_file: str | None = None  # the referenced test file being read
    used: set[str] = field(default_factory=set)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


@contextmanager
def _reading(reader: SuiteReader, name: str) -> Iterator[None]:
    """Errors recorded meanwhile name this file (a config's referenced files have their own names)."""
    before = reader.file
    reader.file = name
    try:
        yield
    finally:
        reader.file = before


# -- the config ----------------------------------------------------------------------------------------------


def read_promptfoo_config(
    entry: SourceFile, files: Mapping[str, SourceFile], reader: SuiteReader
) -> SuiteExtras:
    """A promptfooconfig.yaml and the files it refers to (``files``: every uploaded file by its
    relative path). Cases go to ``reader``; prompts, default assertions and notes are returned."""
    extras = SuiteExtras()
    with _reading(reader, entry.name):
        data = _load_yaml(entry)
        if data is None or data == "":
            raise SuiteFormatError(entry.name, "is empty; a promptfooconfig.yaml needs at least 'tests'")
        if not isinstance(data, dict):
            raise SuiteFormatError(
                entry.name,
                f"is a YAML {json_type(data)}; a promptfooconfig.yaml is a mapping with prompts, "
                "providers and tests",
            )
        data = _resolve_refs(entry.name, data)
        ctx = _Context(
            reader,
            extras.notes,
            files={_normal(name): f for name, f in files.items()},
            config=entry.name,
            used={_normal(entry.name)},
        )
        extras.prompts = _read_prompts(ctx, data.get("prompts"))
        ctx.prompt_vars = _template_vars(p["template"] for p in extras.prompts)
        ctx.first_prompt = extras.prompts[0]["template"] if extras.prompts else None
        _note_providers(ctx, data)
        extras.default_assertions = _read_default_test(ctx, data.get("defaultTest"))
        before = len(reader.cases)
        _read_tests(ctx, data)
        if len(reader.cases) == before and not reader.errors:
            scenarios = (
                " ('scenarios' are not imported: write them out as tests)" if "scenarios" in data else ""
            )
            raise SuiteFormatError(entry.name, f"has no tests{scenarios}; add 'tests'", field="tests")
        for name, why in (
            ("scenarios", "write them out as tests"),
            ("derivedMetrics", "ftvp computes its own summary metrics"),
            ("nunjucksFilters", "templates that use custom filters will not render them"),
            ("extensions", "extension hooks run code"),
        ):
            if name in data:
                ctx.note(f"'{name}' is not imported: {why}")
        read = {id(ctx.files[name]) for name in ctx.used if name in ctx.files}
        for name in sorted(name for name, f in ctx.files.items() if id(f) not in read):
            ctx.note(f"{name} was uploaded but the config does not refer to it: not imported")
    return extras


def _note_providers(ctx: _Context, data: dict[str, Any]) -> None:
    raw = data.get("providers", data.get("targets"))
    if raw is None:
        return
    names = []
    for item in raw if isinstance(raw, list) else [raw]:
        if isinstance(item, str):
            names.append(item)
        elif isinstance(item, dict):
            name = item.get("label") or item.get("id")
            if name is None and len(item) == 1:
                name = next(iter(item))
            if isinstance(name, str):
                names.append(name)
    shown = f" ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})" if names else ""
    ctx.note(f"providers{shown} are not imported: register them as endpoints in ftvp")


def _read_default_test(ctx: _Context, raw: object) -> list[dict[str, Any]]:
    reader = ctx.reader
    if raw is None:
        return []
    if isinstance(raw, str):
        if not raw.startswith("file://"):
            raise reader.fatal(
                "is a text; give a mapping (vars, assert) or a file:// path", field="defaultTest"
            )
        source = _one_file(ctx, raw, "defaultTest")
        raw = _resolve_refs(source.name, _load_yaml(source))
    if not isinstance(raw, dict):
        raise reader.fatal(f"is a {json_type(raw)}; give a mapping with vars and assert", field="defaultTest")
    if reader.numbers_check(None, raw, "defaultTest"):  # every test would carry them
        return []
    default_vars = raw.get("vars")
    if default_vars is not None:
        if not isinstance(default_vars, dict):
            reader.error(None, "defaultTest.vars", f"is a {json_type(default_vars)}; give a mapping")
        else:
            ctx.default_vars = default_vars
    metadata = raw.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            reader.error(None, "defaultTest.metadata", f"is a {json_type(metadata)}; give a mapping")
        else:
            ctx.default_metadata = metadata
    ctx.default_threshold = raw.get("threshold")
    if isinstance(raw.get("options"), dict) and raw["options"]:
        keys = ", ".join(sorted(raw["options"]))
        ctx.note(f"defaultTest.options ({keys}) are not imported: ftvp grades with its own judge endpoint")
    asserts = raw.get("assert")
    if asserts is None:
        return []
    if not isinstance(asserts, list):
        reader.error(None, "defaultTest.assert", f"is a {json_type(asserts)}; give a list of assertions")
        return []
    ctx.has_default_assertions = bool(asserts)
    defaults: list[dict[str, Any]] = []
    skipped: set[str] = set()
    for index, item in enumerate(asserts):
        where = f"defaultTest.assert[{index}]"
        assertion = _assertion(ctx, None, item, where)
        if assertion is None:
            continue
        defaults.append(assertion)
        if (why := unrunnable_reason(assertion)) and why not in skipped:
            skipped.add(why)
            ctx.note(f"{where}: {why}")
    return defaults


# -- prompts -------------------------------------------------------------------------------------------------


def _read_prompts(ctx: _Context, raw: object) -> list[dict[str, str]]:
    if raw is None:
        return []
    items: list[tuple[str, object, object]]  # (field, prompt, label)
    if isinstance(raw, str):
        items = [("prompts", raw, None)]
    elif isinstance(raw, dict) and not ({"raw", "id"} & set(raw)):
        items = [(f"prompts.{path}", path, label) for path, label in raw.items()]  # legacy {path: label}
    elif isinstance(raw, list | dict):
        items = [
            (f"prompts[{i}]", item, None) for i, item in enumerate(raw if isinstance(raw, list) else [raw])
        ]
    else:
        raise ctx.reader.fatal(f"is a {json_type(raw)}; give a list of prompts", field="prompts")
    prompts: list[dict[str, str]] = []
    names: set[str] = set()
    for where, item, label in items:
        if isinstance(item, dict):
            label = item.get("label")
            if isinstance(item.get("raw"), str):
                texts = [item["raw"]]
            elif isinstance(item.get("id"), str):
                texts = _prompt_texts(ctx, item["id"], f"{where}.id")
            else:
                ctx.reader.error(None, where, "has neither 'raw' (the prompt text) nor 'id' (a file:// path)")
                continue
            if item.get("config"):
                ctx.note(f"{where}.config (provider settings) is not imported: set them on the endpoint")
        elif isinstance(item, str):
            texts = _prompt_texts(ctx, item, where)
        else:
            ctx.reader.error(None, where, f"is a {json_type(item)}; give the prompt text or a file:// path")
            continue
        for number, text in enumerate(texts, start=1):
            if len(text) > MAX_FIELD_CHARS:
                ctx.reader.error(None, where, f"is longer than the limit of {MAX_FIELD_CHARS:,} characters")
                continue
            if isinstance(label, str) and label.strip():
                name = label.strip() if len(texts) == 1 else f"{label.strip()}-{number}"
            else:
                name = f"prompt-{len(prompts) + 1}"
            base, n = name, 2
            while name in names:
                name, n = f"{base}-{n}", n + 1
            names.add(name)
            prompts.append({"name": name, "template": text})
    return prompts


def _prompt_texts(ctx: _Context, ref: str, where: str) -> list[str]:
    """The prompt(s) a prompts entry gives: its text, or those of the file it refers to."""
    is_file = ref.startswith("file://") or (
        "\n" not in ref and "{{" not in ref and _lookup(ctx.files, ref, ctx.config or "")
    )
    if not is_file:
        return [ref] if ref.strip() else []
    path = ref.removeprefix("file://")
    if _PY_FILE.search(path) or _JS_FILE.search(path):
        ctx.note(f"{where}: {ref} is a prompt function (code): not imported; write the prompt as text")
        return []
    texts: list[str] = []
    for source in _files(ctx, path, where):
        text = _decode(source)
        suffix = PurePosixPath(source.name).suffix.lower()
        if suffix == ".txt":
            found = _split_prompts(text)
        elif suffix == ".jsonl":
            found = [line.strip() for line in text.splitlines() if line.strip()]
        elif suffix in (".yaml", ".yml"):
            data = _load_yaml(source)
            found = [data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)]
        else:
            found = [text.strip()] if text.strip() else []
        if not found:
            raise SuiteFormatError(
                source.name,
                "holds no prompt; write the prompt text (several prompts separated by lines of ---)",
            )
        texts += found
    return texts


def _split_prompts(text: str) -> list[str]:
    """Prompts in a .txt file: separated by lines of ``---``."""
    prompts, current = [], []
    for line in text.splitlines():
        if line.strip() == _PROMPT_SEPARATOR:
            prompts.append("\n".join(current).strip())
            current = []
        else:
            current.append(line)
    prompts.append("\n".join(current).strip())
    return [p for p in prompts if p]


def _template_vars(templates: Iterable[str]) -> tuple[str, ...]:
    """The variables prompt templates use, in order of first use."""
    found: dict[str, None] = {}
    for template in templates:
        for match in _PLACEHOLDER.finditer(template):
            found.setdefault(match.group(1))
    return tuple(found)


# -- files a config refers to --------------------------------------------------------------------------------


def _normal(path: str) -> str:
    return posixpath.normpath(path.replace("\\", "/")).lstrip("/") if path else path


def _lookup(files: Mapping[str, SourceFile], path: str, relative_to: str) -> list[SourceFile]:
    """Uploaded files by a path a config wrote: relative to the config, as given, or by base name
    (when only one uploaded file has it); a glob matches several."""
    path = path.removeprefix("file://")
    base = posixpath.dirname(_normal(relative_to))
    candidates = [_normal(posixpath.join(base, path)), _normal(path)]
    if any(ch in path for ch in "*?["):
        for pattern in candidates:
            matched = sorted(name for name in files if fnmatch.fnmatchcase(name, pattern))
            if matched:
                return [files[name] for name in matched]
        return []
    for candidate in candidates:
        if candidate in files:
            return [files[candidate]]
    basename = posixpath.basename(path)
    by_name = [f for name, f in files.items() if posixpath.basename(name) == basename]
    return by_name if len(by_name) == 1 else []


def _files(ctx: _Context, path: str, where: str) -> list[SourceFile]:
    """The uploaded file(s) a config entry refers to; SuiteFormatError asking for them when missing."""
    found = _lookup(ctx.files, path, ctx.config or "")
    if not found:
        config = ctx.config or "the config"
        what = "no uploaded file matches it" if any(ch in path for ch in "*?[") else "it was not uploaded"
        raise SuiteFormatError(
            config,
            f"refers to {path!r}, but {what}; upload {posixpath.basename(path)} together with {config} "
            "(several files at once, or a zip)",
            field=where,
        )
    for source in found:
        ctx.used.add(_normal(source.name))
    return found


def _one_file(ctx: _Context, ref: str, where: str) -> SourceFile:
    found = _files(ctx, ref.removeprefix("file://"), where)
    if len(found) > 1:
        raise SuiteFormatError(ctx.config or "", f"{ref!r} matches {len(found)} files; name one", field=where)
    return found[0]


# -- tests ---------------------------------------------------------------------------------------------------


def _read_tests(ctx: _Context, data: dict[str, Any]) -> None:
    reader = ctx.reader
    raw = data.get("tests")
    if raw is None:
        return
    if isinstance(raw, str | dict):
        items: list[tuple[str, object]] = [("tests", raw)]
    elif isinstance(raw, list):
        items = [(f"tests[{i}]", item) for i, item in enumerate(raw)]
    else:
        raise reader.fatal(f"is a {json_type(raw)}; give a list of tests or a file:// path", field="tests")
    # Resolve every file first: a missing one stops the import before anything is read.
    plan: list[tuple[int, str, object, list[SourceFile]]] = []  # (position, field, inline test, files)
    for position, (where, item) in enumerate(items, start=1):
        if isinstance(item, dict) and "path" in item and not ({"vars", "assert"} & set(item)):
            item = item["path"]  # a generator with its config: {path: file://..., config: {...}}
        if isinstance(item, str):
            plan.append((position, where, None, _test_files(ctx, item, where)))
        else:
            plan.append((position, where, item, []))
    sources = sum(len(found) for *_, found in plan) + any(not found for *_, found in plan)
    for position, where, item, found in plan:
        for source in found:
            prefix = posixpath.splitext(_normal(source.name))[0] if sources > 1 else None
            _read_test_file(replace(ctx, key_prefix=prefix, source_file=source.name), source)
        if found:
            continue
        reader.count_record(position)
        if not isinstance(item, dict):
            reader.error(
                position, where, f"is a {json_type(item)}; give a test (vars, assert) or a file:// path"
            )
            continue
        _add_test(ctx, position, item, where=where)


def _test_files(ctx: _Context, ref: str, where: str) -> list[SourceFile]:
    config = ctx.config or ""
    if re.match(r"^[a-z][a-z0-9+.-]*://", ref) and not ref.startswith("file://"):
        raise SuiteFormatError(
            config,
            f"loads tests from {ref!r}; ftvp does not fetch datasets: download them as CSV or JSONL and "
            "upload that file with the config",
            field=where,
        )
    path = ref.removeprefix("file://")
    suffix = PurePosixPath(path.split("#")[0].split(":")[0]).suffix.lower()
    if suffix in CODE_SUFFIXES:
        raise SuiteFormatError(
            config,
            f"generates tests with code ({ref}); ftvp does not run it: save the generated tests as "
            "CSV, JSONL or YAML and refer to that file",
            field=where,
        )
    if suffix in (".xlsx", ".xls"):
        raise SuiteFormatError(
            config, f"reads a spreadsheet ({ref}); save it as CSV and refer to the .csv file", field=where
        )
    return _files(ctx, path, where)


def _read_test_file(ctx: _Context, source: SourceFile) -> None:
    suffix = PurePosixPath(source.name).suffix.lower()
    if suffix == ".csv":
        _read_csv(ctx, source)
    elif suffix in (".jsonl", ".ndjson"):
        _read_jsonl(ctx, source)
    elif suffix in (".yaml", ".yml", ".json"):
        _read_yaml_tests(ctx, source)
    else:
        raise SuiteFormatError(
            source.name,
            f"is a {suffix or 'extensionless'} file; tests are read from CSV, JSONL, YAML or JSON",
        )


def _read_yaml_tests(ctx: _Context, source: SourceFile) -> None:
    reader = ctx.reader
    with _reading(reader, source.name):
        if not source.data.strip():
            raise reader.fatal("is empty; write a list of tests (vars, assert)")
        is_json = PurePosixPath(source.name).suffix.lower() == ".json"
        data = _resolve_refs(source.name, _load_json(source) if is_json else _load_yaml(source))
        if isinstance(data, dict) and isinstance(data.get("tests"), list):
            data = data["tests"]
        if not isinstance(data, list):
            raise reader.fatal(f"is a {json_type(data)}; a tests file holds a list of tests (vars, assert)")
        for index, item in enumerate(data):
            reader.count_record(index + 1)
            if not isinstance(item, dict):
                reader.error(index + 1, f"[{index}]", f"is a {json_type(item)}; give a test (vars, assert)")
                continue
            _add_test(ctx, index + 1, item, where=f"[{index}]")


# -- test JSONL ----------------------------------------------------------------------------------------------


def read_promptfoo_tests_jsonl(source: SourceFile, reader: SuiteReader) -> None:
    """promptfoo tests as JSON Lines: one ``{"vars": {...}, "assert": [...], "description": ...}`` a line."""
    _read_jsonl(_Context(reader, reader.notes), source)


def _read_jsonl(ctx: _Context, source: SourceFile) -> None:
    reader = ctx.reader
    with _reading(reader, source.name):
        seen, errors = reader.records, len(reader.errors)
        for line, text in enumerate(reader.text_lines(source.open()), start=1):
            if not text.strip():
                continue
            reader.count_record(line)
            try:
                obj = loads_json(text)
            except json.JSONDecodeError as exc:
                reader.error(line, None, json_problem(exc, ONE_OBJECT_PER_LINE))
                continue
            if not isinstance(obj, dict):
                reader.error(
                    line,
                    None,
                    f'is a JSON {json_type(obj)}; write each test as {{"vars": ..., "assert": ...}}',
                )
                continue
            _add_test(ctx, line, obj)
        if reader.records == seen and len(reader.errors) == errors:
            raise reader.fatal('is empty; write one test per line, e.g. {"vars": {...}, "assert": [...]}')


# -- test CSV ------------------------------------------------------------------------------------------------


def read_promptfoo_tests_csv(source: SourceFile, reader: SuiteReader) -> None:
    """A promptfoo test CSV: var columns plus ``__expected``... columns (see the module docstring)."""
    _read_csv(_Context(reader, reader.notes), source)


@dataclass(frozen=True)
class _Columns:
    names: list[str]
    expected: list[str]
    metadata: dict[str, tuple[str, bool]]  # column -> (metadata key, is a list)
    thresholds: dict[str, str]  # __config column -> the __expected column it sets
    variables: list[str]


def _read_csv(ctx: _Context, source: SourceFile) -> None:
    reader = ctx.reader
    with _reading(reader, source.name):
        columns: _Columns | None = None
        header_line = 0
        seen, errors = reader.records, len(reader.errors)
        for start, end, row in _csv_records(reader, source):
            if columns is None:
                columns, header_line = _csv_header(ctx, row, start), start
                continue
            reader.count_record(start)
            if len(row) != len(columns.names):
                reason = f"has {len(row)} cells but the header has {len(columns.names)} columns; "
                if end > start:
                    reason += f"the record runs to line {end}, so check for a quote that is never closed"
                else:
                    reason += "put cells that contain commas in double quotes"
                reader.error(start, None, reason)
                continue
            _csv_row(ctx, start, columns, dict(zip(columns.names, row, strict=True)))
        if columns is None and len(reader.errors) == errors:
            raise reader.fatal(
                "is empty; give a header row (the variables, then __expected columns), then one test per row"
            )
        if columns is not None and reader.records == seen:
            raise reader.fatal(
                "has a header but no tests; add at least one row under the header", header_line
            )


def _csv_records(reader: SuiteReader, source: SourceFile) -> Iterator[tuple[int, int, list[str]]]:
    """(first line, last line, cells) of each non-blank CSV record."""
    records = csv.reader(reader.text_lines(source.open()))
    end = 0
    while True:
        start = end + 1
        try:
            row = next(records)
        except StopIteration:
            return
        except csv.Error as exc:
            if "field larger than field limit" in str(exc):
                reason = (
                    f"a cell is longer than the limit of {MAX_FIELD_CHARS:,} characters, or a quote opened "
                    "here is never closed; shorten the cell or check its quotes"
                )
            elif "new-line character seen in unquoted field" in str(exc):
                reason = (
                    "has line breaks made of a lone carriage return (CR); "
                    "save the file with LF or CRLF line ends"
                )
            else:
                reason = f"cannot be read as CSV ({exc}); check the quotes in this record"
            reader.error(start, None, reason)
            return
        end = records.line_num
        if any(cell.strip() for cell in row):
            yield start, end, row


def _csv_header(ctx: _Context, row: list[str], line: int) -> _Columns:
    reader = ctx.reader
    names: list[str] = []
    for index, cell in enumerate(row, start=1):
        name = cell.strip() or f"column_{index}"
        if name in names:
            raise reader.fatal(
                f"the column {name!r} appears twice in the header; rename or remove one", line, name
            )
        names.append(name)
    expected = [n for n in names if n.startswith("__expected")]
    metadata: dict[str, tuple[str, bool]] = {}
    thresholds: dict[str, str] = {}
    variables: list[str] = []
    for name in names:
        if name.startswith("__expected") or name in CSV_SPECIAL:
            continue
        if name == "__metadata" or name == "__metadata:" or name == "__metadata:[]":
            ctx.note(f"{reader.file}: the column {name!r} has no key (write __metadata:category): ignored")
        elif name.startswith("__metadata:"):
            key = name.removeprefix("__metadata:")
            metadata[name] = (key.removesuffix("[]"), key.endswith("[]"))
        elif name.startswith("__config:"):
            parts = name.removeprefix("__config:").split(":")
            if len(parts) != 2 or parts[1] != "threshold":
                raise reader.fatal(
                    "is not a config column promptfoo knows; write __config:__expected:threshold or "
                    "__config:__expected<N>:threshold",
                    line,
                    name,
                )
            if parts[0] not in expected:
                raise reader.fatal(f"sets {parts[0]}, which is not a column of the file", line, name)
            thresholds[name] = parts[0]
        else:
            if re.match(
                r"^_(expected|prefix|suffix|description|providerOutput|metric|threshold|metadata|config)",
                name,
            ):
                ctx.note(f"{reader.file}: column {name!r} is read as a variable; did you mean '_{name}'?")
            variables.append(name)
    if not expected and not ctx.has_default_assertions:
        hint = (
            "or set defaultTest.assert in the config"
            if ctx.config
            else "or upload it with the promptfooconfig.yaml whose defaultTest.assert checks every test"
        )
        raise reader.fatal(
            "has no __expected column, so its tests check nothing; add __expected columns "
            f"(e.g. 'contains: Paris', or the exact expected output), {hint}",
            line,
            "__expected",
        )
    return _Columns(names, expected, metadata, thresholds, variables)


def _csv_row(ctx: _Context, line: int, columns: _Columns, cells: dict[str, str]) -> None:
    reader = ctx.reader
    for name, value in cells.items():
        if len(value) > MAX_FIELD_CHARS:
            reader.error(
                line, name, f"is longer than the limit of {MAX_FIELD_CHARS:,} characters; shorten it"
            )
            return
    asserts: dict[str, dict[str, Any]] = {}
    for name in columns.expected:
        if cells[name].strip():
            asserts[name] = assertion_from_string(cells[name])
    metric = cells.get("__metric", "").strip()
    for assertion in asserts.values():
        if metric:
            assertion["metric"] = metric
    for name, target in columns.thresholds.items():
        if not cells[name].strip() or target not in asserts:
            continue
        value = _number(cells[name])
        if value is None:
            reader.error(line, name, f"{cells[name]!r} is not a number; give a threshold such as 0.8")
            return
        asserts[target]["threshold"] = value
    test: dict[str, Any] = {
        "vars": {name: cells[name] for name in columns.variables},
        "assert": list(asserts.values()),
    }
    metadata: dict[str, Any] = {}
    for name, (key, is_list) in columns.metadata.items():
        value = cells[name]
        if not value.strip():
            continue
        if is_list:
            metadata[key] = [item.strip().replace("\\,", ",") for item in re.split(r"(?<!\\),", value)]
        else:
            metadata[key] = value
    if metadata:
        test["metadata"] = metadata
    if cells.get("__description", "").strip():
        test["description"] = cells["__description"]
    if cells.get("__threshold", "").strip():
        value = _number(cells["__threshold"])
        if value is None:
            reader.error(
                line, "__threshold", f"{cells['__threshold']!r} is not a number; give one such as 0.8"
            )
            return
        test["threshold"] = value
    options = {key: cells[f"__{key}"] for key in ("prefix", "suffix") if cells.get(f"__{key}")}
    if options:
        test["options"] = options
    if cells.get("__providerOutput", "").strip():
        test["providerOutput"] = cells["__providerOutput"]
    _add_test(ctx, line, test, assert_fields=list(asserts), csv_row=True)


def _number(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def assertion_from_string(text: str) -> dict[str, Any]:
    """An ``__expected`` cell as an assertion, following promptfoo's grammar (see the module docstring)."""
    text = text.strip()
    for prefix in ("javascript:", "fn:", "eval:"):
        if text.startswith(prefix):
            return {"type": "javascript", "value": text[len(prefix) :].strip()}
    if text.startswith("file://") and _JS_FILE.search(text):
        return {"type": "javascript", "value": text.removeprefix("file://").strip()}
    for prefix in ("grade:", "llm-rubric:"):
        if text.startswith(prefix):
            return {"type": "llm-rubric", "value": text[len(prefix) :].strip()}
    if text.startswith("python:"):
        return {"type": "python", "value": text.removeprefix("python:").strip()}
    if text.startswith("file://") and _PY_FILE.search(text):
        return {"type": "python", "value": text.removeprefix("file://").strip()}
    match = _SHORTHAND.match(text)
    if match is None:
        return {"type": "equals", "value": text}
    negated, kind, threshold, value = match.groups()
    assertion: dict[str, Any] = {"type": f"{NOT_PREFIX}{kind}" if negated else kind}
    if kind in _LIST_TYPES and value:
        assertion["value"] = [item.strip() for item in value.split(",")]
    elif value is not None:
        assertion["value"] = value.strip()
    if kind in _THRESHOLD_TYPES:
        default = _SIMILAR_DEFAULT_THRESHOLD if kind == "similar" else _OTHER_DEFAULT_THRESHOLD
        assertion["threshold"] = float(threshold) if threshold else default
    return assertion


# -- one test, its cases -----------------------------------------------------------------------------------


def _add_test(
    ctx: _Context,
    line: int,
    test: dict[str, Any],
    *,
    where: str = "",
    assert_fields: list[str] | None = None,
    csv_row: bool = False,
) -> None:
    """Validate one promptfoo test and hand its case(s) to the reader. ``where`` prefixes field names
    (e.g. ``tests[2]``); a CSV row names its columns instead (``assert_fields``, var columns)."""
    reader = ctx.reader
    errors_before = len(reader.errors)

    def at(name: str) -> str:
        return f"{where}.{name}" if where else name

    if reader.numbers_check(line, test, where):  # before vars are written out as text
        return
    raw_vars = test.get("vars")
    if raw_vars is None:
        raw_vars = {}
    if not isinstance(raw_vars, dict):
        reader.error(
            line, at("vars"), f"is a {json_type(raw_vars)}; give a mapping of variable names to values"
        )
        raw_vars = {}
    variables = {**ctx.default_vars, **raw_vars}

    raw_asserts = test.get("assert")
    assertions: list[dict[str, Any]] = []
    if raw_asserts is not None and not isinstance(raw_asserts, list):
        reader.error(line, at("assert"), f"is a {json_type(raw_asserts)}; give a list of assertions")
    elif raw_asserts:
        for index, item in enumerate(raw_asserts):
            name = assert_fields[index] if assert_fields else at(f"assert[{index}]")
            assertion = _assertion(ctx, line, item, name)
            if assertion is not None:
                assertions.append(assertion)

    metadata = test.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        reader.error(line, at("metadata"), f"is a {json_type(metadata)}; give a mapping")
        metadata = None
    metadata = {**ctx.default_metadata, **(metadata or {})}
    tags = metadata.pop("tags", None)

    extra: dict[str, Any] = {}
    description = test.get("description")
    if description is not None and description != "":
        extra["description"] = description if isinstance(description, str) else json.dumps(description)
    threshold = test.get("threshold", ctx.default_threshold)
    if threshold is not None:
        number = _number(threshold) if isinstance(threshold, str) else threshold
        if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
            reader.error(
                line, "__threshold" if csv_row else at("threshold"), "is not a number; give one such as 0.8"
            )
        else:
            extra["threshold"] = float(number)
    options = test.get("options")
    if isinstance(options, dict):
        for key in ("prefix", "suffix"):
            if isinstance(options.get(key), str) and options[key]:
                extra[key] = options[key]
        ignored = sorted(set(options) - {"prefix", "suffix"})
        if ignored:
            ctx.note(f"test options {', '.join(ignored)} are not imported")
    if test.get("providerOutput") is not None:
        extra["provider_output"] = test["providerOutput"]
    for name in sorted(set(test) - TEST_FIELDS):
        ctx.note(f"the test field {name!r} is not imported")
    if ctx.source_file:
        extra["source_file"] = ctx.source_file

    if len(reader.errors) > errors_before:
        return
    combinations = _expand(ctx, line, variables, at)
    if combinations is None:
        return
    expected = _expected_of(assertions)
    relies_on_defaults = not assertions and expected is None
    if relies_on_defaults and not ctx.has_default_assertions:
        if csv_row:
            reader.error(
                line, "__expected", "is empty: this test checks nothing; give an expected output or assertion"
            )
        else:
            reader.error(
                line,
                at("assert"),
                "is missing: this test checks nothing; add assertions (assert), or defaultTest.assert "
                "in the config to check every test",
            )
        return
    for number, combination in enumerate(combinations, start=1):
        if number > 1:
            reader.count_record(line)
        texts = {}
        for name, value in combination.items():
            text = _var_text(ctx, value)
            if text is None:
                reader.error(line, name if csv_row else at(f"vars.{name}"), "is empty (null); give a value")
                break
            texts[name] = text
        else:
            case_input, input_field = _input_of(ctx, texts)
            if case_input is None:
                reader.error(line, at("vars"), "is missing and there is no prompt; give the test's variables")
                continue
            key = None
            if ctx.key_prefix or len(combinations) > 1:
                key = f"{ctx.key_prefix or 'case'}-{line:04d}" + (
                    f".{number}" if len(combinations) > 1 else ""
                )
            if input_field is None:
                input_field = "input"
            elif not csv_row:
                input_field = at(f"vars.{input_field}")
            _add(
                reader,
                line,
                relies_on_defaults=relies_on_defaults,
                key=key,
                input=case_input,
                input_field=input_field,
                expected=expected,
                assertions=assertions or None,
                tags=tags,
                metadata=metadata,
                extra_metadata={"vars": texts, **extra},
            )


def _add(reader: SuiteReader, line: int, *, relies_on_defaults: bool, **values: Any) -> None:
    if not relies_on_defaults:
        reader.add_case(line, **values)
        return
    # SuiteReader.add_case accepts a case without an expected output only when the case has assertions
    # of its own; this one is checked by defaultTest.assert alone (the suite's default assertions). A
    # stand-in assertion gets it past that check and is taken off the case at once.
    count = len(reader.cases)
    reader.add_case(line, **{**values, "assertions": [dict(_STAND_IN)]})
    if len(reader.cases) > count:
        reader.cases[-1]["assertions"] = []


def _assertion(ctx: _Context, line: int | None, raw: object, where: str) -> dict[str, Any] | None:
    """One promptfoo assertion as ftvp keeps it, or None (and an error) when ftvp cannot take it."""
    reader = ctx.reader
    if not isinstance(raw, dict):
        reader.error(line, where, f"is a {json_type(raw)}; give an object with a 'type'")
        return None
    if raw.get("type") == "assert-set":
        reader.error(
            line,
            where,
            "is an 'assert-set'; ftvp has no assertion groups: list its assertions directly under assert",
        )
        return None
    assertion = {name: raw[name] for name in ASSERTION_FIELDS if raw.get(name) is not None}
    problem = validate_assertion(assertion)
    if problem:
        reader.error(line, where, problem)
        return None
    for name in sorted(set(raw) - set(ASSERTION_FIELDS)):
        ctx.note(
            f"the assertion field {name!r} is not imported (ftvp has no equivalent); the assertions are kept"
        )
    return assertion


def _expected_of(assertions: list[dict[str, Any]]) -> str | None:
    """The first ``equals`` assertion's text: the output the dashboard shows as expected."""
    for assertion in assertions:
        value = assertion.get("value")
        if (
            assertion.get("type") == "equals"
            and isinstance(value, str | int | float)
            and not isinstance(value, bool)
        ):
            return str(value)
    return None


def _expand(
    ctx: _Context, line: int, variables: dict[str, Any], at: Callable[[str], str]
) -> list[dict[str, Any]] | None:
    """One set of vars per combination of list values (promptfoo runs a test once per combination)."""
    lists = {name: value for name, value in variables.items() if isinstance(value, list)}
    if not lists:
        return [variables]
    for name, values in lists.items():
        if not values:
            ctx.reader.error(line, at(f"vars.{name}"), "is an empty list; give at least one value")
            return None
    total = math.prod(len(values) for values in lists.values())
    if total > MAX_EXPANSION:
        ctx.reader.error(
            line,
            at("vars"),
            f"list values expand into {total:,} cases (the limit is {MAX_EXPANSION:,}); split the test",
        )
        return None
    names = list(lists)
    return [
        {**variables, **dict(zip(names, combo, strict=True))} for combo in itertools.product(*lists.values())
    ]


def _var_text(ctx: _Context, value: Any) -> str | None:
    """A var's value as the text a template receives (None for null)."""
    if value is None:
        return None
    if isinstance(value, str):
        if value.startswith("file://") and "\n" not in value:
            return _var_file(ctx, value)
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False)


def _var_file(ctx: _Context, ref: str) -> str:
    """A ``file://`` var: the text of the uploaded file it names, or the reference as it is (noted)."""
    path = ref.removeprefix("file://")
    suffix = PurePosixPath(path).suffix.lower()
    found = _lookup(ctx.files, path, ctx.config or "") if ctx.config else []
    if len(found) == 1 and suffix in TEXT_SUFFIXES:
        try:
            text = found[0].data.decode("utf-8-sig")
        except UnicodeDecodeError:
            pass
        else:
            ctx.used.add(_normal(found[0].name))
            return text
    ctx.note(
        f"the variable value {ref} is kept as written: ftvp reads only uploaded text files into variables"
    )
    return ref


def _input_of(ctx: _Context, texts: dict[str, str]) -> tuple[str | None, str | None]:
    """The case's input and the var it comes from: the one var the prompts use, else all vars."""
    if len(ctx.prompt_vars) == 1 and ctx.prompt_vars[0] in texts:
        name = ctx.prompt_vars[0]
        return texts[name], name
    if texts:
        return "\n".join(f"{name}: {value}" for name, value in texts.items()), None
    return ctx.first_prompt, None
