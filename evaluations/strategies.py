"""Prompting strategies: render (strategy, case) -> chat messages, and extract the answer.

Pure functions with no Django import, so they are cheap to test and to reuse outside a run.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field

Messages = list[dict[str, str]]

# The ladder of DESIGN.md: cheaper prompting first, then more elaborate prompting, then retrieval,
# then fine-tuned.
LADDER = (
    "zero-shot", "few-shot", "few-shot-nearest", "few-shot-optimized", "system", "structured", "cot",
    "rag", "rag+few-shot-nearest", "plain",
)  # fmt: skip
# Strategies whose prompt holds demonstrations from the train split (never from the test split).
FEW_SHOT_KINDS = frozenset({"few-shot", "few-shot-nearest", "few-shot-optimized", "rag+few-shot-nearest"})
# Strategies whose demonstrations are the train cases nearest the case's input.
NEAREST_KINDS = frozenset({"few-shot-nearest", "rag+few-shot-nearest"})
# Strategies whose prompt holds passages retrieved from the suite's knowledge documents.
RAG_KINDS = frozenset({"rag", "rag+few-shot-nearest"})


def ladder_rank(kind: str, *, fine_tuned: bool = False) -> tuple[int, int]:
    """Sort key placing an arm on the ladder (base-model prompting before fine-tuned models)."""
    return (1 if fine_tuned else 0, LADDER.index(kind) if kind in LADDER else len(LADDER))


DEFAULT_SYSTEM_PROMPT = "You are a precise, helpful assistant. Answer the request directly and concisely."
COT_MARKER = "Answer:"


@dataclass(frozen=True)
class Example:
    input: str | Messages
    output: str


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk of a knowledge document, as the prompt shows it."""

    doc: str
    text: str


DEFAULT_RAG_INSTRUCTION = (
    "Use the context below to answer. Each passage starts with its source in brackets. If the context "
    "does not hold the answer, answer from what you know."
)


@dataclass(frozen=True)
class RenderContext:
    task_type: str = "generation"
    labels: tuple[str, ...] = ()
    examples: tuple[Example, ...] = ()
    params: dict = field(default_factory=dict)
    vars: dict = field(default_factory=dict)  # an imported case's variables (promptfoo tests)
    passages: tuple[Passage, ...] = ()  # retrieval strategies: the chunks retrieved for the case


def as_messages(value: str | Messages) -> Messages:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    return [{"role": str(m["role"]), "content": str(m["content"])} for m in value]


def input_text(value: str | Messages) -> str:
    """The case input as one string (for few-shot examples and embedding)."""
    if isinstance(value, str):
        return value
    return "\n".join(m["content"] for m in value if m.get("role") != "system")


def _task_instruction(ctx: RenderContext) -> str:
    if ctx.task_type == "classification" and ctx.labels:
        return "Answer with exactly one of these labels: " + ", ".join(ctx.labels) + "."
    if ctx.task_type == "json":
        return "Answer with valid JSON only."
    return ""


def _with_instruction(messages: Messages, instruction: str) -> Messages:
    """Append an instruction to the last user message (chat inputs keep their own turns)."""
    if not instruction:
        return messages
    out = [dict(m) for m in messages]
    for m in reversed(out):
        if m["role"] == "user":
            m["content"] = f"{m['content']}\n\n{instruction}"
            return out
    out.append({"role": "user", "content": instruction})
    return out


_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w.-]*)\s*\}\}")


def fill_template(template: str, case_input: str | Messages, variables: dict) -> str:
    """A prompt template with ``{{name}}`` placeholders (promptfoo's, nunjucks-style) filled from the
    case's vars; ``{{input}}`` is the case's input when no var of that name exists. A placeholder with
    no value is left as it is, so the prompt shows what is missing."""

    def value(match: re.Match) -> str:
        name = match.group(1)
        if name in variables:
            v = variables[name]
            return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
        if name == "input":
            return input_text(case_input)
        return match.group(0)

    return _PLACEHOLDER.sub(value, template)


def render(kind: str, case_input: str | Messages, ctx: RenderContext) -> Messages:
    """Turn a case input into the chat messages sent to the model for strategy `kind`."""
    base = as_messages(case_input)
    instruction = _task_instruction(ctx)
    if kind == "plain":
        return base
    if kind == "template":
        return [
            {
                "role": "user",
                "content": fill_template(str(ctx.params.get("template", "")), case_input, ctx.vars),
            }
        ]
    if kind == "zero-shot":
        return _with_instruction(base, instruction)
    if kind == "system":
        system = str(ctx.params.get("system_prompt") or DEFAULT_SYSTEM_PROMPT)
        if instruction:
            system = f"{system} {instruction}"
        return [{"role": "system", "content": system}, *[m for m in base if m["role"] != "system"]]
    if kind in FEW_SHOT_KINDS or kind in RAG_KINDS:
        messages: Messages = []
        # A chat input's own system messages lead, merged into the one system message: chat
        # templates want it first, not after the demonstrations.
        system = [m["content"] for m in base if m["role"] == "system"]
        if instruction:
            system.append(instruction)
        if kind in RAG_KINDS:
            system.append(
                rag_context(ctx.passages, str(ctx.params.get("instruction") or DEFAULT_RAG_INSTRUCTION))
            )
        if system:
            messages.append({"role": "system", "content": "\n\n".join(system)})
        for ex in ctx.examples:
            messages.append({"role": "user", "content": input_text(ex.input)})
            messages.append({"role": "assistant", "content": ex.output})
        return messages + [m for m in base if m["role"] != "system"]
    if kind == "cot":
        marker = str(ctx.params.get("marker") or COT_MARKER)
        steps = (
            "Think step by step and show your reasoning briefly. Then write the final answer on its own "
            f"last line, starting with '{marker}'."
        )
        return _with_instruction(base, f"{instruction} {steps}".strip())
    if kind == "structured":
        if ctx.task_type == "json":
            shape = 'Respond with a single JSON object {"answer": <your JSON answer>} and nothing else.'
        else:
            shape = 'Respond with a single JSON object {"answer": "<your answer>"} and nothing else.'
        return _with_instruction(base, f"{instruction} {shape}".strip())
    raise ValueError(f"unknown strategy kind {kind!r}")


def rag_context(passages: tuple[Passage, ...], instruction: str) -> str:
    """The system message's context block: the instruction, then each passage under its source."""
    if not passages:
        return f"{instruction}\n\nContext: (no passage was found)"
    blocks = "\n\n".join(f"[{p.doc}] {p.text}" for p in passages)
    return f"{instruction}\n\nContext:\n{blocks}"


def _first_json_object(text: str) -> object | None:
    decoder = json.JSONDecoder()
    for start in (m.start() for m in re.finditer(r"\{", text)):
        try:
            obj, _ = decoder.raw_decode(text[start:])
        except json.JSONDecodeError:
            continue
        return obj
    return None


def extract(kind: str, output: str, params: dict | None = None) -> str:
    """The answer part of a model output for strategy `kind`."""
    params = params or {}
    text = output.strip()
    if kind == "cot":
        marker = str(params.get("marker") or COT_MARKER)
        idx = text.lower().rfind(marker.lower())
        if idx >= 0:
            return text[idx + len(marker) :].strip().strip("*").strip()
        lines = [line for line in text.splitlines() if line.strip()]
        return lines[-1].strip() if lines else ""
    if kind == "structured":
        obj = _first_json_object(text)
        if isinstance(obj, dict) and "answer" in obj:
            answer = obj["answer"]
            return answer if isinstance(answer, str) else json.dumps(answer, sort_keys=True)
        return text
    return text


def pick_examples(
    pool: list[Example], k: int, *, seed: str, exclude_input: str | Messages | None = None
) -> tuple[Example, ...]:
    """k examples from the train pool, chosen reproducibly per case (seeded by the case key)."""
    candidates = [ex for ex in pool if exclude_input is None or ex.input != exclude_input]
    if k <= 0 or not candidates:
        return ()
    rng = random.Random(seed)
    return tuple(rng.sample(candidates, min(k, len(candidates))))


NEAREST_ORDERS = ("nearest-last", "nearest-first")


def nearest_examples(
    pool: list[Example],
    pool_vectors,
    query_vector,
    k: int,
    *,
    order: str = "nearest-last",
    exclude_input: str | Messages | None = None,
) -> tuple[Example, ...]:
    """The k examples of the train pool whose inputs are nearest the case's (cosine similarity of
    their embeddings; ties go to the earlier example), never the case itself.

    `order`: "nearest-last" puts the most similar example right before the question (the usual
    choice: models weigh the latest turns most), "nearest-first" puts it first."""
    import numpy as np

    if order not in NEAREST_ORDERS:
        raise ValueError(f"order must be one of {', '.join(NEAREST_ORDERS)}; got {order!r}")
    if k <= 0 or not pool:
        return ()
    vectors = np.asarray(pool_vectors, dtype=np.float64)
    query = np.asarray(query_vector, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1) * (np.linalg.norm(query) or 1.0)
    similarity = vectors @ query / np.where(norms == 0, 1.0, norms)
    ranked = [
        i
        for i in sorted(range(len(pool)), key=lambda i: (-similarity[i], i))
        if exclude_input is None or pool[i].input != exclude_input
    ][:k]
    chosen = [pool[i] for i in ranked]  # most similar first
    return tuple(reversed(chosen)) if order == "nearest-last" else tuple(chosen)
