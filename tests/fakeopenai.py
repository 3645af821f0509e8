"""A real loopback OpenAI-compatible HTTP server for tests (stdlib only).

In tests:

    with FakeOpenAI() as server:              # listens on 127.0.0.1:<free port>
        server.fail_next(429, 1, headers={"retry-after": "0.1"})
        server.delay = 0.05
        ...  # point a client at server.base_url ("http://127.0.0.1:PORT/v1")
        server.requests, server.max_in_flight

Standalone (for integration tests that need a separate process):

    python tests/fakeopenai.py --port 8099 --answers answers.json

answers.json maps the last user message's text (exact match first, else the longest key contained in
it) to the answer; anything else is echoed. The first line on stdout is "listening on <base_url>".

`echo_authorization=True` (`--echo-authorization`) plays a gateway that leaks the request's
Authorization header into its answers: every "{authorization}" in an answer becomes the header's
value, and an answer without one gets the header appended as it came, percent-encoded and in base64.
"""

from __future__ import annotations

import argparse
import base64
import json
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, urlsplit

Responder = Callable[[dict[str, Any]], "str | None"]
AUTHORIZATION = "{authorization}"  # replaced by the request's Authorization header (echo_authorization)


def with_authorization(answer: str, header: str) -> str:
    """`answer` as a gateway that leaks the request's Authorization header gives it back."""
    if AUTHORIZATION in answer:
        return answer.replace(AUTHORIZATION, header)
    encoded = base64.b64encode(header.encode()).decode()
    return (
        f"{answer}\n[gateway debug] Authorization: {header} | url-encoded: {quote(header, safe='')} "
        f"| base64: {encoded}"
    )


def _content_text(content: Any) -> str:
    """Text of a message's content: a string, or a list of parts with `text`."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def last_user_text(body: Mapping[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return _content_text(message.get("content"))
    return ""


def echo_responder(body: dict[str, Any]) -> str:
    """The default answer: the last user message, unchanged."""
    return last_user_text(body)


def answers_responder(answers: Mapping[str, str], default: Responder = echo_responder) -> Responder:
    """Answer from a mapping: exact last-user-message match, else the longest key it contains."""
    by_length = sorted(answers, key=len, reverse=True)

    def respond(body: dict[str, Any]) -> str | None:
        text = last_user_text(body)
        if text in answers:
            return answers[text]
        for key in by_length:
            if key and key in text:
                return answers[key]
        return default(body)

    return respond


def _words(text: str) -> int:
    return len(text.split())


@dataclass
class _Failure:
    status: int
    headers: dict[str, str]
    body: Any


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Many clients connect at once (a worker's pool threads): with the default backlog of 5 the
    # kernel drops their SYNs and each waits a second to try again, long enough to time out.
    request_queue_size = 128
    fake: FakeOpenAI

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out hang up on us; that is expected, not worth a traceback.
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes; no 40 ms delayed-ACK stalls
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send_json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _error(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        self._send_json(status, {"error": {"message": message, "type": kind, "param": None, "code": None}})

    def do_GET(self) -> None:
        fake = self.server.fake
        if self.path.rstrip("/") == "/v1/models":
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "fakeopenai"} for m in fake.models]
            self._send_json(200, {"object": "list", "data": data})
        else:
            self._error(404, f"no route for GET {self.path}")

    def do_POST(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.startswith(("http://", "https://")):  # sent to us as a proxy: serve it ourselves
            fake.proxied.append(self.path)
            self.path = urlsplit(self.path).path
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._error(404, f"no route for POST {self.path}")
            return
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            self._error(400, "request body is not JSON")
            return
        fake._enter(body, {k.lower(): v for k, v in self.headers.items()})
        try:
            self._chat_completion(fake, body)
        finally:
            fake._leave()

    def _chat_completion(self, fake: FakeOpenAI, body: Any) -> None:
        failure = fake._pop_failure()
        if fake.delay > 0:
            time.sleep(fake.delay)
        if failure is not None:
            payload = failure.body
            if payload is None:
                payload = {"error": {"message": f"fake failure {failure.status}", "type": "fake_error"}}
            elif isinstance(payload, str):
                payload = payload.encode()
            self._send_json(failure.status, payload, failure.headers)
            return
        if fake.api_key is not None and self.headers.get("Authorization") != f"Bearer {fake.api_key}":
            self._error(401, "invalid api key", "authentication_error")
            return
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
            self._error(400, "'messages' must be a non-empty list")
            return
        if not body.get("model"):
            self._error(400, "'model' is required")
            return
        if body.get("stream"):
            self._error(400, "streaming is not supported by the fake server")
            return
        try:
            answer = fake.responder(body)
        except Exception as exc:
            self._error(500, f"responder failed: {exc}", "server_error")
            return
        if fake.echo_authorization and isinstance(answer, str):
            answer = with_authorization(answer, self.headers.get("Authorization") or "")
        prompt_tokens = sum(_words(_content_text(m.get("content"))) for m in body["messages"])
        completion_tokens = _words(answer or "")
        self._send_json(
            200,
            {
                "id": f"chatcmpl-fake-{fake._next_id()}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "system_fingerprint": "fakeopenai",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
        )


class FakeOpenAI:
    """A loopback OpenAI-compatible server, started on construction; `stop()` (or `with`) ends it."""

    handler_class: type[_Handler] = _Handler  # subclasses (tests/chaos.py) answer their own way

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        responder: Responder | None = None,
        delay: float = 0.0,
        api_key: str | None = None,
        models: list[str] | None = None,
        echo_authorization: bool = False,
    ) -> None:
        self.responder: Responder = responder or echo_responder
        self.echo_authorization = echo_authorization  # answers leak the Authorization header
        self.delay = delay
        self.api_key = api_key  # when set, requests must send "Authorization: Bearer <api_key>"
        self.models = models or ["fake-model"]
        self.requests: list[Any] = []
        self.proxied: list[str] = []  # absolute URLs of requests that came through us as a proxy
        self.request_headers: list[dict[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._failures: deque[_Failure] = deque()
        self._ids = 0
        self._httpd = _Server((host, port), self.handler_class)
        self._httpd.fake = self
        self.host, self.port = self._httpd.server_address[:2]
        self.base_url = f"http://{self.host}:{self.port}/v1"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, name="fakeopenai", daemon=True
        )
        self._thread.start()

    # -- controls ---------------------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        count: int = 1,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> None:
        """Make the next `count` chat requests fail with `status` (plus optional headers / JSON body)."""
        with self._lock:
            for _ in range(count):
                self._failures.append(_Failure(status, dict(headers or {}), body))

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.request_headers.clear()
            self._failures.clear()
            self.max_in_flight = self.in_flight

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAI:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- used by the handler ----------------------------------------------------------------------

    def _enter(self, body: Any, headers: dict[str, str]) -> None:
        with self._lock:
            self.requests.append(body)
            self.request_headers.append(headers)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _pop_failure(self) -> _Failure | None:
        with self._lock:
            return self._failures.popleft() if self._failures else None

    def _next_id(self) -> int:
        with self._lock:
            self._ids += 1
            return self._ids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A loopback OpenAI-compatible server for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099, help="0 picks a free port")
    parser.add_argument("--answers", help="JSON file mapping a user message (or a substring) to the answer")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait before each answer")
    parser.add_argument("--api-key", default=None, help="require this bearer token")
    parser.add_argument("--model", action="append", dest="models", help="model id listed by /v1/models")
    parser.add_argument(
        "--echo-authorization", action="store_true", help="leak the Authorization header into answers"
    )
    args = parser.parse_args(argv)

    responder: Responder = echo_responder
    if args.answers:
        with open(args.answers, encoding="utf-8") as fh:
            answers = json.load(fh)
        if not isinstance(answers, dict):
            parser.error("--answers must hold a JSON object")
        responder = answers_responder({str(k): str(v) for k, v in answers.items()})

    server = FakeOpenAI(
        host=args.host,
        port=args.port,
        responder=responder,
        delay=args.delay,
        api_key=args.api_key,
        models=args.models,
        echo_authorization=args.echo_authorization,
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    print(f"listening on {server.base_url}", flush=True)
    try:
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
