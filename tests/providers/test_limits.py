"""Concurrency limiters: process-local semaphores and the Redis lease-based semaphore."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from evaluations.providers.limits import (
    LimiterUnavailable,
    LocalLimiter,
    RedisLimiter,
    get_limiter,
)

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


class InFlight:
    """Counts how many threads are inside a section at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current = 0
        self.peak = 0

    def __enter__(self) -> None:
        with self._lock:
            self.current += 1
            self.peak = max(self.peak, self.current)

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self.current -= 1


def run_in_threads(count: int, work: Callable[[int], None]) -> list[BaseException]:
    errors: list[BaseException] = []

    def target(i: int) -> None:
        try:
            work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    return errors


# -- LocalLimiter ---------------------------------------------------------------------------------


def test_local_limiter_bounds_concurrency() -> None:
    limiter = LocalLimiter()
    in_flight = InFlight()

    def work(_: int) -> None:
        with limiter.slot("endpoint", 3, timeout=5), in_flight:
            time.sleep(0.03)

    assert run_in_threads(10, work) == []
    assert in_flight.peak == 3


def test_local_limiter_times_out_when_full_and_frees_on_exit() -> None:
    limiter = LocalLimiter()

    with (
        limiter.slot("endpoint", 1, timeout=1),
        pytest.raises(TimeoutError),
        limiter.slot("endpoint", 1, timeout=0.05),
    ):
        pass

    with limiter.slot("endpoint", 1, timeout=0.05):
        pass


def test_local_limiter_frees_the_slot_when_the_body_raises() -> None:
    limiter = LocalLimiter()

    with pytest.raises(RuntimeError), limiter.slot("endpoint", 1, timeout=1):
        raise RuntimeError("boom")

    with limiter.slot("endpoint", 1, timeout=0.05):
        pass


def test_local_limiter_keeps_keys_independent() -> None:
    limiter = LocalLimiter()

    with limiter.slot("a", 1, timeout=1), limiter.slot("b", 1, timeout=0.05):
        pass


def test_get_limiter_without_redis_is_one_local_limiter_per_process() -> None:
    assert isinstance(get_limiter(None), LocalLimiter)
    assert get_limiter(None) is get_limiter("")


def test_get_limiter_with_a_url_is_a_cached_redis_limiter() -> None:
    limiter = get_limiter("redis://127.0.0.1:1/0", prefix="ftvp-test-unused:")

    assert isinstance(limiter, RedisLimiter)
    assert get_limiter("redis://127.0.0.1:1/0", prefix="ftvp-test-unused:") is limiter


# -- RedisLimiter ---------------------------------------------------------------------------------


def _redis_reachable() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


needs_redis = pytest.mark.skipif(not _redis_reachable(), reason=f"no Redis at {REDIS_URL}")


@pytest.fixture
def make_redis_limiter() -> Iterator[Callable[..., RedisLimiter]]:
    prefix = f"ftvp-test-{uuid.uuid4().hex}:"
    made: list[RedisLimiter] = []

    def make(**options) -> RedisLimiter:
        limiter = RedisLimiter(REDIS_URL, prefix=prefix, socket_timeout=2.0, poll_interval=0.01, **options)
        made.append(limiter)
        return limiter

    yield make

    if made:
        client = made[0]._client
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
    for limiter in made:
        limiter.close()


@needs_redis
def test_redis_limiter_bounds_concurrency_across_two_workers(make_redis_limiter) -> None:
    workers = [make_redis_limiter(), make_redis_limiter()]  # two instances, as two processes would have
    in_flight = InFlight()

    def work(i: int) -> None:
        with workers[i % 2].slot("endpoint", 3, timeout=5), in_flight:
            time.sleep(0.03)

    assert run_in_threads(12, work) == []
    assert in_flight.peak == 3
    assert workers[0].in_use("endpoint") == 0


@needs_redis
def test_redis_limiter_times_out_when_the_limit_is_held_elsewhere(make_redis_limiter) -> None:
    first, second = make_redis_limiter(), make_redis_limiter()

    with first.slot("endpoint", 2, timeout=1), first.slot("endpoint", 2, timeout=1):
        started = time.monotonic()
        with pytest.raises(TimeoutError), second.slot("endpoint", 2, timeout=0.1):
            pass
        assert time.monotonic() - started >= 0.1
        with second.slot("other-endpoint", 2, timeout=0.1):
            pass

    with second.slot("endpoint", 2, timeout=0.1):
        assert second.in_use("endpoint") == 1


@needs_redis
def test_redis_limiter_frees_the_slot_when_the_body_raises(make_redis_limiter) -> None:
    limiter = make_redis_limiter()

    with pytest.raises(RuntimeError), limiter.slot("endpoint", 1, timeout=1):
        raise RuntimeError("boom")

    assert limiter.in_use("endpoint") == 0


@needs_redis
def test_redis_limiter_reclaims_an_expired_lease(make_redis_limiter) -> None:
    crashed = make_redis_limiter(lease_seconds=0.2)
    survivor = make_redis_limiter(lease_seconds=0.2)
    crashed.acquire("endpoint", 1, timeout=1)  # never released, like a worker killed mid-call

    with pytest.raises(TimeoutError):
        survivor.acquire("endpoint", 1, timeout=0.05)
    token = survivor.acquire("endpoint", 1, timeout=2)

    assert token
    assert survivor.in_use("endpoint") == 1


@needs_redis
def test_redis_limiter_namespaces_its_keys_under_the_prefix(make_redis_limiter) -> None:
    limiter = make_redis_limiter()

    with limiter.slot("endpoint-7", 1, timeout=1):
        assert limiter._client.exists(f"{limiter.prefix}ftvp:limit:endpoint-7") == 1
        assert limiter._client.pttl(f"{limiter.prefix}ftvp:limit:endpoint-7") > 0


@pytest.fixture
def refusing_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield port  # closed: connections are refused


@pytest.fixture
def silent_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]  # accepts connections, never answers


@pytest.mark.parametrize("port_fixture", ["refusing_port", "silent_port"])
def test_redis_limiter_fails_fast_when_redis_is_unreachable(request, port_fixture: str) -> None:
    port = request.getfixturevalue(port_fixture)
    limiter = RedisLimiter(f"redis://127.0.0.1:{port}/0", socket_timeout=0.1)

    started = time.monotonic()
    with pytest.raises(LimiterUnavailable), limiter.slot("endpoint", 1, timeout=5):
        pass

    assert time.monotonic() - started < 2


@needs_redis
def test_a_release_wakes_a_waiter_at_once_not_at_its_next_poll(make_redis_limiter) -> None:
    holder, waiter = make_redis_limiter(), make_redis_limiter()
    waiter.poll_interval = 5.0  # a waiter that only polled would sleep 2.5 s or more
    token = holder.acquire("endpoint", 1, timeout=1)
    threading.Timer(0.2, holder.release, args=("endpoint", token)).start()

    started = time.monotonic()
    with waiter.slot("endpoint", 1, timeout=10):
        waited = time.monotonic() - started

    assert 0.15 < waited < 1.5
