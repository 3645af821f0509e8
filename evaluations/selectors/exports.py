"""A run's results as CSV or JSON Lines, and its passing outputs as OpenAI chat fine-tuning JSONL.

One row per case x arm x sample. The reads are bounded: one query for the arms, one streamed query
(``.iterator``) for the results with their cases joined in, so a 100k-result run is written without
holding it in memory. The row and cell logic is pure (no request, no database) so it can be tested
on its own; the views in ``evaluations/views/exports.py`` only stream what these functions yield.

CSV cells that a spreadsheet would read as a formula (text starting with ``=``, ``+``, ``-``, ``@``, a
tab or a carriage return) are prefixed with a single quote, as OWASP advises; numbers (score, tokens,
latency, cost) stay numbers. Lists and objects (chat-message input, several expected outputs, the
per-assertion scores) are written as JSON text in CSV and as JSON values in JSONL.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Iterator
from typing import Any

from evaluations.models import Arm, Result, Run

COLUMNS = (
    "run_id", "arm_id", "suite", "suite_version", "case_key", "split", "tags", "input", "expected",
    "endpoint", "strategy", "sample", "output", "answer", "score", "passed", "scores", "prompt_tokens",
    "completion_tokens", "latency_ms", "cost", "error", "cached", "retrieved",
)  # fmt: skip

# What is read of each result (values_list: no model instances, the case joined in the same query).
RESULT_FIELDS = (
    "arm_id", "case__key", "case__split", "case__tags", "case__input", "case__expected", "sample",
    "output", "answer", "score", "passed", "scores", "prompt_tokens", "completion_tokens", "latency_ms",
    "cost", "error", "cached", "retrieved",
)  # fmt: skip

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CHUNK_ROWS = 500  # rows joined into one piece of the streamed response


# --- pure: rows and cells ---------------------------------------------------------------------------


def neutralise(text: str) -> str:
    """Text a spreadsheet would run as a formula, made inert by a leading single quote (OWASP)."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def expected_value(expected: object) -> object:
    """A case's expected output as exported: None when there is none, the text when there is one,
    the list when there are several (an object of a JSON suite stays an object)."""
    if isinstance(expected, list):
        if not expected:
            return None
        if len(expected) == 1:
            return expected[0]
    return expected


def result_record(values: tuple, *, run_id: int, suite: str, version: int, arms: dict[int, tuple]) -> dict:
    """One exported row from a tuple of RESULT_FIELDS; `arms` maps arm id -> (endpoint, strategy)."""
    (
        arm_id, key, split, tags, case_input, expected, sample, output, answer, score, passed, scores,
        prompt_tokens, completion_tokens, latency_ms, cost, error, cached, retrieved,
    ) = values  # fmt: skip
    endpoint, strategy = arms.get(arm_id, ("", ""))
    return {
        "run_id": run_id,
        "arm_id": arm_id,
        "suite": suite,
        "suite_version": version,
        "case_key": key,
        "split": split,
        "tags": list(tags or []),
        "input": case_input,
        "expected": expected_value(expected),
        "endpoint": endpoint,
        "strategy": strategy,
        "sample": sample,
        "output": output,
        "answer": answer,
        "score": score,
        "passed": passed,
        "scores": scores or {},
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "latency_ms": latency_ms,
        "cost": cost,
        "error": error,
        "cached": cached,
        # retrieval strategies: the passages in the prompt, best first ({doc, chunk, score})
        "retrieved": list(retrieved or []),
    }


def csv_cell(value: Any) -> Any:
    """A record's value as a CSV cell: numbers as numbers, booleans as true/false, None empty, lists
    and objects as JSON, text neutralised against formula injection."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return value
    if isinstance(value, dict | list):
        return neutralise(json.dumps(value, ensure_ascii=False))
    return neutralise(str(value))


def csv_row(record: dict) -> list:
    row = []
    for column in COLUMNS:
        value = record[column]
        if column == "tags":  # as ftvp's CSV suites write them: comma-separated
            value = ", ".join(value)
        row.append(csv_cell(value))
    return row


class _Echo:
    """A file-like object whose write returns what it was given: csv.writer then yields lines."""

    def write(self, value: str) -> str:
        return value


def csv_lines(records: Iterable[dict]) -> Iterator[str]:
    """The header, then the records as CSV, in pieces of CHUNK_ROWS rows."""
    writer = csv.writer(_Echo())
    yield writer.writerow(COLUMNS)
    chunk: list[str] = []
    for record in records:
        chunk.append(writer.writerow(csv_row(record)))
        if len(chunk) >= CHUNK_ROWS:
            yield "".join(chunk)
            chunk = []
    if chunk:
        yield "".join(chunk)


def jsonl_lines(records: Iterable[dict]) -> Iterator[str]:
    chunk: list[str] = []
    for record in records:
        chunk.append(json.dumps(record, ensure_ascii=False) + "\n")
        if len(chunk) >= CHUNK_ROWS:
            yield "".join(chunk)
            chunk = []
    if chunk:
        yield "".join(chunk)


def finetune_record(prompt: object, output: str) -> dict | None:
    """{"messages": [...the prompt sent..., the assistant's output]}; None when there is nothing to
    learn from (no prompt messages, or an empty output)."""
    if not isinstance(prompt, list) or not prompt or not output.strip():
        return None
    messages = [m for m in prompt if isinstance(m, dict)]
    if len(messages) != len(prompt):
        return None
    return {"messages": [*messages, {"role": "assistant", "content": output}]}


def finetune_lines(pairs: Iterable[tuple[object, str]]) -> Iterator[str]:
    """JSONL of the (prompt, output) pairs, each distinct record once (a case passed by several
    samples or arms with the same prompt and output is one example, not several)."""
    seen: set[bytes] = set()
    for prompt, output in pairs:
        record = finetune_record(prompt, output)
        if record is None:
            continue
        line = json.dumps(record, ensure_ascii=False) + "\n"
        digest = hashlib.blake2b(line.encode(), digest_size=16).digest()
        if digest in seen:
            continue
        seen.add(digest)
        yield line


def filename_part(text: str, default: str = "suite") -> str:
    """Text safe inside a Content-Disposition filename: letters, digits, - and _ only."""
    return "".join(c if (c.isascii() and c.isalnum()) or c in "-_" else "-" for c in text)[:80] or default


# --- reads --------------------------------------------------------------------------------------------


def run_records(run: Run) -> Iterator[dict]:
    """Every result of the run as an export record, ordered by case, arm, sample (two queries)."""
    version = run.suite_version
    arms = {
        arm.pk: (arm.endpoint.name, str(arm.strategy))
        for arm in Arm.objects.filter(run=run).select_related("endpoint", "strategy")
    }
    rows = (
        Result.objects.filter(arm__run=run)
        .order_by("case__position", "arm__position", "sample")
        .values_list(*RESULT_FIELDS)
        .iterator(chunk_size=2000)
    )
    for values in rows:
        yield result_record(
            values, run_id=run.pk, suite=version.suite.name, version=version.number, arms=arms
        )


def passing_pairs(run: Run, *, arm_id: int | None = None) -> Iterator[tuple[object, str]]:
    """(prompt messages, output) of the run's results that passed without an error."""
    qs = Result.objects.filter(arm__run=run, passed=True, error="")
    if arm_id is not None:
        qs = qs.filter(arm_id=arm_id)
    yield from (
        qs.order_by("case__position", "arm__position", "sample")
        .values_list("prompt", "output")
        .iterator(chunk_size=2000)
    )


# --- reviewed outputs as fine-tuning data -------------------------------------------------------------

REVIEWED_KEEP = ("correct", "corrected")  # incorrect and comment-only reviews are left out
LABELLED_VERDICTS = ("correct", "incorrect", "corrected")


def sent_system_messages(prompt: object) -> list[dict] | None:
    """The system message(s) among the messages a model was sent, in order (a strategy puts its own
    first; an input's own system message is there only when the strategy kept it); None when `prompt`
    holds no messages (nothing was stored)."""
    if not isinstance(prompt, list) or not prompt:
        return None
    return [
        {"role": "system", "content": str(m.get("content", ""))}
        for m in prompt
        if isinstance(m, dict) and m.get("role") == "system"
    ]


def rendered_system_messages(
    kind: str,
    params: dict | None,
    case_input: object,
    *,
    task_type: str = "generation",
    labels: Iterable[str] = (),
) -> list[dict]:
    """The system message(s) `strategies.render` sends for this case and strategy (few-shot examples
    and template variables carry none); [] for a strategy that sends none."""
    from evaluations import strategies

    ctx = strategies.RenderContext(task_type=task_type, labels=tuple(labels), params=params or {})
    value = case_input if isinstance(case_input, list) else str(case_input)
    try:
        messages = strategies.render(kind, value, ctx)
    except (ValueError, KeyError, TypeError):  # an unknown kind, or a malformed chat input
        return []
    return [dict(m) for m in messages if m.get("role") == "system"]


def reviewed_messages(case_input: object, system_messages: list[dict] | None = None) -> list[dict]:
    """The prompt of a reviewed example: the case input as user message(s) (a chat input as its
    messages). With `system_messages` (a list, maybe empty: what the model was sent), those come first
    and replace the input's own system message(s)."""
    from evaluations import strategies

    messages = strategies.as_messages(case_input if isinstance(case_input, list) else str(case_input))
    if system_messages is None:
        return messages
    return [*system_messages, *[m for m in messages if m["role"] != "system"]]


def reviewed_pairs(
    run: Run, *, system: bool = False, arm_id: int | None = None
) -> Iterator[tuple[list, str]]:
    """(prompt messages, answer) of the run's reviewed results, in case, arm, sample order: the
    model's output where the latest verdict (of correct, incorrect, corrected) is correct, the
    corrected output where it is corrected; the rest is left out.

    With `system`, the system message(s) the model was sent for that result come first: read from the
    result's stored prompt, or (when none was stored) rendered again from the arm's strategy; a
    strategy that sent none adds none. One streamed query, plus the arms."""
    from evaluations.models import Review

    version = run.suite_version
    arms = Arm.objects.filter(run=run).select_related("strategy")
    if arm_id is not None:
        arms = arms.filter(pk=arm_id)
    strategies_by_arm = {arm.pk: (arm.strategy.kind, arm.strategy.params) for arm in arms}
    fields = ["result_id", "verdict", "corrected_output", "result__output", "result__case__input",
              "result__arm_id"]  # fmt: skip
    if system:
        fields.append("result__prompt")  # read only when needed: prompts can be long
    reviews = Review.objects.filter(
        run=run, verdict__in=LABELLED_VERDICTS, result__arm_id__in=list(strategies_by_arm)
    )
    rows = (
        reviews.order_by(
            "result__case__position", "result__arm__position", "result__sample", "result_id",
            "-updated_at", "-pk",
        )
        .values_list(*fields)
        .iterator(chunk_size=2000)
    )  # fmt: skip
    last = None
    for result_id, verdict, corrected, output, case_input, result_arm, *prompt in rows:
        if result_id == last:
            continue  # an older review of the same result: the latest verdict counts
        last = result_id
        if verdict not in REVIEWED_KEEP:
            continue
        answer = corrected if verdict == "corrected" else output
        sent = None
        if system:
            sent = sent_system_messages(prompt[0])
            if sent is None:
                kind, params = strategies_by_arm[result_arm]
                sent = rendered_system_messages(
                    kind, params, case_input, task_type=version.task_type, labels=version.labels
                )
        yield reviewed_messages(case_input, sent), answer
