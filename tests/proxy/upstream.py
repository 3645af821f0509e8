"""A loopback OpenAI-compatible upstream for the capture proxy's tests and benchmark: chat completions
(streamed as SSE or not) and embeddings, deterministic to the byte (the same request gets the same
answer, ids included), served by uvicorn in a thread. It counts the requests it got and keeps the
Authorization headers it saw."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import socket
import threading
import time

import uvicorn


def _last_user(body: dict) -> str:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return str(message.get("content"))
    return ""


class Upstream:
    def __init__(self) -> None:
        self.requests = 0
        self.authorizations: list[str] = []
        self.lock = threading.Lock()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":  # served with lifespan="off"
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = dict(scope["headers"])
        with self.lock:
            self.requests += 1
            self.authorizations.append(headers.get(b"authorization", b"").decode())
        body = json.loads(raw)
        digest = hashlib.sha256(raw).hexdigest()[:24]
        head = [(b"x-request-id", f"req_{digest}".encode()), (b"openai-processing-ms", b"1")]
        if scope["path"].endswith("/embeddings"):
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            data = [
                {"object": "embedding", "index": i, "embedding": [len(str(t)) / 10, 0.5, -0.25]}
                for i, t in enumerate(inputs)
            ]
            tokens = sum(len(str(t).split()) for t in inputs)
            payload = {
                "object": "list",
                "data": data,
                "model": body.get("model"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
            await self._json(send, 200, payload, head)
            return
        text = _last_user(body)
        if text == "please fail":
            await self._json(
                send, 500, {"error": {"message": "upstream broke", "type": "server_error"}}, head
            )
            return
        if text == "gzip me":  # a compressed answer: passed on compressed, recorded decoded
            data = gzip.compress(
                json.dumps({"id": f"chatcmpl-{digest}", "choices": [], "note": "zipped"}).encode()
            )
            headers = [
                (b"content-type", b"application/json"),
                (b"content-encoding", b"gzip"),
                (b"content-length", str(len(data)).encode()),
                *head,
            ]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": data})
            return
        answer = f"echo: {text}"
        usage = {"prompt_tokens": len(text.split()) + 3, "completion_tokens": len(answer.split())}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        base = {"id": f"chatcmpl-{digest}", "created": 1700000000, "model": body.get("model")}
        if body.get("stream"):
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/event-stream; charset=utf-8"), *head],
                }
            )
            words = answer.split(" ")
            for i, word in enumerate(words):
                delta = {"content": word if i == 0 else " " + word}
                chunk = {
                    **base,
                    "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
                }
                await send(
                    {
                        "type": "http.response.body",
                        "body": f"data: {json.dumps(chunk)}\n\n".encode(),
                        "more_body": True,
                    }
                )
                await asyncio.sleep(0)
            last = {
                **base,
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "usage": usage,
            }
            await send(
                {
                    "type": "http.response.body",
                    "body": f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n".encode(),
                }
            )
            return
        payload = {
            **base,
            "object": "chat.completion",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}
            ],
            "usage": usage,
        }
        await self._json(send, 200, payload, head)

    async def _json(self, send, status: int, payload: dict, head: list) -> None:
        data = json.dumps(payload).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(data)).encode()),
            *head,
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class UpstreamServer:
    """`Upstream` served by uvicorn on 127.0.0.1 in a thread; `base_url` ends with /v1."""

    def __init__(self) -> None:
        self.app = Upstream()
        self.port = free_port()
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the upstream did not start")
            time.sleep(0.01)
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
