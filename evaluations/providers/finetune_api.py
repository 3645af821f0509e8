"""The OpenAI-compatible fine-tuning API (OpenAI, Azure OpenAI and the open servers that copy it).

`POST /files` (purpose fine-tune, multipart), `POST /fine_tuning/jobs`, `GET /fine_tuning/jobs` (to
find a job a lost answer created), `GET /fine_tuning/jobs/{id}`, `/events`, `/checkpoints` and
`POST /fine_tuning/jobs/{id}/cancel`, through `transport.py` like the chat calls: every call bounded
by the endpoint's timeout, transient failures (a timeout before any answer, a connection never
made, 408/409/425/429, 5xx) retried with backoff honouring `retry-after`, the rest reported at once.

The key is given by the caller (read from the endpoint's variable when the call is made), sent only
as `Authorization: Bearer`, never kept in an error message nor in `repr`.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from . import transport
from .base import ProviderError
from .openai_compat import (
    _KEY_CHARS,
    OPENAI_BASE_URL,
    OPENAI_HEADERS,
    PLACEHOLDER_API_KEY,
    RETRYABLE_STATUSES,
    _one_line,
    _status_message,
    retry_after_seconds,
)

logger = logging.getLogger(__name__)

FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
STATUSES = frozenset({"validating_files", "queued", "running", *FINAL_STATUSES})


class FineTuneApiError(Exception):
    """A call that failed for good (or ran out of retries). `transient` says whether trying again
    later may help (a 429 or 5xx that outlasted the retries, a timeout); `sent` whether the request
    may have reached the server (a POST that may have done its work)."""

    def __init__(
        self, message: str, *, transient: bool = False, sent: bool = True, status: int | None = None
    ):
        super().__init__(message)
        self.transient = transient
        self.sent = sent
        self.status = status


class _Retry(Exception):
    def __init__(self, message: str, retry_after: float | None = None, *, sent: bool = True):
        super().__init__(message)
        self.retry_after = retry_after
        self.sent = sent


class FineTuneClient:
    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str | None,
        timeout: float = 60.0,
        max_retries: int = 2,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        if timeout <= 0:
            raise ProviderError(f"timeout must be positive, got {timeout}")
        self.base_url = base_url or OPENAI_BASE_URL
        self.timeout = timeout
        self.max_retries = max(0, max_retries)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        api_key = (api_key or "").strip()
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
        for header, variable in OPENAI_HEADERS.items():
            if os.environ.get(variable, "").strip():
                self._headers[header] = os.environ[variable].strip()

    def __repr__(self) -> str:  # never shows the key
        return f"FineTuneClient(base_url={self.base_url!r})"

    # -- the API ------------------------------------------------------------------------------------

    def upload_file(self, filename: str, content: bytes, *, purpose: str = "fine-tune") -> dict:
        boundary = f"ftvp-{uuid.uuid4().hex}"
        body = b"".join(
            [
                f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n'.encode(),
                f"{purpose}\r\n".encode(),
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                "Content-Type: application/jsonl\r\n\r\n".encode(),
                content,
                f"\r\n--{boundary}--\r\n".encode(),
            ]
        )
        data = self._call("POST", "/files", body, f"multipart/form-data; boundary={boundary}")
        return self._with_id(data, "file")

    def create_job(self, payload: dict, *, retry: bool = True) -> dict:
        body = json.dumps(payload).encode()
        data = self._call("POST", "/fine_tuning/jobs", body, "application/json", retry=retry)
        return self._with_id(data, "fine-tuning job")

    def list_jobs(self, *, limit: int = 100) -> list[dict]:
        data = self._call("GET", f"/fine_tuning/jobs?{urlencode({'limit': limit})}")
        return _items(data)

    def get_job(self, job_id: str) -> dict:
        return self._with_id(self._call("GET", f"/fine_tuning/jobs/{_seg(job_id)}"), "fine-tuning job")

    def list_events(self, job_id: str, *, limit: int = 100) -> list[dict]:
        return self.events_page(job_id, limit=limit)[0]

    def events_page(
        self, job_id: str, *, limit: int = 100, after: str | None = None
    ) -> tuple[list[dict], bool]:
        """A page of the job's events, newest first, older than the event `after`; and whether more
        (older) ones follow."""
        query = {"limit": limit, **({"after": after} if after else {})}
        data = self._call("GET", f"/fine_tuning/jobs/{_seg(job_id)}/events?{urlencode(query)}")
        return _items(data), bool(isinstance(data, Mapping) and data.get("has_more") is True)

    def list_checkpoints(self, job_id: str, *, limit: int = 100) -> list[dict]:
        path = f"/fine_tuning/jobs/{_seg(job_id)}/checkpoints?{urlencode({'limit': limit})}"
        try:
            return _items(self._call("GET", path))
        except FineTuneApiError as exc:
            if exc.status == 404:  # servers that copy the API without checkpoints
                return []
            raise

    def cancel_job(self, job_id: str) -> dict:
        data = self._call("POST", f"/fine_tuning/jobs/{_seg(job_id)}/cancel", b"{}", "application/json")
        return self._with_id(data, "fine-tuning job")

    # -- internals ------------------------------------------------------------------------------------

    def _with_id(self, data: Any, what: str) -> dict:
        if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
            raise FineTuneApiError(f"invalid response: the {what} has no id")
        return data

    def _call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str | None = None,
        *,
        retry: bool = True,
    ) -> Any:
        attempts = (self.max_retries if retry else 0) + 1
        for attempt in range(1, attempts + 1):
            try:
                return self._attempt(method, path, body, content_type)
            except _Retry as exc:
                message = _one_line(str(exc), self._secret)
                if attempt >= attempts:
                    suffix = f" (after {attempt} attempts)" if attempt > 1 else ""
                    raise FineTuneApiError(
                        f"{method} {path.split('?')[0]}: {message}{suffix}", transient=True, sent=exc.sent
                    ) from None
                delay = self._backoff(attempt, exc.retry_after)
                logger.info(
                    "%s %s: %s; retry %d/%d in %.2fs", method, path, message, attempt, attempts - 1, delay
                )
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(self, method: str, path: str, body: bytes | None, content_type: str | None) -> Any:
        where = f"{method} {path.split('?')[0]}"
        try:
            reply = transport.send(
                self._target, method, path, self._headers, self.timeout, body, content_type
            )
        except transport.CallTimeout as exc:
            raise _Retry("timed out") from exc
        except transport.AnswerTimeout as exc:
            raise FineTuneApiError(f"{where}: timed out: {exc}", transient=True) from exc
        except transport.CallFailed as exc:
            if exc.sent:
                raise FineTuneApiError(f"{where}: connection error: {exc}", transient=True) from exc
            raise _Retry(f"connection error: {exc}", sent=False) from exc
        except (transport.CertificateError, transport.ResponseTooLarge) as exc:
            raise FineTuneApiError(f"{where}: {exc}") from exc
        status = reply.status
        if 300 <= status < 400:
            raise FineTuneApiError(
                f"{where}: HTTP {status}: the endpoint redirects to "
                f"{reply.headers.get('location') or 'another address'}; "
                "set its base URL to the final address",
                status=status,
            )
        if status >= 400 or status < 200:
            message = f"HTTP {status}: {_one_line(_status_message(reply), self._secret)}"
            if status in RETRYABLE_STATUSES or status >= 500:
                raise _Retry(message, retry_after_seconds(reply.headers))
            raise FineTuneApiError(f"{where}: {message}", status=status)
        try:
            return json.loads(reply.body)
        except ValueError:
            raise FineTuneApiError(
                f"{where}: invalid response: HTTP {status} with a body that is not JSON"
            ) from None

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(self.backoff_max, retry_after * random.uniform(1.0, 1.1))
        return min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1)) * random.uniform(1.0, 1.5))


def _seg(value: str) -> str:
    return quote(str(value), safe="")


def _items(data: Any) -> list[dict]:
    rows = data.get("data") if isinstance(data, Mapping) else None
    return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []
