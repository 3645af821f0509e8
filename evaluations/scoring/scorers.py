"""Scorers: pure functions from (answer, expected outputs) to scores in [0, 1]."""

from __future__ import annotations

import json
import re
import unicodedata

import numpy as np

_WS = re.compile(r"\s+")
_EDGE_PUNCT = " \t\n\r.,;:!?\"'`*()[]{}<>"


def normalise_text(text: str) -> str:
    """Case-, accent-width-, whitespace- and edge-punctuation-insensitive form for exact checks."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _WS.sub(" ", text).strip(_EDGE_PUNCT)
    return text


def exact(answer: str, expected: list[str]) -> float:
    norm = normalise_text(answer)
    return 1.0 if any(norm == normalise_text(e) for e in expected) else 0.0


def cosine_best(answer_vec: np.ndarray, expected_vecs: np.ndarray) -> float:
    """Best cosine similarity of a unit answer vector against unit expected vectors, clipped to [0, 1]."""
    if expected_vecs.size == 0:
        return 0.0
    sims = expected_vecs @ answer_vec
    return float(np.clip(sims.max(), 0.0, 1.0))


def extract_label(answer: str, labels: list[str]) -> str | None:
    """The label a free-text answer names: an exact match first, else the label mentioned earliest.

    Longer labels win ties so "very positive" is not read as "positive".
    """
    if not labels:
        return None
    norm = normalise_text(answer)
    by_norm = {normalise_text(label): label for label in labels}
    if norm in by_norm:
        return by_norm[norm]
    best: tuple[int, int, str] | None = None
    for label_norm, label in by_norm.items():
        if not label_norm:
            continue
        match = re.search(r"(?<![\w])" + re.escape(label_norm) + r"(?![\w])", norm)
        if match:
            rank = (match.start(), -len(label_norm), label)
            if best is None or rank < best:
                best = rank
    return best[2] if best else None


def _json_same(a: object, b: object) -> bool:
    """JSON equality: like ==, but true/false are not the numbers 1/0 (Python's bool is an int)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def json_equal(answer: str, expected: list[str]) -> float:
    """1.0 when the answer parses to the same JSON value as one of the expected outputs."""
    try:
        got = json.loads(answer)
    except (json.JSONDecodeError, TypeError):
        return 0.0
    for e in expected:
        try:
            if _json_same(json.loads(e), got):
                return 1.0
        except json.JSONDecodeError:
            continue
    return 0.0
