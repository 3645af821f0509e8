"""The model calls' HTTP transport against loopback servers that behave as real servers and gateways
do (tests/httpservers.py), first call by call, then through the real pipeline: every case answered,
and the server's request count equal to the case count.

Behaviours: keep-alive; `Connection: close` with the body a moment after the headers; HTTP/1.0 read to
the end of the connection (Python's stock http.server, a 401 from it too); chunked bodies; gzip and
deflate; idle kept-alive connections the server dropped (after N requests, after an idle timeout);
a body cut off; a reset after the request; a refused connection; a forward proxy (plain HTTP and the
HTTPS CONNECT tunnel); TLS with a trusted and an untrusted certificate; a whole-call timeout against
servers that trickle. nginx in front of a loopback server is tests/integration/test_reverse_proxy.py.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from evaluations.models import Result
from evaluations.providers import transport
from evaluations.services.runs import run_create
from tests.chaos import SCENARIOS, ChaosOpenAI
from tests.factories import CaseFactory, EndpointFactory, SuiteVersionFactory, strategy
from tests.fakeopenai import FakeOpenAI
from tests.httpservers import (
    Behaviour,
    RawChatServer,
    StockServer,
    TLSChatServer,
    TunnelProxy,
    tls_files,
)

BODY = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture(autouse=True)
def fresh_connections(monkeypatch) -> Iterator[None]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    transport.close_connections()
    yield
    transport.close_connections()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    return tls_files(tmp_path_factory.mktemp("tls"))


def call(base_url: str, text: str = "hello", timeout: float = 5.0) -> transport.Reply:
    body = {"model": "m", "messages": [{"role": "user", "content": text}]}
    return transport.post_json(transport.Target.parse(base_url), "/chat/completions", body, {}, timeout)


def content(reply: transport.Reply) -> str:
    assert reply.status == 200, reply.body
    return json.loads(reply.body)["choices"][0]["message"]["content"]


# -- call by call ---------------------------------------------------------------------------------


def test_calls_reuse_one_kept_alive_connection() -> None:
    with RawChatServer() as server:
        answers = [content(call(server.base_url, f"q{i}")) for i in range(5)]

    assert answers == [f"answer to q{i}" for i in range(5)]
    assert (len(server.requests), server.connections) == (5, 1)
    assert server.headers[0]["user-agent"] == "ftvp"
    assert "gzip" in server.headers[0]["accept-encoding"]


def test_connection_close_with_the_body_a_moment_after_the_headers() -> None:
    """The defect users met: every call failed ("Bad file descriptor") and was sent five times."""
    with RawChatServer(Behaviour(close=True, body_delay=0.2)) as server:
        answers = [content(call(server.base_url, f"q{i}")) for i in range(3)]

    assert answers == ["answer to q0", "answer to q1", "answer to q2"]
    assert (len(server.requests), server.connections) == (3, 3)


def test_http_1_0_from_pythons_stock_server_read_to_the_end_of_the_connection() -> None:
    with StockServer() as server:
        answers = [content(call(server.base_url, f"q{i}")) for i in range(3)]

    assert answers == ["answer to q0", "answer to q1", "answer to q2"]
    assert len(server.requests) == 3


def test_a_401_from_the_stock_server_is_an_http_401_not_a_connection_error() -> None:
    with StockServer(status=401, reason="Incorrect API key provided") as server:
        reply = call(server.base_url)

    assert reply.status == 401
    assert b"Incorrect API key provided" in reply.body
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    "behaviour",
    [
        pytest.param(Behaviour(framing="chunked", chunk_size=5), id="chunked"),
        pytest.param(Behaviour(encoding="gzip"), id="gzip"),
        pytest.param(Behaviour(encoding="deflate"), id="deflate"),
        pytest.param(Behaviour(encoding="gzip", framing="chunked", body_delay=0.1), id="gzip-chunked-late"),
        pytest.param(Behaviour(framing="eof"), id="http-1.1-no-length-read-to-close"),
        pytest.param(Behaviour(version="HTTP/1.0", framing="length"), id="http-1.0-with-length"),
    ],
)
def test_bodies_framed_and_encoded_as_servers_send_them(behaviour: Behaviour) -> None:
    with RawChatServer(behaviour) as server:
        answers = [content(call(server.base_url, f"q{i}")) for i in range(3)]

    assert answers == ["answer to q0", "answer to q1", "answer to q2"]
    assert len(server.requests) == 3


def test_a_kept_alive_connection_the_server_dropped_is_replaced_without_a_second_request() -> None:
    """The server hangs up after each answer without saying so (an idle drop): the next call sees the
    connection closed before using it, and opens another; no request is lost or sent twice."""
    with RawChatServer(Behaviour(requests_per_connection=1)) as server:
        first = content(call(server.base_url, "one"))
        time.sleep(0.1)  # the server's close arrives
        second = content(call(server.base_url, "two"))

    assert (first, second) == ("answer to one", "answer to two")
    assert (len(server.requests), server.connections) == (2, 2)


def test_a_server_keep_alive_timeout_shorter_than_ours() -> None:
    with RawChatServer(Behaviour(idle_timeout=0.3)) as server:
        first = content(call(server.base_url, "one"))
        time.sleep(0.6)  # the server closed the idle connection meanwhile
        second = content(call(server.base_url, "two"))

    assert (first, second) == ("answer to one", "answer to two")
    assert (len(server.requests), server.connections) == (2, 2)


def test_a_connection_idle_past_keepalive_seconds_is_not_reused(monkeypatch) -> None:
    with RawChatServer() as server:
        content(call(server.base_url))
        transport.close_connections()  # the setting is read when the pool is made
        monkeypatch.setattr(transport, "KEEPALIVE_SECONDS", 0.05)
        content(call(server.base_url))
        time.sleep(0.2)
        content(call(server.base_url))

    assert (len(server.requests), server.connections) == (3, 3)


def test_a_body_cut_off_is_reported_once_in_words() -> None:
    server = RawChatServer(Behaviour(cut_after=20))
    with server, pytest.raises(transport.CallFailed) as failure:
        call(server.base_url)

    assert failure.value.sent
    assert re.fullmatch(
        r"the answer was cut off after 20 bytes \(\d+ more expected; not sent again: the server may "
        r"have worked on it\)",
        str(failure.value),
    )
    assert len(server.requests) == 1


def test_a_reset_after_the_request_is_reported_once_in_words() -> None:
    server = RawChatServer(Behaviour(reset_after_request=True))
    with server, pytest.raises(transport.CallFailed) as failure:
        call(server.base_url)

    assert failure.value.sent
    assert str(failure.value) == (
        "the server reset the connection after the request was sent (not sent again: the server may "
        "have worked on it)"
    )
    assert len(server.requests) == 1


def test_a_refused_connection_never_reached_a_server() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there

    with pytest.raises(transport.CallFailed) as failure:
        call(f"http://127.0.0.1:{port}/v1")

    assert not failure.value.sent
    assert str(failure.value) == "connection refused: nothing listens at that address and port"


def test_a_forward_proxy_from_the_environment_unless_no_proxy_excludes_the_host(monkeypatch) -> None:
    with RawChatServer() as server, TunnelProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        assert transport.Target.parse(server.base_url).proxy == proxy.url

        answers = [content(call(server.base_url, f"q{i}")) for i in range(3)]

        assert answers == ["answer to q0", "answer to q1", "answer to q2"]
        assert proxy.relayed == [f"{server.base_url}/chat/completions"] * 3
        assert len(server.requests) == 3
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        assert not transport.Target.parse(server.base_url).proxied


def test_https_with_a_trusted_certificate_and_a_refused_one(certificate, monkeypatch) -> None:
    cert, key = certificate
    with TLSChatServer(cert, key) as server:
        with pytest.raises(transport.CertificateError, match="TLS certificate not trusted"):
            call(server.base_url)  # the system's store does not hold a self-signed certificate
        transport.close_connections()
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))

        answers = [content(call(server.base_url, f"q{i}")) for i in range(3)]

    assert answers == ["answer to q0", "answer to q1", "answer to q2"]
    assert server.connections == 2  # the refused handshake, then one kept-alive connection


def test_https_through_a_proxy_goes_through_a_connect_tunnel(certificate, monkeypatch) -> None:
    cert, key = certificate
    with TLSChatServer(cert, key) as server, TunnelProxy() as proxy:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)

        answers = [content(call(server.base_url, f"q{i}")) for i in range(3)]

    assert answers == ["answer to q0", "answer to q1", "answer to q2"]
    assert proxy.tunnels == [f"localhost:{server.port}"]  # one tunnel, kept alive
    assert len(server.requests) == 3


def test_only_http_urls_are_targets() -> None:
    with pytest.raises(ValueError, match="not an http"):
        transport.Target.parse("ftp://example.com/v1")
    assert transport.Target.parse("https://api.example.com/v1/").prefix == "/v1"
    assert transport.Target.parse("https://api.example.com").port == 443
    assert transport.Target.parse("http://[::1]:8000/v1").origin == "http://[::1]:8000"


def chaos_case(case: int) -> dict:
    return {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": f"case {case}"}]}


def test_an_answer_larger_than_the_limit_is_refused(monkeypatch) -> None:
    monkeypatch.setattr(transport, "MAX_RESPONSE_BYTES", 64 * 1024)
    with ChaosOpenAI(timeout=5, max_attempts=1, scenario_for=lambda case: SCENARIOS["huge"]) as server:
        target = transport.Target.parse(server.base_url)

        with pytest.raises(
            transport.ResponseTooLarge, match=r"larger than 0\.0625 MiB: the server ignores max_tokens"
        ):
            transport.post_json(target, "/chat/completions", chaos_case(1), {}, 5.0)

        assert transport.open_connections(target) == 0  # not reused: the rest of it is still coming
        monkeypatch.setattr(transport, "MAX_RESPONSE_BYTES", 8 * 1024 * 1024)
        reply = transport.post_json(target, "/chat/completions", BODY, {}, 5.0)  # not a chaos case
        assert reply.status == 200


def test_a_slow_answer_times_out_and_its_connection_is_not_reused() -> None:
    with FakeOpenAI() as server:
        server.delay = 0.5
        target = transport.Target.parse(server.base_url)

        with pytest.raises(transport.CallTimeout):
            transport.post_json(target, "/chat/completions", BODY, {}, 0.1)

        assert transport.open_connections(target) == 0


def test_the_timeout_bounds_the_whole_answer_not_each_read() -> None:
    """A server that trickles its answer (a piece every 75 ms) never lets one read time out; the
    call still ends at its timeout, and as the server had begun to answer (it worked on the request,
    and bills it) the call is reported, not sent again."""
    with ChaosOpenAI(
        timeout=5, max_attempts=1, slow_seconds=1.5, scenario_for=lambda case: SCENARIOS["slow"]
    ) as server:
        target = transport.Target.parse(server.base_url)
        started = time.monotonic()

        with pytest.raises(transport.AnswerTimeout) as failure:
            transport.post_json(target, "/chat/completions", chaos_case(1), {}, 0.4)

        assert time.monotonic() - started < server.slow_seconds  # not the whole trickle
        assert failure.value.sent and str(failure.value) == (
            "the answer did not arrive in full within 0.4s (not sent again: the server may have worked on it)"
        )
        assert server.attempts[1] == 1
        reply = transport.post_json(target, "/chat/completions", chaos_case(2), {}, 5.0)  # within it
        assert json.loads(reply.body)["choices"][0]["message"]["content"] == "answer 2"


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
    ("head", "trickled", "tail", "raised"),
    [
        pytest.param(
            b"",
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n",
            b"{}",
            transport.CallTimeout,  # no answer began: a timeout, sent again by the provider
            id="status-line-and-headers",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"2;padding=" + b"x" * 30 + b"\r\n",
            b"{}\r\n0\r\n\r\n",
            transport.AnswerTimeout,  # the answer began: the server worked on it, not sent again
            id="chunk-size-line",
        ),
    ],
)
def test_the_timeout_bounds_headers_and_chunk_sizes_trickled_a_byte_at_a_time(
    head, trickled, tail, raised
) -> None:
    """Every byte would reset a per-read socket timeout, so a server sending one byte every 0.2 s
    would hold a call with a 0.5 s timeout for as long as it likes."""
    server = Trickler(head, trickled, tail)
    try:
        target = transport.Target.parse(f"http://127.0.0.1:{server.port}/v1")
        started = time.monotonic()

        with pytest.raises(raised):
            transport.post_json(target, "/chat/completions", BODY, {}, 0.5)

        assert time.monotonic() - started < server.seconds / 2  # the trickle takes 8 s or more
        assert transport.open_connections(target) == 0
    finally:
        server.close()


# -- through the real pipeline --------------------------------------------------------------------

CASES = 8


def run_against(base_url: str, *, concurrency: int = 3):
    """A run of CASES test cases on one arm (answer cache off), every task run in this process."""
    version = SuiteVersionFactory()
    for i in range(CASES):
        CaseFactory(version=version, key=f"c{i}", position=i, input=f"q{i}", expected=f"answer to q{i}")
    endpoint = EndpointFactory(name="conformance", base_url=base_url, max_concurrency=concurrency)
    return version, endpoint


@pytest.mark.parametrize(
    "behaviour",
    [
        pytest.param(Behaviour(), id="keep-alive"),
        pytest.param(Behaviour(close=True, body_delay=0.1), id="connection-close-late-body"),
        pytest.param(Behaviour(version="HTTP/1.0", framing="eof"), id="http-1.0"),
        pytest.param(Behaviour(framing="chunked"), id="chunked"),
        pytest.param(Behaviour(encoding="gzip"), id="gzip"),
        pytest.param(Behaviour(encoding="deflate", framing="chunked"), id="deflate-chunked"),
        pytest.param(Behaviour(requests_per_connection=2), id="idle-drop-after-two"),
    ],
)
def test_a_run_against_each_behaviour_answers_every_case_with_one_request_each(
    behaviour, db, task_queue, django_capture_on_commit_callbacks
) -> None:
    with RawChatServer(behaviour) as server:
        results = _run(server.base_url, task_queue, django_capture_on_commit_callbacks)
        requests = len(server.requests)

    assert sorted((r.case.key, r.error, r.output) for r in results) == sorted(
        (f"c{i}", "", f"answer to q{i}") for i in range(CASES)
    )
    assert requests == CASES


def test_a_run_against_pythons_stock_server(db, task_queue, django_capture_on_commit_callbacks) -> None:
    with StockServer() as server:
        results = _run(server.base_url, task_queue, django_capture_on_commit_callbacks)
        assert len(server.requests) == CASES
    assert sorted(r.output for r in results) == sorted(f"answer to q{i}" for i in range(CASES))
    assert not any(r.error for r in results)


def test_a_run_through_a_connect_tunnel(
    certificate, monkeypatch, db, task_queue, django_capture_on_commit_callbacks
) -> None:
    cert, key = certificate
    with TLSChatServer(cert, key) as server, TunnelProxy() as proxy:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        results = _run(server.base_url, task_queue, django_capture_on_commit_callbacks)
        assert len(server.requests) == CASES
        assert proxy.tunnels and set(proxy.tunnels) == {f"localhost:{server.port}"}
    assert sorted(r.output for r in results) == sorted(f"answer to q{i}" for i in range(CASES))


def test_a_run_against_a_401_sends_each_case_once(db, task_queue, django_capture_on_commit_callbacks) -> None:
    with StockServer(status=401, reason="Incorrect API key provided") as server:
        results = _run(server.base_url, task_queue, django_capture_on_commit_callbacks)
        assert len(server.requests) == CASES
    assert all(r.error.startswith("HTTP 401: ") and "Incorrect API key provided" in r.error for r in results)


def _run(base_url: str, task_queue, capture) -> list[Result]:
    version, endpoint = run_against(base_url)
    with capture(execute=True):
        run = run_create(suite_version=version, arms=[(endpoint, strategy("plain"))], use_cache=False)
    task_queue.drain()
    results = list(Result.objects.filter(arm__run=run).select_related("case"))
    assert len(results) == CASES
    return results
