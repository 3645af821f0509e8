"""The model calls' HTTP transport against real loopback servers: keep-alive, a server that drops an
idle connection, timeouts, refused connections and a proxy from the environment."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from evaluations.providers import transport
from tests.fakeopenai import FakeOpenAI

BODY = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture(autouse=True)
def fresh_connections() -> Iterator[None]:
    transport.close_thread_connections()
    yield
    transport.close_thread_connections()


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def test_calls_from_one_thread_reuse_one_connection(server: FakeOpenAI) -> None:
    target = transport.Target.parse(server.base_url)

    replies = [transport.post_json(target, "/chat/completions", BODY, {}, 5.0) for _ in range(5)]

    assert [r.status for r in replies] == [200] * 5
    assert b'"content": "hello"' in replies[0].body
    assert len(transport._local.connections) == 1
    assert len(server.requests) == 5
    assert server.request_headers[0]["user-agent"] == "ftvp"


class OneRequestPerConnection:
    """Answers one request per connection with keep-alive headers, then hangs up: the next request
    on that connection finds it closed, as with a server's idle timeout."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = int(
                    next(
                        h.split(b":")[1]
                        for h in head.split(b"\r\n")
                        if h.lower().startswith(b"content-length")
                    )
                )
                while len(body) < length:
                    body += conn.recv(65536)
                payload = b'{"ok": true}'
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(payload), payload)
                )

    def close(self) -> None:
        self.sock.close()


def test_a_connection_the_server_closed_is_replaced_and_the_call_sent_again() -> None:
    server = OneRequestPerConnection()
    try:
        target = transport.Target.parse(f"http://127.0.0.1:{server.port}/v1")

        first = transport.post_json(target, "/chat/completions", BODY, {}, 5.0)
        second = transport.post_json(target, "/chat/completions", BODY, {}, 5.0)

        assert (first.status, second.status) == (200, 200)
        assert second.body == b'{"ok": true}'
        assert server.connections == 2
    finally:
        server.close()


def test_a_slow_answer_times_out_and_the_connection_is_dropped(server: FakeOpenAI) -> None:
    server.delay = 0.5
    target = transport.Target.parse(server.base_url)

    with pytest.raises(transport.CallTimeout):
        transport.post_json(target, "/chat/completions", BODY, {}, 0.1)

    assert transport._local.connections == {}


def test_a_refused_connection_is_a_call_failure() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there

    with pytest.raises(transport.CallFailed):
        transport.post_json(transport.Target.parse(f"http://127.0.0.1:{port}/v1"), "/x", BODY, {}, 2.0)


def test_a_proxy_from_the_environment_is_used_unless_no_proxy_excludes_the_host(
    server: FakeOpenAI, monkeypatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    # A host that does not resolve: only the proxy can answer for it.
    target = transport.Target.parse("http://llm.invalid/v1")
    assert target.proxied

    reply = transport.post_json(target, "/chat/completions", BODY, {"Authorization": "Bearer k"}, 5.0)

    assert reply.status == 200
    assert server.proxied == ["http://llm.invalid/v1/chat/completions"]
    assert server.request_headers[0]["authorization"] == "Bearer k"
    monkeypatch.setenv("NO_PROXY", "llm.invalid")
    assert not transport.Target.parse("http://llm.invalid/v1").proxied


def test_only_http_urls_are_targets() -> None:
    with pytest.raises(ValueError, match="not an http"):
        transport.Target.parse("ftp://example.com/v1")
    assert transport.Target.parse("https://api.example.com/v1/").prefix == "/v1"
    assert transport.Target.parse("https://api.example.com").port == 443


def test_a_connection_idle_for_too_long_is_not_reused(server: FakeOpenAI, monkeypatch) -> None:
    target = transport.Target.parse(server.base_url)
    transport.post_json(target, "/chat/completions", BODY, {}, 5.0)
    first = transport._local.connections[(target, 5.0)]

    monkeypatch.setattr(transport, "KEEPALIVE_SECONDS", 0.0)  # as if it had sat idle for minutes
    reply = transport.post_json(target, "/chat/completions", BODY, {}, 5.0)

    assert reply.status == 200
    assert transport._local.connections[(target, 5.0)] is not first
    assert first.conn.sock is None  # closed


def test_ipv6_origins_are_bracketed() -> None:
    assert transport.Target.parse("http://[::1]:8000/v1").origin == "http://[::1]:8000"
