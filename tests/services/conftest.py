"""Fixtures the service tests share."""

from __future__ import annotations

import pytest

from tests.factories import EndpointFactory


@pytest.fixture
def endpoint(fake_openai, db):
    """An OpenAI-compatible endpoint on the loopback fake server (tests/fakeopenai.py)."""
    return EndpointFactory(name="fake", base_url=fake_openai.base_url)
