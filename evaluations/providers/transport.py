"""POST JSON to a model endpoint over HTTP, through httpx2's transport: one per endpoint and process.

httpx2 (a maintained HTTP client: h11 underneath) speaks HTTP as servers really do: keep-alive and
`Connection: close`, HTTP/1.0 answers read to the end of the connection, chunked bodies, gzip and
deflate, bodies that arrive after the headers, idle kept-alive connections the server closed (checked
before each reuse, and never reused past KEEPALIVE_SECONDS), proxies from the environment (HTTPS
through CONNECT). ftvp keeps one `httpx2.HTTPTransport` (its connection pool, thread-safe) per target
and process, and calls it directly: the Client's cookie jar, redirects and auth hooks would cost CPU
on every call and do nothing ftvp wants (a redirect is reported, never followed, so the key is not
sent elsewhere). docs/decisions.md has the measurements behind the choice.

`post_json` raises `CallTimeout`, `CallFailed`, `CertificateError` or `ResponseTooLarge` for
transport failures and returns the status, the headers and the (decoded) body for every answer,
errors included. A `CallFailed` says whether the request may have reached the server (`sent`): only
a request that never did (the connection was refused or could not be made, a proxy refused the
tunnel) is safe to send again; an answer that could not be read (cut off, a reset after the request
went out, a connection closed without an answer, a body still coming at the timeout:
`AnswerTimeout`) is the call's own error, reported once, because the server may have worked on it
and billed it. (httpcore reads the answer even when writing the request failed, so a request cut
off while being written shows as a connection closed without an answer: reported once too.)

The timeout bounds the whole call, from connecting to the answer's last byte: every read and write
on the socket (the status line, the headers, the chunk sizes and the body alike) is given only the
time left, so a server that trickles its answer a byte at a time cannot hold a call (and its batch)
for longer. An answer is read up to MAX_RESPONSE_BYTES: a server that ignores `max_tokens` is still
answered in full up to there (ftvp keeps what the model said and the tokens it billed), and refused
past it.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore2
import httpx2

USER_AGENT = "ftvp"


class CallTimeout(Exception):
    """Connecting, sending or waiting for the answer took longer than the timeout."""


class CallFailed(Exception):
    """The call failed: refused, reset, a name that does not resolve, an answer that could not be read.

    `sent` is False only when the request cannot have reached the server: sending it again is safe."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class AnswerTimeout(CallFailed):
    """The server answered (its status line came) but the rest did not arrive within the timeout.
    The server worked on the request: it is not sent again."""

    def __init__(self, message: str) -> None:
        super().__init__(message, sent=True)


class CertificateError(Exception):
    """The server's TLS certificate is not trusted: retrying will not help."""


class ResponseTooLarge(Exception):
    """The answer is larger than MAX_RESPONSE_BYTES: retrying will not help."""


# Far more than any chat completion within a sane max_tokens (100,000 tokens of text, JSON-escaped,
# is a few MiB): a larger answer is a misbehaving server, not a model's output worth storing.
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
# A kept-alive connection idle for longer is closed rather than reused: servers (gunicorn 2 s, uvicorn
# and Node 5 s, nginx 75 s) and middleboxes (NAT, load balancers) drop idle connections, some without
# a word. One idle for less is checked first: a server's close that already arrived is seen then.
KEEPALIVE_SECONDS = 4.0
# Content codings httpx2 decodes by itself (brotli and zstd only with extra packages we do not need).
ACCEPT_ENCODING = "gzip, deflate"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]  # looked up case-insensitively
    body: bytes


@dataclass(frozen=True)
class Target:
    """Where `base_url` points: scheme, host, port, the path prefix, and the proxy it goes through."""

    scheme: str
    host: str
    port: int
    prefix: str
    proxy: str | None  # from the environment, read when the target is parsed

    @classmethod
    def parse(cls, base_url: str) -> Target:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"{base_url!r} has a query or a fragment: give the address without them")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        # HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY, as curl and requests read them
        proxies = urllib.request.getproxies()
        proxy = proxies.get(parts.scheme) or proxies.get("all") or None
        if proxy and urllib.request.proxy_bypass(f"{parts.hostname}:{port}"):
            proxy = None
        if proxy and "://" not in proxy:
            proxy = f"http://{proxy}"
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"), proxy)

    @property
    def proxied(self) -> bool:
        return self.proxy is not None

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


# -- the whole call's deadline ------------------------------------------------------------------------
# httpx2's timeouts bound each read and write; a server trickling one byte at a time would reset them
# forever. The transport's network backend is wrapped so that every socket operation of a call gets
# at most the time left before the call's deadline (kept per thread: a call runs on one thread).

_call = threading.local()


def _bounded(timeout: float | None, exc: type[Exception]) -> float | None:
    deadline = getattr(_call, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise exc("the call took longer than its timeout")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore2.NetworkStream):
    def __init__(self, stream: httpcore2.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _bounded(timeout, httpcore2.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _bounded(timeout, httpcore2.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore2.NetworkStream:
        inner = self._stream.start_tls(
            ssl_context, server_hostname, _bounded(timeout, httpcore2.ConnectTimeout)
        )
        return _DeadlineStream(inner)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore2.NetworkBackend):
    def __init__(self, backend: httpcore2.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore2.NetworkStream:
        timeout = _bounded(timeout, httpcore2.ConnectTimeout)
        return _DeadlineStream(self._backend.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore2.NetworkStream:  # pragma: no cover - ftvp connects over TCP
        timeout = _bounded(timeout, httpcore2.ConnectTimeout)
        return _DeadlineStream(self._backend.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


# -- one transport per target and process -------------------------------------------------------------

_transports: dict[Target, httpx2.HTTPTransport] = {}
_lock = threading.Lock()


def _transport(target: Target) -> httpx2.HTTPTransport:
    transport = _transports.get(target)
    if transport is None:
        with _lock:
            transport = _transports.get(target)
            if transport is None:
                # One TLS context each (SSL_CERT_FILE / SSL_CERT_DIR, else the system's store):
                # building one loads the CA bundle, tens of milliseconds, once per target.
                transport = httpx2.HTTPTransport(
                    limits=httpx2.Limits(
                        max_connections=None,
                        max_keepalive_connections=256,
                        keepalive_expiry=KEEPALIVE_SECONDS,
                    ),
                    proxy=target.proxy,
                    trust_env=True,
                )
                pool = transport._pool  # the httpcore2 pool (or proxy pool) httpx2 built for it
                pool._network_backend = _DeadlineBackend(pool._network_backend)
                _transports[target] = transport
    return transport


def post_json(target: Target, path: str, payload: Any, headers: Mapping[str, str], timeout: float) -> Reply:
    """POST `payload` as JSON to `target.prefix + path`, on a kept-alive connection when one is free."""
    return send(target, "POST", path, headers, timeout, json.dumps(payload).encode(), "application/json")


def send(
    target: Target,
    method: str,
    path: str,
    headers: Mapping[str, str],
    timeout: float,
    body: bytes | None = None,
    content_type: str | None = None,
) -> Reply:
    """Any request (GET, a multipart upload...) with the same deadline, errors and size limit as
    `post_json`; `path` may carry a query string."""
    transport = _transport(target)
    request_headers = {
        "Accept": "application/json",
        "Accept-Encoding": ACCEPT_ENCODING,
        "User-Agent": USER_AGENT,
        **headers,
    }
    if content_type:
        request_headers = {"Content-Type": content_type, **request_headers}
    request = httpx2.Request(
        method,
        target.origin + target.prefix + path,
        content=body,
        headers=request_headers,
        extensions={"timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}},
    )
    _call.deadline = time.monotonic() + timeout
    received = 0
    answered = False  # the status line and headers came: the server worked on the request
    try:
        response = transport.handle_request(request)
        answered = True
        try:
            chunks: list[bytes] = []
            for chunk in response.iter_bytes():
                received += len(chunk)
                if received > MAX_RESPONSE_BYTES:
                    raise ResponseTooLarge(_too_large())
                chunks.append(chunk)
        finally:
            response.close()  # a connection whose answer was not read to the end is closed, not reused
    except httpx2.TimeoutException as exc:
        if answered:
            raise AnswerTimeout(
                f"the answer did not arrive in full within {timeout:g}s ({NOT_SENT_AGAIN})"
            ) from exc
        raise CallTimeout("timed out") from exc
    except httpx2.ConnectError as exc:
        if isinstance(_cause(exc, ssl.SSLCertVerificationError), ssl.SSLCertVerificationError):
            cert = _cause(exc, ssl.SSLCertVerificationError)
            raise CertificateError(f"TLS certificate not trusted: {cert.verify_message or cert}") from exc
        raise CallFailed(_describe_connect(exc), sent=False) from exc
    except httpx2.ProxyError as exc:  # the proxy refused the tunnel: the request never left it
        raise CallFailed(f"the proxy refused the connection: {exc}", sent=False) from exc
    except httpx2.DecodingError as exc:
        raise CallFailed(f"the answer's content encoding is broken ({exc})", sent=True) from exc
    except httpx2.TransportError as exc:  # read errors, protocol errors: after the request went out
        raise CallFailed(_describe_unreadable(exc, received), sent=True) from exc
    finally:
        _call.deadline = None
    return Reply(response.status_code, response.headers, b"".join(chunks))


def _cause(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    seen = exc
    while seen is not None:
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _strerror(exc: BaseException) -> str:
    os_error = _cause(exc, OSError)
    if isinstance(os_error, ConnectionResetError):
        return "the server reset the connection"
    if isinstance(os_error, BrokenPipeError):
        return "the server closed the connection"
    if isinstance(os_error, OSError) and os_error.strerror:
        return os_error.strerror
    return str(exc) or type(exc).__name__


def _describe_connect(exc: httpx2.ConnectError) -> str:
    os_error = _cause(exc, OSError)
    if isinstance(os_error, ConnectionRefusedError):
        return "connection refused: nothing listens at that address and port"
    text = str(exc)
    if "Name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
        return f"the host name does not resolve ({text})"
    return f"could not connect: {_strerror(exc)}"


_CUT = re.compile(r"received (\d+) bytes, expected (\d+)")
NOT_SENT_AGAIN = "not sent again: the server may have worked on it"


def _describe_unreadable(exc: httpx2.TransportError, received: int) -> str:
    """What went wrong with an answer that could not be read, in words (not an exception's repr)."""
    text = str(exc)
    if match := _CUT.search(text):
        got, expected = int(match.group(1)), int(match.group(2))
        return f"the answer was cut off after {got} bytes ({expected - got} more expected; {NOT_SENT_AGAIN})"
    if "without sending a response" in text or "Server disconnected" in text:
        return f"the server closed the connection without answering ({NOT_SENT_AGAIN})"
    if isinstance(_cause(exc, OSError), ConnectionResetError) or "reset by peer" in text:
        if received:
            return f"the server reset the connection after {received} bytes of the answer ({NOT_SENT_AGAIN})"
        return f"the server reset the connection after the request was sent ({NOT_SENT_AGAIN})"
    if isinstance(exc, httpx2.RemoteProtocolError):
        return f"the server's answer is not valid HTTP: {text} ({NOT_SENT_AGAIN})"
    return f"the answer could not be read: {_strerror(exc)} ({NOT_SENT_AGAIN})"


def _too_large() -> str:
    return (
        f"the answer is larger than {MAX_RESPONSE_BYTES / (1024 * 1024):g} MiB: the server ignores "
        "max_tokens or is not a chat completions API; lower max_tokens or check the endpoint"
    )


def close_connections() -> None:
    """Close every kept-alive connection of this process (tests; a forked child)."""
    with _lock:
        transports = list(_transports.values())
        _transports.clear()
    for transport in transports:
        transport.close()


def open_connections(target: Target) -> int:
    """The kept-alive connections this process holds to `target` (tests, diagnostics)."""
    transport = _transports.get(target)
    return 0 if transport is None else len(transport._pool.connections)
