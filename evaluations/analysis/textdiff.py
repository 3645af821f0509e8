"""Word-level diff of an output against the expected output, as (op, text) pieces for a template."""

from __future__ import annotations

import difflib
import re

_TOKENS = re.compile(r"\s+|\w+|[^\w\s]+")


def word_diff(expected: str, output: str) -> list[tuple[str, str]]:
    """Pieces of `output` marked "same" or "added", and pieces of `expected` it lacks as "missing"."""
    a = _TOKENS.findall(expected)
    b = _TOKENS.findall(output)
    pieces: list[tuple[str, str]] = []
    matcher = difflib.SequenceMatcher(
        a=[t.casefold() for t in a], b=[t.casefold() for t in b], autojunk=False
    )
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op == "equal":
            pieces.append(("same", "".join(b[b0:b1])))
            continue
        if op in ("replace", "delete") and "".join(a[a0:a1]).strip():
            pieces.append(("missing", "".join(a[a0:a1])))
        if op in ("replace", "insert"):
            pieces.append(("added", "".join(b[b0:b1])))
    return pieces
