"""Endpoints' base URLs: only admins set them, and FTVP_ENDPOINT_URL_ALLOWLIST restricts them."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from evaluations.models import Endpoint, Result
from evaluations.providers.base import ProviderError
from evaluations.services.endpoints import endpoint_create, endpoint_provider, endpoint_update, url_allowed
from evaluations.services.runs import run_create
from tests.factories import CaseFactory, EndpointFactory, SuiteVersionFactory, UserFactory, strategy

ALLOW = ["https://api.openai.com/v1", "http://127.0.0.1:"]


@pytest.mark.parametrize(
    "url",
    [
        "https://api.openai.com/v1",
        "https://api.openai.com/v1/",
        "https://API.OpenAI.com:443/v1/chat",
        "http://127.0.0.1:8080/v1",
        "http://127.0.0.1/v1",
        "http://127.0.0.1:11434",
    ],
)
def test_urls_under_an_allowed_prefix_pass(url):
    assert url_allowed(url, ALLOW)


@pytest.mark.parametrize(
    "url",
    [
        "https://api.openai.com.evil.example/v1",  # the host only starts like an allowed one
        "https://api.openai.com@evil.example/v1",  # userinfo trick: the host is evil.example
        "https://evil.example/https://api.openai.com/v1",
        "http://api.openai.com/v1",  # another scheme
        "https://api.openai.com:8443/v1",  # another port
        "https://api.openai.com/v10",  # a path that only starts like the prefix's
        "https://api.openai.com/",  # above the prefix's path
        "https://api.openai.com/v1/../admin",
        "http://127.0.0.1.evil.example:8080/v1",
        "http://localhost:8080/v1",
        "ftp://127.0.0.1:21/",
        "not a url",
        "",
    ],
)
def test_urls_outside_every_prefix_are_refused(url):
    assert not url_allowed(url, ALLOW)


GATEWAY = ["https://gw.example.com/v1/openai"]


@pytest.mark.parametrize(
    "url",
    [
        "https://gw.example.com/v1/openai/%2e%2e/%2E%2E/admin",  # encoded dots decode to ..
        "https://gw.example.com/v1/openai/.%2e/admin",
        "https://gw.example.com/v1/openai/%2e/../admin",
        "https://gw.example.com/v1/openai/..%2fadmin",  # encoded slash: ../admin to some servers
        "https://gw.example.com/v1/openai/..%2Fadmin",
        "https://gw.example.com/v1/openai/..%5cadmin",  # encoded backslash
        "https://gw.example.com/v1/openai/..\\admin",  # backslash
        "https://gw.example.com/v1/openai/%252e%252e/admin",  # decoded twice: ..
        "https://gw.example.com/v1/openai/..;/admin",  # path parameter: .. to some servers
        "https://gw.example.com/v1/%6fpenai2",  # decoded: /v1/openai2, not below the prefix
    ],
)
def test_encoded_escapes_from_the_prefix_are_refused(url):
    assert not url_allowed(url, GATEWAY)


def test_encoded_paths_are_compared_decoded():
    assert url_allowed("https://gw.example.com/v1/%6Fpenai/chat", GATEWAY)  # %6F is "o"
    assert url_allowed("https://gw.example.com/v1/openai/model%20a", GATEWAY)
    assert url_allowed("https://gw.example.com/v1/openai", ["https://gw.example.com/v1/%6fpenai"])


def test_a_prefix_without_a_port_admits_only_the_default_port():
    assert url_allowed("https://example.com/v1", ["https://example.com"])
    assert not url_allowed("https://example.com:444/v1", ["https://example.com"])
    assert url_allowed("http://[::1]:8000/v1", ["http://[::1]:"])


@pytest.fixture
def allowlist(settings):
    settings.FTVP_ENDPOINT_URL_ALLOWLIST = list(ALLOW)
    return settings


def test_creating_an_endpoint_outside_the_allow_list_is_refused(db, allowlist):
    with pytest.raises(ValidationError) as caught:
        endpoint_create(name="evil", provider="openai", model="m", base_url="https://evil.example/v1")
    message = caught.value.message_dict["base_url"][0]
    assert "FTVP_ENDPOINT_URL_ALLOWLIST" in message and "https://evil.example/v1" in message
    assert not Endpoint.objects.filter(name="evil").exists()
    # an empty base URL means OpenAI's: allowed here
    assert endpoint_create(name="openai", provider="openai", model="m").base_url == ""
    assert endpoint_create(name="local", provider="openai", model="m", base_url="http://127.0.0.1:8000/v1")


def test_an_empty_allow_list_admits_any_url(db, settings):
    settings.FTVP_ENDPOINT_URL_ALLOWLIST = []
    assert endpoint_create(name="any", provider="openai", model="m", base_url="https://anything.example/v1")


def test_changing_the_base_url_is_checked_too(db, allowlist):
    endpoint = endpoint_create(name="e", provider="openai", model="m", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ValidationError) as caught:
        endpoint_update(endpoint=endpoint, base_url="https://evil.example/v1", api_key_env="")
    assert "FTVP_ENDPOINT_URL_ALLOWLIST" in caught.value.message_dict["base_url"][0]
    endpoint.refresh_from_db()
    assert endpoint.base_url == "http://127.0.0.1:9/v1"
    endpoint_update(endpoint=endpoint, price_in=3)  # other changes of an endpoint still work


def test_the_page_shows_the_field_error(client, db, allowlist):
    client.force_login(UserFactory(username="ada", roles=["admin"]))
    response = client.post(
        reverse("evaluations:endpoint-list"),
        {"name": "evil", "provider": "openai", "model": "m", "base_url": "https://evil.example/v1",
         "kind": "base", "price_in": 0, "price_out": 0, "price_hour": 0, "max_concurrency": 4,
         "timeout_seconds": 60},
    )  # fmt: skip
    assert response.status_code == 400  # the form again, with its errors
    assert "FTVP_ENDPOINT_URL_ALLOWLIST" in response.content.decode()
    assert not Endpoint.objects.filter(name="evil").exists()


def test_the_api_answers_400_naming_the_setting(client, db, allowlist):
    client.force_login(UserFactory(username="ada", roles=["admin"]))
    created = client.post(
        reverse("api-v1:endpoint-list"),
        {"name": "evil", "provider": "openai", "model": "m", "base_url": "https://evil.example/v1"},
        content_type="application/json",
    )
    assert created.status_code == 400
    assert "FTVP_ENDPOINT_URL_ALLOWLIST" in json.dumps(created.json())
    endpoint = EndpointFactory(name="old")
    patched = client.patch(
        reverse("api-v1:endpoint-detail", args=[endpoint.pk]),
        {"base_url": "https://evil.example/v1", "api_key_env": ""},
        content_type="application/json",
    )
    assert patched.status_code == 400 and "FTVP_ENDPOINT_URL_ALLOWLIST" in json.dumps(patched.json())


def test_the_command_line_is_refused_too(db, allowlist):
    with pytest.raises(CommandError, match="FTVP_ENDPOINT_URL_ALLOWLIST"):
        call_command(
            "add_endpoint",
            "evil",
            "--provider",
            "openai",
            "--model",
            "m",
            "--base-url",
            "https://evil.example/v1",
        )
    assert not Endpoint.objects.filter(name="evil").exists()


def test_an_endpoint_stored_before_the_setting_is_not_called(
    db, allowlist, fake_openai, task_queue, django_capture_on_commit_callbacks
):
    """A row saved when the list was empty (or wider): its calls end as readable error results."""
    endpoint = EndpointFactory(name="legacy", base_url=fake_openai.base_url.replace("127.0.0.1", "localhost"))
    with pytest.raises(ProviderError, match="FTVP_ENDPOINT_URL_ALLOWLIST"):
        endpoint_provider(endpoint)
    version = SuiteVersionFactory()
    for i in range(3):
        CaseFactory(version=version, key=f"c{i}", position=i, input=f"q{i}", expected="a")
    with django_capture_on_commit_callbacks(execute=True):
        run = run_create(suite_version=version, arms=[(endpoint, strategy("zero-shot"))])
    task_queue.drain()
    results = list(Result.objects.filter(arm__run=run))
    assert len(results) == 3
    assert all("FTVP_ENDPOINT_URL_ALLOWLIST" in r.error and "legacy" in r.error for r in results)
    assert fake_openai.requests == []


def test_roles_without_endpoint_connection_cannot_set_a_base_url_by_any_path(client, db):
    """The API's PATCH and POST are in test_role_matrix.py; here: the Endpoints page, the decision
    page's cost form, and the admin (where the URL is read-only even for a superuser)."""
    endpoint = EndpointFactory(name="guarded", base_url="http://127.0.0.1:9/v1")
    version = SuiteVersionFactory()
    for role in ("viewer", "editor", "reviewer", "approver"):
        client.force_login(UserFactory(username=f"no-conn-{role}", roles=[role]))
        page = client.post(
            reverse("evaluations:endpoint-list"),
            {"name": "new", "provider": "openai", "model": "m", "base_url": "https://evil.example/v1"},
        )
        assert page.status_code == 403, role
        client.post(
            reverse("evaluations:suite-decision-endpoint", args=[version.suite.pk, endpoint.pk]),
            {"price_in": 1, "price_out": 2, "price_hour": 0, "hosting_monthly": 0,
             "base_url": "https://evil.example/v1", "api_key_env": "OTHER"},
        )  # fmt: skip
        admin_page = client.post(
            f"/admin/evaluations/endpoint/{endpoint.pk}/change/", {"base_url": "https://evil.example/v1"}
        )
        assert admin_page.status_code == 302 and admin_page["Location"].startswith("/admin/login/")
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(root)
    client.post(
        f"/admin/evaluations/endpoint/{endpoint.pk}/change/",
        {"base_url": "https://evil.example/v1", "api_key_env": "OTHER", "name": "guarded"},
    )
    endpoint.refresh_from_db()
    assert endpoint.base_url == "http://127.0.0.1:9/v1" and endpoint.api_key_env == ""
    assert not Endpoint.objects.filter(name="new").exists()
