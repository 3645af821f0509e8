from __future__ import annotations

import asyncio
import secrets

import httpx2
import pytest

from evaluations.models import CaptureToken
from evaluations.services.tokens import token_hash
from tests.factories import EndpointFactory
from tests.proxy.upstream import UpstreamServer

UPSTREAM_KEY = "sk-upstream-secret-0123456789abcdef"


def make_token(*endpoints, **fields) -> tuple[CaptureToken, str]:
    """A capture token row as the token service makes it (the service is tested elsewhere)."""
    secret = "ftvpc_" + secrets.token_urlsafe(32)
    token = CaptureToken.objects.create(
        name=fields.pop("name", "support-bot"), prefix=secret[:12], key_hash=token_hash(secret), **fields
    )
    token.endpoints.set(endpoints)
    return token, secret


@pytest.fixture
def upstream():
    server = UpstreamServer()
    yield server
    server.stop()


@pytest.fixture
def proxy_settings(settings, tmp_path, monkeypatch):
    monkeypatch.setenv("FTVP_TEST_UPSTREAM_KEY", UPSTREAM_KEY)
    settings.FTVP_SPOOL_DIR = tmp_path / "spool"
    settings.FTVP_CAPTURE_CACHE_SECONDS = 0
    settings.FTVP_CAPTURE_DROP_FIELDS = []
    settings.FTVP_CAPTURE_MASK = ["email", "card"]
    return settings


@pytest.fixture
def endpoint(transactional_db, upstream, proxy_settings):
    return EndpointFactory(name="chat", base_url=upstream.base_url, api_key_env="FTVP_TEST_UPSTREAM_KEY")


class ProxyClient:
    """The proxy in this process (its ASGI app through httpx2's ASGI transport), with its own
    event loop; `close()` runs the lifespan's shutdown: the spool flushed and drained."""

    def __init__(self) -> None:
        from evaluations.proxy.app import Proxy

        self.proxy = Proxy()
        self.loop = asyncio.new_event_loop()
        self.client = httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=self.proxy), base_url="http://ftvp"
        )

    def post(self, path: str, *, token: str | None = None, json=None, headers=None) -> httpx2.Response:
        headers = dict(headers or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.loop.run_until_complete(self.client.post(path, json=json, headers=headers))

    def close(self) -> None:
        self.loop.run_until_complete(self.proxy.stop())
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


@pytest.fixture
def proxy(proxy_settings):
    client = ProxyClient()
    yield client
    if client.proxy._started:
        client.close()
