"""Per-endpoint concurrency limits: at most `limit` calls in flight for one key.

    limiter = get_limiter(redis_url)
    with limiter.slot("endpoint:42", limit=8, timeout=30):
        ...  # one call to the endpoint

With a Redis URL the limit is shared by every process and machine using that Redis (a lease-based
semaphore: a sorted set of tokens scored by their expiry, so a killed worker never leaks a slot for
longer than the lease). Without one it is process-local (one semaphore per key).

Leases must outlast the slowest call they guard: keep `lease_seconds` above the call timeout.
Pure Python; no Django import.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

logger = logging.getLogger(__name__)

NAMESPACE = "ftvp:limit:"
RELEASED = ":released"  # suffix of the list a release pushes to, so one waiter wakes at once
DEFAULT_LEASE_SECONDS = 120.0


class LimiterUnavailable(Exception):
    """The limiter's backend (Redis) could not be reached; worth retrying later."""


class Limiter(Protocol):
    def slot(self, key: str, limit: int, timeout: float, lease: float | None = None) -> Any:
        """A context manager holding one of `limit` slots for `key`; TimeoutError after `timeout` s.

        `lease` bounds how long a holder that died keeps its slot (shared limiters only)."""
        ...


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")


class LocalLimiter:
    """Process-local limiter: one BoundedSemaphore per key, shared by the threads of this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._semaphores: dict[str, tuple[int, threading.BoundedSemaphore]] = {}

    def _semaphore(self, key: str, limit: int) -> threading.BoundedSemaphore:
        with self._lock:
            current = self._semaphores.get(key)
            if current is None or current[0] != limit:
                # A changed limit starts a fresh semaphore; current holders release into the old one.
                current = (limit, threading.BoundedSemaphore(limit))
                self._semaphores[key] = current
            return current[1]

    @contextmanager
    def slot(self, key: str, limit: int, timeout: float, lease: float | None = None) -> Iterator[None]:
        _check_limit(limit)
        semaphore = self._semaphore(key, limit)
        if not semaphore.acquire(timeout=max(0.0, timeout)):
            raise TimeoutError(f"no free slot for {key!r} (limit {limit}) within {timeout:g}s")
        try:
            yield
        finally:
            semaphore.release()


# KEYS[1] = the sorted set; ARGV = limit, lease in ms, token.
# Uses the Redis server's clock so machines with skewed clocks still agree on expiry.
_ACQUIRE_LUA = """
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local lease_ms = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now_ms + lease_ms, ARGV[3])
  if redis.call('PTTL', KEYS[1]) < lease_ms then
    redis.call('PEXPIRE', KEYS[1], lease_ms)
  end
  return 1
end
return 0
"""


class RedisLimiter:
    """Limiter shared across processes and machines through Redis (lease-based semaphore)."""

    def __init__(
        self,
        redis_url: str,
        *,
        prefix: str = "",
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        poll_interval: float = 0.05,
        socket_timeout: float = 5.0,
    ) -> None:
        import redis  # imported here so the local limiter works without the package
        from redis.backoff import ExponentialWithJitterBackoff
        from redis.retry import Retry

        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        self.prefix = prefix
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self._redis_error: type[Exception] = redis.RedisError
        self._client = redis.Redis.from_url(
            redis_url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            health_check_interval=30,
            # One quick retry (a stale pooled connection), not redis-py's default of three with
            # second-long backoffs: callers must learn fast that the limiter is unavailable.
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), 1),
        )
        self._acquire_script = self._client.register_script(_ACQUIRE_LUA)

    def redis_key(self, key: str) -> str:
        return f"{self.prefix}{NAMESPACE}{key}"

    def try_acquire(self, key: str, limit: int, lease: float | None = None) -> str | None:
        """One attempt: the lease token when a slot was free, else None."""
        _check_limit(limit)
        token = uuid.uuid4().hex
        lease_ms = max(1, int((lease or self.lease_seconds) * 1000))
        try:
            acquired = self._acquire_script(keys=[self.redis_key(key)], args=[limit, lease_ms, token])
        except self._redis_error as exc:
            raise LimiterUnavailable(f"redis limiter unavailable: {exc}") from exc
        return token if acquired == 1 else None

    def acquire(self, key: str, limit: int, timeout: float, lease: float | None = None) -> str:
        """Wait up to `timeout` seconds for a slot; return its lease token or raise TimeoutError.

        Between attempts a waiter blocks on the key's release list (BLPOP) for up to the poll
        interval: a release wakes one waiter at once, and the interval still bounds the wait for a
        slot that comes back by its lease expiring."""
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            token = self.try_acquire(key, limit, lease)
            if token is not None:
                return token
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no free slot for {key!r} (limit {limit}) within {timeout:g}s")
            wait = min(remaining, self.poll_interval * random.uniform(0.5, 1.5))
            try:
                self._client.blpop([self.redis_key(key) + RELEASED], timeout=max(0.001, wait))
            except self._redis_error as exc:
                raise LimiterUnavailable(f"redis limiter unavailable: {exc}") from exc

    def release(self, key: str, token: str) -> None:
        redis_key = self.redis_key(key)
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.zrem(redis_key, token)
            pipe.lpush(redis_key + RELEASED, 1)  # wakes one waiter
            pipe.ltrim(redis_key + RELEASED, 0, 63)  # nobody waiting: wake-ups do not pile up
            pipe.pexpire(redis_key + RELEASED, int(self.lease_seconds * 1000))
            pipe.execute()
        except self._redis_error as exc:
            # The lease expires on its own; a lost release only delays the slot's return.
            logger.warning("could not release limiter slot for %r: %s", key, exc)

    @contextmanager
    def slot(self, key: str, limit: int, timeout: float, lease: float | None = None) -> Iterator[None]:
        token = self.acquire(key, limit, timeout, lease)
        try:
            yield
        finally:
            self.release(key, token)

    def in_use(self, key: str) -> int:
        """Slots currently held for `key`, counting leases not yet expired or swept."""
        try:
            return int(self._client.zcard(self.redis_key(key)))
        except self._redis_error as exc:
            raise LimiterUnavailable(f"redis limiter unavailable: {exc}") from exc

    def close(self) -> None:
        self._client.close()


_local_limiter = LocalLimiter()
_redis_limiters: dict[tuple[str, str], RedisLimiter] = {}
_redis_limiters_lock = threading.Lock()


def get_limiter(redis_url: str | None, *, prefix: str = "") -> LocalLimiter | RedisLimiter:
    """The process's limiter: shared through Redis when a URL is given, else process-local.

    Limiters are cached so every provider in a process shares the same semaphores and connection pool.
    """
    if not redis_url:
        return _local_limiter
    with _redis_limiters_lock:
        limiter = _redis_limiters.get((redis_url, prefix))
        if limiter is None:
            limiter = RedisLimiter(redis_url, prefix=prefix)
            _redis_limiters[(redis_url, prefix)] = limiter
        return limiter
