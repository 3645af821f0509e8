"""JSON Lines suites: one JSON object per line.

Fields: ``input`` (text or chat messages), ``expected`` / ``ideal`` / ``expected_output`` (text or a list
of acceptable texts), ``assertions``, ``tags``, ``metadata``, ``split``, ``id``. Any other field is kept in
the case's metadata.

Two chat formats from OpenAI are read too: a ``sample`` (OpenAI evals few-shot files) or ``messages``
(chat fine-tuning files) list whose last message is the assistant's answer becomes the input (the
messages before it) and the expected output (its content).
"""

from __future__ import annotations

import json
from typing import IO, Any

from .base import EXPECTED_ALIASES, SuiteReader, json_problem, json_type, loads_json

ONE_OBJECT_PER_LINE = (
    "write one complete JSON object per line (a pretty-printed file spread over several lines is not "
    "JSON Lines)"
)

KNOWN_FIELDS = {"id", "input", "assertions", "tags", "metadata", "split", *EXPECTED_ALIASES}
CONVERSATION_FIELDS = ("sample", "messages")


def read_jsonl(fileobj: IO[bytes], reader: SuiteReader, transform=None) -> None:
    """Read every line; `transform` (optional) reshapes each object first (peer formats' fields)."""
    for line, text in enumerate(reader.text_lines(fileobj), start=1):
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
                f"is a JSON {json_type(obj)}, not an object; "
                'write each case as {"input": ..., "expected": ...}',
            )
            continue
        if transform and reader.numbers_check(line, obj):  # before a transform writes values as text
            continue
        _add_object(reader, line, transform(obj) if transform else obj)


def _add_object(reader: SuiteReader, line: int, obj: dict[str, Any]) -> None:
    given = [name for name in EXPECTED_ALIASES if obj.get(name) is not None]
    if len(given) > 1:
        reader.error(line, given[1], f"is given together with {given[0]!r}; keep only one of them")
        return
    expected_field = given[0] if given else "expected"
    expected = obj.get(expected_field)

    input_field = "input"
    case_input: object = obj.get("input")
    conversation = [name for name in CONVERSATION_FIELDS if name in obj]
    if conversation:
        name = conversation[0]
        if "input" in obj or len(conversation) > 1:
            other = "input" if "input" in obj else conversation[1]
            reader.error(line, name, f"is given together with {other!r}; keep only one of them")
            return
        input_field = name
        case_input = obj[name]
        if expected is None and isinstance(case_input, list) and _ends_with_answer(case_input):
            # OpenAI few-shot / fine-tuning rows: the last assistant message is the answer.
            *case_input, answer = case_input
            expected, expected_field = answer["content"], f"{name}[{len(case_input)}].content"
            if not case_input:
                reader.error(
                    line, name, "holds only the assistant's answer; put the prompt messages before it"
                )
                return

    extra = {name: value for name, value in obj.items() if name not in KNOWN_FIELDS | {input_field}}
    reader.add_case(
        line,
        key=obj.get("id"),
        input=case_input,
        input_field=input_field,
        expected=expected,
        expected_field=expected_field,
        assertions=obj.get("assertions"),
        tags=obj.get("tags"),
        metadata=obj.get("metadata"),
        extra_metadata=extra,
        split=obj.get("split"),
    )


def _ends_with_answer(messages: list[Any]) -> bool:
    last = messages[-1] if messages else None
    return isinstance(last, dict) and last.get("role") == "assistant" and isinstance(last.get("content"), str)
