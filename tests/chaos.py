"""A loopback OpenAI-compatible server that misbehaves on purpose, and always the same way.

Each chat request names its case in the last user message ("case 123 ..."). The case number picks a
scenario (`scenario_for`) and the server counts the requests it got for that case, so which fault
answers which attempt is known in advance:

    with ChaosOpenAI(timeout=2, max_attempts=3) as server:     # the endpoint's timeout and attempts
        ...  # point an endpoint at server.base_url, run the cases
        server.attempts[123]                   # requests the server got for case 123
        server.outcome(123)                    # what ftvp must end with: requests, ok, error pattern

Faults: 429 with retry-after, 500, 503 with retry-after-ms, a hang past the timeout, a connection
reset (RST), a truncated body (a Content-Length larger than what is sent, then close), malformed
JSON, `choices: []`, an answer trickled a few bytes at a time (slow, within the timeout), an answer
far longer than max_tokens, and one larger than the client accepts at all. A transient fault either
clears after some attempts (within the retry budget: the case ends OK) or never (the retries run out:
an error result); a permanent one, and an answer that could not be read (a reset after the request
arrived, a truncated body), is an error result after one request.

A case without "case <n>" in its text is answered as FakeOpenAI answers it.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from evaluations.providers import transport
from tests.fakeopenai import FakeOpenAI, _content_text, _Handler, _words, last_user_text

CASE = re.compile(r"\bcase (\d+)\b")

TRANSIENT = frozenset({"429", "500", "503", "timeout"})
PERMANENT = frozenset({"malformed", "empty", "huge"})
# The request reached the server but its answer could not be read: reported after one request, never
# sent again (the server may have worked on it and billed it).
UNREADABLE = frozenset({"reset", "truncated"})
ANSWERED = frozenset({"slow", "long"})  # odd but valid answers: kept, one request


def error_pattern(fault: str, attempts: int) -> str:
    """A regular expression for the whole error a fault leaves on a result after `attempts` calls."""
    after = re.escape(f" (after {attempts} attempts)")
    mib = f"{transport.MAX_RESPONSE_BYTES / (1024 * 1024):g}"
    return {
        "429": re.escape("HTTP 429: Rate limit reached for requests") + after,
        "500": re.escape("HTTP 500: The server had an error while processing your request. Sorry about that!")
        + after,
        "503": re.escape("HTTP 503: The engine is currently overloaded, please try again later") + after,
        "timeout": re.escape(f"timed out after {attempts} attempts"),
        "reset": re.escape(
            "connection error: the server reset the connection after the request was sent "
            "(not sent again: the server may have worked on it)"
        ),
        "truncated": r"connection error: the answer was cut off after \d+ bytes \(\d+ more expected; "
        r"not sent again: the server may have worked on it\)",
        "malformed": r"invalid response: HTTP 200 with a body that is not JSON "
        r"\(Unterminated string starting at: line 1 column \d+ \(char \d+\)\)",
        "empty": re.escape("invalid response: HTTP 200 with no choices (an empty 'choices' list)"),
        "huge": re.escape(
            f"invalid response: the answer is larger than {mib} MiB: the server ignores max_tokens "
            "or is not a chat completions API; lower max_tokens or check the endpoint"
        ),
    }[fault]


@dataclass(frozen=True)
class Scenario:
    """`fault` on the first `times` requests of a case (every request when `times` is None)."""

    name: str
    fault: str | None = None
    times: int | None = 1

    def fault_at(self, attempt: int) -> str | None:
        if self.fault is None or (self.times is not None and attempt > self.times):
            return None
        return self.fault


@dataclass(frozen=True)
class Outcome:
    requests: int  # what the server must have received for the case
    ok: bool
    error: str  # a regular expression the whole error text matches ("" when ok)
    retried: bool  # transient faults the client retried


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("ok"),
        Scenario("429-once", "429", 1),
        Scenario("429-always", "429", None),
        Scenario("500-twice", "500", 2),
        Scenario("500-always", "500", None),
        Scenario("503-once", "503", 1),
        Scenario("503-always", "503", None),
        Scenario("timeout-once", "timeout", 1),
        Scenario("timeout-always", "timeout", None),
        Scenario("reset-once", "reset", 1),
        Scenario("reset-always", "reset", None),
        Scenario("truncated-once", "truncated", 1),
        Scenario("truncated-always", "truncated", None),
        Scenario("malformed", "malformed", None),
        Scenario("empty", "empty", None),
        Scenario("huge", "huge", None),
        Scenario("slow", "slow", None),
        Scenario("long", "long", None),
    )
}
# One case in two is answered at once; the others cycle through the faults.
CYCLE = (
    "ok", "429-once", "ok", "500-twice", "ok", "503-once", "ok", "429-once", "ok", "reset-once",
    "ok", "truncated-once", "ok", "malformed", "ok", "empty", "ok", "slow", "ok", "long",
    "ok", "429-always", "ok", "500-always", "ok", "503-always", "ok", "ok", "ok", "reset-always",
    "ok", "truncated-always", "ok", "429-once", "ok", "503-once", "ok", "truncated-once", "ok", "slow",
)  # fmt: skip


def scenario_for(case: int) -> Scenario:
    """The scenario of a case: rare costly ones by their own rule, the rest from CYCLE. The hangs
    (each holds a call for the whole timeout) are a few early cases, so that they overlap the rest
    of a run instead of holding up its last batches."""
    if case in (27, 127):  # a hang on every attempt costs the whole retry budget in timeouts
        return SCENARIOS["timeout-always"]
    if case in (7, 107):
        return SCENARIOS["timeout-once"]
    if case % 500 == 77:  # more than MAX_RESPONSE_BYTES goes over the wire
        return SCENARIOS["huge"]
    return SCENARIOS[CYCLE[case % len(CYCLE)]]


def case_of(body: Any) -> int | None:
    match = CASE.search(last_user_text(body)) if isinstance(body, dict) else None
    return int(match.group(1)) if match else None


def answer_for(case: int) -> str:
    return f"answer {case}"


class _ChaosHandler(_Handler):
    server: Any

    def _chat_completion(self, fake: FakeOpenAI, body: Any) -> None:
        case = case_of(body)
        if not isinstance(fake, ChaosOpenAI) or case is None or body.get("stream"):
            super()._chat_completion(fake, body)
            return
        attempt = fake._count(case)
        fault = fake.scenario(case).fault_at(attempt)
        if fake.delay > 0:
            time.sleep(fake.delay)
        if fault == "429":
            self._fail(429, "Rate limit reached for requests", "requests", {"retry-after": "0.05"})
        elif fault == "500":
            self._fail(500, "The server had an error while processing your request. Sorry about that!")
        elif fault == "503":
            self._fail(503, "The engine is currently overloaded, please try again later", "server_error",
                       {"retry-after-ms": "50"})  # fmt: skip
        elif fault == "timeout":
            time.sleep(fake.timeout + 0.5)  # the client gave up meanwhile: nothing to answer
            self.close_connection = True
        elif fault == "reset":
            self._reset()
        elif fault == "truncated":
            data = self._completion_bytes(fake, body, answer_for(case))
            self._raw(200, data[: len(data) // 2], length=len(data))
            self.close_connection = True  # the server then closes: the rest never comes
        elif fault == "malformed":
            data = self._completion_bytes(fake, body, answer_for(case))
            self._raw(200, data[: data.index(b'"content"') + 16])  # cut inside a string, length honest
        elif fault == "empty":
            payload = json.loads(self._completion_bytes(fake, body, ""))
            payload["choices"] = []
            self._raw(200, json.dumps(payload).encode())
        elif fault == "huge":
            text = "answer " * (transport.MAX_RESPONSE_BYTES // len("answer ") + 1024)
            self._raw(200, self._completion_bytes(fake, body, text))
        elif fault == "slow":
            self._trickle(self._completion_bytes(fake, body, answer_for(case)), fake.slow_seconds)
        elif fault == "long":
            words = fake.long_factor * int(body.get("max_tokens") or 256)
            self._raw(200, self._completion_bytes(fake, body, " ".join([answer_for(case)] * (words // 2))))
        else:
            self._raw(200, self._completion_bytes(fake, body, answer_for(case)))

    # -- ways to answer ---------------------------------------------------------------------------

    def _fail(
        self, status: int, message: str, kind: str = "server_error", headers: dict | None = None
    ) -> None:
        self._send_json(status, {"error": {"message": message, "type": kind, "param": None, "code": None}},
                        headers)  # fmt: skip

    def _completion_bytes(self, fake: FakeOpenAI, body: dict, answer: str) -> bytes:
        prompt_tokens = sum(_words(_content_text(m.get("content"))) for m in body["messages"])
        completion_tokens = _words(answer)
        return json.dumps(
            {
                "id": f"chatcmpl-chaos-{fake._next_id()}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", ""),
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
        ).encode()

    def _head(self, status: int, length: int) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def _raw(self, status: int, data: bytes, *, length: int | None = None) -> None:
        """Send `data` as the body, announcing `length` bytes (len(data) unless told)."""
        try:
            self._head(status, len(data) if length is None else length)
            self.wfile.write(data)
        except OSError:  # the client gave up (a body too large for it): nothing to do
            self.close_connection = True

    def _trickle(self, data: bytes, seconds: float, pieces: int = 20) -> None:
        step = max(1, -(-len(data) // pieces))
        try:
            self._head(200, len(data))
            for start in range(0, len(data), step):
                self.wfile.write(data[start : start + step])
                time.sleep(seconds / pieces)
        except OSError:
            self.close_connection = True

    def _reset(self) -> None:
        """Reset the connection (RST, not FIN) after reading the request: SO_LINGER 0, then close."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()  # the socket closes for real only once its file objects are closed
        self.connection.close()
        self.close_connection = True


class ChaosOpenAI(FakeOpenAI):
    """FakeOpenAI whose answers follow `scenario_for(case)` and the attempt count of each case."""

    handler_class = _ChaosHandler

    def __init__(
        self,
        *,
        timeout: float,
        max_attempts: int,
        scenario_for=scenario_for,
        slow_seconds: float = 0.6,
        long_factor: int = 40,
        **kwargs: Any,
    ) -> None:
        if not slow_seconds < timeout:
            raise ValueError("a slow answer must still arrive within the timeout")
        self.timeout = timeout  # the endpoint's: a "timeout" fault hangs past it
        self.max_attempts = max_attempts  # the client's: 1 + FTVP_HTTP_RETRIES
        self.scenario = scenario_for
        self.slow_seconds = slow_seconds
        self.long_factor = long_factor  # a "long" answer has long_factor x max_tokens words
        self.attempts: Counter[int] = Counter()
        self._attempts_lock = threading.Lock()
        super().__init__(**kwargs)

    def _count(self, case: int) -> int:
        with self._attempts_lock:
            self.attempts[case] += 1
            return self.attempts[case]

    def outcome(self, case: int) -> Outcome:
        """What the client must end with for `case`: the requests, OK or not, and the error."""
        s = self.scenario(case)
        if s.fault is None or s.fault in ANSWERED:
            return Outcome(1, True, "", False)
        if s.fault in PERMANENT or s.fault in UNREADABLE:
            return Outcome(1, False, error_pattern(s.fault, 1), False)
        if s.times is not None and s.times < self.max_attempts:
            return Outcome(s.times + 1, True, "", True)
        return Outcome(self.max_attempts, False, error_pattern(s.fault, self.max_attempts), True)
