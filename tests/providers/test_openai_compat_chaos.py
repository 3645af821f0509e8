"""OpenAICompatProvider against every fault of the chaos server (tests/chaos.py): each case ends
as planned, OK after its retries or an error result with a readable reason, and the server saw
exactly the requests the plan says."""

from __future__ import annotations

import re

from evaluations.providers.base import GenerationParams
from evaluations.providers.openai_compat import OpenAICompatProvider
from tests.chaos import SCENARIOS, ChaosOpenAI, answer_for
from tests.fakeopenai import FakeOpenAI

NAMES = list(SCENARIOS)
TIMEOUT = 3.0


def by_name(case: int):
    return SCENARIOS[NAMES[case % len(NAMES)]]


def test_every_chaos_fault_ends_as_planned() -> None:
    # A timeout well above a loopback answer on a loaded machine: an "ok" or "slow" answer that took
    # longer would be retried, and the exact request counts below would not hold.
    with ChaosOpenAI(timeout=TIMEOUT, max_attempts=3, scenario_for=by_name, slow_seconds=0.3) as server:
        provider = OpenAICompatProvider(
            model="m", base_url=server.base_url, api_key=None, timeout=TIMEOUT, max_retries=2,
            max_concurrency=len(NAMES), backoff_base=0.01, backoff_max=0.05,
        )  # fmt: skip
        cases = list(range(len(NAMES)))

        completions = provider.complete_many(
            [[{"role": "user", "content": f"case {case} please"}] for case in cases],
            GenerationParams(max_tokens=8),
        )

    for case, completion in zip(cases, completions, strict=True):
        name, planned = NAMES[case], server.outcome(case)
        assert server.attempts[case] == completion.attempts == planned.requests, name
        if planned.ok:
            assert completion.ok, (name, completion.error)
            if name == "long":  # far past max_tokens: kept whole, with the tokens the server billed
                assert completion.completion_tokens == len(completion.text.split()) >= 40 * 8
            else:
                assert completion.text == answer_for(case), name
        else:
            assert re.fullmatch(planned.error, completion.error), (name, completion.error)
            assert completion.text == "" and completion.completion_tokens is None
    assert {NAMES[c] for c in cases if not server.outcome(c).ok} == {
        "429-always", "500-always", "503-always", "timeout-always", "reset-once", "reset-always",
        "truncated-once", "truncated-always", "malformed", "empty", "huge",
    }  # fmt: skip


def test_token_counts_that_are_not_counts_are_unknown_not_a_crash_at_save() -> None:
    def answer(text: str, usage: dict) -> dict:
        return {"choices": [{"message": {"content": text}}], "usage": usage}

    with FakeOpenAI() as server:
        server.fail_next(200, 1, body=answer("hi", {"prompt_tokens": "many", "completion_tokens": -3}))
        server.fail_next(200, 1, body=answer("ho", {"prompt_tokens": 12.0, "completion_tokens": True}))
        provider = OpenAICompatProvider(model="m", base_url=server.base_url, api_key=None, timeout=5,
                                        max_retries=0, max_concurrency=1)  # fmt: skip

        first, second = provider.complete_many(
            [[{"role": "user", "content": t}] for t in "ab"], GenerationParams()
        )

    assert (first.text, first.prompt_tokens, first.completion_tokens) == ("hi", None, None)
    assert (second.text, second.prompt_tokens, second.completion_tokens) == ("ho", 12, None)
