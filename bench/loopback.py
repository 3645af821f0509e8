"""A lean loopback OpenAI-compatible endpoint for the benchmarks, in a process of its own.

It stands in for a remote endpoint: every POST /v1/chat/completions is answered after a fixed
latency with the last user message echoed back (and its word counts as usage). It is an asyncio
server with keep-alive, so its own CPU cost per call (~0.1 ms) stays small next to ftvp's on the
same two cores; tests/fakeopenai.py (a thread per connection, failure injection) is the server the
tests use.

    python bench/loopback.py --delay 0.1 [--port 0]   # prints "listening on <base_url>"
    GET /stats -> {"requests": N, "max_in_flight": M};  POST /stats/reset

`LoopbackServer` starts and stops it from a benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


class _State:
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0


def _response(status: int, payload: bytes) -> bytes:
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}.get(status, "OK")
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


def _completion(body: dict) -> bytes:
    text = ""
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            text = str(message.get("content") or "")
            break
    prompt_tokens = sum(len(str(m.get("content") or "").split()) for m in body.get("messages") or [])
    completion_tokens = len(text.split())
    return json.dumps(
        {
            "id": "chatcmpl-loopback",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or "loopback",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
    ).encode()


async def _handle(state: _State, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            raw = await reader.readexactly(length) if length else b""
            if method == "POST" and path.rstrip("/").endswith("/chat/completions"):
                state.requests += 1
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
                try:
                    if state.delay > 0:
                        await asyncio.sleep(state.delay)
                    writer.write(_response(200, _completion(json.loads(raw))))
                finally:
                    state.in_flight -= 1
            elif path == "/stats":
                if method == "POST":
                    state.requests = state.max_in_flight = 0
                stats = {"requests": state.requests, "max_in_flight": state.max_in_flight}
                writer.write(_response(200, json.dumps(stats).encode()))
            else:
                writer.write(_response(404, b'{"error": {"message": "no such route"}}'))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _serve(host: str, port: int, delay: float) -> None:
    state = _State(delay)
    server = await asyncio.start_server(lambda r, w: _handle(state, r, w), host, port, backlog=1024)
    bound = server.sockets[0].getsockname()
    print(f"listening on http://{bound[0]}:{bound[1]}/v1", flush=True)
    async with server:
        await server.serve_forever()


class LoopbackServer:
    """Start `bench/loopback.py` in a child process; `stats()`, `reset()`, `stop()`."""

    def __init__(self, *, delay: float) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--delay", str(delay), "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        line = self._proc.stdout.readline().strip() if self._proc.stdout else ""
        if not line.startswith("listening on "):
            self._proc.kill()
            raise RuntimeError(f"the loopback server did not start: {line!r}")
        self.base_url = line.removeprefix("listening on ")
        atexit.register(self.stop)  # a benchmark that crashes must not leave the server behind
        self._root = self.base_url.removesuffix("/v1")

    def _stats(self, method: str) -> dict:
        data = b"" if method == "POST" else None
        request = urllib.request.Request(f"{self._root}/stats", method=method, data=data)  # noqa: S310
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - our own loopback URL
            return json.loads(response.read())

    def stats(self) -> dict:
        return self._stats("GET")

    def reset(self) -> None:
        self._stats("POST")

    def stop(self) -> None:
        if self._proc.poll() is not None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.1, help="seconds before each answer")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.host, args.port, args.delay))


if __name__ == "__main__":
    main()
