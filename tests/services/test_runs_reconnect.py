"""A save that fails because the database connection dropped is made again on a fresh connection,
so answers already paid for are kept; inside a transaction it is not (the transaction is gone)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.db import OperationalError

from evaluations.services import generation


class DropsFirst:
    """A write whose first `drops` calls fail as a killed backend fails them."""

    def __init__(self, drops: int) -> None:
        self.drops = drops
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.drops:
            raise OperationalError("terminating connection due to administrator command")
        return "saved"


@pytest.fixture(autouse=True)
def _no_pause(monkeypatch):
    monkeypatch.setattr(generation.time, "sleep", lambda seconds: None)


def _connection(monkeypatch, *, in_atomic_block: bool = False) -> list[bool]:
    """A stand-in for the module's database connection (the real one is left alone, so the test
    database's teardown is not disturbed); returns the list its close() calls append to."""
    closed: list[bool] = []
    stand_in = SimpleNamespace(in_atomic_block=in_atomic_block, close=lambda: closed.append(True))
    monkeypatch.setattr(generation, "connection", stand_in)
    return closed


def test_a_write_whose_connection_dropped_is_made_again_on_a_fresh_one(monkeypatch):
    closed = _connection(monkeypatch)
    write = DropsFirst(drops=generation.DB_ATTEMPTS - 1)
    assert generation._reconnecting(write) == "saved"
    assert write.calls == generation.DB_ATTEMPTS and len(closed) == generation.DB_ATTEMPTS - 1


def test_a_connection_that_keeps_dropping_fails_the_write_after_the_last_attempt(monkeypatch):
    _connection(monkeypatch)
    write = DropsFirst(drops=generation.DB_ATTEMPTS)
    with pytest.raises(OperationalError):
        generation._reconnecting(write)
    assert write.calls == generation.DB_ATTEMPTS


def test_inside_a_transaction_the_failure_is_raised_at_once(monkeypatch):
    closed = _connection(monkeypatch, in_atomic_block=True)
    write = DropsFirst(drops=1)
    with pytest.raises(OperationalError):
        generation._reconnecting(write)
    assert write.calls == 1 and closed == []
