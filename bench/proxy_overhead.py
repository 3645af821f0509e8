"""The capture proxy's cost: through the proxy vs direct to a loopback endpoint, with recording on.

A loopback OpenAI-compatible server (bench/loopback.py, its own process, answering at once) stands in
for the endpoint; the proxy runs as it does in production, `uvicorn ftvp_site.proxy_asgi:application`
(one process, its spool drained into a scratch SQLite database). Figures:

- added latency, p50 and p99: the same chat request sent one at a time, alternately direct and through
  the proxy (keep-alive clients both ways), the proxy's percentile minus the direct one's. Targets:
  p50 under 3 ms, p99 under 15 ms.
- sustained requests/s through the proxy with `--concurrency` calls in flight (asyncio client).
  Target: at least 300 requests/s.
- recording complete: every call the proxy answered is in the database once (waited for up to 60 s
  after the last answer). Target: all of them.

    .venv/bin/python bench/proxy_overhead.py [--calls 2000] [--load 4000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from harness import setup_django
from loopback import LoopbackServer

ROOT = Path(__file__).resolve().parents[1]
TARGET_P50_MS, TARGET_P99_MS, TARGET_RPS = 3.0, 15.0, 300.0


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="sequential calls each way (latency)")
    parser.add_argument("--load", type=int, default=4000, help="calls through the proxy (throughput)")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()

    tmp, _ = setup_django("ftvp-bench-proxy-", embedded=True)
    import httpx2

    from evaluations.models import CaptureToken, Endpoint, TrafficCall
    from evaluations.services.tokens import token_hash

    loop = LoopbackServer(delay=0)
    endpoint = Endpoint.objects.create(
        name="bench", provider="openai", model="m", base_url=loop.base_url, price_in=1, price_out=2
    )
    secret = "ftvpc_" + secrets.token_urlsafe(32)
    token = CaptureToken.objects.create(
        name="bench", prefix=secret[:12], key_hash=token_hash(secret), rate_per_minute=0
    )
    token.endpoints.set([endpoint])

    port = _port()
    env = {**os.environ, "FTVP_DATA_DIR": str(tmp), "PYTHONUNBUFFERED": "1"}
    log = (tmp / "proxy.log").open("wb")
    proxy = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "ftvp_site.proxy_asgi:application",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    via = f"http://127.0.0.1:{port}/proxy/bench/v1/chat/completions"
    direct = f"{loop.base_url}/chat/completions"
    headers = {"Authorization": f"Bearer {secret}"}
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx2.get(f"http://127.0.0.1:{port}/proxy/health", timeout=1)
                break
            except httpx2.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError((tmp / "proxy.log").read_text()) from None
                time.sleep(0.1)
        body = {"model": "m", "messages": [{"role": "user", "content": "route this ticket please"}]}
        sent = 0
        with httpx2.Client(timeout=10) as c_direct, httpx2.Client(timeout=10) as c_via:
            for _ in range(50):  # warm-up: connections, caches
                c_direct.post(direct, json=body)
                c_via.post(via, json=body, headers=headers)
                sent += 1
            lat_direct, lat_via = [], []
            for _ in range(args.calls):
                t0 = time.perf_counter()
                c_direct.post(direct, json=body)
                t1 = time.perf_counter()
                answer = c_via.post(via, json=body, headers=headers)
                t2 = time.perf_counter()
                assert answer.status_code == 200, answer.text
                lat_direct.append((t1 - t0) * 1000)
                lat_via.append((t2 - t1) * 1000)
                sent += 1

        async def load() -> float:
            limits = httpx2.Limits(max_connections=args.concurrency)
            async with httpx2.AsyncClient(timeout=30, limits=limits) as client:
                queue = iter(range(args.load))

                async def one() -> None:
                    for _ in queue:
                        answer = await client.post(via, json=body, headers=headers)
                        assert answer.status_code == 200, answer.text

                t0 = time.perf_counter()
                await asyncio.gather(*(one() for _ in range(args.concurrency)))
                return time.perf_counter() - t0

        wall = asyncio.run(load())
        sent += args.load
        t0 = time.monotonic()
        while TrafficCall.objects.count() < sent and time.monotonic() - t0 < 60:
            time.sleep(0.2)
        recorded = TrafficCall.objects.count()
        catch_up = time.monotonic() - t0
    finally:
        proxy.send_signal(signal.SIGTERM)
        proxy.wait(60)
        loop.stop()

    p50 = _percentile(lat_via, 0.5) - _percentile(lat_direct, 0.5)
    p99 = _percentile(lat_via, 0.99) - _percentile(lat_direct, 0.99)
    rps = args.load / wall

    def verdict(ok: bool) -> str:
        return "met" if ok else "missed"

    print(
        f"direct p50 {_percentile(lat_direct, 0.5):.2f} ms, p99 {_percentile(lat_direct, 0.99):.2f} ms; "
        f"through the proxy p50 {_percentile(lat_via, 0.5):.2f} ms, p99 {_percentile(lat_via, 0.99):.2f} ms "
        f"({args.calls} sequential calls each way)"
    )
    print(
        f"proxy added latency p50: {p50:.2f} ms (target < {TARGET_P50_MS:g} ms): "
        f"{verdict(p50 < TARGET_P50_MS)}"
    )
    print(
        f"proxy added latency p99: {p99:.2f} ms (target < {TARGET_P99_MS:g} ms): "
        f"{verdict(p99 < TARGET_P99_MS)}"
    )
    print(
        f"proxy sustained throughput: {rps:.0f} requests/s, {args.concurrency} in flight, recording on "
        f"(target >= {TARGET_RPS:g}): {verdict(rps >= TARGET_RPS)}"
    )
    print(
        f"proxy recording complete: {recorded} of {sent} calls recorded, {catch_up:.1f} s after the last "
        f"answer (target all): {verdict(recorded == sent)}"
    )
    return 0 if p50 < TARGET_P50_MS and p99 < TARGET_P99_MS and rps >= TARGET_RPS and recorded == sent else 1


if __name__ == "__main__":
    sys.exit(main())
