"""Login throttling: N failures for a username or from an address within the window lock logins."""

from __future__ import annotations

import base64
import logging
from unittest import mock

import pytest
from django.core.cache import caches
from django.urls import reverse

from evaluations.services import logins
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-1"  # UserFactory's


@pytest.fixture
def limits(settings):
    settings.FTVP_LOGIN_FAILURE_LIMIT = 3
    settings.FTVP_LOGIN_ADDRESS_FAILURE_LIMIT = 3
    settings.FTVP_LOGIN_WINDOW_SECONDS = 600
    return settings


def _login(client, username, password, *, url="/login/", address="127.0.0.1"):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=address)


def _basic(client, username, password, address="127.0.0.1"):
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return client.get(reverse("api-v1:run-list"), HTTP_AUTHORIZATION=f"Basic {token}", REMOTE_ADDR=address)


def test_the_right_password_is_refused_after_too_many_failures(client, limits):
    UserFactory(username="vic", roles=["viewer"])
    for _ in range(3):
        response = _login(client, "vic", "wrong")
        assert response.status_code == 200 and "didn't match" in response.content.decode()
    locked = _login(client, "vic", PASSWORD)
    assert locked.status_code == 429
    html = locked.content.decode()
    assert "Too many failed logins" in html and "10 more minutes" in html
    assert int(locked["Retry-After"]) > 500
    assert "_auth_user_id" not in client.session  # not logged in


def test_a_lockout_is_logged_without_the_password(client, limits, caplog):
    UserFactory(username="wes", roles=["viewer"])
    with caplog.at_level(logging.DEBUG):
        for _ in range(3):
            _login(client, "wes", "s3cret-guess-xyz")
    warnings = [r for r in caplog.records if r.name == "ftvp.logins" and r.levelno == logging.WARNING]
    assert len(warnings) == 2  # the username, then the address
    assert "'wes'" in warnings[0].getMessage() and "127.0.0.1" in warnings[1].getMessage()
    assert not any("s3cret-guess-xyz" in r.getMessage() for r in caplog.records)


def test_the_window_passing_unlocks(client, limits):
    UserFactory(username="una", roles=["viewer"])
    for _ in range(3):
        _login(client, "una", "wrong")
    assert _login(client, "una", PASSWORD).status_code == 429
    later = logins.time.time() + 601
    with mock.patch.object(logins.time, "time", return_value=later):
        response = _login(client, "una", PASSWORD)
    assert response.status_code == 302 and response["Location"] == reverse("evaluations:home")


def test_a_success_resets_the_usernames_count(client, limits):
    UserFactory(username="sam", roles=["viewer"])
    for _ in range(2):
        _login(client, "sam", "wrong", address="10.0.0.1")
    assert _login(client, "sam", PASSWORD, address="10.0.0.2").status_code == 302
    client.logout()
    for _ in range(2):
        _login(client, "sam", "wrong", address="10.0.0.3")
    # 4 failures in all, but only 2 since the success: still allowed
    assert _login(client, "sam", PASSWORD, address="10.0.0.4").status_code == 302


def test_one_address_trying_many_usernames_is_locked(client, limits):
    UserFactory(username="real", roles=["viewer"])
    for name in ("a", "b", "c"):
        _login(client, name, "wrong", address="203.0.113.9")
    assert _login(client, "real", PASSWORD, address="203.0.113.9").status_code == 429
    assert _login(client, "real", PASSWORD, address="198.51.100.1").status_code == 302  # others are not


def test_the_usernames_lock_holds_from_any_address(client, limits):
    UserFactory(username="tia", roles=["viewer"])
    for i in range(3):
        _login(client, "TIA", "wrong", address=f"10.1.0.{i}")  # the case of the name does not help
    assert _login(client, "tia", PASSWORD, address="10.9.9.9").status_code == 429


def test_the_admin_login_is_throttled_too(client, limits):
    UserFactory(username="root", is_staff=True, is_superuser=True)
    for _ in range(3):
        assert _login(client, "root", "wrong", url="/admin/login/").status_code == 200
    locked = _login(client, "root", PASSWORD, url="/admin/login/")
    assert locked.status_code == 429 and "Too many failed logins" in locked.content.decode()
    assert "_auth_user_id" not in client.session


def test_the_apis_basic_auth_is_throttled_with_a_429(client, limits):
    UserFactory(username="bot", roles=["viewer"])
    assert _basic(client, "bot", PASSWORD).status_code == 200
    for _ in range(3):
        assert _basic(client, "bot", "wrong").status_code == 401
    locked = _basic(client, "bot", PASSWORD)
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.json()["detail"]
    assert int(locked["Retry-After"]) > 500
    # failures on the API count for the login page too: one counter per username
    assert _login(client, "bot", PASSWORD).status_code == 429


def test_a_basic_auth_success_resets_the_count(client, limits):
    UserFactory(username="cli", roles=["viewer"])
    for _ in range(2):
        _basic(client, "cli", "wrong", address="10.2.0.1")
    assert _basic(client, "cli", PASSWORD, address="10.2.0.2").status_code == 200
    for _ in range(2):
        _basic(client, "cli", "wrong", address="10.2.0.3")
    assert _basic(client, "cli", PASSWORD, address="10.2.0.4").status_code == 200


def test_behind_trusted_proxies_the_forwarded_address_counts(client, limits):
    limits.FTVP_TRUSTED_PROXIES = 1
    UserFactory(username="pia", roles=["viewer"])
    for i in range(3):  # three users behind the same proxy, each failing with a different name
        client.post(
            "/login/",
            {"username": f"x{i}", "password": "wrong"},
            REMOTE_ADDR="10.0.0.254",
            HTTP_X_FORWARDED_FOR=f"1.2.3.4, 192.0.2.{i}",  # a client may forge what comes first
        )
    ok = client.post(
        "/login/",
        {"username": "pia", "password": PASSWORD},
        REMOTE_ADDR="10.0.0.254",
        HTTP_X_FORWARDED_FOR="1.2.3.4, 192.0.2.77",
    )
    assert ok.status_code == 302  # the proxy's own address is not what is counted


def test_the_counts_are_shared_through_a_file_cache_across_processes(tmp_path, settings):
    """Without Redis the counts live in files in the data directory: another process sees them."""
    import subprocess
    import sys
    from pathlib import Path

    settings.CACHES = {
        **settings.CACHES,
        "logins": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(tmp_path / "logins"),
        },
    }
    settings.FTVP_LOGIN_FAILURE_LIMIT = 2
    for _ in range(2):
        logins.login_failure_record(username="shared", address="192.0.2.1")
    assert logins.login_lockout(username="shared", address=None) > 0
    location = str(tmp_path / "logins")
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'ftvp_site.settings'; django.setup();"
        "from django.conf import settings; from django.test.utils import override_settings;"
        f"c = {{**settings.CACHES, 'logins': {{'BACKEND': "
        f"'django.core.cache.backends.filebased.FileBasedCache', 'LOCATION': {location!r}}}}};"
        "from evaluations.services import logins;"
        "override_settings(CACHES=c, FTVP_LOGIN_FAILURE_LIMIT=2).enable();"
        "print(logins.login_lockout(username='shared', address=None))"
    )
    root = Path(__file__).resolve().parents[2]
    env = {"PATH": "/usr/bin:/bin", "FTVP_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip().splitlines()[-1]) > 0
    assert logins._entry(caches["logins"], logins._key("user", "shared"), logins.time.time())[0] == 2


def test_by_default_one_address_gets_ten_times_a_usernames_failures(client, settings):
    """In the demo (and behind an undeclared proxy) every user shares one address: a few typos by
    others must not lock everyone out."""
    assert settings.FTVP_LOGIN_ADDRESS_FAILURE_LIMIT == 10 * settings.FTVP_LOGIN_FAILURE_LIMIT
    UserFactory(username="ada", roles=["viewer"])
    for i in range(settings.FTVP_LOGIN_FAILURE_LIMIT):
        _login(client, f"typo{i}", "wrong")
    assert _login(client, "ada", PASSWORD).status_code == 302
    client.logout()
    for i in range(settings.FTVP_LOGIN_ADDRESS_FAILURE_LIMIT):
        _login(client, f"spray{i}", "wrong")
    assert _login(client, "ada", PASSWORD).status_code == 429


def test_attempts_sent_in_parallel_get_no_more_password_checks_than_the_limit(limits):
    """Each attempt is counted (atomically) before its password is checked: of 16 attempts sent at
    once, exactly the limit's worth get through to the password check."""
    import threading

    start = threading.Barrier(16)
    allowed = []

    def attempt():
        start.wait()
        allowed.append(logins.login_attempt_record(username="burst", address=None) == 0)

    threads = [threading.Thread(target=attempt) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert allowed.count(True) == limits.FTVP_LOGIN_FAILURE_LIMIT == 3
    count, _ = logins._entry(caches[logins.CACHE], logins._key("user", "burst"), logins.time.time())
    assert count == 16


def test_a_success_gives_its_attempt_back_to_the_address(client, limits):
    """Successful logins from one address (everyone behind a proxy, the demo) never add up to a lock."""
    UserFactory(username="amy", roles=["viewer"])
    for _ in range(5):
        assert _login(client, "amy", PASSWORD).status_code == 302
        client.logout()
    count, _ = logins._entry(caches[logins.CACHE], logins._key("addr", "127.0.0.1"), logins.time.time())
    assert count == 0


class _Down:
    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

        return fail


def test_an_unreachable_cache_lets_logins_through_with_a_warning(client, limits, caplog):
    UserFactory(username="ned", roles=["viewer"])
    with mock.patch.object(logins, "caches", {logins.CACHE: _Down()}), caplog.at_level(logging.WARNING):
        assert _login(client, "ned", "wrong").status_code == 200
        assert _login(client, "ned", PASSWORD).status_code == 302
    assert any("login throttling is unavailable" in r.getMessage() for r in caplog.records)
