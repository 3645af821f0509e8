"""Shared parts of the suite importers: errors, limits, line reading and case validation.

Pure Python: nothing here imports Django or touches the database. A format module turns each record of
its file into raw values (the way the file wrote them) and hands them to :meth:`SuiteReader.add_case`,
which validates them and builds the case dict every importer returns.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any, Literal, NotRequired, TypedDict

import yaml

# Pure Python too: what numbers JSON and the database hold, and the scorer registry (an assertion is
# checked where it is read).
from evaluations import jsonsafe
from evaluations.scoring.assertions import unrunnable_reason, validate_assertion

MAX_FIELD_CHARS = 100_000
MAX_CASES = 100_000
MAX_KEY_CHARS = 200
MAX_LINE_BYTES = 16 * 1024 * 1024
MAX_JSON_DEPTH = 64
MAX_YAML_BYTES = 5 * 1024 * 1024  # YAML is parsed in pure Python: big suites belong in JSON Lines
DEFAULT_MAX_ERRORS = 20
SHOWN_ERRORS = 5

ROLES = ("system", "user", "assistant")
SPLITS = ("test", "train")
EXPECTED_ALIASES = ("expected", "ideal", "expected_output", "expectedOutput")

_UTF8_BOM = b"\xef\xbb\xbf"
_TAG_SEPARATORS = re.compile(r"[,;]")


class Message(TypedDict):
    role: str
    content: str
    name: NotRequired[str]


class CaseDict(TypedDict):
    key: str
    input: str | list[Message]
    expected: str | list[str] | None
    assertions: list[dict[str, Any]]
    tags: list[str]
    metadata: dict[str, Any]
    split: Literal["test", "train"]
    line: int


class SuiteFormatError(ValueError):
    """A problem with an uploaded suite file: where it is (file, line, field) and what to do about it."""

    def __init__(self, file: str, reason: str, line: int | None = None, field: str | None = None) -> None:
        self.file = file
        self.line = line
        self.field = field
        self.reason = reason
        super().__init__(self.describe())

    def location(self) -> str:
        parts = []
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.field is not None:
            parts.append(f"field {self.field!r}")
        return ", ".join(parts)

    def describe(self, *, with_file: bool = True) -> str:
        where = ", ".join(p for p in (self.file if with_file else "", self.location()) if p)
        return f"{where}: {self.reason}" if where else self.reason

    def __reduce__(self) -> tuple[Any, ...]:
        # Keeps the error picklable (e.g. when a Celery task fails with it).
        return (type(self), (self.file, self.reason, self.line, self.field))


class SuiteValidationError(SuiteFormatError):
    """Some records of the file are invalid; ``errors`` holds one SuiteFormatError per problem found."""

    def __init__(self, file: str, errors: list[SuiteFormatError], truncated: bool = False) -> None:
        self.errors = list(errors)
        self.truncated = truncated
        count = f"{len(self.errors)}{'+' if truncated else ''}"
        one = len(self.errors) == 1 and not truncated
        noun, pronoun = ("error", "it") if one else ("errors", "them")
        super().__init__(file, f"{count} {noun} found; fix {pronoun} and upload the file again")

    def describe(self, *, with_file: bool = True) -> str:
        lines = [super().describe(with_file=with_file)]
        # An error in another file (one a config refers to) names that file.
        lines += [f"  {err.describe(with_file=err.file != self.file)}" for err in self.errors[:SHOWN_ERRORS]]
        hidden = len(self.errors) - SHOWN_ERRORS
        if hidden > 0:
            lines.append(f"  and {hidden} more")
        if self.truncated:
            lines.append(f"  (stopped reading after the first {len(self.errors)} errors)")
        return "\n".join(lines)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.file, self.errors, self.truncated))


class TooManyErrors(Exception):
    """Internal: raised once ``max_errors`` errors are collected, to stop reading the file."""


def max_depth(text: str) -> int:
    """Bracket depth outside strings, without parsing (deep nesting fails fast instead of recursing)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


class JSONTooDeep(json.JSONDecodeError):
    """JSON nested deeper than MAX_JSON_DEPTH: valid, but refused (its `msg` says so and what to do)."""


def json_problem(exc: json.JSONDecodeError, remedy: str) -> str:
    """What is wrong with the JSON and what to do, for a message: "nests N levels deep (...); flatten
    it", or "is not valid JSON (<reason> at column N); <remedy>"."""
    if isinstance(exc, JSONTooDeep):
        return exc.msg
    return f"is not valid JSON ({exc.msg.removesuffix(' at')} at column {exc.colno}); {remedy}"


def loads_json(text: str) -> Any:
    """json.loads for uploaded text: nesting deeper than MAX_JSON_DEPTH is refused as JSONDecodeError
    (so every caller reports it like any other invalid JSON). Numbers JSON and the database cannot hold
    (NaN, Infinity, 1e400, a 400-digit integer) come back as jsonsafe.UnsafeNumber, for the reader to
    report with the field that holds them (`SuiteReader.numbers_check`)."""
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH:
        depth = max_depth(text)
        if depth > MAX_JSON_DEPTH:
            raise JSONTooDeep(
                f"nests {depth} levels deep (the limit is {MAX_JSON_DEPTH}); flatten it", text, 0
            )
    return jsonsafe.loads(text)


def decode_utf8(source: SourceFile) -> str:
    """A whole file's text (a UTF-8 BOM is dropped); SuiteFormatError with the line and column of the
    first byte that is not UTF-8."""
    try:
        return source.data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = source.data[: exc.start]
        line = before.count(b"\n") + 1
        column = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", "replace")) + 1
        raise SuiteFormatError(
            source.name,
            f"is not valid UTF-8 (byte 0x{source.data[exc.start]:02x} at column {column}); "
            "save the file with UTF-8 encoding",
            line,
        ) from None


def has_nul(value: object) -> bool:
    """A NUL character anywhere in the value (PostgreSQL cannot store one in text or JSON)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False


def plain_yaml(value: Any) -> Any:
    """JSON-ready data from YAML: dates, binary and sets (standard YAML tags) become text or lists."""
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): plain_yaml(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain_yaml(v) for v in value]
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value  # NaN, .inf or 1.0e+400 is an UnsafeNumber the readers report (see _NoAliasLoader)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def json_type(value: object) -> str:
    """The JSON name of a parsed value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _too_long(value: str) -> bool:
    return len(value) > MAX_FIELD_CHARS


TOO_LONG = f"is longer than the limit of {MAX_FIELD_CHARS:,} characters; shorten it"
NUMBER_REMEDY = "write a finite number, or put the value in quotes to keep it as text"


class SuiteReader:
    """Per-file state while reading: the errors so far, the keys seen and the cases built."""

    def __init__(self, file: str, *, max_errors: int = DEFAULT_MAX_ERRORS) -> None:
        self.file = file
        self.max_errors = max(1, max_errors)
        self.errors: list[SuiteFormatError] = []
        self.cases: list[CaseDict] = []
        self.records = 0
        self._keys: dict[str, int] = {}
        self.notes: list[str] = []  # for the person importing: e.g. assertions kept but skipped
        self.key_prefix = ""  # for cases without an id, when several files are read into one suite
        # Assertions every case gets (a config's defaults): a case then needs no expected output.
        self.has_default_assertions = False
        self._skipped: dict[str, int] = {}

    # -- errors -----------------------------------------------------------------------------------------

    def fatal(self, reason: str, line: int | None = None, field: str | None = None) -> SuiteFormatError:
        """An error that makes the rest of the file unreadable (for the caller to raise)."""
        return SuiteFormatError(self.file, reason, line, field)

    def error(self, line: int | None, field: str | None, reason: str) -> None:
        self.errors.append(SuiteFormatError(self.file, reason, line, field))
        if len(self.errors) >= self.max_errors:
            raise TooManyErrors

    def numbers_check(self, line: int | None, value: object, field: str | None = None) -> bool:
        """Report every number in `value` (a record's raw value, nested at any depth) that JSON and the
        database cannot hold: NaN, Infinity, 1e400, a 400-digit integer, naming its field
        (``metadata.scores[2]``, after `field`). True when there was one (the record is then dropped)."""
        found = jsonsafe.unsafe_numbers(value, limit=self.max_errors)
        for path, number, problem in found:
            written = getattr(number, "line", None)  # YAML: the line it is written on
            at = line if line is not None else written
            where = f" (written on line {written})" if written is not None and written != at else ""
            self.error(at, jsonsafe.dotted(path, field or "") or None, f"{problem}{where}; {NUMBER_REMEDY}")
        return bool(found)

    def count_record(self, line: int) -> None:
        """Call once per non-blank record; enforces the case limit."""
        self.records += 1
        if self.records > MAX_CASES:
            raise self.fatal(
                f"the file has more than {MAX_CASES:,} cases, the limit; split it into several suites", line
            )

    # -- reading ----------------------------------------------------------------------------------------

    def text_lines(self, fileobj: IO[bytes]) -> Iterator[str]:
        """Decode the file line by line (UTF-8, an initial BOM is dropped), keeping line endings.

        Lines are split on b"\\n" only, which never occurs inside a UTF-8 multi-byte sequence, so each
        line decodes on its own. A line with bad bytes is reported with its number and decoded with
        replacement characters so the rest of the file can still be checked.
        """
        lineno = 0
        while True:
            raw = fileobj.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            if not isinstance(raw, bytes | bytearray):
                raise TypeError("read_suite needs a file opened in binary mode ('rb') or a BytesIO")
            lineno += 1
            if len(raw) > MAX_LINE_BYTES:
                raise self.fatal(
                    f"the line is longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB; "
                    "check that the file really is CSV or JSON Lines",
                    lineno,
                )
            if lineno == 1 and raw.startswith(_UTF8_BOM):
                raw = raw[len(_UTF8_BOM) :]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                column = len(raw[: exc.start].decode("utf-8", "replace")) + 1
                text = raw.decode("utf-8", "replace")
                self.error(
                    lineno,
                    None,
                    f"is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {column}); "
                    "save the file with UTF-8 encoding",
                )
            yield text

    # -- cases ------------------------------------------------------------------------------------------

    def add_case(
        self,
        line: int,
        *,
        key: object = None,
        input: object = None,
        input_field: str = "input",
        expected: object = None,
        expected_field: str = "expected",
        assertions: object = None,
        tags: object = None,
        metadata: object = None,
        extra_metadata: dict[str, Any] | None = None,
        split: object = None,
    ) -> None:
        """Validate one record's raw values; record its errors, or append the case dict.

        ``expected`` is None when the field is absent and "" when it is present but empty.
        """
        unsafe = [
            self.numbers_check(line, value, name)  # every field reported, not only the first
            for name, value in (
                ("id", key), (input_field, input), (expected_field, expected), ("assertions", assertions),
                ("tags", tags), ("metadata", metadata), *(extra_metadata or {}).items(),
            )
        ]  # fmt: skip
        if any(unsafe):
            return
        errors_before = len(self.errors)
        case_key = self._key(line, key)
        case_input = self._input(line, input, input_field)
        case_assertions = self._assertions(line, assertions)
        # Invalid assertions are reported on their own; they still count as "given" for 'expected'.
        has_assertions = isinstance(assertions, list) and bool(assertions)
        case_expected = self._expected(
            line, expected, expected_field, has_assertions=has_assertions or self.has_default_assertions
        )
        case_tags = self._tags(line, tags)
        case_metadata = self._metadata(line, metadata, extra_metadata or {})
        case_split = self._split(line, split)
        for name, value in (
            (input_field, input), (expected_field, expected), ("metadata", metadata), ("tags", tags),
            ("assertions", assertions), ("metadata", extra_metadata),
        ):  # fmt: skip
            if has_nul(value):
                self.error(line, name, "contains a NUL character (\\u0000); remove it")
                break
        if len(self.errors) > errors_before or case_key is None:
            return
        self.cases.append(
            {
                "key": case_key,
                "input": case_input,  # type: ignore[typeddict-item]
                "expected": case_expected,
                "assertions": case_assertions,
                "tags": case_tags,
                "metadata": case_metadata,
                "split": case_split,  # type: ignore[typeddict-item]
                "line": line,
            }
        )

    def _key(self, line: int, raw: object) -> str | None:
        if isinstance(raw, int) and not isinstance(raw, bool):
            raw = str(raw)
        if raw is not None and not isinstance(raw, str):
            self.error(line, "id", f"is a {json_type(raw)}; give the id as a string")
            return None
        key = (raw or "").strip()
        if not key:
            key = f"{self.key_prefix}case-{line:04d}"
        elif len(key) > MAX_KEY_CHARS:
            self.error(line, "id", f"is longer than {MAX_KEY_CHARS} characters; use a shorter id")
            return None
        first = self._keys.get(key)
        if first is not None:
            self.error(line, "id", f"{key!r} is already used on line {first}; give each case a unique id")
            return None
        self._keys[key] = line
        return key

    def _input(self, line: int, raw: object, field: str) -> str | list[Message] | None:
        if raw is None:
            self.error(line, field, "is missing; give the input as text or as a list of chat messages")
            return None
        if isinstance(raw, str):
            if not raw.strip():
                self.error(line, field, "is empty; give the input text or remove the row")
                return None
            if _too_long(raw):
                self.error(line, field, TOO_LONG)
                return None
            return raw
        if isinstance(raw, list):
            return self.messages(line, raw, field)
        self.error(
            line,
            field,
            f"is a {json_type(raw)}; give a string or a list of chat messages "
            '({"role": "user", "content": "..."})',
        )
        return None

    def messages(self, line: int, raw: list[Any], field: str, *, offset: int = 0) -> list[Message] | None:
        """Validate chat messages; ``offset`` is the index of raw[0] in the original list (for errors)."""
        if not raw:
            self.error(line, field, "is an empty list; give at least one message")
            return None
        messages: list[Message] = []
        ok = True
        for index, item in enumerate(raw, start=offset):
            where = f"{field}[{index}]"
            if not isinstance(item, dict):
                self.error(line, where, f"is a {json_type(item)}; give an object with 'role' and 'content'")
                ok = False
                continue
            role = item.get("role")
            content = item.get("content")
            name = item.get("name")
            if role not in ROLES:
                shown = "missing" if role is None else f"{role!r}"
                self.error(line, f"{where}.role", f"is {shown}; use one of {', '.join(ROLES)}")
                ok = False
            if not isinstance(content, str):
                shown = "missing" if content is None else f"a {json_type(content)}"
                self.error(line, f"{where}.content", f"is {shown}; give the message text as a string")
                ok = False
            elif _too_long(content):
                self.error(line, f"{where}.content", TOO_LONG)
                ok = False
            if name is not None and not isinstance(name, str):
                self.error(line, f"{where}.name", f"is a {json_type(name)}; give a string or leave it out")
                ok = False
            if ok:
                message: Message = {"role": role, "content": content}  # type: ignore[typeddict-item]
                if name is not None:
                    message["name"] = name
                messages.append(message)
        return messages if ok else None

    def _expected(
        self, line: int, raw: object, field: str, *, has_assertions: bool
    ) -> str | list[str] | None:
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            if has_assertions:
                return None
            if raw is None:
                self.error(
                    line,
                    field,
                    "is missing; give the expected output (or 'ideal'), or 'assertions' to check instead",
                )
            else:
                self.error(line, field, "is empty; give the expected output or remove the row")
            return None
        if isinstance(raw, str):
            if _too_long(raw):
                self.error(line, field, TOO_LONG)
                return None
            return raw
        if isinstance(raw, list):
            if not raw:
                self.error(line, field, "is an empty list; give at least one acceptable output")
                return None
            ok = True
            for index, item in enumerate(raw):
                if not isinstance(item, str):
                    self.error(
                        line, f"{field}[{index}]", f"is a {json_type(item)}; acceptable outputs are strings"
                    )
                    ok = False
                elif not item.strip():
                    self.error(line, f"{field}[{index}]", "is empty; remove it or give the output")
                    ok = False
                elif _too_long(item):
                    self.error(line, f"{field}[{index}]", TOO_LONG)
                    ok = False
            return list(raw) if ok else None
        self.error(
            line,
            field,
            f"is a {json_type(raw)}; give a string or a list of acceptable strings"
            + (" (write numbers in quotes)" if json_type(raw) == "number" else ""),
        )
        return None

    def _assertions(self, line: int, raw: object) -> list[dict[str, Any]]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.error(
                line,
                "assertions",
                f'is a {json_type(raw)}; give a list such as [{{"type": "contains", "value": "Paris"}}]',
            )
            return []
        ok = True
        for index, item in enumerate(raw):
            if not isinstance(item, dict):
                self.error(
                    line,
                    f"assertions[{index}]",
                    f"is a {json_type(item)}; give an object with a 'type'",
                )
                ok = False
            elif not isinstance(item.get("type"), str) or not item["type"].strip():
                self.error(
                    line, f"assertions[{index}].type", "is missing; give each assertion a string 'type'"
                )
                ok = False
            elif problem := validate_assertion(item):
                self.error(line, f"assertions[{index}]", problem)
                ok = False
            elif (why := unrunnable_reason(item)) and why not in self._skipped:
                self._skipped[why] = line
                self.notes.append(f"line {line}: {why}")
        if ok and len(json.dumps(raw)) > MAX_FIELD_CHARS:
            self.error(line, "assertions", TOO_LONG)
            ok = False
        return list(raw) if ok else []

    def _tags(self, line: int, raw: object) -> list[str]:
        if raw is None:
            return []
        if isinstance(raw, str):
            tokens = _TAG_SEPARATORS.split(raw)
        elif isinstance(raw, list):
            tokens = []
            for index, item in enumerate(raw):
                if not isinstance(item, str):
                    self.error(line, f"tags[{index}]", f"is a {json_type(item)}; tags are strings")
                    return []
                tokens.append(item)
        else:
            self.error(
                line, "tags", f"is a {json_type(raw)}; give a list of strings or a comma-separated string"
            )
            return []
        tags: list[str] = []
        for token in tokens:
            tag = token.strip()
            if tag and tag not in tags:
                tags.append(tag)
        return tags

    def _metadata(self, line: int, raw: object, extra: dict[str, Any]) -> dict[str, Any]:
        if raw is None:
            metadata: dict[str, Any] = {}
        elif isinstance(raw, dict):
            metadata = dict(raw)
        else:
            self.error(line, "metadata", f'is a {json_type(raw)}; give an object such as {{"source": "faq"}}')
            return {}
        for name, value in extra.items():
            if name in metadata:
                self.error(
                    line,
                    name,
                    "is also a key of 'metadata'; keep only one of the two",
                )
                return {}
            metadata[name] = value
        if len(json.dumps(metadata, ensure_ascii=False)) > MAX_FIELD_CHARS:
            self.error(line, "metadata", TOO_LONG)
            return {}
        return metadata

    def _split(self, line: int, raw: object) -> str:
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return "test"
        if isinstance(raw, str) and raw.strip().lower() in SPLITS:
            return raw.strip().lower()
        shown = repr(raw) if isinstance(raw, str) else f"a {json_type(raw)}"
        self.error(line, "split", f"is {shown}; use 'test' (evaluated) or 'train' (examples and training)")
        return "test"


# -- several files, and what an importer returns beyond cases --------------------------------------------


@dataclass(frozen=True)
class SourceFile:
    """One uploaded file (or a member of an uploaded zip): its name as uploaded and its bytes."""

    name: str
    data: bytes

    def open(self) -> IO[bytes]:
        import io

        return io.BytesIO(self.data)


@dataclass
class SuiteExtras:
    """What a format brings besides cases: prompt templates (become strategies), assertions for
    every case (the suite's defaults), and notes for the person importing (e.g. skipped assertions)."""

    prompts: list[dict[str, str]] = field(default_factory=list)
    default_assertions: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def upload_size_check(sizes: list[tuple[str, int]], *, limit: int) -> None:
    """SuiteFormatError naming the files when their total size passes `limit` (FTVP_MAX_UPLOAD_BYTES).

    Every upload path calls it before reading the files (the page's form, the API, the CLI with the
    files' sizes on disk) and `read_sources` again on what it was given, so all say the same."""
    total = sum(size for _, size in sizes)
    if total > limit:
        names = ", ".join(name for name, _ in sizes[:5]) + (", ..." if len(sizes) > 5 else "")
        raise SuiteFormatError(
            names,
            f"{'is' if len(sizes) == 1 else 'are'} {total:,} bytes; the limit is {limit:,} bytes "
            "(FTVP_MAX_UPLOAD_BYTES): split the upload into smaller ones, or ask an admin to raise it",
        )


class _AliasRefused(yaml.YAMLError):
    def __init__(self, line: int) -> None:
        self.line = line
        super().__init__(f"line {line}: YAML aliases (*name) are not accepted; write the values out")


class _NoAliasLoader(yaml.SafeLoader):
    """Safe YAML without anchors/aliases: a few lines of aliases can expand to gigabytes."""

    def compose_node(self, parent, index):  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _AliasRefused(event.start_mark.line + 1)
        return super().compose_node(parent, index)


def _yaml_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    value = yaml.SafeLoader.construct_yaml_float(loader, node)
    if math.isfinite(value):
        return value
    return jsonsafe.UnsafeNumber(value, str(node.value), node.start_mark.line + 1)  # .nan, .inf, 1.0e+400


def _yaml_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int | float:
    try:
        value = yaml.SafeLoader.construct_yaml_int(loader, node)
    except ValueError:  # more than 4,300 digits: Python will not convert it
        value = -math.inf if str(node.value).lstrip().startswith("-") else math.inf
    if isinstance(value, int) and jsonsafe.number_problem(value) is None:
        return value
    return jsonsafe.UnsafeNumber(
        -math.inf if value < 0 else math.inf, str(node.value), node.start_mark.line + 1
    )


_NoAliasLoader.add_constructor("tag:yaml.org,2002:float", _yaml_float)
_NoAliasLoader.add_constructor("tag:yaml.org,2002:int", _yaml_int)


def load_yaml(source: SourceFile, loader: type[yaml.SafeLoader] | None = None) -> Any:
    """Parse a YAML file safely (no Python object tags, no aliases, at most MAX_YAML_BYTES; dates and
    other standard tags come back as text); SuiteFormatError with the line. `loader` may narrow the
    rules further (a subclass of the alias-free safe loader, e.g. YAML 1.2 scalars for promptfoo)."""
    if len(source.data) > MAX_YAML_BYTES:
        raise SuiteFormatError(
            source.name,
            f"is larger than {MAX_YAML_BYTES // 2**20} MB of YAML; write big suites as JSON Lines",
        )
    text = decode_utf8(source)
    try:
        return plain_yaml(yaml.load(text, Loader=loader or _NoAliasLoader))  # noqa: S506 - safe loaders only
    except _AliasRefused as exc:  # a "billion laughs" bomb, or any alias
        reason = "uses YAML aliases (*name), which are not accepted; write the values out"
        raise SuiteFormatError(source.name, reason, exc.line) from None
    except yaml.constructor.ConstructorError as exc:  # e.g. !!python/object/apply:os.system
        mark = exc.problem_mark or exc.context_mark
        tag = str(exc.problem or "").rpartition("tag ")[2].strip("'") or "a tag"
        raise SuiteFormatError(
            source.name,
            f"is not valid YAML for ftvp: the tag {tag.replace('tag:yaml.org,2002:', '!!')} is not accepted "
            "(no tag that builds objects); write the value as plain text, a list or a mapping",
            mark.line + 1 if mark else None,
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise SuiteFormatError(
            source.name, f"is not valid YAML: {exc.problem or exc}; fix it and upload the file again", line
        ) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (NUL, other controls)
        line = text.count("\n", 0, exc.position) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        what = "a NUL character (\\u0000)" if code == 0 else f"the control character U+{code:04X}"
        reason = f"contains {what}, which YAML does not allow; remove it"
        raise SuiteFormatError(source.name, reason, line) from None
    except yaml.YAMLError as exc:
        reason = f"is not valid YAML: {exc}; fix it and upload the file again"
        raise SuiteFormatError(source.name, reason) from None
    except RecursionError:
        raise SuiteFormatError(source.name, "nests too deeply to be read; flatten it") from None
