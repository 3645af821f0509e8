"""A shared limiter that cannot be reached for a moment (Redis restarting) delays calls without
spending their attempts; one that stays unreachable past the slot's wait fails the call, readably."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from evaluations.providers.base import GenerationParams
from evaluations.providers.limits import LimiterUnavailable, LocalLimiter
from evaluations.providers.openai_compat import OpenAICompatProvider
from tests.fakeopenai import FakeOpenAI


class FlakyLimiter:
    """A LocalLimiter whose backend is unreachable for the first `outage` acquisitions."""

    def __init__(self, outage: int) -> None:
        self.outage = outage
        self.refused = 0
        self.granted = 0
        self._lock = threading.Lock()
        self._inner = LocalLimiter()

    @contextmanager
    def slot(self, key: str, limit: int, timeout: float, lease: float | None = None) -> Iterator[None]:
        with self._lock:
            if self.refused < self.outage:
                self.refused += 1
                raise LimiterUnavailable(
                    "redis limiter unavailable: Error 111 connecting. Connection refused."
                )
            self.granted += 1
        with self._inner.slot(key, limit, timeout, lease):
            yield


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def _provider(base_url: str, limiter, **overrides) -> OpenAICompatProvider:
    options = {"model": "m", "base_url": base_url, "api_key": None, "timeout": 2.0, "max_retries": 0,
               "max_concurrency": 2, "backoff_base": 0.001, "backoff_max": 0.05,
               "limiter": limiter, "limiter_key": "endpoint:1"}  # fmt: skip
    options.update(overrides)
    return OpenAICompatProvider(**options)


def test_a_limiter_outage_delays_the_call_without_spending_an_attempt(server: FakeOpenAI) -> None:
    limiter = FlakyLimiter(outage=3)
    provider = _provider(server.base_url, limiter)  # no retry to spend: only the wait can save it

    (completion,) = provider.complete_many([[{"role": "user", "content": "hello"}]], GenerationParams())

    assert completion.ok, completion.error
    assert completion.text == "hello" and completion.attempts == 1
    assert limiter.refused == 3 and limiter.granted == 1
    assert len(server.requests) == 1


def test_a_limiter_that_stays_unreachable_fails_the_call_with_the_reason(server: FakeOpenAI) -> None:
    limiter = FlakyLimiter(outage=10**6)
    provider = _provider(server.base_url, limiter, timeout=0.1)  # a lease of 0.2 s: a 0.4 s wait

    (completion,) = provider.complete_many([[{"role": "user", "content": "hello"}]], GenerationParams())

    assert completion.error.startswith("no concurrency slot: redis limiter unavailable")
    assert 1 < limiter.refused < 10  # waited with growing pauses, then gave up
    assert limiter.granted == 0 and server.requests == []
