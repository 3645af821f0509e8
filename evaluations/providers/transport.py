"""POST JSON over HTTP/1.1 with keep-alive, for the model calls: one connection per thread and host.

Built on the standard library's http.client: about 0.2 ms of CPU a call where httpx (and the openai
SDK on top of it) cost 1-2 ms, which at a few hundred calls a second is most of what a worker spends
(docs/benchmarks.md). Each thread keeps its connections, so the calls of a pool thread reuse one
socket per endpoint (not past KEEPALIVE_SECONDS idle). When a proxy applies to the URL (HTTPS_PROXY,
HTTP_PROXY, ALL_PROXY, NO_PROXY, as curl and requests read them) the call goes through httpx2, which
speaks to proxies.

`post_json` raises `CallTimeout`, `CallFailed`, `CertificateError` or `ResponseTooLarge` for
transport failures and returns the status, the headers and the body for every answer, errors included.
The timeout bounds the whole call, from sending the request to the answer's last byte: every read
from the socket (the status line, the headers, the chunk sizes and the body alike) is given only the
time left, so a server that trickles its answer a byte at a time cannot hold a call (and its batch)
for longer. An answer is
read up to MAX_RESPONSE_BYTES: a server that ignores `max_tokens` is still answered in full up to
there (ftvp keeps what the model said and the tokens it billed), and refused past it.
"""

from __future__ import annotations

import http.client
import io
import json
import select
import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

USER_AGENT = "ftvp"


class CallTimeout(Exception):
    """Connecting, sending or waiting for the answer took longer than the timeout."""


class CallFailed(Exception):
    """The connection failed: refused, reset, a name that does not resolve, a broken answer."""


class CertificateError(Exception):
    """The server's TLS certificate is not trusted: retrying will not help."""


class ResponseTooLarge(Exception):
    """The answer is larger than MAX_RESPONSE_BYTES: retrying will not help."""


# Far more than any chat completion within a sane max_tokens (100,000 tokens of text, JSON-escaped,
# is a few MiB): a larger answer is a misbehaving server, not a model's output worth storing.
MAX_RESPONSE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]  # looked up case-insensitively
    body: bytes


@dataclass(frozen=True)
class Target:
    """Where `base_url` points: scheme, host, port and the path prefix."""

    scheme: str
    host: str
    port: int
    prefix: str
    proxied: bool  # the environment routes it through a proxy (read when the target is parsed)

    @classmethod
    def parse(cls, base_url: str) -> Target:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"{base_url!r} has a query or a fragment: give the address without them")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        proxies = urllib.request.getproxies()
        proxied = bool(proxies.get(parts.scheme) or proxies.get("all")) and not urllib.request.proxy_bypass(
            f"{parts.hostname}:{port}"
        )
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"), proxied)

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


_local = threading.local()
_ssl_context: ssl.SSLContext | None = None
_lock = threading.Lock()  # the shared TLS context and proxy clients, built once


def _tls() -> ssl.SSLContext:
    """One TLS context per process, trusting what httpx would (SSL_CERT_FILE / SSL_CERT_DIR, the
    system's store): building one loads the CA bundle (tens of milliseconds)."""
    global _ssl_context
    with _lock:
        if _ssl_context is None:
            try:
                from httpcore2 import default_ssl_context
            except ImportError:  # pragma: no cover - httpcore2 comes with httpx2
                _ssl_context = ssl.create_default_context()
            else:
                _ssl_context = default_ssl_context()
        return _ssl_context


# A kept-alive connection idle for longer is closed rather than reused: servers (uvicorn, vLLM, nginx)
# and middleboxes (NAT, load balancers) drop idle connections, some without a word.
KEEPALIVE_SECONDS = 4.0
# A request that failed on a reused connection this soon after it was sent is sent again at once on
# a new one: the server closed the connection as it arrived, it never worked on it. A later failure
# is the call's own (a retry with backoff, counted as an attempt).
STALE_FAILURE_SECONDS = 0.5


class _Connection:
    __slots__ = ("conn", "last_used")

    def __init__(self, conn: http.client.HTTPConnection) -> None:
        self.conn = conn
        self.last_used = time.monotonic()

    def usable(self) -> bool:
        """Recently used, and the server has not closed it (an idle socket that reads as ready has
        an end-of-file or a reset waiting)."""
        if time.monotonic() - self.last_used > KEEPALIVE_SECONDS:
            return False
        sock = self.conn.sock
        if sock is None:
            return True  # not connected yet, or closed after a `Connection: close`: it reconnects
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable


class _DeadlineIO(socket.SocketIO):
    """The socket's reads for one answer, each given only the time left before `deadline`: a
    per-read socket timeout alone is reset by every byte a trickling server sends."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__(sock, "rb")
        self._deadline = deadline

    def readinto(self, buffer) -> int | None:
        self._sock.settimeout(_remaining(self._deadline))
        return super().readinto(buffer)


class _DeadlineSocket:
    """What http.client.HTTPResponse reads the answer from: the socket's file, its reads bounded."""

    __slots__ = ("deadline", "sock")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineIO(self.sock, self.deadline))


class _Deadlined:
    """A connection whose answer (read by getresponse()) must arrive in full by `deadline`."""

    deadline = float("inf")

    def response_class(self, sock, *args: Any, **kwargs: Any) -> http.client.HTTPResponse:
        # http.client calls self.response_class(sock, ...): as a method, it sees this connection
        return http.client.HTTPResponse(_DeadlineSocket(sock, self.deadline), *args, **kwargs)


class _HTTPConnection(_Deadlined, http.client.HTTPConnection):
    pass


class _HTTPSConnection(_Deadlined, http.client.HTTPSConnection):
    pass


def _connect(target: Target, timeout: float) -> _Connection:
    if target.scheme == "https":
        conn = _HTTPSConnection(target.host, target.port, timeout=timeout, context=_tls())
    else:
        conn = _HTTPConnection(target.host, target.port, timeout=timeout)
    return _Connection(conn)


def post_json(target: Target, path: str, payload: Any, headers: Mapping[str, str], timeout: float) -> Reply:
    """POST `payload` as JSON to `target.prefix + path` on this thread's connection to the host.

    A kept-alive connection is reused when it was used within KEEPALIVE_SECONDS and the server has
    not closed it; one the server closes just as the request arrives is replaced and the request
    sent once more. Any other failure closes the connection and raises."""
    body = json.dumps(payload).encode()
    if target.proxied:
        return _post_via_proxy(target, path, body, headers, timeout)
    request_headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
        **headers,
    }
    connections: dict = _local.__dict__.setdefault("connections", {})
    key = (target, timeout)
    for fresh in (False, True):
        held = None if fresh else connections.get(key)
        if held is not None and not held.usable():
            _drop(connections, key, held)
            held = None
        reused = held is not None
        if held is None:
            held = connections[key] = _connect(target, timeout)
        sent = time.monotonic()
        answered = False  # the status line arrived: the server worked on this request
        try:
            if held.conn.sock is not None:  # a kept-alive socket: its timeout was cut by the last call
                held.conn.sock.settimeout(timeout)
            held.conn.request("POST", target.prefix + path, body=body, headers=request_headers)
            held.conn.deadline = sent + timeout  # every read of the answer: only the time left
            response = held.conn.getresponse()
            answered = True
            data = _read_body(response)
        except TimeoutError as exc:
            _drop(connections, key, held)
            raise CallTimeout("timed out") from exc
        except ssl.SSLCertVerificationError as exc:
            _drop(connections, key, held)
            raise CertificateError(f"TLS certificate not trusted: {exc.verify_message or exc}") from exc
        except (OSError, http.client.HTTPException) as exc:
            _drop(connections, key, held)
            if reused and not answered and time.monotonic() - sent < STALE_FAILURE_SECONDS:
                continue  # the server closed the idle connection as the request arrived
            raise CallFailed(_describe(exc)) from exc
        except BaseException:
            _drop(connections, key, held)  # never leave a half-used connection for the next call
            raise
        held.last_used = time.monotonic()
        if response.will_close:
            _drop(connections, key, held)
        return Reply(response.status, response.headers, data)
    raise AssertionError("unreachable")  # pragma: no cover - the second pass returns or raises


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the call took longer than its timeout")
    return left


def _read_body(response: http.client.HTTPResponse) -> bytes:
    """The answer's body, read as it arrives (until the call's deadline) up to MAX_RESPONSE_BYTES."""
    chunks: list[bytes] = []
    size = 0
    while not response.isclosed():
        if response.length == 0:  # all of a Content-Length body: read() closes the response
            response.read()
            break
        chunk = response.read1(65536)
        if not chunk:
            if response.length:  # the server hung up before the Content-Length it announced
                raise http.client.IncompleteRead(b"".join(chunks), response.length)
            break
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise ResponseTooLarge(_too_large())
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large() -> str:
    return (
        f"the answer is larger than {MAX_RESPONSE_BYTES / (1024 * 1024):g} MiB: the server ignores "
        "max_tokens or is not a chat completions API; lower max_tokens or check the endpoint"
    )


def _describe(exc: BaseException) -> str:
    """What went wrong with the connection, in words (not an exception's repr)."""
    if isinstance(exc, http.client.IncompleteRead):
        more = f" ({exc.expected} more expected)" if exc.expected else ""
        return f"the answer was cut off after {len(exc.partial)} bytes{more}"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    if isinstance(exc, ConnectionResetError):
        return "the server reset the connection"
    if isinstance(exc, BrokenPipeError):
        return "the server closed the connection while the request was being sent"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused: nothing listens at that address and port"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


# Through a proxy: httpx2 reads the proxy settings from the environment. One client per target and
# timeout per process (thread-safe, with its own connection pool).
_proxy_clients: dict[tuple[Target, float], Any] = {}


def _post_via_proxy(
    target: Target, path: str, body: bytes, headers: Mapping[str, str], timeout: float
) -> Reply:
    import httpx2

    with _lock:
        client = _proxy_clients.get((target, timeout))
        if client is None:
            client = _proxy_clients[(target, timeout)] = httpx2.Client(
                base_url=target.origin,
                timeout=httpx2.Timeout(timeout),
                limits=httpx2.Limits(max_connections=None, max_keepalive_connections=64),
                trust_env=True,
            )
    deadline = time.monotonic() + timeout
    data = bytearray()
    try:
        with client.stream(
            "POST",
            target.prefix + path,
            content=body,
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers},
        ) as response:
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > MAX_RESPONSE_BYTES:
                    raise ResponseTooLarge(_too_large())
                if time.monotonic() > deadline:
                    raise CallTimeout("timed out")
    except httpx2.TimeoutException as exc:
        raise CallTimeout("timed out") from exc
    except httpx2.TransportError as exc:
        raise CallFailed(str(exc) or type(exc).__name__) from exc
    return Reply(response.status_code, response.headers, bytes(data))


def _drop(connections: dict, key: object, held: _Connection) -> None:
    held.conn.close()
    if connections.get(key) is held:
        del connections[key]


def close_thread_connections() -> None:
    """Close this thread's connections (tests)."""
    connections: dict = _local.__dict__.get("connections", {})
    while connections:
        connections.popitem()[1].conn.close()
