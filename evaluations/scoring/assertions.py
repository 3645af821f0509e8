"""Assertion scorers: a registry of pure functions from (assertion, context) to a scored verdict.

Assertion types follow promptfoo's names (``contains``, ``icontains-any``, ``is-json``, ``similar``,
``llm-rubric``...) plus ftvp's own (``exact``, ``label``, ``json-field``, ``json-schema``, ``length``). Any
type prefixed with ``not-`` negates it. An assertion is a mapping::

    {"type": "contains", "value": "Paris", "threshold": None, "weight": 1, "metric": "geo"}

Every verdict has a score in [0, 1], a pass/fail and a short reason. Scoring never raises: bad input that
slipped past :func:`validate_assertion` (or data the caller did not provide, such as an embedding or a
cost) gives a failing verdict whose reason says what is wrong - and a negated assertion does not turn such
a failure into a pass.

Nothing here imports Django; embeddings are computed by the caller (see :func:`texts_to_embed`) and
passed in ``Context.vectors``.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import jsonschema
import numpy as np

from evaluations.scoring.pairwise import PENDING_REASON as _PAIRWISE_PENDING
from evaluations.scoring.pairwise import check as _check_pairwise
from evaluations.scoring.scorers import _json_same, extract_label, normalise_text

NOT_PREFIX = "not-"
LEVENSHTEIN_DEFAULT_THRESHOLD = 5.0  # promptfoo's default maximum edit distance
RUBRIC_DEFAULT_THRESHOLD = 0.5
_EPS = 1e-9

Judge = Callable[[str, str, tuple[str, ...]], tuple[float, str]]


@dataclass(frozen=True)
class Verdict:
    score: float
    passed: bool
    reason: str
    skipped: bool = False  # kept but not run (ftvp cannot run it): counts in neither score nor pass


@dataclass(frozen=True)
class Context:
    output: str  # the extracted answer
    expected: tuple[str, ...] = ()  # the case's acceptable outputs
    vectors: Mapping[str, np.ndarray] = field(default_factory=lambda: MappingProxyType({}))
    similarity_threshold: float = 0.8
    labels: tuple[str, ...] = ()
    cost: float | None = None
    latency_ms: float | None = None
    judge: Judge | None = None


class ScorerInputError(Exception):
    """Raised by a scorer when it cannot score (bad value, missing data): the verdict fails, even negated."""


@dataclass(frozen=True)
class Scorer:
    name: str
    version: int  # bump when the semantics change, so stored scores can be told apart
    fn: Callable[[Any, float | None, Context], Verdict]  # (value, threshold, ctx); may raise ScorerInputError
    needs_embeddings: bool = False
    value_required: bool = False
    threshold_required: bool = False
    threshold_range: tuple[float, float] = (0.0, math.inf)
    check_value: Callable[[Any], str | None] | None = None  # static check of a given (non-None) value
    value_hint: str = ""


# --- helpers ----------------------------------------------------------------------------------------------


def _q(text: str, limit: int = 40) -> str:
    """A short quoted form of a text for reasons."""
    text = text.replace("\n", " ")
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"'{text}'"


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _is_number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _to_float(x: object) -> float | None:
    """A finite float from a number or a numeric string, else None."""
    if isinstance(x, bool):
        return None
    if isinstance(x, str):
        try:
            x = float(x.strip())
        except ValueError:
            return None
    if not _is_number(x):
        return None
    value = float(x)  # type: ignore[arg-type]
    return value if math.isfinite(value) else None


def _clip(x: float) -> float:
    if not math.isfinite(x):
        return 0.0
    return min(1.0, max(0.0, float(x)))


def _verdict(passed: bool, reason: str) -> Verdict:
    return Verdict(1.0 if passed else 0.0, passed, reason)


def _split_type(kind: object) -> tuple[str, bool]:
    kind = kind.strip() if isinstance(kind, str) else ""
    rest = kind[len(NOT_PREFIX) :]
    if kind.startswith(NOT_PREFIX) and (rest in SCORERS or rest in UNRUNNABLE):
        return rest, True
    return kind, False


def base_type(assertion: dict) -> str:
    """The scorer an assertion runs, without a `not-` prefix (e.g. "not-contains" -> "contains")."""
    return _split_type(assertion.get("type"))[0]


def _text_value(value: object) -> str:
    """A single text value (numbers are read as their text, as YAML would give ``contains: 42``)."""
    if isinstance(value, str):
        return value
    if _is_number(value):
        return str(value)
    raise ScorerInputError(f"value must be a text, got {type(value).__name__}")


def _text_list(value: object, *, split_commas: bool) -> list[str]:
    """A list of texts from a list or (promptfoo style) a comma-separated string."""
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",") if v.strip()] if split_commas else [value]
    elif isinstance(value, list | tuple):
        items = [_text_value(v) for v in value]
    else:
        items = [_text_value(value)]
    if not items:
        raise ScorerInputError("value is an empty list")
    return items


def _comparison_texts(value: object, ctx: Context) -> list[str]:
    """The value's texts, or the case's expected outputs when there is no value."""
    texts = list(ctx.expected) if value is None else _text_list(value, split_commas=False)
    if not texts:
        raise ScorerInputError("no expected output to compare with")
    return texts


def _check_text(value: object) -> str | None:
    if isinstance(value, str) and value != "":
        return None
    if _is_number(value):
        return None
    return "must be a non-empty text"


def _check_text_list(value: object) -> str | None:
    if isinstance(value, str):
        return None if any(v.strip() for v in value.split(",")) else "must name at least one text"
    if isinstance(value, list | tuple):
        if not value:
            return "must name at least one text"
        if all(_check_text(v) is None for v in value):
            return None
    return "must be a list of texts (or a comma-separated text)"


def _check_text_or_list(value: object) -> str | None:
    if isinstance(value, list | tuple):
        if value and all(isinstance(v, str) for v in value):
            return None
        return "must be a text or a non-empty list of texts"
    return None if isinstance(value, str) else "must be a text or a list of texts"


# --- string matching --------------------------------------------------------------------------------------


def _equals(value: Any, threshold: float | None, ctx: Context) -> Verdict:
    out = ctx.output
    if isinstance(value, dict | list):  # promptfoo: an object value compares as JSON
        got = _loads(out)
        if got is _MISSING:
            return _verdict(False, "output is not valid JSON")
        return _verdict(
            _json_same(got, value),
            "equals the JSON value" if _json_same(got, value) else "differs from the JSON value",
        )
    targets = _comparison_texts(value, ctx) if value is None else [_text_value(value)]
    ok = any(_nfc(out) == _nfc(t) for t in targets)
    shown = _q(targets[0]) if len(targets) == 1 else "an expected output"
    return _verdict(ok, f"equals {shown}" if ok else f"does not equal {shown}")


def _json_equals(value: Any, threshold: float | None, ctx: Context) -> Verdict:
    """The output parses to the same JSON value as the given one, or as one of the expected outputs."""
    got = _loads(ctx.output)
    if got is _MISSING:
        return _verdict(False, "output is not valid JSON")
    if value is not None:
        targets = [value if isinstance(value, dict | list) else _loads(_text_value(value))]
    else:
        targets = [_loads(t) for t in ctx.expected]
    targets = [t for t in targets if t is not _MISSING]
    if not targets:
        return _verdict(False, "no expected JSON value to compare with")
    ok = any(_json_same(got, t) for t in targets)
    return _verdict(ok, "equals the expected JSON" if ok else "differs from the expected JSON")


def _contains_one(case_insensitive: bool) -> Callable[[Any, float | None, Context], Verdict]:
    def fn(value: Any, threshold: float | None, ctx: Context) -> Verdict:
        needle, hay = _nfc(_text_value(value)), _nfc(ctx.output)
        if case_insensitive:
            needle, hay = needle.casefold(), hay.casefold()
        ok = needle in hay
        shown = _q(_text_value(value))
        return _verdict(ok, f"contains {shown}" if ok else f"does not contain {shown}")

    return fn


def _fold(text: str, case_insensitive: bool) -> str:
    text = _nfc(text)
    return text.casefold() if case_insensitive else text


def _contains_any(case_insensitive: bool) -> Callable[[Any, float | None, Context], Verdict]:
    def fn(value: Any, threshold: float | None, ctx: Context) -> Verdict:
        needles = _text_list(value, split_commas=True)
        hay = _fold(ctx.output, case_insensitive)
        found = [n for n in needles if _fold(n, case_insensitive) in hay]
        if found:
            return _verdict(True, f"contains {_q(found[0])}")
        return _verdict(False, f"contains none of {', '.join(_q(n, 20) for n in needles[:5])}")

    return fn


def _contains_all(case_insensitive: bool) -> Callable[[Any, float | None, Context], Verdict]:
    def fn(value: Any, threshold: float | None, ctx: Context) -> Verdict:
        needles = _text_list(value, split_commas=True)
        hay = _fold(ctx.output, case_insensitive)
        missing = [n for n in needles if _fold(n, case_insensitive) not in hay]
        score = 1.0 - len(missing) / len(needles)
        if not missing:
            return Verdict(1.0, True, f"contains all {len(needles)}")
        return Verdict(score, False, f"missing {', '.join(_q(n, 20) for n in missing[:5])}")

    return fn


def _starts_with(value: Any, threshold: float | None, ctx: Context) -> Verdict:
    prefix = _text_value(value)
    ok = _nfc(ctx.output).startswith(_nfc(prefix))
    return _verdict(ok, f"starts with {_q(prefix)}" if ok else f"does not start with {_q(prefix)}")


def _compile(pattern: object) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise ScorerInputError(f"regex must be a text, got {type(pattern).__name__}")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ScorerInputError(f"invalid regex {_q(pattern)}: {exc}") from None


def _check_regex(value: object) -> str | None:
    if not isinstance(value, str) or not value:
        return "must be a non-empty regular expression"
    try:
        re.compile(value)
    except re.error as exc:
        return f"is not a valid regular expression ({exc})"
    return None


def _regex(value: Any, threshold: float | None, ctx: Context) -> Verdict:
    pattern = _compile(value)
    ok = pattern.search(ctx.output) is not None
    return _verdict(ok, f"matches /{value}/" if ok else f"does not match /{value}/")


# --- JSON -------------------------------------------------------------------------------------------------

_FENCE = re.compile(r"^\s*```[\w-]*\s*\n(.*?)\n?\s*```\s*$", re.DOTALL)
_MISSING = object()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)  # strict JSON: no NaN or Infinity


def _loads(text: str) -> Any:
    """The JSON value of a text, or _MISSING."""
    try:
        return _DECODER.decode(text)
    except (ValueError, RecursionError):
        return _MISSING


def _parse_output_json(text: str) -> Any:
    """The output as JSON, also when wrapped in a single markdown code fence; else _MISSING."""
    got = _loads(text)
    if got is _MISSING:
        match = _FENCE.match(text)
        if match:
            got = _loads(match.group(1))
    return got


def _embedded_json(text: str, limit: int = 50, attempts: int = 500) -> list[Any]:
    """JSON objects and arrays found inside a text, left to right (at most ``limit``, trying ``attempts``
    opening brackets so a long text full of stray brackets stays cheap)."""
    decoder = _DECODER
    found: list[Any] = []
    pos = 0
    while len(found) < limit and attempts > 0:
        attempts -= 1
        starts = [i for i in (text.find("{", pos), text.find("[", pos)) if i >= 0]
        if not starts:
            break
        start = min(starts)
        try:
            obj, end = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):
            pos = start + 1
            continue
        found.append(obj)
        pos = end
    return found


def _schema_of(value: object) -> Any:
    """A JSON schema from a mapping, a boolean or a JSON text."""
    if isinstance(value, str):
        value = _loads(value)
        if value is _MISSING:
            raise ScorerInputError("schema is not valid JSON")
    if not isinstance(value, dict | bool):
        raise ScorerInputError("schema must be a JSON object")
    return value


def _check_schema(value: object) -> str | None:
    try:
        schema = _schema_of(value)
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except ScorerInputError as exc:
        return f"is not a JSON schema ({exc})"
    except jsonschema.SchemaError as exc:
        return f"is not a valid JSON schema ({exc.message})"
    return None


def _schema_problem(instance: Any, schema: Any) -> str | None:
    """None when the instance is valid, else a short description of the most relevant error."""
    try:
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        error = jsonschema.exceptions.best_match(cls(schema).iter_errors(instance))
    except jsonschema.SchemaError as exc:
        raise ScorerInputError(f"invalid JSON schema: {exc.message}") from None
    if error is None:
        return None
    where = error.json_path if error.json_path != "$" else ""
    message = error.message if len(error.message) <= 80 else error.message[:79] + "…"
    return f"{where}: {message}" if where else message


def _is_json(value: Any, threshold: float | None, ctx: Context) -> Verdict:
    got = _loads(ctx.output)
    if got is _MISSING:
        return _verdict(False, "output is not valid JSON")
    if value is None:
        return _verdict(True, "output is valid JSON")
    problem = _schema_problem(got, _schema_of(value))
    return _verdict(problem is None, "JSON matches the schema" if problem is None else f"schema: {problem}")


def _contains_json(value: Any, threshold: float | None, ctx: Context) -> Verdict:
    candidates = _embedded_json(ctx.output)
    if not candidates:
        return _verdict(False, "output contains no JSON")
    if value is None:
        return _verdict(True, "output contains JSON")
    schema = _schema_of(value)
    first_problem = None
    for obj in candidates:
        problem = _schema_problem(obj, schema)
        if problem is None:
            return _verdict(True, "contains JSON matching the schema")
        first_problem = first_problem or problem
    return _verdict(False, f"schema: {first_problem}")


def _json_schema(value: Any, threshold: float | None, ctx: Context) -> Verdict:
    schema = _schema_of(value)
    got = _parse_output_json(ctx.output)
    if got is _MISSING:
        return _verdict(False, "output is not valid JSON")
    problem = _schema_problem(got, schema)
    return _verdict(problem is None, "JSON matches the schema" if problem is None else f"schema: {problem}")


_PATH_TOKEN = re.compile(r"\.?([^.\[\]]+)|\[(-?\d+)\]|\[[\"']([^\"']*)[\"']\]")


def parse_json_path(path: str) -> list[str | int]:
    """``a.b[0]`` (optionally ``$.a.b[0]`` or ``a["odd key"]``) as keys and indexes; ValueError if bad."""
    text = path.strip()
    if text.startswith("$"):
        text = text[1:]
    if not text:
        raise ValueError("the path is empty")
    steps: list[str | int] = []
    pos = 0
    while pos < len(text):
        match = _PATH_TOKEN.match(text, pos)
        if not match or (match.group(1) is not None and pos > 0 and text[pos] != "."):
            raise ValueError(f"cannot read the path at {text[pos:]!r}")
        key, index, quoted = match.groups()
        steps.append(int(index) if index is not None else (quoted if quoted is not None else key))
        pos = match.end()
    return steps


def _check_json_field(value: object) -> str | None:
    if not isinstance(value, dict) or not isinstance(value.get("path"), str):
        return 'must be an object like {"path": "a.b[0]", "equals": "x"}'
    try:
        parse_json_path(value["path"])
    except ValueError as exc:
        return f"has a bad path {value['path']!r} ({exc}); write it like a.b[0]"
    unknown = set(value) - {"path", "equals"}
    if unknown:
        return f"has unknown keys {sorted(unknown)}; use 'path' and 'equals'"
    return None


def _child(node: Any, step: str | int) -> Any:
    if isinstance(step, int) and isinstance(node, list) and -len(node) <= step < len(node):
        return node[step]
    if isinstance(step, str) and isinstance(node, dict) and step in node:
        return node[step]
    return _MISSING


def _json_field(value: Any, threshold: float | None, ctx: Context) -> Verdict:
    problem = _check_json_field(value)
    if problem:
        raise ScorerInputError(f"json-field value {problem}")
    path = value["path"]
    got = _parse_output_json(ctx.output)
    if got is _MISSING:
        return _verdict(False, "output is not valid JSON")
    node = got
    for step in parse_json_path(path):
        node = _child(node, step)
        if node is _MISSING:
            return _verdict(False, f"no field {path}")
    if "equals" not in value:
        return _verdict(True, f"field {path} exists")
    ok = _json_same(node, value["equals"])
    shown = json.dumps(value["equals"], ensure_ascii=False)
    return _verdict(ok, f"{path} == {_q(shown, 30)}" if ok else f"{path} != {_q(shown, 30)}")


# --- distances and bounds ---------------------------------------------------------------------------------


def levenshtein_distance(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions), row by row with numpy."""
    if a == b:
        return 0
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    bs = np.array([ord(c) for c in b], dtype=np.int64)
    steps = np.arange(len(b) + 1, dtype=np.int64)
    prev = steps.copy()
    for i, ch in enumerate(a, start=1):
        cur = np.empty_like(prev)
        cur[0] = i
        # deletion (prev[j] + 1) and substitution (prev[j-1] + cost), then insertions via a running minimum
        cur[1:] = np.minimum(prev[1:] + 1, prev[:-1] + (bs != ord(ch)))
        cur = np.minimum.accumulate(cur - steps) + steps
        prev = cur
    return int(prev[-1])


def _levenshtein(value: Any, threshold: float | None, ctx: Context) -> Verdict:
    targets = _comparison_texts(value, ctx)
    limit = LEVENSHTEIN_DEFAULT_THRESHOLD if threshold is None else threshold
    out = _nfc(ctx.output)
    best_score, best_distance = 0.0, None
    for target in targets:
        target = _nfc(target)
        distance = levenshtein_distance(out, target)
        longest = max(len(out), len(target))
        score = 1.0 if longest == 0 else _clip(1.0 - distance / longest)
        best_score = max(best_score, score)
        best_distance = distance if best_distance is None else min(best_distance, distance)
    assert best_distance is not None
    ok = best_distance <= limit
    sign = "<=" if ok else ">"
    return Verdict(best_score, ok, f"edit distance {best_distance} {sign} {limit:g}")


def _check_length(value: object) -> str | None:
    if not isinstance(value, dict) or not ({"min", "max"} & set(value)):
        return 'must be an object like {"min": 10, "max": 200}'
    unknown = set(value) - {"min", "max"}
    if unknown:
        return f"has unknown keys {sorted(unknown)}; use 'min' and 'max'"
    bounds = {}
    for key in ("min", "max"):
        if value.get(key) is None:
            continue
        bound = _to_float(value[key])
        if bound is None or bound < 0:
            return f"has a bad {key} {value[key]!r}; give a number of characters >= 0"
        bounds[key] = bound
    if "min" in bounds and "max" in bounds and bounds["min"] > bounds["max"]:
        return f"has min {value['min']} above max {value['max']}"
    return None


def _length(value: Any, threshold: float | None, ctx: Context) -> Verdict:
    problem = _check_length(value)
    if problem:
        raise ScorerInputError(f"length value {problem}")
    low, high = _to_float(value.get("min")), _to_float(value.get("max"))
    n = len(_nfc(ctx.output))
    if low is not None and n < low:
        return _verdict(False, f"length {n} < min {low:g}")
    if high is not None and n > high:
        return _verdict(False, f"length {n} > max {high:g}")
    low_text = "0" if low is None else f"{low:g}"
    high_text = "∞" if high is None else f"{high:g}"
    return _verdict(True, f"length {n} within [{low_text}, {high_text}]")


def _cost(value: Any, threshold: float | None, ctx: Context) -> Verdict:
    if threshold is None:
        raise ScorerInputError("cost needs a threshold (max USD)")
    cost = _to_float(ctx.cost)
    if cost is None:
        raise ScorerInputError("cost unknown")
    ok = cost <= threshold
    return _verdict(ok, f"cost ${cost:.4g} {'<=' if ok else '>'} ${threshold:.4g}")


def _latency(value: Any, threshold: float | None, ctx: Context) -> Verdict:
    if threshold is None:
        raise ScorerInputError("latency needs a threshold (max ms)")
    latency = _to_float(ctx.latency_ms)
    if latency is None:
        raise ScorerInputError("latency unknown")
    ok = latency <= threshold
    return _verdict(ok, f"latency {latency:.0f} ms {'<=' if ok else '>'} {threshold:g} ms")


# --- semantic ---------------------------------------------------------------------------------------------


def _vector(ctx: Context, text: str, name: str) -> np.ndarray:
    vec = ctx.vectors.get(text)
    if vec is None:
        raise ScorerInputError(f"no embedding for {name}")
    return np.asarray(vec, dtype=np.float64).ravel()


def _similar(value: Any, threshold: float | None, ctx: Context) -> Verdict:
    targets = _comparison_texts(value, ctx)
    limit = ctx.similarity_threshold if threshold is None else threshold
    out = _vector(ctx, ctx.output, "the output")
    best = 0.0
    for target in targets:
        vec = _vector(ctx, target, _q(target, 30))
        if vec.shape != out.shape:
            raise ScorerInputError(f"embedding sizes differ ({out.shape[0]} vs {vec.shape[0]})")
        best = max(best, _clip(float(out @ vec)))
    ok = best >= limit - _EPS
    return Verdict(best, ok, f"similarity {best:.2f} {'>=' if ok else '<'} {limit:.2f}")


def _exact(value: Any, threshold: float | None, ctx: Context) -> Verdict:
    targets = _comparison_texts(value, ctx)
    norm = normalise_text(ctx.output)
    ok = any(norm == normalise_text(t) for t in targets)
    return _verdict(ok, "matches an expected output" if ok else "matches no expected output")


def _label(value: Any, threshold: float | None, ctx: Context) -> Verdict:
    wanted = _comparison_texts(value, ctx)
    labels = list(ctx.labels) or wanted
    got = extract_label(ctx.output, labels)
    if got is None:
        return _verdict(False, f"no label found, expected {_q(wanted[0])}")
    ok = any(normalise_text(got) == normalise_text(w) for w in wanted)
    return _verdict(ok, f"label {_q(got)}" if ok else f"label {_q(got)}, expected {_q(wanted[0])}")


def _llm_rubric(value: Any, threshold: float | None, ctx: Context) -> Verdict:
    rubric = _text_value(value)
    if ctx.judge is None:
        return Verdict(
            0.0, True, "skipped: no judge endpoint is configured (FTVP_JUDGE_ENDPOINT)", skipped=True
        )
    limit = RUBRIC_DEFAULT_THRESHOLD if threshold is None else threshold
    try:
        raw_score, why = ctx.judge(rubric, ctx.output, tuple(ctx.expected))
    except Exception as exc:
        raise ScorerInputError(f"judge failed: {str(exc)[:80] or type(exc).__name__}") from None
    score = _to_float(raw_score)
    if score is None:
        raise ScorerInputError(f"judge gave no score ({raw_score!r})")
    score = _clip(score)
    ok = score >= limit - _EPS
    why = " ".join(str(why or "").split())
    if len(why) > 120:
        why = why[:119] + "…"
    return Verdict(score, ok, f"judge {score:.2f}" + (f": {why}" if why else ""))


def _pairwise(value: Any, threshold: float | None, ctx: Context) -> Verdict:
    """A result alone cannot be compared with another arm's: the batch leaves it pending, and the run's
    pairwise step (services/pairwise.py) writes the judge's verdict once every arm's outputs are in."""
    return Verdict(0.0, True, _PAIRWISE_PENDING, skipped=True)


# --- registry ---------------------------------------------------------------------------------------------


def _scorers(*items: Scorer) -> dict[str, Scorer]:
    return {s.name: s for s in items}


_TEXT = {"value_required": True, "check_value": _check_text, "value_hint": "the text to look for"}
_TEXTS = {"value_required": True, "check_value": _check_text_list, "value_hint": "a list of texts"}
_UNIT = (0.0, 1.0)

SCORERS: dict[str, Scorer] = _scorers(
    Scorer("equals", 1, _equals, value_hint="the exact text (default: the expected outputs)"),
    Scorer("contains", 1, _contains_one(False), **_TEXT),
    Scorer("icontains", 1, _contains_one(True), **_TEXT),
    Scorer("contains-any", 1, _contains_any(False), **_TEXTS),
    Scorer("icontains-any", 1, _contains_any(True), **_TEXTS),
    Scorer("contains-all", 1, _contains_all(False), **_TEXTS),
    Scorer("icontains-all", 1, _contains_all(True), **_TEXTS),
    Scorer("starts-with", 1, _starts_with, **_TEXT),
    Scorer(
        "regex", 1, _regex, value_required=True, check_value=_check_regex, value_hint="a regular expression"
    ),
    Scorer("is-json", 1, _is_json, check_value=_check_schema),
    Scorer("json-equals", 1, _json_equals, value_hint="a JSON value (default: the expected outputs)"),
    Scorer("contains-json", 1, _contains_json, check_value=_check_schema),
    Scorer(
        "json-schema",
        1,
        _json_schema,
        value_required=True,
        check_value=_check_schema,
        value_hint="a JSON schema",
    ),
    Scorer(
        "json-field",
        1,
        _json_field,
        value_required=True,
        check_value=_check_json_field,
        value_hint='{"path": "a.b[0]", "equals": ...}',
    ),
    Scorer("levenshtein", 1, _levenshtein, check_value=_check_text_or_list),
    Scorer(
        "length",
        1,
        _length,
        value_required=True,
        check_value=_check_length,
        value_hint='{"min": 10, "max": 200}',
    ),
    Scorer("cost", 1, _cost, threshold_required=True),
    Scorer("latency", 1, _latency, threshold_required=True),
    Scorer(
        "similar", 1, _similar, needs_embeddings=True, threshold_range=_UNIT, check_value=_check_text_or_list
    ),
    Scorer("exact", 1, _exact, check_value=_check_text_or_list),
    Scorer("label", 1, _label, check_value=_check_text_or_list),
    Scorer(
        "llm-rubric",
        1,
        _llm_rubric,
        value_required=True,
        threshold_range=_UNIT,
        check_value=_check_text,
        value_hint="the rubric text",
    ),
    Scorer("pairwise", 1, _pairwise, threshold_range=_UNIT),
)

_THRESHOLD_MEANING = {
    "cost": "the maximum cost in USD",
    "latency": "the maximum latency in ms",
    "levenshtein": "the maximum edit distance",
}


# Assertions other tools run that ftvp cannot (code, or graders it has no model for): imported and
# kept, reported as skipped on import and in every result, never dropped.
UNRUNNABLE = {
    "javascript": "runs JavaScript",
    "python": "runs Python code",
    "webhook": "calls a webhook",
    "model-graded-closedqa": "needs a grading model",
    "model-graded-factuality": "needs a grading model",
    "factuality": "needs a grading model",
    "answer-relevance": "needs a grading model",
    "context-faithfulness": "needs a grading model",
    "context-recall": "needs a grading model",
    "context-relevance": "needs a grading model",
    "g-eval": "needs a grading model",
    "select-best": "compares several outputs",
    "perplexity": "needs token log-probabilities",
    "moderation": "needs a moderation API",
    "rouge-n": "has no ROUGE scorer in ftvp",
    "bleu": "has no BLEU scorer in ftvp",
    "classifier": "needs a classifier model",
    "is-valid-openai-function-call": "needs function-call outputs",
    "is-valid-openai-tools-call": "needs tool-call outputs",
    "is-xml": "has no XML scorer in ftvp",
    "contains-xml": "has no XML scorer in ftvp",
    "is-sql": "has no SQL scorer in ftvp",
    "contains-sql": "has no SQL scorer in ftvp",
    "is-html": "has no HTML scorer in ftvp",
    "contains-html": "has no HTML scorer in ftvp",
    "is-refusal": "needs a refusal classifier",
    "finish-reason": "needs the provider's finish reason",
    "guardrails": "needs a guardrails provider",
    "ruby": "runs Ruby code",
    "word-count": "has no word-count scorer in ftvp (use length)",
    "tool-call-f1": "needs tool-call outputs",
    "conversation-relevance": "needs a grading model",
    "search-rubric": "needs a grading model with search",
    "pi": "needs a grading model",
    "meteor": "has no METEOR scorer in ftvp",
    "gleu": "has no GLEU scorer in ftvp",
    "perplexity-score": "needs token log-probabilities",
    "similar:cosine": "uses another similarity (ftvp's similar is cosine on MiniLM)",
    "similar:dot": "uses another similarity",
    "similar:euclidean": "uses another similarity",
    "human": "needs a human grader (use ftvp's review queue)",
    "max-score": "compares several outputs",
    "skill-used": "needs agent traces",
    "openai-grader": "is an OpenAI Evals grader ftvp has no equivalent for",
}


def unrunnable_reason(assertion: object) -> str | None:
    """Why ftvp keeps but skips this assertion, or None when it runs it."""
    if not isinstance(assertion, dict):
        return None
    name, _negated = _split_type(assertion.get("type"))
    why = UNRUNNABLE.get(name)
    return f"'{name}' {why}: kept, and skipped when scoring" if why else None


def _known() -> str:
    return ", ".join(SCORERS) + " (any of them prefixed with 'not-')"


def validate_assertion(assertion: dict) -> str | None:
    """None when the assertion can be scored, else a one-line problem and what to do about it."""
    if not isinstance(assertion, dict):
        return f"an assertion must be an object with a 'type', not a {type(assertion).__name__}"
    kind = assertion.get("type")
    if not isinstance(kind, str) or not kind.strip():
        return f"the assertion has no 'type'; use one of: {_known()}"
    name, _negated = _split_type(kind)
    if name in UNRUNNABLE:
        return None  # kept as it is; unrunnable_reason says why it will be skipped
    scorer = SCORERS.get(name)
    if scorer is None:
        return f"unknown assertion type {kind.strip()!r}; use one of: {_known()}"
    if name == "pairwise":
        problem = _check_pairwise(assertion)
        if problem:
            return problem
    value = assertion.get("value")
    if value is None:
        if scorer.value_required:
            return f"'{kind.strip()}' needs a 'value' ({scorer.value_hint})"
    elif scorer.check_value is not None:
        problem = scorer.check_value(value)
        if problem:
            return f"'{kind.strip()}' value {problem}"
    threshold = assertion.get("threshold")
    if threshold is None:
        if scorer.threshold_required:
            meaning = _THRESHOLD_MEANING.get(name, "a number")
            return f"'{kind.strip()}' needs a 'threshold' ({meaning})"
    else:
        number = _to_float(threshold)
        if number is None:
            return f"'{kind.strip()}' threshold {threshold!r} is not a number; give a number such as 0.8"
        low, high = scorer.threshold_range
        if not low <= number <= high:
            bounds = f"between {low:g} and {high:g}" if math.isfinite(high) else f">= {low:g}"
            return f"'{kind.strip()}' threshold {number:g} is out of range; give a number {bounds}"
    if "weight" in assertion and assertion["weight"] is not None:
        weight = _to_float(assertion["weight"])
        if weight is None or weight < 0:
            return (
                f"weight {assertion['weight']!r} must be a number >= 0 (0 makes the assertion informational)"
            )
    metric = assertion.get("metric")
    if metric is not None and not isinstance(metric, str):
        return f"metric {metric!r} must be a text"
    return None


def evaluate(assertion: dict, ctx: Context) -> Verdict:
    """Score one assertion. Never raises: problems give a failing verdict that says what is wrong."""
    try:
        kind = assertion.get("type") if isinstance(assertion, dict) else None
        name, negated = _split_type(kind)
        if name in UNRUNNABLE:
            return Verdict(0.0, True, f"skipped: '{name}' {UNRUNNABLE[name]}", skipped=True)
        scorer = SCORERS.get(name)
        if scorer is None:
            shown = kind.strip() if isinstance(kind, str) else kind
            return Verdict(0.0, False, f"unknown assertion type {shown!r}")
        raw_threshold = assertion.get("threshold")
        threshold = None if raw_threshold is None else _to_float(raw_threshold)
        if raw_threshold is not None and threshold is None:
            return Verdict(0.0, False, f"threshold {raw_threshold!r} is not a number")
        verdict = scorer.fn(assertion.get("value"), threshold, ctx)
    except ScorerInputError as exc:
        return Verdict(0.0, False, str(exc))
    except Exception as exc:  # a scorer bug or an input nobody thought of must not stop a run
        return Verdict(0.0, False, f"scorer error: {type(exc).__name__}: {str(exc)[:80]}")
    if verdict.skipped:
        return verdict
    score = _clip(verdict.score)
    if negated:
        return Verdict(1.0 - score, not verdict.passed, f"negated: {verdict.reason}")
    return Verdict(score, verdict.passed, verdict.reason)


def texts_to_embed(assertion: dict, ctx: Context) -> list[str]:
    """The texts ``similar`` needs in ``ctx.vectors`` (the output first, then the comparison texts)."""
    if not isinstance(assertion, dict):
        return []
    name, _negated = _split_type(assertion.get("type"))
    scorer = SCORERS.get(name)
    if scorer is None or not scorer.needs_embeddings:
        return []
    try:
        targets = _comparison_texts(assertion.get("value"), ctx)
    except ScorerInputError:
        targets = []
    return list(dict.fromkeys([ctx.output, *targets]))


def _weight(assertion: object) -> float:
    raw = assertion.get("weight") if isinstance(assertion, dict) else None
    if raw is None:
        return 1.0
    weight = _to_float(raw)
    return 1.0 if weight is None else max(0.0, weight)


def combine(assertions: list[dict], verdicts: list[Verdict]) -> Verdict:
    """A case's verdict: the weighted mean score, passed when every weighted assertion passed.

    Weight 0 makes an assertion informational: it counts in neither the score nor the pass. A case with
    no weighted assertion fails (there is nothing that could make it pass).
    """
    if len(assertions) != len(verdicts):
        raise ValueError(f"{len(assertions)} assertions but {len(verdicts)} verdicts")
    weights = [0.0 if v.skipped else _weight(a) for a, v in zip(assertions, verdicts, strict=True)]
    total = sum(weights)
    if total <= 0:
        if assertions and all(v.skipped for v in verdicts):
            return Verdict(0.0, False, "every assertion was skipped: nothing ftvp can run", skipped=True)
        return Verdict(0.0, False, "no assertions" if not assertions else "no weighted assertions")
    score = _clip(sum(w * _clip(v.score) for w, v in zip(weights, verdicts, strict=True)) / total)
    failing = [v.reason for w, v in zip(weights, verdicts, strict=True) if w > 0 and not v.passed]
    if failing:
        return Verdict(score, False, "; ".join(failing))
    weighted = [v for w, v in zip(weights, verdicts, strict=True) if w > 0]
    return Verdict(score, True, weighted[0].reason if len(weighted) == 1 else f"all {len(weighted)} passed")


def scorer_versions(assertions: list[dict]) -> dict[str, int]:
    """The versions of the scorers these assertions use, by scorer name (``not-x`` uses ``x``)."""
    versions: dict[str, int] = {}
    for assertion in assertions:
        if isinstance(assertion, dict):
            name, _negated = _split_type(assertion.get("type"))
            if name in SCORERS:
                versions[name] = SCORERS[name].version
    return dict(sorted(versions.items()))
