"""1,000 calls through a real uvicorn proxy (100 streamed), the database stopped for part of the run
and the proxy restarted once: every answer byte-identical to the direct one, every call recorded once."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

from evaluations.models import TrafficCall
from evaluations.services.spool import spool_connect, spool_count
from tests.conftest import _worker_env
from tests.proxy.conftest import UPSTREAM_KEY, make_token
from tests.proxy.upstream import free_port

ROOT = Path(__file__).resolve().parents[2]


class ProxyProcess:
    def __init__(self, env: dict, log: Path) -> None:
        self.env, self.log, self.port = env, log, free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "tests/proxy/serve.py"), str(self.port)],
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx2.get(f"http://127.0.0.1:{self.port}/proxy/health", timeout=1).status_code == 200:
                    return
            except httpx2.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"the proxy did not start: {self.log.read_text()}")

    def terminate(self) -> bool:
        """SIGTERM; True when the proxy shut down gracefully (uvicorn re-raises the signal after its
        shutdown, so the exit status is -SIGTERM)."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60) in (0, -signal.SIGTERM) and "stopped" in self.log.read_text()


def _recorded(expected: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = TrafficCall.objects.count()
        if count >= expected:
            return count
        time.sleep(0.2)
    return TrafficCall.objects.count()


@pytest.mark.django_db(transaction=True)
def test_a_thousand_calls_survive_a_stopped_database_and_a_restart(upstream, proxy_settings, tmp_path):
    from tests.factories import EndpointFactory

    endpoint = EndpointFactory(name="chat", base_url=upstream.base_url, api_key_env="FTVP_TEST_UPSTREAM_KEY")
    _, secret = make_token(endpoint, rate_per_minute=0)
    down = tmp_path / "db-down"
    env = {
        **_worker_env(),
        "FTVP_SPOOL_DIR": str(tmp_path / "spool"),
        "FTVP_TEST_DB_DOWN": str(down),
        "FTVP_TEST_UPSTREAM_KEY": UPSTREAM_KEY,
        "FTVP_CAPTURE_CACHE_SECONDS": "5",
    }
    proxy = ProxyProcess(env, tmp_path / "proxy.log")
    try:
        _thousand_calls(proxy, upstream, secret, down, tmp_path)
    finally:
        if proxy.proc is not None and proxy.proc.poll() is None:
            proxy.proc.kill()
            proxy.proc.wait(10)


def _thousand_calls(proxy: ProxyProcess, upstream, secret: str, down: Path, tmp_path: Path) -> None:
    proxy.start()
    call_ids: list[str] = []
    with httpx2.Client(timeout=30) as client:
        for i in range(1000):
            if i == 300:
                down.touch()  # the database stops
            if i == 500:
                assert proxy.terminate()  # SIGTERM: flushed; the drain fails, the spool keeps it
                spool = spool_connect(tmp_path / "spool" / "capture.sqlite3")
                assert spool_count(spool) >= 200 and TrafficCall.objects.count() <= 300
                spool.close()
                proxy.start()
            if i == 700:
                down.unlink()  # the database is back
            stream = i % 10 == 0
            route = "embeddings" if i % 10 == 5 else "chat/completions"
            if route == "embeddings":
                body = {"model": "emb", "input": f"text {i}"}
            else:
                body = {
                    "model": "m",
                    "stream": stream,
                    "messages": [{"role": "user", "content": f"call {i}"}],
                }
            via = client.post(
                f"http://127.0.0.1:{proxy.port}/proxy/chat/v1/{route}",
                json=body,
                headers={"Authorization": f"Bearer {secret}"},
            )
            direct = client.post(
                f"{upstream.base_url}/{route}", json=body, headers={"Authorization": f"Bearer {UPSTREAM_KEY}"}
            )
            assert via.status_code == direct.status_code == 200, via.text
            assert via.content == direct.content, i
            call_ids.append(via.headers["x-ftvp-call-id"])
    assert _recorded(1000, timeout=60) == 1000
    assert proxy.terminate()
    recorded = list(TrafficCall.objects.values_list("call_id", flat=True))
    assert len(recorded) == 1000 and sorted(recorded) == sorted(call_ids)
    assert TrafficCall.objects.filter(stream=True).count() == 100
    assert upstream.app.requests == 2000  # each call once through the proxy, once direct
