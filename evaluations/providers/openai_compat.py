"""Provider for any OpenAI-compatible chat completions endpoint (OpenAI, vLLM, Ollama, llama.cpp, TGI...).

The SDK's own retries are switched off; this module retries transient failures itself (timeouts,
connection errors, 408/409/429/5xx) with exponential backoff and jitter, honouring `retry-after-ms` /
`retry-after`, so the behaviour is visible, bounded and testable. Permanent failures (400, 401, 403,
404, 422...) are reported at once. No per-prompt failure ever raises: it becomes a Completion with
`error` set.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import openai

from .base import Completion, GenerationParams, Messages, ProviderError, TransientError
from .limits import Limiter, LimiterUnavailable

logger = logging.getLogger(__name__)

OPENAI_BASE_URL = "https://api.openai.com/v1"
PLACEHOLDER_API_KEY = "not-needed"  # self-hosted servers (vLLM, Ollama, llama.cpp) accept any key
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})
MAX_ERROR_CHARS = 300


class _PermanentError(Exception):
    """A failure not worth retrying (bad request, auth, not found...)."""


def retry_after_seconds(headers: Mapping[str, str] | None, *, now: float | None = None) -> float | None:
    """The server's requested wait from `retry-after-ms` or `retry-after` (seconds or HTTP date)."""
    if not headers:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _one_line(text: str, secret: str | None = None) -> str:
    if secret:
        text = text.replace(secret, "***")
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


def _status_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str) and inner:
            return inner
        if body.get("message"):
            return str(body["message"])
    if isinstance(body, str) and body:
        return body
    return exc.message


class OpenAICompatProvider:
    """Calls `/chat/completions` for many prompts with bounded concurrency and visible retries."""

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None,
        api_key: str | None,
        timeout: float,
        max_retries: int,
        max_concurrency: int,
        limiter: Limiter | None = None,
        limiter_key: str = "",
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        if not model:
            raise ProviderError("an OpenAI-compatible endpoint needs a model name")
        if timeout <= 0:
            raise ProviderError(f"timeout must be positive, got {timeout}")
        if max_retries < 0:
            raise ProviderError(f"max_retries must be >= 0, got {max_retries}")
        if max_concurrency < 1:
            raise ProviderError(f"max_concurrency must be >= 1, got {max_concurrency}")
        self.model = model
        self.base_url = base_url or OPENAI_BASE_URL
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_concurrency = max_concurrency
        self.limiter = limiter
        self.limiter_key = limiter_key or f"{self.base_url}|{model}"
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._secret = api_key or None
        # max_retries=0: retrying happens here, where it is visible and testable.
        self._client = openai.OpenAI(
            base_url=self.base_url,
            api_key=api_key or PLACEHOLDER_API_KEY,
            timeout=timeout,
            max_retries=0,
        )

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAICompatProvider(model={self.model!r}, base_url={self.base_url!r})"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> OpenAICompatProvider:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- public API -------------------------------------------------------------------------------

    def complete_many(self, prompts: list[Messages], params: GenerationParams) -> list[Completion]:
        """One Completion per prompt, in order; failures are Completions with `error` set."""
        if not prompts:
            return []
        kwargs = self._request_kwargs(params)
        workers = min(self.max_concurrency, len(prompts))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ftvp-llm") as pool:
            return list(pool.map(lambda messages: self._complete_safely(messages, kwargs), prompts))

    # -- internals --------------------------------------------------------------------------------

    def _request_kwargs(self, params: GenerationParams) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "temperature": params.temperature,
            "max_tokens": params.max_tokens,
        }
        if params.top_p is not None:
            kwargs["top_p"] = params.top_p
        if params.seed is not None:
            kwargs["seed"] = params.seed
        if params.extra:
            kwargs["extra_body"] = dict(params.extra)
        return kwargs

    def _complete_safely(self, messages: Messages, kwargs: dict[str, Any]) -> Completion:
        try:
            return self._complete(messages, kwargs)
        except Exception as exc:  # a bug or surprise must still not sink the batch
            logger.exception("unexpected failure calling %s (%s)", self.model, self.base_url)
            return Completion(error=_one_line(f"{type(exc).__name__}: {exc}", self._secret))

    def _complete(self, messages: Messages, kwargs: dict[str, Any]) -> Completion:
        max_attempts = self.max_retries + 1
        attempt = 0
        while True:
            attempt += 1
            try:
                completion = self._attempt(messages, kwargs)
            except _PermanentError as exc:
                return Completion(error=_one_line(str(exc), self._secret), attempts=attempt)
            except TransientError as exc:
                if attempt >= max_attempts:
                    return Completion(error=self._final_message(exc, attempt), attempts=attempt)
                delay = self._backoff(attempt, exc.retry_after)
                logger.info(
                    "%s: %s; retry %d/%d in %.2fs",
                    self.model,
                    _one_line(str(exc), self._secret),
                    attempt,
                    self.max_retries,
                    delay,
                )
                time.sleep(delay)
                continue
            completion.attempts = attempt
            return completion

    def _attempt(self, messages: Messages, kwargs: dict[str, Any]) -> Completion:
        """One call. Returns a Completion or raises TransientError / _PermanentError."""
        with ExitStack() as stack:
            if self.limiter is not None:
                try:
                    # A slot guards one call: its lease outlasts the call's timeout, and no more, so
                    # a killed worker's slots come back soon; the wait for a slot outlasts a lease,
                    # so slots leaked by a dead worker delay a call but never fail it.
                    lease = self.timeout + min(5.0, self.timeout)
                    stack.enter_context(
                        self.limiter.slot(self.limiter_key, self.max_concurrency, 2 * lease, lease=lease)
                    )
                except (TimeoutError, LimiterUnavailable) as exc:
                    raise TransientError(f"no concurrency slot: {exc}") from exc
            try:
                started = time.perf_counter()
                response = self._client.chat.completions.create(messages=messages, **kwargs)
                latency_ms = (time.perf_counter() - started) * 1000.0
            except openai.APITimeoutError as exc:
                raise TransientError("timed out") from exc
            except openai.APIConnectionError as exc:
                raise TransientError(f"connection error: {exc.__cause__ or exc.message}") from exc
            except openai.APIStatusError as exc:
                message = f"HTTP {exc.status_code}: {_status_message(exc)}"
                if exc.status_code in RETRYABLE_STATUSES or exc.status_code >= 500:
                    raise TransientError(message, retry_after_seconds(exc.response.headers)) from exc
                raise _PermanentError(message) from exc
            except openai.OpenAIError as exc:  # e.g. a response that does not fit the schema
                raise _PermanentError(f"{type(exc).__name__}: {exc}") from exc
            except ValueError as exc:  # a 200 whose body is not JSON (a proxy's HTML page...)
                raise _PermanentError(f"invalid response: {exc}") from exc

        if not response.choices:
            raise _PermanentError("response had no choices")
        usage = response.usage
        return Completion(
            text=response.choices[0].message.content or "",
            prompt_tokens=usage.prompt_tokens if usage is not None else None,
            completion_tokens=usage.completion_tokens if usage is not None else None,
            latency_ms=latency_ms,
        )

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            # The server said how long; add a little upward jitter so workers do not return in lockstep.
            return min(self.backoff_max, retry_after * random.uniform(1.0, 1.1))
        delay = self.backoff_base * (2 ** (attempt - 1))
        return min(self.backoff_max, delay * random.uniform(1.0, 1.5))

    def _final_message(self, exc: TransientError, attempts: int) -> str:
        text = str(exc)
        if text == "timed out":
            return f"timed out after {attempts} attempts"
        return _one_line(f"{text} (after {attempts} attempts)", self._secret)
