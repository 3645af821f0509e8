"""The API's JSON parser: numbers JSON and the database cannot hold are refused, naming the field.

Python's json reads ``NaN``, ``Infinity`` and ``-Infinity`` (DRF refused them without saying where)
and turns ``1e400`` into infinity, which nothing can store (see evaluations/jsonsafe.py). Here every
number of the body is checked as it is parsed: a 400 in the API's error shape, before any view or
serializer sees the body, e.g. ``{"detail": "params.seed: 1e400 is too large for JSON and the database
(...)", "errors": {"params": {"seed": [...]}}}``.
"""

from __future__ import annotations

import codecs
import zlib

from rest_framework import exceptions
from rest_framework.parsers import JSONParser

from evaluations import jsonsafe

REMEDY = "send a finite number (or the value as a string)"


def number_errors(value) -> dict:
    """DRF's nested error structure for the unsafe numbers of `value` (list positions as int keys,
    which errors.py shows as ``arms[0].endpoint``); empty when every number can be stored."""
    errors: dict = {}
    for path, _, problem in jsonsafe.unsafe_numbers(value):
        node = errors
        *parents, last = path or ("non_field_errors",)
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):  # a message there already: keep the first
                break
        else:
            node.setdefault(last, []).append(f"{problem}; {REMEDY}")
    return errors


class JsonSafeParser(JSONParser):
    """JSON bodies whose numbers all fit JSON and the database; a 400 naming each field otherwise."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding") or "utf-8"
        try:
            text = codecs.getreader(encoding)(stream).read()
            data = jsonsafe.loads(text)
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
        except (LookupError, TypeError, OSError, zlib.error):  # charset=rot13, zlib, bz2: not text
            raise exceptions.ParseError(
                f"JSON parse error - the charset {encoding!r} is not a text encoding: send UTF-8"
            ) from None
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - the body nests too deeply") from None
        errors = number_errors(data)
        if errors:
            raise exceptions.ValidationError(errors)
        return data
