"""Provider for any OpenAI-compatible chat completions endpoint (OpenAI, vLLM, Ollama, llama.cpp, TGI...).

It POSTs `/chat/completions` through `transport.py` (httpx2's transport, kept-alive connections),
not the openai SDK, whose request building and response models cost about 2 ms of CPU a call: most
of what ftvp adds per result at a few hundred calls a second (docs/benchmarks.md). This module
retries transient failures itself (timeouts, connections never made, 408/409/425/429/5xx) with
exponential backoff and jitter, honouring `retry-after-ms` / `retry-after`, so the behaviour is
visible, bounded and testable.
Permanent failures (400, 401, 403, 404, 422..., a 200 whose body is not a chat completion: not
JSON, no choices; an answer over transport.MAX_RESPONSE_BYTES) are reported at once, and so is an
answer that could not be read (cut off, a reset after the request was sent): the server may have worked
on the request and billed it, so sending it again could cost twice; so is an answer whose headers
came but whose body did not arrive in time. Only a request that never reached the server (refused,
not connected), a timeout before the answer began, 408/409/425/429 and 5xx are sent again. An answer longer
than max_tokens (a server that ignores it) is kept as it came, with the tokens the server reports: it
is what the endpoint answered and billed. No per-prompt failure ever raises: it becomes a Completion
with `error` set, in words that say what happened.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed, wait
from contextlib import ExitStack, contextmanager
from http import HTTPStatus
from typing import Any

from . import transport
from .base import Completion, GenerationParams, Messages, ProviderError, TransientError
from .limits import Limiter, LimiterUnavailable

logger = logging.getLogger(__name__)

OPENAI_BASE_URL = "https://api.openai.com/v1"
PLACEHOLDER_API_KEY = "not-needed"  # self-hosted servers (vLLM, Ollama, llama.cpp) accept any key
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})
# Sent when set in the worker's environment, as the openai SDK does (keys of several organisations).
OPENAI_HEADERS = {"OpenAI-Organization": "OPENAI_ORG_ID", "OpenAI-Project": "OPENAI_PROJECT_ID"}
_KEY_CHARS = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces
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


def _count(value: Any) -> int | None:
    """A token count from `usage`: a non-negative integer, else unknown (None)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or value != int(value):
        return None
    return int(value)


def _status_message(reply: transport.Reply) -> str:
    """The error message an OpenAI-compatible server put in its error body, else the body or reason."""
    try:
        body = json.loads(reply.body)
    except ValueError:
        body = reply.body.decode("utf-8", "replace")
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
    try:
        return HTTPStatus(reply.status).phrase
    except ValueError:  # a status code no standard names
        return "error"


# The threads that make an endpoint's calls in this process: one pool of `max_concurrency` threads
# per endpoint, shared by every batch the process works on at the same time, so a process never has
# more calls in flight (or threads waiting for a slot) than the endpoint allows; the shared limiter
# bounds the calls of all processes together. A pool outlives its last batch by POOL_IDLE_SECONDS, so
# the next batch finds its threads and their kept-alive connections; then (checked whenever a batch
# takes a pool) it is shut down and its threads, with their connections, end.
POOL_IDLE_SECONDS = 30.0


class _Pool:
    def __init__(self, size: int) -> None:
        self.size = size
        self.users = 0
        self.idle_since = time.monotonic()
        self.executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="ftvp-llm")


_pools: dict[str, _Pool] = {}
_pools_lock = threading.Lock()


@contextmanager
def _call_pool(key: str, size: int) -> Iterator[ThreadPoolExecutor]:
    with _pools_lock:
        now = time.monotonic()
        for other_key, other in list(_pools.items()):
            if other.users == 0 and now - other.idle_since > POOL_IDLE_SECONDS:
                del _pools[other_key]
                other.executor.shutdown(wait=False)
        pool = _pools.get(key)
        if pool is None or pool.size != size:  # a changed limit: a new pool; the old one drains
            if pool is not None and pool.users == 0:
                pool.executor.shutdown(wait=False)
            pool = _pools[key] = _Pool(size)
        pool.users += 1
    try:
        yield pool.executor
    finally:
        with _pools_lock:
            pool.users -= 1
            pool.idle_since = time.monotonic()
            if pool.users == 0 and _pools.get(key) is not pool:  # replaced meanwhile: end it now
                pool.executor.shutdown(wait=False)


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
        api_key = (api_key or "").strip()  # a key read from a file often ends with a newline
        if api_key and not _KEY_CHARS.fullmatch(api_key):
            raise ProviderError(
                "the API key holds spaces, control or non-ASCII characters: check the variable's value"
            )
        self._secret = api_key or None
        try:
            self._target = transport.Target.parse(self.base_url)
        except ValueError as exc:
            raise ProviderError(f"base URL: {exc}") from exc
        self._headers = {"Authorization": f"Bearer {api_key or PLACEHOLDER_API_KEY}"}
        for header, variable in OPENAI_HEADERS.items():  # as the openai SDK sends them
            if os.environ.get(variable, "").strip():
                self._headers[header] = os.environ[variable].strip()

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAICompatProvider(model={self.model!r}, base_url={self.base_url!r})"

    def close(self) -> None:
        """Nothing to release: connections belong to the pool threads and serve the next batch."""

    def __enter__(self) -> OpenAICompatProvider:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- public API -------------------------------------------------------------------------------

    def complete_many(self, prompts: list[Messages], params: GenerationParams) -> list[Completion]:
        """One Completion per prompt, in order; failures are Completions with `error` set."""
        completions: list[Completion | None] = [None] * len(prompts)
        for index, completion in self.complete_iter(prompts, params):
            completions[index] = completion
        return completions  # type: ignore[return-value]

    def complete_iter(
        self, prompts: list[Messages], params: GenerationParams, stop: threading.Event | None = None
    ) -> Iterator[tuple[int, Completion]]:
        """(index, Completion) for each prompt as its call ends, at most `max_concurrency` at a time.

        Once `stop` is set (a cancelled run) the calls not started yet are dropped and the ones in
        flight still come out, so no answer paid for is lost. Closing the iterator drops both."""
        if not prompts:
            return
        body = self._request_body(params)
        with _call_pool(self.limiter_key, self.max_concurrency) as pool:
            futures = {
                pool.submit(self._complete_safely, messages, body, stop): i
                for i, messages in enumerate(prompts)
            }
            try:
                for future in as_completed(futures):
                    if future.cancelled():
                        continue
                    yield futures[future], future.result()
                    if stop is not None and stop.is_set():  # set by the caller between answers
                        for other in futures:
                            other.cancel()  # no-op for calls in flight or done
            finally:
                for future in futures:
                    future.cancel()
                wait(futures)

    # -- internals --------------------------------------------------------------------------------

    def _request_body(self, params: GenerationParams) -> dict[str, Any]:
        """The request's JSON fields except the messages; extra params go in as they are."""
        kwargs: dict[str, Any] = {
            "model": self.model,
            "temperature": params.temperature,
            "max_tokens": params.max_tokens,
        }
        if params.top_p is not None:
            kwargs["top_p"] = params.top_p
        if params.seed is not None:
            kwargs["seed"] = params.seed
        for name, value in (params.extra or {}).items():
            kwargs.setdefault(name, value)
        return kwargs

    def _complete_safely(
        self, messages: Messages, body: dict[str, Any], stop: threading.Event | None = None
    ) -> Completion:
        try:
            return self._complete(messages, body, stop)
        except Exception as exc:  # a bug or surprise must still not sink the batch
            logger.exception("unexpected failure calling %s (%s)", self.model, self.base_url)
            return Completion(error=_one_line(f"{type(exc).__name__}: {exc}", self._secret))

    def _complete(
        self, messages: Messages, body: dict[str, Any], stop: threading.Event | None = None
    ) -> Completion:
        max_attempts = self.max_retries + 1
        attempt = 0
        while True:
            attempt += 1
            try:
                completion = self._attempt(messages, body, stop)
            except _PermanentError as exc:
                return Completion(error=_one_line(str(exc), self._secret), attempts=attempt)
            except TransientError as exc:
                if attempt >= max_attempts or (
                    stop is not None and stop.is_set()
                ):  # out of tries, or cancelled
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

    def _slot(self, stack: ExitStack, stop: threading.Event | None) -> None:
        """Hold one of the endpoint's concurrency slots for the rest of `stack`.

        A slot guards one call: its lease outlasts the call's timeout, and no more, so a killed
        worker's slots come back soon; the wait for a slot outlasts a lease, so slots leaked by a dead
        worker delay a call but never fail it. A limiter that cannot be reached (Redis restarting) is
        waited for within the same bound, without spending one of the call's attempts: a broker blip
        delays calls, it does not turn them into error results."""
        lease = self.timeout + min(5.0, self.timeout)
        deadline = time.monotonic() + 2 * lease
        pause = 0.1
        while True:
            try:
                wait = max(0.0, deadline - time.monotonic())
                stack.enter_context(
                    self.limiter.slot(self.limiter_key, self.max_concurrency, wait, lease=lease)
                )
                return
            except TimeoutError as exc:
                raise TransientError(f"no concurrency slot: {exc}") from exc
            except LimiterUnavailable as exc:
                if time.monotonic() + pause >= deadline or (stop is not None and stop.is_set()):
                    raise TransientError(f"no concurrency slot: {exc}") from exc
                logger.warning("%s; waiting %.1fs for it", exc, pause)
                time.sleep(pause)
                pause = min(2.0, pause * 2)

    def _attempt(
        self, messages: Messages, body: dict[str, Any], stop: threading.Event | None = None
    ) -> Completion:
        """One call. Returns a Completion or raises TransientError / _PermanentError."""
        with ExitStack() as stack:
            if self.limiter is not None:
                self._slot(stack, stop)
            started = time.perf_counter()
            try:
                reply = transport.post_json(
                    self._target,
                    "/chat/completions",
                    {**body, "messages": messages},
                    self._headers,
                    self.timeout,
                )
            except transport.CallTimeout as exc:
                raise TransientError("timed out") from exc
            except transport.AnswerTimeout as exc:  # answered, the rest too slow: billed, not resent
                raise _PermanentError(f"timed out: {exc}") from exc
            except transport.CallFailed as exc:
                if exc.sent:  # an answer it could not read: the server may have billed it, once
                    raise _PermanentError(f"connection error: {exc}") from exc
                raise TransientError(f"connection error: {exc}") from exc  # it never got there
            except transport.CertificateError as exc:
                raise _PermanentError(str(exc)) from exc
            except transport.ResponseTooLarge as exc:
                raise _PermanentError(f"invalid response: {exc}") from exc
            latency_ms = (time.perf_counter() - started) * 1000.0
        status = reply.status
        if 300 <= status < 400:  # not followed: the key must not go to wherever it points
            where = reply.headers.get("location") or "another address"
            raise _PermanentError(
                f"HTTP {status}: the endpoint redirects to {where}; set its base URL to the final address"
            )
        if 200 <= status < 300 and not reply.body.strip():
            raise _PermanentError(f"invalid response: HTTP {status} with an empty body")
        if status >= 400 or status < 200:
            message = f"HTTP {status}: {_status_message(reply)}"
            if status in RETRYABLE_STATUSES or status >= 500:
                raise TransientError(message, retry_after_seconds(reply.headers))
            raise _PermanentError(message)
        # A 200 whose body is not a chat completion: a proxy's HTML page, another API, a server bug.
        # Not retried: the same request is answered the same way.
        try:
            data = json.loads(reply.body)
        except ValueError as exc:
            raise _PermanentError(
                f"invalid response: HTTP {status} with a body that is not JSON ({exc})"
            ) from exc
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list):
            raise _PermanentError(f"invalid response: HTTP {status} without a 'choices' list")
        if not choices:
            raise _PermanentError(
                f"invalid response: HTTP {status} with no choices (an empty 'choices' list)"
            )
        message = choices[0].get("message") if isinstance(choices[0], dict) else None
        if not isinstance(message, dict):
            raise _PermanentError(f"invalid response: HTTP {status} whose first choice has no 'message'")
        usage = data.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        text = message.get("content")
        return Completion(
            text=text if isinstance(text, str) else "",
            prompt_tokens=_count(usage.get("prompt_tokens")),
            completion_tokens=_count(usage.get("completion_tokens")),
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
