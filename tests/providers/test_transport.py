"""The model calls' HTTP transport against real loopback servers: keep-alive, a server that drops an
idle connection, timeouts, refused connections and a proxy from the environment."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from evaluations.providers import transport
from tests.chaos import SCENARIOS, ChaosOpenAI
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


def chaos_case(case: int) -> dict:
    return {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": f"case {case}"}]}


def test_an_answer_larger_than_the_limit_is_refused_and_the_connection_dropped(monkeypatch) -> None:
    monkeypatch.setattr(transport, "MAX_RESPONSE_BYTES", 64 * 1024)
    with ChaosOpenAI(timeout=5, max_attempts=1, scenario_for=lambda case: SCENARIOS["huge"]) as server:
        target = transport.Target.parse(server.base_url)

        with pytest.raises(
            transport.ResponseTooLarge, match=r"larger than 0\.0625 MiB: the server ignores max_tokens"
        ):
            transport.post_json(target, "/chat/completions", chaos_case(1), {}, 5.0)

        assert transport._local.connections == {}
        monkeypatch.setattr(transport, "MAX_RESPONSE_BYTES", 8 * 1024 * 1024)
        reply = transport.post_json(target, "/chat/completions", BODY, {}, 5.0)  # not a chaos case
        assert reply.status == 200


def test_the_timeout_bounds_the_whole_answer_not_each_read() -> None:
    """A server that trickles its answer (a piece every 50 ms) never lets one read time out; the
    call still ends at its timeout."""
    with ChaosOpenAI(
        timeout=5, max_attempts=1, slow_seconds=1.5, scenario_for=lambda case: SCENARIOS["slow"]
    ) as server:
        target = transport.Target.parse(server.base_url)
        started = time.monotonic()

        with pytest.raises(transport.CallTimeout):
            transport.post_json(target, "/chat/completions", chaos_case(1), {}, 0.4)

        assert time.monotonic() - started < server.slow_seconds  # not the whole trickle
        assert transport._local.connections == {}
        reply = transport.post_json(target, "/chat/completions", chaos_case(2), {}, 5.0)  # within it
        assert (
            reply.status == 200 and json.loads(reply.body)["choices"][0]["message"]["content"] == "answer 2"
        )


class Trickler:
    """Answers one request with `head` at once, then `trickled` one byte every `pause` seconds, then
    `tail`: every read of the client gets a byte well within any per-read timeout."""

    def __init__(self, head: bytes, trickled: bytes, tail: bytes, pause: float = 0.2) -> None:
        self.head, self.trickled, self.tail, self.pause = head, trickled, tail, pause
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    @property
    def seconds(self) -> float:
        """How long the whole answer takes to arrive."""
        return len(self.trickled) * self.pause

    def serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            try:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                conn.sendall(self.head)
                for byte in self.trickled:
                    conn.sendall(bytes([byte]))
                    time.sleep(self.pause)
                conn.sendall(self.tail)
            except OSError:  # the client gave up and closed: nothing more to send
                return

    def close(self) -> None:
        self.sock.close()
        self.thread.join(timeout=5)


@pytest.mark.parametrize(
    ("head", "trickled", "tail"),
    [
        pytest.param(
            b"",
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n",
            b"{}",
            id="status-line-and-headers",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"2;padding=" + b"x" * 30 + b"\r\n",
            b"{}\r\n0\r\n\r\n",
            id="chunk-size-line",
        ),
    ],
)
def test_the_timeout_bounds_headers_and_chunk_sizes_trickled_a_byte_at_a_time(head, trickled, tail) -> None:
    """http.client reads the status line, the headers and the chunk sizes a line at a time: a
    per-read socket timeout is reset by every byte, so a server sending one byte every 0.2 s would
    hold a call with a 0.5 s timeout for as long as it likes."""
    server = Trickler(head, trickled, tail)
    try:
        target = transport.Target.parse(f"http://127.0.0.1:{server.port}/v1")
        started = time.monotonic()

        with pytest.raises(transport.CallTimeout):
            transport.post_json(target, "/chat/completions", BODY, {}, 0.5)

        assert time.monotonic() - started < server.seconds / 2  # the trickle takes 8 s or more
        assert transport._local.connections == {}
    finally:
        server.close()


def test_a_truncated_answer_on_a_kept_alive_connection_is_reported_not_sent_again() -> None:
    """The server answered (a status line came back): sending the request again without counting
    an attempt would hide a broken server and double its load."""
    scenarios = {1: SCENARIOS["ok"], 2: SCENARIOS["truncated-always"]}
    with ChaosOpenAI(timeout=5, max_attempts=1, scenario_for=scenarios.__getitem__) as server:
        target = transport.Target.parse(server.base_url)
        transport.post_json(target, "/chat/completions", chaos_case(1), {}, 5.0)  # keeps a connection

        with pytest.raises(transport.CallFailed) as failure:
            transport.post_json(target, "/chat/completions", chaos_case(2), {}, 5.0)

        assert re.fullmatch(
            r"the answer was cut off after \d+ bytes \(\d+ more expected\)", str(failure.value)
        )
        assert server.attempts[2] == 1


def test_a_reset_connection_is_reported_in_words() -> None:
    with ChaosOpenAI(
        timeout=5, max_attempts=1, scenario_for=lambda case: SCENARIOS["reset-always"]
    ) as server:
        target = transport.Target.parse(server.base_url)

        with pytest.raises(transport.CallFailed, match=r"^the server reset the connection$"):
            transport.post_json(target, "/chat/completions", chaos_case(1), {}, 5.0)

        assert server.attempts[1] == 1
