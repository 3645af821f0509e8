"""Loopback HTTP servers that speak HTTP as real servers and gateways do, for the transport's
conformance tests (tests/providers/test_transport.py, tests/integration/test_reverse_proxy.py).

`RawChatServer` answers chat completions over a plain socket, so every framing choice a real server
makes can be scripted byte for byte: HTTP/1.1 keep-alive or `Connection: close`, HTTP/1.0 read to the
end of the connection, Content-Length or chunked, gzip or deflate, a body sent a moment after the
headers, a keep-alive connection dropped after some requests or after some idle time, a body cut
off. `StockServer` is Python's own `http.server` as a user would start it (HTTP/1.0, one answer per
connection). `TunnelProxy` is a forward proxy: absolute-form requests are relayed, CONNECT is
tunnelled (the HTTPS path). `tls_files` makes a self-signed certificate with the openssl command.

Each server counts the requests it received (`requests`) and the connections it accepted.
"""

from __future__ import annotations

import gzip
import json
import select
import socket
import ssl
import subprocess
import threading
import time
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.fakeopenai import last_user_text


def answer_for(body: dict) -> str:
    return f"answer to {last_user_text(body)}"


def completion_bytes(body: dict, text: str | None = None) -> bytes:
    text = answer_for(body) if text is None else text
    prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
    return json.dumps(
        {
            "id": "chatcmpl-raw",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", ""),
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": prompt, "completion_tokens": len(text.split())},
        }
    ).encode()


def read_request(
    conn: socket.socket, buffered: bytes = b""
) -> tuple[bytes, dict[str, str], bytes, bytes] | None:
    """(request line, headers, body, bytes left over) of the next request, or None at end of stream."""
    data = buffered
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    line, *lines = head.split(b"\r\n")
    headers = {}
    for raw in lines:
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        rest += chunk
    return line, headers, rest[:length], rest[length:]


def accept_forever(sock: socket.socket, serve, on_accept=None) -> None:
    """Serve each connection `sock` accepts on a thread of its own, until `sock` is closed."""
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        if on_accept is not None:
            on_accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


@dataclass
class Behaviour:
    """How `RawChatServer` answers. The defaults are a well-behaved HTTP/1.1 keep-alive server."""

    version: str = "HTTP/1.1"
    framing: str = "length"  # "length" (Content-Length), "chunked", "eof" (read to the close)
    close: bool = False  # send `Connection: close` and close after the answer
    body_delay: float = 0.0  # seconds between the headers and the body
    encoding: str | None = None  # "gzip" or "deflate"
    requests_per_connection: int | None = None  # then hang up without a word (an idle drop)
    idle_timeout: float | None = None  # hang up a connection idle this long (a keep-alive timeout)
    cut_after: int | None = None  # send this many body bytes, then hang up (an early close)
    reset_after_request: bool = False  # read the request, then reset the connection (RST)
    chunk_size: int = 7  # with "chunked": the body in pieces this small
    status: int = 200


class RawChatServer:
    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.behaviour = behaviour or Behaviour()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.requests: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self.connections = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> RawChatServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.sock.close()

    def _accept(self) -> None:
        accept_forever(self.sock, self._serve, on_accept=self._count)

    def _count(self) -> None:
        with self._lock:
            self.connections += 1

    def _serve(self, conn: socket.socket) -> None:
        b = self.behaviour
        served, left = 0, b""
        try:
            while True:
                if b.idle_timeout is not None and not left:
                    ready, _, _ = select.select([conn], [], [], b.idle_timeout)
                    if not ready:
                        return  # idle too long: hang up (FIN), as a keep-alive timeout does
                request = read_request(conn, left)
                if request is None:
                    return
                _, headers, raw, left = request
                body = json.loads(raw)
                with self._lock:
                    self.requests.append(body)
                    self.headers.append(headers)
                served += 1
                if b.reset_after_request:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    return
                closing = headers.get("connection", "").lower() == "close"  # the client asked to end
                self._answer(conn, body, closing=closing)
                if b.close or b.version == "HTTP/1.0" or b.framing == "eof" or b.cut_after is not None:
                    return
                if closing:
                    return
                if b.requests_per_connection is not None and served >= b.requests_per_connection:
                    return
        except OSError:
            return
        finally:
            conn.close()

    def _answer(self, conn: socket.socket, body: dict, *, closing: bool = False) -> None:
        b = self.behaviour
        payload = completion_bytes(body)
        head = [f"{b.version} {b.status} OK", "Content-Type: application/json", "Server: raw"]
        if b.encoding == "gzip":
            payload = gzip.compress(payload)
            head.append("Content-Encoding: gzip")
        elif b.encoding == "deflate":
            payload = zlib.compress(payload)
            head.append("Content-Encoding: deflate")
        if b.close or closing:
            head.append("Connection: close")
        if b.framing == "length":
            head.append(f"Content-Length: {len(payload)}")
            data = payload
        elif b.framing == "chunked":
            head.append("Transfer-Encoding: chunked")
            pieces = [payload[i : i + b.chunk_size] for i in range(0, len(payload), b.chunk_size)]
            data = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
        else:  # "eof": no length at all, the end of the connection ends the body
            data = payload
        if b.cut_after is not None:
            data = data[: b.cut_after]
        conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        if b.body_delay:
            time.sleep(b.body_delay)
        conn.sendall(data)


class _StockHandler(BaseHTTPRequestHandler):
    """Python's http.server as documented: protocol HTTP/1.0, so one answer per connection."""

    server: Any

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        owner: StockServer = self.server.owner
        with owner.lock:
            owner.requests.append(body)
        if owner.status != 200:
            self.send_error(owner.status, owner.reason)
            return
        payload = completion_bytes(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()  # no Content-Length: the client reads to the end of the connection
        self.wfile.write(payload)


class StockServer:
    def __init__(self, status: int = 200, reason: str = "") -> None:
        self.status, self.reason = status, reason
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _StockHandler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def __enter__(self) -> StockServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class TunnelProxy:
    """A forward proxy: CONNECT host:port is tunnelled byte for byte; an absolute-form request is sent
    on to its host with `Connection: close` and the answer relayed, one request per connection."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.tunnels: list[str] = []  # CONNECT targets
        self.relayed: list[str] = []  # absolute-form request targets
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> TunnelProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.sock.close()

    def _accept(self) -> None:
        accept_forever(self.sock, self._serve)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            line = data.split(b"\r\n", 1)[0].decode("latin-1")
            method, target, _ = line.split(" ", 2)
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                self.tunnels.append(target)
                with socket.create_connection((host, int(port)), timeout=10) as upstream:
                    conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    self._pipe(conn, upstream, data.partition(b"\r\n\r\n")[2])
                return
            parts = urlsplit(target)
            self.relayed.append(target)
            head, _, rest = data.partition(b"\r\n\r\n")
            lines = [f"{method} {parts.path or '/'} HTTP/1.1".encode()]
            lines += [
                h for h in head.split(b"\r\n")[1:] if not h.lower().startswith((b"connection:", b"proxy-"))
            ]
            lines.append(b"Connection: close")
            with socket.create_connection((parts.hostname, parts.port or 80), timeout=10) as upstream:
                upstream.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + rest)
                self._pipe(conn, upstream, b"")

    @staticmethod
    def _pipe(client: socket.socket, upstream: socket.socket, pending: bytes) -> None:
        if pending:
            upstream.sendall(pending)
        sockets = [client, upstream]
        while True:
            ready, _, _ = select.select(sockets, [], [], 10)
            if not ready:
                return
            for sock in ready:
                try:
                    chunk = sock.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                (upstream if sock is client else client).sendall(chunk)


def tls_files(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key (openssl, as Debian has it)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


class TLSChatServer(RawChatServer):
    """RawChatServer over TLS with the given certificate."""

    def __init__(self, cert: Path, key: Path, behaviour: Behaviour | None = None) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        super().__init__(behaviour)
        self.base_url = f"https://localhost:{self.port}/v1"

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn = self.context.wrap_socket(conn, server_side=True)
        except (OSError, ssl.SSLError):
            conn.close()
            return
        super()._serve(conn)
