"""Production settings pass `manage.py check --deploy`; the embedded defaults still serve plain http."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A clean environment: none of the caller's FTVP_*/DATABASE_URL/REDIS_URL leak in."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT")}
    return {**keep, "FTVP_DATA_DIR": str(tmp_path / "data"), **extra}


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def _production(tmp_path: Path, **extra: str) -> dict[str, str]:
    return _env(
        tmp_path,
        FTVP_DEBUG="0",
        FTVP_SECRET_KEY=secrets.token_urlsafe(50),
        FTVP_ALLOWED_HOSTS="ftvp.example.com",
        FTVP_HTTPS="1",
        **extra,
    )


def test_production_settings_pass_the_deploy_check_without_a_warning(tmp_path):
    done = _manage(_production(tmp_path), "check", "--deploy", "--fail-level", "WARNING")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "WARNING" not in output and "?: (" not in output, output
    assert "System check identified no issues" in output


def test_behind_a_tls_proxy_with_preload_the_deploy_check_still_passes(tmp_path):
    env = _production(tmp_path, FTVP_PROXY_SSL_HEADER="X-Forwarded-Proto", FTVP_HSTS_PRELOAD="1")
    done = _manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 silenced" in done.stdout or "silenced" not in done.stdout  # nothing hidden with preload on


def test_the_deploy_check_fails_without_https(tmp_path):
    """Not vacuous: the same check flags plain-http settings."""
    env = _production(tmp_path)
    env.pop("FTVP_HTTPS")
    done = _manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert done.returncode != 0
    assert "security.W004" in done.stderr + done.stdout  # HSTS
    assert "security.W012" in done.stderr + done.stdout  # session cookie


def test_a_bad_proxy_header_fails_loudly(tmp_path):
    done = _manage(_production(tmp_path, FTVP_PROXY_SSL_HEADER="X-Forwarded-Proto: https"), "check")
    assert done.returncode != 0
    assert "FTVP_PROXY_SSL_HEADER" in done.stderr


def _settings_of(env: dict[str, str]) -> dict:
    code = (
        "import json, django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'ftvp_site.settings';"
        "django.setup();"
        "from django.conf import settings as s;"
        "print(json.dumps({k: getattr(s, k, None) for k in ('SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE',"
        "'SECURE_HSTS_SECONDS', 'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SECURE_SSL_REDIRECT',"
        "'SECURE_PROXY_SSL_HEADER', 'SECURE_HSTS_PRELOAD')}))"
    )
    import json

    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_https_switch_turns_on_secure_cookies_hsts_and_the_redirect(tmp_path):
    on = _settings_of(_production(tmp_path, FTVP_PROXY_SSL_HEADER="X-Forwarded-Proto"))
    assert on["SESSION_COOKIE_SECURE"] and on["CSRF_COOKIE_SECURE"] and on["SECURE_SSL_REDIRECT"]
    assert on["SECURE_HSTS_SECONDS"] == 365 * 24 * 3600 and on["SECURE_HSTS_INCLUDE_SUBDOMAINS"]
    assert on["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert on["SECURE_HSTS_PRELOAD"] is False
    off = _settings_of(_env(tmp_path))
    assert not off["SESSION_COOKIE_SECURE"] and not off["SECURE_SSL_REDIRECT"]
    assert off["SECURE_HSTS_SECONDS"] == 0 and off["SECURE_PROXY_SSL_HEADER"] is None


@pytest.mark.django_db
def test_the_embedded_defaults_serve_the_demo_over_plain_http(client, settings):
    """`make demo` on http://127.0.0.1:8000: no redirect to https, cookies a browser keeps over http."""
    assert not settings.SECURE_SSL_REDIRECT and not settings.SESSION_COOKIE_SECURE
    assert settings.SECURE_HSTS_SECONDS == 0
    login = client.get("/login/")
    assert login.status_code == 200
    assert "Strict-Transport-Security" not in login.headers
    assert not login.cookies["csrftoken"]["secure"]


@pytest.mark.django_db
def test_with_https_on_http_is_redirected_and_https_answers_with_hsts(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    plain = client.get("/login/")
    assert plain.status_code == 301 and plain["Location"] == "https://testserver/login/"
    secure = client.get("/login/", HTTP_X_FORWARDED_PROTO="https")
    assert secure.status_code == 200
    assert secure["Strict-Transport-Security"] == "max-age=3600; includeSubDomains"
