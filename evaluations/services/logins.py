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
`evaluations.security.ThrottledModelBackend`, which counts the attempt (`login_attempt_record`)
before the password is checked.
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


def _count_key(key: str, until: float) -> str:
    # One counter per window (named by its end): a new window starts from zero without a reset that
    # could race with another request's increment.
    return f"{key}:{int(until)}"


def _entry(cache, key: str, now: float) -> tuple[int, float]:
    """(attempts counted, the end of their window); (0, 0) when none are."""
    until = cache.get(f"{key}:until")
    if not until or until <= now:
        return 0, 0.0
    return int(cache.get(_count_key(key, until)) or 0), float(until)


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


def login_attempt_record(*, username: str | None, address: str | None) -> int:
    """Count one login attempt for `username` and for `address`, BEFORE its password is checked, and
    say whether it is refused: seconds until logins are allowed again, or 0. Counting first (an
    atomic increment on Redis) means attempts sent in parallel cannot all pass the check: at most the
    limit's worth of passwords are checked per window. A success gives its attempt back
    (login_success_record), so the counts are of failures."""
    now = time.time()
    window = settings.FTVP_LOGIN_WINDOW_SECONDS
    waits = []
    try:
        cache = caches[CACHE]
        for key, limit in _keys(username=username, address=address):
            until = float(cache.get_or_set(f"{key}:until", now + window, timeout=window))
            counter, ttl = _count_key(key, until), max(1, math.ceil(until - now))
            cache.add(counter, 0, timeout=ttl)
            try:
                count = cache.incr(counter)
            except ValueError:  # expired between the two calls
                cache.set(counter, 1, timeout=ttl)
                count = 1
            cache.touch(counter, ttl)  # a file cache's incr resets the expiry
            if count > limit:
                waits.append(until - now)
    except Exception as exc:  # the cache's server is down: see _unavailable
        _unavailable(exc)
        return 0
    return math.ceil(max(waits)) if waits else 0


def login_failure_record(*, username: str | None, address: str | None) -> None:
    """Count one failed login (an attempt that is not given back)."""
    login_attempt_record(username=username, address=address)


def login_failure_note(*, username: str | None, address: str | None) -> None:
    """After a failed password: log a warning (never the password) when a count just reached its
    limit, i.e. the next attempt will be refused."""
    now = time.time()
    try:
        cache = caches[CACHE]
        for key, limit in _keys(username=username, address=address):
            count, until = _entry(cache, key, now)
            if count == limit:
                who = f"username {username!r}" if key.startswith("fail:user:") else f"address {address}"
                logger.warning(
                    "login locked: %d failed logins for %s within %d s; logins refused for %d s "
                    "(FTVP_LOGIN_FAILURE_LIMIT, FTVP_LOGIN_ADDRESS_FAILURE_LIMIT, FTVP_LOGIN_WINDOW_SECONDS)",
                    count, who, settings.FTVP_LOGIN_WINDOW_SECONDS, math.ceil(until - now),
                )  # fmt: skip
    except Exception as exc:  # the cache's server is down: see _unavailable
        _unavailable(exc)


def login_success_record(*, username: str | None, address: str | None = None) -> None:
    """A successful login clears its username's count and gives its attempt back to `address`."""
    now = time.time()
    try:
        cache = caches[CACHE]
        for key, _ in _keys(username=username, address=None):
            until = cache.get(f"{key}:until")
            cache.delete_many([f"{key}:until", *([_count_key(key, until)] if until else [])])
        for key, _ in _keys(username=None, address=address):
            count, until = _entry(cache, key, now)
            if count > 0:
                cache.decr(_count_key(key, until))
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
