"""A real loopback webhook receiver for tests (stdlib only): records every POST, answers 200 or
whatever failures the test queues.

    receiver = WebhookReceiver()           # listens on 127.0.0.1:<free port>
    receiver.fail_next(500, 1)
    ...  # point a channel's variable at receiver.url
    receiver.bodies                        # the JSON bodies received, in order
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    raw: bytes
    status: int

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


@dataclass
class _Failure:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: WebhookReceiver


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        receiver = self.server.receiver
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        failure = receiver._pop_failure()
        status = failure.status if failure else 200
        receiver._record(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, raw, status))
        body = failure.body if failure else b"ok"
        self.send_response(status)
        for name, value in (failure.headers if failure else {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class WebhookReceiver:
    def __init__(self, path: str = "/hooks/T000/B000/s3cr3t-token-xyz") -> None:
        self.received: list[Received] = []
        self._failures: deque[_Failure] = deque()
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.receiver = self
        host, port = self._httpd.server_address[:2]
        # A path with a secret in it, as Slack's webhook URLs have: tests check it never leaks.
        self.url = f"http://{host}:{port}{path}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()

    def fail_next(self, status: int, count: int = 1, headers: dict | None = None, body: bytes = b"") -> None:
        with self._lock:
            for _ in range(count):
                self._failures.append(_Failure(status, dict(headers or {}), body))

    @property
    def bodies(self) -> list[Any]:
        """The JSON of the requests answered 200."""
        return [r.json for r in self.received if r.status == 200]

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _pop_failure(self) -> _Failure | None:
        with self._lock:
            return self._failures.popleft() if self._failures else None

    def _record(self, received: Received) -> None:
        with self._lock:
            self.received.append(received)
