"""Synthetic examples, pure: the few-shot generation prompt, the model's answer read as input/expected
pairs, and the near-duplicate filter over embedding vectors.

No Django here: the service (services/synthetic.py) gives the seed pairs, the vectors (the suite's
embedder with its database cache) and the normalised input texts, and stores what comes back.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

import numpy as np

# Pairs asked for in one call, at most: longer answers get cut off by max_tokens and repeat themselves.
MAX_PER_CALL = 20
DEFAULT_PER_CALL = 10

DEFAULT_SYSTEM = (
    "You write new training examples for a task, in the style of the examples you are shown. Each "
    'example is one JSON object on its own line with two fields: "input" (what the task is given) and '
    '"expected" (the correct output for that input). Write nothing else: no numbering, no prose, no '
    "code fences."
)
DEFAULT_INSTRUCTION = (
    "Here are examples of the task{task}:\n\n{examples}\n\nWrite {n} new examples as JSON lines "
    '{{"input": ..., "expected": ...}}. Make them varied and realistic: new situations, new wording, '
    "different lengths; never a copy or a light rewording of an example above. The expected output "
    "must be exactly what a perfect answer to the input would be, in the same format as above."
    "{labels}{batch}"
)
# What the built-in `synthesize` strategy (version 1, migration 0020) holds in its params; a new
# version of it may change any of them.
DEFAULT_PARAMS = {
    "system": DEFAULT_SYSTEM,
    "instruction": DEFAULT_INSTRUCTION,
    "per_call": DEFAULT_PER_CALL,
}


@dataclass(frozen=True)
class Pair:
    input: str | list[dict]
    expected: object


def per_call(params: dict | None) -> int:
    """Pairs asked for in one call: the strategy's `per_call`, 1 to MAX_PER_CALL."""
    value = (params or {}).get("per_call", DEFAULT_PER_CALL)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PER_CALL:
        raise ValueError(f"per_call must be a whole number from 1 to {MAX_PER_CALL}; got {value!r}")
    return value


def plan_calls(n: int, size: int) -> list[int]:
    """The pairs each call asks for: N in calls of `size`, the last one the rest."""
    calls = math.ceil(n / size)
    return [min(size, n - i * size) for i in range(calls)]


def _pair_json(pair: Pair) -> str:
    return json.dumps({"input": pair.input, "expected": pair.expected}, ensure_ascii=False)


def render_prompt(
    seeds: list[Pair],
    n: int,
    params: dict | None = None,
    *,
    task_type: str = "generation",
    labels: tuple[str, ...] | list[str] = (),
    batch: int = 0,
    batches: int = 1,
) -> list[dict]:
    """The chat messages asking for `n` new pairs like `seeds`. Call `batch` of `batches` shows the
    seeds rotated (a different first example each call) and says which set it is, so calls at
    temperature 0 do not all write the same pairs."""
    params = params or {}
    if not seeds:
        raise ValueError("at least one seed example is needed")
    start = batch % len(seeds)
    shown = seeds[start:] + seeds[:start]
    task = f" ({task_type})" if task_type and task_type != "generation" else ""
    label_text = f" The expected output must be one of these labels: {', '.join(labels)}." if labels else ""
    batch_text = (
        f" This is set {batch + 1} of {batches}: make these different from what other sets would hold."
        if batches > 1
        else ""
    )
    instruction = str(params.get("instruction") or DEFAULT_INSTRUCTION)
    values = {
        "task": task,
        "examples": "\n".join(_pair_json(p) for p in shown),
        "n": n,
        "labels": label_text,
        "batch": batch_text,
    }
    try:
        user = instruction.format(**values)
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(
            f"the instruction's placeholders must be among {{task}}, {{examples}}, {{n}}, {{labels}}, "
            f"{{batch}} (braces doubled for a literal one): {exc}"
        ) from None
    system = str(params.get("system") or DEFAULT_SYSTEM)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


_FENCE = re.compile(r"^\s*```")
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")


def valid_input(value: object) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, list) and value:
        return all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in value
        )
    return False


def valid_expected(value: object) -> bool:
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, int | float):
        return math.isfinite(value)
    if isinstance(value, list):
        return bool(value) and all(isinstance(v, str) and v.strip() for v in value)
    return isinstance(value, dict)  # a JSON suite's expected object


def _as_pair(value: object) -> Pair | None:
    if not isinstance(value, dict):
        return None
    lowered = {str(k).strip().lower(): v for k, v in value.items()}
    case_input = lowered.get("input")
    expected = lowered.get("expected", lowered.get("output"))
    if not valid_input(case_input) or not valid_expected(expected):
        return None
    if isinstance(expected, int | float):
        expected = str(expected)
    return Pair(input=case_input.strip() if isinstance(case_input, str) else case_input, expected=expected)


def parse_pairs(text: str) -> tuple[list[Pair], int]:
    """The pairs in a model's answer, and how many attempts at one could not be read.

    Reads JSON lines (bullets, numbering and code fences around them tolerated) and, failing that, a
    JSON array of objects. A line that holds a brace but is not an object with a usable `input` and
    `expected` (`output` is taken for `expected`) counts as unparseable; prose lines do not count."""
    text = text or ""
    stripped = "\n".join(line for line in text.splitlines() if not _FENCE.match(line)).strip()
    if stripped.startswith("["):
        try:
            whole = json.loads(stripped)
        except ValueError:
            whole = None
        if isinstance(whole, list):
            pairs = [_as_pair(item) for item in whole]
            return [p for p in pairs if p is not None], sum(p is None for p in pairs)
    pairs: list[Pair] = []
    bad = 0
    for line in stripped.splitlines():
        line = _BULLET.sub("", line).strip().rstrip(",")
        if "{" not in line:
            continue
        try:
            value = json.loads(line[line.index("{") :])
        except ValueError:
            bad += 1
            continue
        pair = _as_pair(value)
        if pair is None:
            bad += 1
        else:
            pairs.append(pair)
    return pairs, bad


@dataclass(frozen=True)
class Reference:
    """What a candidate is compared with: a case (seed or not) of the suite version."""

    label: str  # "train:<key>" or "test:<key>"
    normalised: str
    is_test: bool


@dataclass(frozen=True)
class Verdict:
    kept: bool
    reason: str  # "", "duplicate" or "test-copy"
    similarity: float | None  # the highest cosine similarity found
    nearest: str  # what it is nearest: a reference's label or "#<candidate index>"


def filter_near_duplicates(
    candidates: list[str],
    candidate_vectors: np.ndarray,
    references: list[Reference],
    reference_vectors: np.ndarray,
    threshold: float,
) -> list[Verdict]:
    """Each candidate's verdict, in order. `candidates` are the normalised input texts, the vectors
    unit-normalised embeddings (one row per text).

    A candidate is a test copy when its input is a test case's (normalised text) or its similarity
    with a test case's input is above `threshold`; else a duplicate when the same holds for a train
    case (the seeds are train cases) or a candidate kept before it; else kept."""
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be above 0 and at most 1; got {threshold!r}")
    cand = np.asarray(candidate_vectors, dtype=np.float32).reshape(len(candidates), -1)
    refs = np.asarray(reference_vectors, dtype=np.float32)
    if len(references):
        refs = refs.reshape(len(references), -1)
        ref_sims = cand @ refs.T
    else:
        ref_sims = np.zeros((len(candidates), 0), dtype=np.float32)
    is_test = np.array([r.is_test for r in references], dtype=bool)
    exact: dict[str, int] = {}
    for i, ref in enumerate(references):
        # a test case's text wins over a train case's with the same text
        if ref.normalised not in exact or (ref.is_test and not references[exact[ref.normalised]].is_test):
            exact[ref.normalised] = i
    kept_texts: dict[str, int] = {}
    kept_rows: list[int] = []
    verdicts: list[Verdict] = []
    for i, text in enumerate(candidates):
        sims = ref_sims[i]
        best_sim, best_label = None, ""
        if sims.size:
            j = int(np.argmax(sims))
            best_sim, best_label = float(sims[j]), references[j].label
        if kept_rows:
            kept_sims = cand[kept_rows] @ cand[i]
            j = int(np.argmax(kept_sims))
            if best_sim is None or float(kept_sims[j]) > best_sim:
                best_sim, best_label = float(kept_sims[j]), f"#{kept_rows[j]}"
        same = exact.get(text)
        if same is not None and references[same].is_test:
            verdicts.append(Verdict(False, "test-copy", 1.0, references[same].label))
            continue
        test_sims = sims[is_test] if sims.size else sims
        if test_sims.size and float(test_sims.max()) > threshold:
            j = int(np.flatnonzero(is_test)[int(np.argmax(test_sims))])
            verdicts.append(Verdict(False, "test-copy", float(sims[j]), references[j].label))
            continue
        if same is not None:
            verdicts.append(Verdict(False, "duplicate", 1.0, references[same].label))
            continue
        if text in kept_texts:
            verdicts.append(Verdict(False, "duplicate", 1.0, f"#{kept_texts[text]}"))
            continue
        if best_sim is not None and best_sim > threshold:
            verdicts.append(Verdict(False, "duplicate", best_sim, best_label))
            continue
        verdicts.append(Verdict(True, "", best_sim, best_label))
        kept_texts[text] = i
        kept_rows.append(i)
    return verdicts
