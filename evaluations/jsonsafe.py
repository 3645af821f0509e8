"""Numbers JSON and the database can hold: the one check every way in uses (API, forms, importers).

JSON has no NaN nor Infinity, and a number beyond the largest double (about ±1.8e308) is read as
infinity by Python (``json.loads("1e400")`` gives ``inf``), by SQLite's JSON functions, by JavaScript
and by most clients; stored, such a value is written out as ``Infinity``, which PostgreSQL refuses
and SQLite's ``JSON_VALID`` check refuses (an integrity error, a 500, before this check). So a value
anywhere in a JSON document (nested too) must be a finite number within ±1.8e308:

- ``loads`` parses JSON text like ``json.loads`` but never fails on a number: ``NaN``, ``Infinity``,
  ``1e400`` and integers too long to convert come back as :class:`UnsafeNumber` (a float that keeps
  how it was written), so the caller can name the field that holds it;
- ``unsafe_numbers(value)`` lists where a parsed value holds a number that cannot be stored, and why.

Pure Python, no Django: the importers use it as well.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import sys
from decimal import Decimal
from typing import Any

FLOAT_MAX = sys.float_info.max  # the largest double, about 1.8e308
_FLOAT_MAX_DECIMAL = Decimal(FLOAT_MAX)
_MAX_INT_DIGITS = len(str(int(FLOAT_MAX)))  # 309: an integer written with more digits is larger
RANGE = "±1.8e308"


class UnsafeNumber(float):
    """A number as written that JSON or the database cannot hold (NaN, Infinity, 1e400, an integer of
    400 digits): a float (NaN or ±inf, so nothing that touches it fails) that remembers its text and,
    from YAML, the line it is written on."""

    text: str
    line: int | None

    def __new__(cls, value: float, text: str, line: int | None = None) -> UnsafeNumber:
        number = super().__new__(cls, value)
        number.text = text
        number.line = line
        return number

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (float(self), self.text, self.line))


def _parse_float(text: str) -> float:
    value = float(text)
    return value if math.isfinite(value) else UnsafeNumber(value, text)


def _parse_int(text: str) -> int | float:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:  # also spares int() its 4,300-digit ValueError
        return UnsafeNumber(-math.inf if text.startswith("-") else math.inf, text)
    return int(text)


def _parse_constant(name: str) -> float:
    return UnsafeNumber(float(name), name)


# Keyword arguments of json.loads / json.JSONDecoder that keep unsafe numbers for the caller to name.
JSON_HOOKS = {"parse_float": _parse_float, "parse_int": _parse_int, "parse_constant": _parse_constant}


def loads(text: str | bytes) -> Any:
    """``json.loads``, with numbers JSON or the database cannot hold kept as UnsafeNumber."""
    return json.loads(text, **JSON_HOOKS)


class Decoder(json.JSONDecoder):
    """A JSONDecoder with the hooks of `loads` (for Django's JSONField, which takes a decoder class)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{**kwargs, **JSON_HOOKS})


def shown(value: Any) -> str:
    """The number as written (or as near as can be said), short enough for a message."""
    text = getattr(value, "text", None)
    if isinstance(value, float) and text is None:
        text = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    elif isinstance(value, int) and text is None:
        digits = int(value.bit_length() * math.log10(2)) + 1
        text = str(value) if digits <= 24 else f"a {digits}-digit integer"
    elif text is None:
        text = str(value)
    if len(text) > 24:
        text = f"{text[:12]}... ({len(text)} characters)"
    return text


def number_problem(value: Any) -> str | None:
    """Why `value` cannot be stored as a JSON number (NaN, infinite, beyond ±1.8e308), or None when
    it can (or is no number at all)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        not_a_number = math.isnan(value) or not any(ch.isdigit() for ch in getattr(value, "text", ""))
    elif isinstance(value, Decimal):
        if value.is_finite() and abs(value) <= _FLOAT_MAX_DECIMAL:
            return None
        not_a_number = not value.is_finite()
    else:
        if -FLOAT_MAX <= value <= FLOAT_MAX:  # exact: Python compares int and float without rounding
            return None
        not_a_number = False
    if not_a_number:
        return f"{shown(value)} is not a number JSON or the database can hold"
    return f"{shown(value)} is too large for JSON and the database (the limit is {RANGE})"


Path = tuple[str | int, ...]


def unsafe_numbers(value: Any, *, limit: int = 20) -> list[tuple[Path, Any, str]]:
    """Where `value` (parsed JSON: dicts, lists, scalars; nested at any depth) holds a number that
    cannot be stored: (path, the number, why), in document order, at most `limit` of them."""
    found: list[tuple[Path, Any, str]] = []
    stack: list[tuple[Path, Any]] = [((), value)]
    while stack and len(found) < limit:
        path, item = stack.pop()
        if isinstance(item, dict):
            stack.extend(((*path, str(k)), v) for k, v in reversed(list(item.items())))
        elif isinstance(item, list | tuple):
            stack.extend(((*path, i), v) for i, v in reversed(list(enumerate(item))))
        else:
            problem = number_problem(item)
            if problem:
                found.append((path, item, problem))
    return found


def dotted(path: Path, prefix: str = "") -> str:
    """A path as people write it: ``params.stop[1]``, after `prefix` (a field name) when given."""
    text = prefix
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text = f"{text}.{part}" if text else part
    return text


def json_ready(value):
    """`value` as plain JSON types: float NaN / infinity become None (JSON has no NaN), numpy
    scalars become Python ones, decimals floats, dates ISO strings and tuples lists."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_ready(v) for v in value]
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return json_ready(dataclasses.asdict(value))
    item = getattr(value, "item", None)  # numpy scalars (np.float64, np.bool_, np.int64, ...)
    if callable(item):
        try:
            return json_ready(item())
        except (TypeError, ValueError):
            pass
    return str(value)
