"""The capture proxy as a plain ASGI application (docs/capture.md).

    POST /proxy/<endpoint-name>/v1/chat/completions   (streamed or not)
    POST /proxy/<endpoint-name>/v1/embeddings
    Authorization: Bearer ftvpc_...                   (a capture token)

A call is checked (token: 401; endpoint: 404; the token's scope: 403; a local endpoint: 400; the
token's rate: 429), forwarded with the endpoint's own key over one pooled async HTTP client per
process, and answered with the upstream's status, body bytes (stream chunks as they arrive) and
relevant headers. Only after the answer is complete is the call handed to the spool writer (a queue:
never waited on), which builds the record, redacts it and commits it to the local spool; a drain
thread moves the spool into the database, backing off while the database is down. The ASGI lifespan's
shutdown (SIGTERM) flushes the writer and drains once more.

Tokens and endpoints are read through selectors/capture.py in a thread and cached for
FTVP_CAPTURE_CACHE_SECONDS: a revoked token stops working within that time.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
import threading
import time
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote

import httpx2
from django.conf import settings
from django.db import connections
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from evaluations.models import Endpoint, Provider
from evaluations.selectors.capture import TokenInfo, capture_endpoint_by_name, capture_token_by_hash
from evaluations.services.endpoints import endpoint_api_key
from evaluations.services.spool import BATCH as SPOOL_BATCH
from evaluations.services.spool import SpoolWriter, lookup_load, lookup_save, spool_connect, spool_count
from evaluations.services.tokens import token_hash
from evaluations.services.traffic import CaptureRedaction, traffic_build, traffic_drain, traffic_prune

log = logging.getLogger("ftvp.proxy")

ROUTES = {"chat/completions": "chat", "embeddings": "embeddings"}
MAX_BODY_BYTES = 16 * 1024 * 1024
PASS_HEADERS = ("content-type", "content-encoding", "x-request-id", "retry-after")
PASS_PREFIXES = ("openai-", "x-ratelimit-")
DRAIN_IDLE_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 30.0
PRUNE_EVERY_SECONDS = 3600.0
REDACTION_EVERY_SECONDS = 60.0


@dataclass(frozen=True)
class Target:
    id: int
    name: str
    local: bool
    url: str  # base_url without the trailing slash
    timeout: float
    key: str | None
    key_error: str


def _error(status: int, message: str, kind: str, code: str | None = None) -> tuple[int, bytes]:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return status, json.dumps(body).encode()


def _decoded(body: bytes, encoding: str) -> bytes:
    try:
        if encoding == "gzip":
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body)
    except (OSError, zlib.error):
        return b""
    return body


class Proxy:
    def __init__(self) -> None:
        self.client: httpx2.AsyncClient | None = None
        self.writer: SpoolWriter | None = None
        self._tokens: dict[str, tuple[float, TokenInfo | None]] = {}
        self._endpoints: dict[str, tuple[float, Target | None]] = {}
        self._keys: set[str] = set()
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._rates: dict[int, RateLimitItemPerMinute] = {}
        self._stop = threading.Event()
        self._drainer: threading.Thread | None = None
        self._redaction: CaptureRedaction | None = None
        self._redaction_at = 0.0
        self._started = False

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._stop.clear()
        spool_connect().close()  # the file and its table made once, before the threads open it
        self.client = httpx2.AsyncClient(
            timeout=None,
            follow_redirects=False,
            limits=httpx2.Limits(max_connections=None, max_keepalive_connections=200, keepalive_expiry=4.0),
        )
        self.writer = SpoolWriter(prepare=self._prepare)
        self._drainer = threading.Thread(target=self._drain_loop, name="ftvp-spool-drain", daemon=True)
        self._drainer.start()

    async def stop(self, drain_seconds: float = 20.0) -> None:
        if not self._started:
            return
        self._started = False
        await asyncio.to_thread(self._shutdown, drain_seconds)
        if self.client is not None:
            await self.client.aclose()

    def _shutdown(self, drain_seconds: float) -> None:
        """Flush what was handed to the writer, stop the drain loop, drain once more (bounded)."""
        self.writer.close()
        self._stop.set()
        self._drainer.join(drain_seconds)
        conn = spool_connect()
        deadline = time.monotonic() + drain_seconds
        try:
            while time.monotonic() < deadline and traffic_drain(conn=conn):
                pass
        except Exception:  # the database is down: the spool keeps the rest for the next start
            log.warning(
                "capture spool not drained at shutdown (database unavailable); kept for the next start"
            )
        finally:
            left = spool_count(conn)
            conn.close()
            connections.close_all()
        log.warning("capture proxy stopped: spool flushed, %d calls left in it for the next drain", left)

    # --- recording ------------------------------------------------------------------------------

    def redaction(self) -> CaptureRedaction:
        now = time.monotonic()
        if self._redaction is None or now - self._redaction_at > REDACTION_EVERY_SECONDS:
            try:
                self._redaction = CaptureRedaction.configured()
            except Exception:  # the database is down: the settings and the keys this process knows
                connections.close_all()
                if self._redaction is None:
                    self._redaction = CaptureRedaction(
                        drop=settings.FTVP_CAPTURE_DROP_FIELDS,
                        masks=settings.FTVP_CAPTURE_MASK,
                        secrets=sorted(self._keys),
                    )
            self._redaction_at = now
        return self._redaction

    def _prepare(self, raw: dict) -> dict:
        """In the writer thread: the call's record, redacted (nothing unredacted reaches the disk)."""
        try:
            return traffic_build(raw=raw, redact=self.redaction())
        except Exception as exc:  # a bug must not lose the call: keep what is safe to keep
            log.exception("capture proxy: call %s could not be recorded in full", raw["call_id"])
            bare = {**raw, "request": b"{}", "response": b"", "stream": False, "tags_header": ""}
            bare["error"] = f"recorded without its bodies: {type(exc).__name__}"
            return traffic_build(raw=bare, redact=lambda record: record)

    def _drain_loop(self) -> None:
        conn = spool_connect()
        backoff = 0.5
        pruned = 0.0
        try:
            while not self._stop.is_set():
                try:
                    moved = traffic_drain(conn=conn)
                    if time.monotonic() - pruned > PRUNE_EVERY_SECONDS:
                        pruned = time.monotonic()  # a failed prune waits for the next hour
                        traffic_prune()
                    backoff = 0.5
                except Exception as exc:
                    log.warning("capture spool: database unavailable (%s); retrying in %.1fs", exc, backoff)
                    connections.close_all()
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                    continue
                if moved < SPOOL_BATCH:  # caught up: let calls gather, one insert for many of them
                    self._stop.wait(DRAIN_IDLE_SECONDS)
        finally:
            conn.close()
            connections.close_all()

    # --- lookups (cached) -----------------------------------------------------------------------

    def _load_token(self, key_hash: str) -> TokenInfo | None:
        """The token from the database (remembered beside the spool), or, while the database is down,
        the last answer remembered there: a restarted proxy keeps serving the tokens it knew."""
        try:
            token = capture_token_by_hash(key_hash)
        except Exception:
            remembered = lookup_load("token", key_hash)
            if remembered is None:
                raise
            log.warning("capture proxy: database unavailable; using the token as last known")
            return _token_from(remembered)
        finally:
            connections.close_all()
        _remember("token", key_hash, None if token is None else _token_to(token))
        return token

    def _load_endpoint(self, name: str) -> Target | None:
        """The endpoint from the database (its row, never its key, remembered beside the spool), or,
        while the database is down, the last row remembered there, its key read from the environment."""
        try:
            endpoint = capture_endpoint_by_name(name)
        except Exception:
            remembered = lookup_load("endpoint", name)
            if remembered is None:
                raise
            log.warning("capture proxy: database unavailable; using endpoint %s as last known", name)
            endpoint = Endpoint(**remembered)
        else:
            fields = ("id", "name", "provider", "base_url", "timeout_seconds", "api_key_env")
            row = None if endpoint is None else {f: getattr(endpoint, f) for f in fields}
            _remember("endpoint", name, row)
        finally:
            connections.close_all()
        if endpoint is None:
            return None
        key, key_error = None, ""
        if endpoint.provider != Provider.LOCAL:
            try:
                key = endpoint_api_key(endpoint)
            except Exception as exc:
                key_error = str(exc)
        if key:
            self._keys.add(key)
        return Target(
            id=endpoint.id,
            name=endpoint.name,
            local=endpoint.provider == Provider.LOCAL,
            url=(endpoint.base_url or "").rstrip("/"),
            timeout=float(endpoint.timeout_seconds or 60),
            key=key,
            key_error=key_error,
        )

    async def _cached(self, cache: dict, key: str, load):
        now = time.monotonic()
        hit = cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            value = await asyncio.to_thread(load, key)
        except Exception:
            if hit is None:
                raise
            # The database is down: what was read last keeps serving (docs/capture.md) until it is back.
            log.warning("capture proxy: lookup failed, serving the last known answer", exc_info=True)
            value = hit[1]
        if len(cache) > 10_000:
            cache.clear()
        cache[key] = (now + settings.FTVP_CAPTURE_CACHE_SECONDS, value)
        return value

    # --- ASGI -----------------------------------------------------------------------------------

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _reply(self, send, status: int, body: bytes, headers: list | None = None) -> None:
        head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": head + (headers or [])})
        await send({"type": "http.response.body", "body": body})

    async def _http(self, scope, receive, send) -> None:
        self.start()  # no-op under a server's lifespan; in-process tests start it here
        path = scope["path"]
        parts = path.strip("/").split("/", 3)
        if path == "/proxy/health":
            await self._reply(send, 200, b'{"status":"ok"}')
            return
        if len(parts) != 4 or parts[0] != "proxy" or parts[2] != "v1" or parts[3] not in ROUTES:
            await self._reply(
                send, *_error(404, f"no such route: {path}", "invalid_request_error", "not_found")
            )
            return
        if scope["method"] != "POST":
            await self._reply(send, *_error(405, "use POST", "invalid_request_error"), [(b"allow", b"POST")])
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            token, target = await self._check(headers, unquote(parts[1]))
        except _Refused as refused:
            await self._reply(send, refused.status, refused.body, refused.headers)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > MAX_BODY_BYTES:
                await self._reply(send, *_error(413, "request body too large", "invalid_request_error"))
                return
            if not message.get("more_body"):
                break
        await self._forward(send, token, target, ROUTES[parts[3]], parts[3], bytes(body), headers)

    async def _check(self, headers: dict, name: str) -> tuple[TokenInfo, Target]:
        auth = headers.get("authorization", "")
        secret = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if not secret:
            raise _Refused(
                *_error(
                    401,
                    "missing capture token (Authorization: Bearer ftvpc_...)",
                    "invalid_request_error",
                    "invalid_api_key",
                )
            )
        try:
            token = await self._cached(self._tokens, token_hash(secret), self._load_token)
            target = await self._cached(self._endpoints, name, self._load_endpoint)
        except Exception as exc:  # the database is down and nothing is cached
            log.warning("capture proxy: lookup failed: %s", exc)
            raise _Refused(
                *_error(503, "ftvp cannot check the token right now; retry", "server_error")
            ) from None
        expired = token is not None and token.expires_at is not None and token.expires_at <= datetime.now(UTC)
        if token is None or token.revoked or expired:
            raise _Refused(
                *_error(
                    401,
                    "invalid, revoked or expired capture token",
                    "invalid_request_error",
                    "invalid_api_key",
                )
            )
        if target is None:
            raise _Refused(*_error(404, f"no endpoint named {name!r}", "invalid_request_error", "not_found"))
        if target.id not in token.endpoint_ids:
            raise _Refused(
                *_error(
                    403,
                    f"this capture token may not call endpoint {name!r}",
                    "invalid_request_error",
                    "forbidden",
                )
            )
        if target.local:
            raise _Refused(
                *_error(
                    400,
                    f"endpoint {name!r} is a local model: the proxy forwards only to OpenAI-compatible "
                    "endpoints",
                    "invalid_request_error",
                )
            )
        if token.rate_per_minute:
            item = self._rates.get(token.rate_per_minute) or RateLimitItemPerMinute(token.rate_per_minute)
            self._rates[token.rate_per_minute] = item
            if not self._limiter.hit(item, str(token.id)):
                reset = self._limiter.get_window_stats(item, str(token.id)).reset_time
                wait = max(1, int(reset - time.time()) + 1)
                status, body = _error(
                    429,
                    f"capture token rate limit: {token.rate_per_minute} calls a minute",
                    "rate_limit_error",
                )
                raise _Refused(status, body, [(b"retry-after", str(wait).encode())])
        return token, target

    async def _forward(
        self, send, token: TokenInfo, target: Target, kind: str, route: str, body: bytes, headers: dict
    ) -> None:
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        try:
            request_json = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            request_json = None
        stream = kind == "chat" and isinstance(request_json, dict) and request_json.get("stream") is True
        raw = {
            "call_id": uuid.uuid4().hex,
            "token_id": token.id,
            "application": token.name,
            "endpoint_id": target.id,
            "endpoint_name": target.name,
            "kind": kind,
            "stream": stream,
            "request": body,
            "response": b"",
            "status": 0,
            "error": "",
            "tags_header": headers.get("x-ftvp-tags", ""),
            "token_tags": list(token.tags),
            "started_at": started.isoformat(),
        }
        call_header = [(b"x-ftvp-call-id", raw["call_id"].encode())]
        if target.key_error:
            raw["status"], raw["response"] = _error(502, target.key_error, "server_error")
            raw["error"] = target.key_error
            await self._reply(send, raw["status"], raw["response"], call_header)
            self._record(raw, t0)
            return
        out_headers = {"content-type": "application/json", "accept-encoding": "identity"}
        if headers.get("accept"):
            out_headers["accept"] = headers["accept"]
        if target.key:
            out_headers["authorization"] = f"Bearer {target.key}"
        request = self.client.build_request(
            "POST", f"{target.url}/{route}", content=body, headers=out_headers, timeout=target.timeout
        )
        chunks: list[bytes] = []
        try:
            response = await self.client.send(request, stream=True)
        except httpx2.TimeoutException as exc:
            raw["status"], raw["response"] = _error(
                504, f"the endpoint did not answer in time: {exc!r}", "server_error"
            )
            raw["error"] = f"timeout: {exc!r}"
            await self._reply(send, raw["status"], raw["response"], call_header)
            self._record(raw, t0)
            return
        except httpx2.HTTPError as exc:
            raw["status"], raw["response"] = _error(
                502, f"the endpoint could not be reached: {exc!r}", "server_error"
            )
            raw["error"] = f"upstream: {exc!r}"
            await self._reply(send, raw["status"], raw["response"], call_header)
            self._record(raw, t0)
            return
        raw["status"] = response.status_code
        passed = [
            (k.lower().encode("latin-1"), v.encode("latin-1"))
            for k, v in response.headers.multi_items()
            if k.lower() in PASS_HEADERS or k.lower().startswith(PASS_PREFIXES)
        ] + call_header
        try:
            if not stream:
                async for chunk in response.aiter_raw():  # as sent: a compressed body stays compressed
                    chunks.append(chunk)
                data = b"".join(chunks)
                passed.append((b"content-length", str(len(data)).encode()))
                await send({"type": "http.response.start", "status": response.status_code, "headers": passed})
                await send({"type": "http.response.body", "body": data})
            else:
                await send({"type": "http.response.start", "status": response.status_code, "headers": passed})
                async for chunk in response.aiter_raw():
                    chunks.append(chunk)
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
        except httpx2.HTTPError as exc:  # the upstream broke off mid-answer: end what was sent
            raw["error"] = f"upstream broke off: {exc!r}"
            with contextlib.suppress(Exception):  # the client may be gone too
                await send({"type": "http.response.body", "body": b""})
        except OSError as exc:  # the client went away
            raw["error"] = f"client disconnected: {exc!r}"
        finally:
            await response.aclose()
            raw["response"] = _decoded(b"".join(chunks), response.headers.get("content-encoding", ""))
            self._record(raw, t0)

    def _record(self, raw: dict, t0: float) -> None:
        raw["latency_ms"] = round((time.perf_counter() - t0) * 1000, 3)
        self.writer.put(raw)


class _Refused(Exception):
    def __init__(self, status: int, body: bytes, headers: list | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers


application = Proxy()


def _remember(kind: str, key: str, value: dict | None) -> None:
    try:
        lookup_save(kind, key, value)
    except Exception:  # a spool that cannot be written is the writer's to report; the call goes on
        log.warning("capture proxy: could not remember a %s lookup", kind, exc_info=True)


def _token_to(token: TokenInfo) -> dict:
    return {
        "id": token.id,
        "name": token.name,
        "endpoint_ids": sorted(token.endpoint_ids),
        "rate_per_minute": token.rate_per_minute,
        "tags": list(token.tags),
        "revoked": token.revoked,
        "expires_at": None if token.expires_at is None else token.expires_at.isoformat(),
    }


def _token_from(value: dict) -> TokenInfo:
    expires = value.get("expires_at")
    return TokenInfo(
        id=value["id"],
        name=value["name"],
        endpoint_ids=frozenset(value["endpoint_ids"]),
        rate_per_minute=value["rate_per_minute"],
        tags=tuple(value["tags"]),
        revoked=value["revoked"],
        expires_at=None if expires is None else datetime.fromisoformat(expires),
    )
