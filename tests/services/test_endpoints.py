from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from evaluations.models import Endpoint
from evaluations.services.endpoints import endpoint_create


@pytest.mark.parametrize(
    "pasted", ["sk-proj-abc123", "hf_AbCdEfGhIjKlMnOpQrStUvWxYz", "gsk_0123456789abcdef", "x" * 80]
)
def test_a_pasted_key_is_refused_and_never_stored(db, pasted):
    with pytest.raises(ValidationError) as err:
        endpoint_create(name="e", provider="openai", model="m", api_key_env=pasted)
    assert "NAME of an environment variable" in str(err.value)
    assert pasted not in str(err.value)
    assert not Endpoint.objects.exists()


def test_an_environment_variable_name_is_accepted(db):
    endpoint = endpoint_create(name="e", provider="openai", model="m", api_key_env="OPENAI_API_KEY")
    assert endpoint.api_key_env == "OPENAI_API_KEY"


def test_a_base_endpoint_is_only_for_fine_tuned_ones(db):
    base = endpoint_create(name="base", provider="local", model="smollm2-135m-instruct")
    with pytest.raises(ValidationError, match="only a fine-tuned endpoint"):
        endpoint_create(name="x", provider="local", model="m", base_endpoint=base)


def test_an_update_changes_only_what_it_is_given(db):
    from evaluations.services.endpoints import endpoint_update

    endpoint = endpoint_create(name="e", provider="openai", model="m", price_in="1.5", api_key_env="KEY_A")
    endpoint_update(
        endpoint=endpoint, model=" gpt-4o ", price_out="2", api_key_env="KEY_B", params={"top_p": 1}
    )
    endpoint.refresh_from_db()
    assert (endpoint.model, endpoint.api_key_env, endpoint.params) == ("gpt-4o", "KEY_B", {"top_p": 1})
    assert float(endpoint.price_in) == 1.5 and float(endpoint.price_out) == 2


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"api_key_env": "sk-proj-abc123"}, "api_key_env"),
        ({"model": ""}, "model"),
        ({"price_in": "-1"}, "price_in"),
        ({"training_cost": "5"}, "training_cost"),
        ({"provider": "local"}, "provider"),
        ({"name": "taken"}, "name"),
    ],
)
def test_an_update_keeps_the_rules_of_create(db, changes, field):
    from evaluations.services.endpoints import endpoint_update

    endpoint_create(name="taken", provider="openai", model="m")
    endpoint = endpoint_create(name="e", provider="openai", model="m", price_in="1")
    with pytest.raises(ValidationError) as err:
        endpoint_update(endpoint=endpoint, **changes)
    assert field in err.value.message_dict
    assert "sk-proj-abc123" not in str(err.value)
    endpoint = Endpoint.objects.get(pk=endpoint.pk)
    assert (endpoint.name, endpoint.model, float(endpoint.price_in), endpoint.api_key_env) == (
        "e",
        "m",
        1.0,
        "",
    )


def test_an_endpoint_cannot_be_its_own_base(db):
    from evaluations.services.endpoints import endpoint_update

    base = endpoint_create(name="base", provider="local", model="m")
    tuned = endpoint_create(name="ft", provider="local", model="m", kind="fine_tuned", base_endpoint=base)
    tuned.base_endpoint = tuned
    with pytest.raises(ValidationError, match="its own base"):
        endpoint_update(endpoint=tuned, name="ft2")


# --- which variables an endpoint may name ------------------------------------------------------------

RESERVED = ["FTVP_SECRET_KEY", "EMAIL_HOST_PASSWORD", "DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY",
            "CELERY_BROKER_URL", "FTVP_DB_PASSWORD"]  # fmt: skip


@pytest.mark.parametrize("name", RESERVED)
def test_ftvps_own_settings_are_never_an_api_key_variable(db, name):
    from evaluations.services.endpoints import endpoint_update

    with pytest.raises(ValidationError) as err:
        endpoint_create(name="e", provider="openai", model="m", api_key_env=name)
    assert "one of ftvp's own settings" in " ".join(err.value.message_dict["api_key_env"])
    endpoint = endpoint_create(name="e", provider="openai", model="m", api_key_env="OPENAI_API_KEY")
    with pytest.raises(ValidationError, match="one of ftvp's own settings"):
        endpoint_update(endpoint=endpoint, api_key_env=name)
    assert Endpoint.objects.get().api_key_env == "OPENAI_API_KEY"


def _names_ftvp_reads() -> set[str]:
    """Every variable ftvp's code, its .env.example and its docker-compose.yml read."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    read = re.compile(r'(?:environ\.get|environ\[|getenv|env_bool|env_int|env_list)\(?\s*"([A-Z][A-Z0-9_]*)"')
    names: set[str] = set()
    for path in [*root.glob("ftvp_site/*.py"), *root.glob("evaluations/**/*.py"), *root.glob("workers/*.py")]:
        names |= set(read.findall(path.read_text()))
    names.discard("PYTEST_VERSION")  # set by pytest, read to tell a test run
    example = (root / ".env.example").read_text()
    # The two documented variables a user names themselves (an endpoint's key, a channel's URL).
    names |= set(re.findall(r"(?m)^#?\s*([A-Z][A-Z0-9_]*)=", example)) - {
        "OPENAI_API_KEY",
        "FTVP_SLACK_WEBHOOK_URL",
    }
    names |= set(re.findall(r"\$\{(FTVP_[A-Z0-9_]*)", (root / "docker-compose.yml").read_text()))
    return names


def test_the_reserved_list_covers_every_variable_ftvp_reads():
    from evaluations.services.endpoints import env_reserved

    names = _names_ftvp_reads()
    assert {"FTVP_SECRET_KEY", "DATABASE_URL", "EMAIL_HOST_PASSWORD", "FTVP_DB_PASSWORD"} <= names
    assert sorted(n for n in names if not env_reserved(n)) == []


def test_a_new_base_url_needs_the_key_variable_again(db):
    from evaluations.services.endpoints import endpoint_update

    endpoint = endpoint_create(
        name="prod",
        provider="openai",
        model="m",
        base_url="https://api.example.org/v1",
        api_key_env="OPENAI_API_KEY",
    )
    with pytest.raises(ValidationError) as err:
        endpoint_update(endpoint=endpoint, base_url="https://elsewhere.example.net/v1")
    said = " ".join(err.value.message_dict["api_key_env"])
    assert "give api_key_env again" in said and "OPENAI_API_KEY would be sent to the new host" in said
    assert Endpoint.objects.get().base_url == "https://api.example.org/v1"
    # The same URL given again, or other fields, need nothing more.
    endpoint_update(endpoint=Endpoint.objects.get(), base_url=" https://api.example.org/v1 ", model="m2")
    # Given again (the same or another variable, or none), the change is made.
    endpoint = endpoint_update(
        endpoint=Endpoint.objects.get(),
        base_url="https://elsewhere.example.net/v1",
        api_key_env="OPENAI_API_KEY",
    )
    assert (endpoint.base_url, endpoint.api_key_env) == ("https://elsewhere.example.net/v1", "OPENAI_API_KEY")
    endpoint = endpoint_update(endpoint=endpoint, base_url="http://localhost:11434/v1", api_key_env="")
    assert (endpoint.base_url, endpoint.api_key_env) == ("http://localhost:11434/v1", "")
    # Without a key variable, a URL changes on its own.
    endpoint = endpoint_update(endpoint=endpoint, base_url="http://127.0.0.1:8080/v1")
    assert endpoint.base_url == "http://127.0.0.1:8080/v1"


def test_an_allow_list_narrows_the_variables_endpoints_may_name(db, settings):
    settings.FTVP_ENV_ALLOWLIST = ["OPENAI_API_KEY", "FTVP_SECRET_KEY"]
    with pytest.raises(ValidationError, match="not in FTVP_ENV_ALLOWLIST"):
        endpoint_create(name="e", provider="openai", model="m", api_key_env="OTHER_KEY")
    with pytest.raises(ValidationError, match="one of ftvp's own settings"):  # never admits a reserved one
        endpoint_create(name="e", provider="openai", model="m", api_key_env="FTVP_SECRET_KEY")
    assert endpoint_create(name="e", provider="openai", model="m", api_key_env="OPENAI_API_KEY").pk


def test_a_webhook_url_variable_is_never_an_api_key_variable(db):
    from evaluations.services.alerts import alert_channel_create

    alert_channel_create(name="chat", kind="slack", url_env="FTVP_SLACK_WEBHOOK_URL")
    with pytest.raises(ValidationError) as err:
        endpoint_create(name="e", provider="openai", model="m", api_key_env="FTVP_SLACK_WEBHOOK_URL")
    assert "holds an alert channel's URL" in " ".join(err.value.message_dict["api_key_env"])
    endpoint_create(name="e", provider="openai", model="m", api_key_env="OPENAI_API_KEY")
    with pytest.raises(ValidationError) as err:
        alert_channel_create(name="hook", kind="webhook", url_env="OPENAI_API_KEY")
    assert "holds an endpoint's API key" in " ".join(err.value.message_dict["url_env"])


def test_a_reserved_variable_saved_before_the_rule_is_never_sent(db, monkeypatch):
    from evaluations.providers.base import ProviderError
    from evaluations.services.endpoints import endpoint_api_key

    monkeypatch.setenv("FTVP_SECRET_KEY", "the-signing-key-0123456789abcdef0123456789")
    endpoint = endpoint_create(name="e", provider="openai", model="m")
    Endpoint.objects.filter(pk=endpoint.pk).update(api_key_env="FTVP_SECRET_KEY")
    endpoint.refresh_from_db()
    with pytest.raises(ProviderError, match="one of ftvp's own settings") as err:
        endpoint_api_key(endpoint)
    assert "the-signing-key" not in str(err.value)
