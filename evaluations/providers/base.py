"""The provider contract: a list of chat prompts in, one Completion per prompt out.

Providers never touch the database. A provider raises nothing for a failed prompt: it returns a
Completion with `error` set (after retrying transient failures), so one bad case never sinks a batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class GenerationParams:
    temperature: float = 0.0
    max_tokens: int = 256
    top_p: float | None = None
    seed: int | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict | None) -> GenerationParams:
        data = dict(data or {})
        known = {k: data.pop(k) for k in ("temperature", "max_tokens", "top_p", "seed") if k in data}
        return cls(**known, extra=data)


@dataclass
class Completion:
    text: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None
    # USD spent on this call when the provider knows it (local: compute seconds x hourly price);
    # None means "compute from tokens x the endpoint's prices".
    cost: float | None = None
    # Local models: this request's share of the batch's compute time.
    compute_seconds: float | None = None
    error: str = ""
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return not self.error


class ProviderError(Exception):
    """A failure that concerns the whole endpoint (bad configuration, missing key)."""


class TransientError(Exception):
    """A failure worth retrying: timeout, connection reset, 429, 5xx."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class Provider(Protocol):
    def complete_many(self, prompts: list[Messages], params: GenerationParams) -> list[Completion]:
        """Return one Completion per prompt, in order."""
        ...
