"""Login throttling: failed logins counted per username and per client address.

After FTVP_LOGIN_FAILURE_LIMIT failures for one username, or FTVP_LOGIN_ADDRESS_FAILURE_LIMIT (ten
times as many by default: behind a proxy that is not declared in FTVP_TRUSTED_PROXIES, or in the
demo, every user shares one address) from one address, within FTVP_LOGIN_WINDOW_SECONDS (counted from
the first failure), every login for that username or from that address is refused until the window
has passed, even with the right password. A successful
login clears its username's count. The counts live in the `logins` cache (settings.CACHES), which
every web process shares: Redis when REDIS_URL is set, else files in the data directory. When that
cache cannot be reached (Redis restarting), logins are let through unthrottled, with a warning. Usernames
and addresses are stored hashed; passwords never reach this module.

The login pages, the admin's login and the API's Basic auth all go through
`evaluations.security.ThrottledModelBackend`, which asks `login_lockout` first.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time

from django.conf import settings
from django.core.cache import caches

logger = logging.getLogger("ftvp.logins")

CACHE = "logins"


def _key(kind: str, value: str) -> str:
    return f"fail:{kind}:{hashlib.sha256(value.encode('utf-8', 'replace')).hexdigest()}"


def _keys(*, username: str | None, address: str | None) -> list[tuple[str, int]]:
    """(cache key, failure limit) for the username and for the address."""
    keys = []
    if username and username.strip():
        keys.append((_key("user", username.strip().lower()), settings.FTVP_LOGIN_FAILURE_LIMIT))
    if address:
        keys.append((_key("addr", address), settings.FTVP_LOGIN_ADDRESS_FAILURE_LIMIT))
    return keys


def _entry(cache, key: str, now: float) -> tuple[int, float]:
    """(failures, the end of their window); (0, 0) when none are counted. The count and the window's
    end are two keys, so that the count can be incremented atomically (Redis INCR)."""
    values = cache.get_many([key, f"{key}:until"])
    count, until = values.get(key), values.get(f"{key}:until")
    if not count or not until or until <= now:
        return 0, 0.0
    return int(count), float(until)


def _unavailable(exc: Exception) -> None:
    # Throttling must not take logging in down with it (Redis restarting): let logins through.
    logger.warning("login throttling is unavailable (%s: %s); logins are not throttled meanwhile",
                   type(exc).__name__, exc)  # fmt: skip


def login_lockout(*, username: str | None, address: str | None) -> int:
    """Seconds until a login for `username` from `address` is allowed again; 0: allowed now."""
    now = time.time()
    try:
        cache = caches[CACHE]
        entries = [
            (_entry(cache, key, now), limit) for key, limit in _keys(username=username, address=address)
        ]
    except Exception as exc:  # the cache's server is down: see _unavailable
        _unavailable(exc)
        return 0
    waits = [until - now for (count, until), limit in entries if count >= limit]
    return math.ceil(max(waits)) if waits else 0


def lockout_message(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return (
        f"Too many failed logins for this username or from your address: logging in is refused for "
        f"{minutes} more minute{'s' if minutes != 1 else ''}, even with the right password. Try again "
        "then, or ask an admin to check the account."
    )


def login_failure_record(*, username: str | None, address: str | None) -> None:
    """Count one failed login for `username` and for `address`; log a warning (never the password)
    when either reaches its limit. The increment is atomic on Redis, so parallel attempts cannot
    slip past the limit; the first failure opens the window (FTVP_LOGIN_WINDOW_SECONDS)."""
    now = time.time()
    window = settings.FTVP_LOGIN_WINDOW_SECONDS
    try:
        cache = caches[CACHE]
        for key, limit in _keys(username=username, address=address):
            if cache.add(f"{key}:until", now + window, timeout=window):
                cache.set(key, 0, timeout=window)  # a new window: failures of an old one do not count
            else:
                cache.add(key, 0, timeout=window)
            try:
                count = cache.incr(key)
            except ValueError:  # expired between the two calls
                cache.set(key, 1, timeout=window)
                count = 1
            until = cache.get(f"{key}:until") or now + window
            cache.touch(key, max(1, math.ceil(until - now)))  # a file cache's incr resets the expiry
            if count == limit:
                who = f"username {username!r}" if key.startswith("fail:user:") else f"address {address}"
                logger.warning(
                    "login locked: %d failed logins for %s within %d s; logins refused for %d s "
                    "(FTVP_LOGIN_FAILURE_LIMIT, FTVP_LOGIN_ADDRESS_FAILURE_LIMIT, FTVP_LOGIN_WINDOW_SECONDS)",
                    count, who, window, math.ceil(until - now),
                )  # fmt: skip
    except Exception as exc:  # the cache's server is down: see _unavailable
        _unavailable(exc)


def login_success_record(*, username: str | None) -> None:
    """A successful login clears its username's failures (not its address's)."""
    try:
        for key, _ in _keys(username=username, address=None):
            caches[CACHE].delete_many([key, f"{key}:until"])
    except Exception as exc:  # the cache's server is down: see _unavailable
        _unavailable(exc)


def client_address(request) -> str:
    """The client's address: the connection's, or with FTVP_TRUSTED_PROXIES=n proxies in front, the
    address the outermost of them saw (n-th from the right in X-Forwarded-For). A client cannot
    forge it: only the entries the trusted proxies appended are read."""
    meta = getattr(request, "META", {})
    trusted = settings.FTVP_TRUSTED_PROXIES
    if trusted:
        hops = [h.strip() for h in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
        if len(hops) >= trusted:
            return hops[-trusted]
    return meta.get("REMOTE_ADDR", "") or "unknown"
