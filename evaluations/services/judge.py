"""The llm-rubric judge: a configured endpoint grades outputs against a rubric, in one batch.

Off unless FTVP_JUDGE_ENDPOINT names an endpoint. The judge's prompts are built and its answers
parsed here; its calls go through the endpoint's provider (timeouts, retries, concurrency limit).
Its replies and errors have every configured secret masked (services/secrets.py) before they are
parsed, so no verdict's reason (stored in the results' scores) can carry a key.
"""

from __future__ import annotations

import json
import re

from django.conf import settings

from evaluations.models import Endpoint
from evaluations.providers.base import GenerationParams

JUDGE_SYSTEM = (
    "You grade an answer against a rubric. Reply with one JSON object and nothing else: "
    '{"score": <a number from 0 to 1>, "reason": "<one short sentence>"}.'
)
_NUMBER = re.compile(r"(?<![\w.])(0(?:\.\d+)?|1(?:\.0+)?)(?![\w.])")


def judge_prompt(rubric: str, output: str, expected: tuple[str, ...]) -> list[dict]:
    parts = [f"Rubric:\n{rubric}"]
    if expected:
        parts.append("Reference answer(s):\n" + "\n".join(f"- {e}" for e in expected))
    parts.append(f"Answer to grade:\n{output}")
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]


def parse_verdict(text: str) -> tuple[float, str]:
    """The judge's score and reason from its reply (a JSON object, or failing that a bare number)."""
    for start in (m.start() for m in re.finditer(r"\{", text)):
        try:
            obj, _ = json.JSONDecoder().raw_decode(text[start:])
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and "score" in obj:
            return float(obj["score"]), str(obj.get("reason", ""))
    match = _NUMBER.search(text)
    if match:
        return float(match.group(1)), text.strip()[:200]
    raise ValueError(f"no score in the judge's reply: {text.strip()[:80]!r}")


def judge_endpoint() -> Endpoint | None:
    name = settings.FTVP_JUDGE_ENDPOINT
    return Endpoint.objects.filter(name=name).first() if name else None


class BatchJudge:
    """Grades every (rubric, output, expected) asked for in `prepare`, with one provider call."""

    def __init__(self, endpoint: Endpoint):
        self.endpoint = endpoint
        self.verdicts: dict[tuple, tuple[float, str] | Exception] = {}

    def prepare(self, requests: list[tuple[str, str, tuple[str, ...]]]) -> None:
        from evaluations.services.endpoints import endpoint_provider
        from evaluations.services.secrets import redactor

        todo = [r for r in dict.fromkeys(requests) if r not in self.verdicts]
        if not todo:
            return
        redact = redactor()
        provider = endpoint_provider(self.endpoint)
        try:
            completions = provider.complete_many(
                [judge_prompt(*r) for r in todo], GenerationParams(temperature=0.0, max_tokens=200)
            )
        finally:
            close = getattr(provider, "close", None)
            if close is not None:
                close()
        for request, completion in zip(todo, completions, strict=True):
            if completion.error:
                self.verdicts[request] = RuntimeError(redact(completion.error))
                continue
            try:
                self.verdicts[request] = parse_verdict(redact(completion.text))
            except ValueError as exc:
                self.verdicts[request] = exc

    def __call__(self, rubric: str, output: str, expected: tuple[str, ...]) -> tuple[float, str]:
        verdict = self.verdicts.get((rubric, output, tuple(expected)))
        if verdict is None:
            raise RuntimeError("the judge was not asked about this output")
        if isinstance(verdict, Exception):
            raise verdict
        return verdict
