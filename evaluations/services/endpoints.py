"""Endpoint writes, and turning an Endpoint row into a Provider (the API key read from env here only)."""

from __future__ import annotations

import json
import os
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from evaluations import jsonsafe
from evaluations.importers.base import json_type
from evaluations.models import AlertChannel, Endpoint, EndpointKind, Provider
from evaluations.providers.base import ProviderError
from evaluations.services.audit import (
    audit_record,
    audit_update,
    secret_name,
    snapshot,
    stored_snapshot,
    url_secrets,
)

# Environment variable names as people write them (OPENAI_API_KEY): upper case, short. Anything else
# (hf_..., gsk_..., sk-...) is more likely a pasted key, which must never be stored.
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,63}$")

# Variables an endpoint (`api_key_env`) or an alert channel (`url_env`) may never name. An endpoint
# sends its variable's value as `Authorization: Bearer <value>` to its base_url, and a channel POSTs
# to the URL its variable holds: naming one of ftvp's own settings would hand ftvp's secrets (the
# signing key, the database and broker URLs with their passwords, the mail login) to whichever host
# the endpoint or the value points at. Every variable ftvp_site/settings.py, docker-compose.yml and
# the demo read is listed (tests/services/test_endpoints.py checks the list against those files),
# plus the usual Django, Celery and PostgreSQL ones. FTVP_ENV_ALLOWLIST (a setting) can narrow the
# names allowed further; it never admits a reserved one.
RESERVED_ENV = frozenset(
    {
        # ftvp's settings (ftvp_site/settings.py, .env.example) and deployment (docker-compose.yml)
        "FTVP_SECRET_KEY", "FTVP_DB_PASSWORD", "FTVP_DEMO_PASSWORD", "FTVP_DEMO_ADDR", "FTVP_DEBUG",
        "FTVP_ALLOWED_HOSTS", "FTVP_CSRF_TRUSTED_ORIGINS", "FTVP_DATA_DIR", "FTVP_SQLITE_PATH",
        "FTVP_TEST_SQLITE", "FTVP_TIME_ZONE", "FTVP_STATIC_ROOT", "FTVP_MEDIA_ROOT",
        "FTVP_MAX_UPLOAD_BYTES", "FTVP_SECURE_COOKIES", "FTVP_VISIBILITY_TIMEOUT", "FTVP_BROKER_PREFIX",
        "FTVP_BATCH_SIZE", "FTVP_STALL_SECONDS", "FTVP_LIVE_SECONDS", "FTVP_WORKER_BEAT_SECONDS",
        "FTVP_EMBEDDER",
        "FTVP_JUDGE_ENDPOINT", "FTVP_LOCAL_MAX_NEW_TOKENS", "FTVP_LOCAL_BATCH", "FTVP_HTTP_RETRIES",
        "FTVP_FINETUNE_POLL_SECONDS",
        "FTVP_CAPTURE_DROP_FIELDS", "FTVP_CAPTURE_MASK", "FTVP_CAPTURE_CACHE_SECONDS",
        "FTVP_TRAFFIC_RETENTION_DAYS", "FTVP_SPOOL_DIR", "FTVP_PROXY_PORT", "FTVP_DEMO_PROXY_ADDR",
        "FTVP_TREND_RUNS", "FTVP_BASE_URL", "FTVP_WEBHOOK_TIMEOUT", "FTVP_LOG_LEVEL",
        "FTVP_ENV_ALLOWLIST", "FTVP_IMAGE", "FTVP_WEB_PORT",
        "FTVP_HTTPS", "FTVP_HSTS_SECONDS", "FTVP_HSTS_INCLUDE_SUBDOMAINS", "FTVP_HSTS_PRELOAD",
        "FTVP_SSL_REDIRECT", "FTVP_PROXY_SSL_HEADER", "FTVP_TRUSTED_PROXIES", "FTVP_LOGIN_FAILURE_LIMIT",
        "FTVP_LOGIN_WINDOW_SECONDS", "FTVP_LOGIN_ADDRESS_FAILURE_LIMIT", "FTVP_ENDPOINT_URL_ALLOWLIST",
        "DATABASE_URL", "REDIS_URL",
        "EMAIL_HOST", "EMAIL_PORT", "EMAIL_HOST_USER", "EMAIL_HOST_PASSWORD", "EMAIL_USE_TLS",
        "EMAIL_TIMEOUT", "EMAIL_BACKEND", "DEFAULT_FROM_EMAIL",
        # Django, Celery and PostgreSQL secrets by their usual names
        "SECRET_KEY", "BROKER_URL", "RESULT_BACKEND", "PGPASSWORD", "PGPASSFILE", "POSTGRES_PASSWORD",
    }
)  # fmt: skip
RESERVED_ENV_PREFIXES = ("DJANGO_", "CELERY_")

# What each field's variable holds, for the messages.
_ENV_FIELDS = {
    "api_key_env": ("OPENAI_API_KEY", "the key"),
    "url_env": ("FTVP_SLACK_WEBHOOK_URL", "the URL"),
}


def env_reserved(name: str) -> bool:
    """True when `name` is one of ftvp's own settings (or a framework's secret)."""
    return name in RESERVED_ENV or name.startswith(RESERVED_ENV_PREFIXES)


def env_name_check(name: str, *, field: str) -> str:
    """`name` stripped, when an endpoint's key variable (field `api_key_env`) or a channel's URL
    variable (field `url_env`) may be it: a variable name (never a value: what fails is not echoed),
    none of ftvp's own settings (RESERVED_ENV), within FTVP_ENV_ALLOWLIST when that is set, and not
    a variable the other kind already uses (an endpoint would send a webhook URL to its host as its
    key). "" stays "" (no variable). ValidationError naming `field` otherwise."""
    name = (name or "").strip()
    if not name:
        return ""
    example, holds = _ENV_FIELDS[field]
    if not ENV_NAME.match(name):
        raise ValidationError(
            {
                field: f"give the NAME of an environment variable (e.g. {example}: capitals, digits "
                f"and _), never {holds} itself"
            }
        )
    if env_reserved(name):
        raise ValidationError(
            {
                field: f"{name} is one of ftvp's own settings (or a framework's secret): its value "
                f"would be sent to another host; put {holds} in a variable of its own, e.g. {example}"
            }
        )
    allowed = settings.FTVP_ENV_ALLOWLIST
    if allowed and name not in allowed:
        raise ValidationError(
            {field: f"{name} is not in FTVP_ENV_ALLOWLIST (the variables endpoints and alerts may use)"}
        )
    if field == "api_key_env":
        clash = AlertChannel.objects.filter(url_env=name).exists()
    else:
        clash = Endpoint.objects.filter(api_key_env=name).exists()
    if clash:
        other = "an alert channel's URL" if field == "api_key_env" else "an endpoint's API key"
        raise ValidationError(
            {field: f"{name} holds {other}: give {holds} a variable of its own, e.g. {example}"}
        )
    return name


KEEP_KEYS_OUT = (
    "ftvp stores it in its database and audit log: put the key in an environment variable of the "
    "workers and give the variable's NAME as api_key_env"
)


def _secret_paths(value, path: str) -> list[str]:
    """Where in a params value a secret would be stored: secret-like keys (api_key, Authorization,
    access_token, ...) at any depth, and URLs that carry a user:password@ or a key parameter."""
    if isinstance(value, dict):
        found = []
        for key, item in value.items():
            where = f"{path}.{key}"
            if secret_name(key) and item not in (None, "", [], {}):
                found.append(where)
            else:
                found.extend(_secret_paths(item, where))
        return found
    if isinstance(value, list | tuple):
        return [p for i, item in enumerate(value) for p in _secret_paths(item, f"{path}[{i}]")]
    if isinstance(value, str) and "://" in value and url_secrets(value):
        return [path]
    return []


def secrets_check(*, base_url: str | None = None, params: dict | None = None) -> None:
    """Refuse a base_url or params that would store a secret (none is ever echoed back)."""
    if base_url:
        found = url_secrets(base_url)
        if found:
            raise ValidationError(
                {"base_url": f"the URL carries a secret ({', '.join(found)}); {KEEP_KEYS_OUT}"}
            )
    if params:
        found = _secret_paths(params, "params")
        if found:
            where = ", ".join(found[:5])
            raise ValidationError(
                {"params": f"{where} looks like an API key, token or password; {KEEP_KEYS_OUT}"}
            )


# --- generation parameters ----------------------------------------------------------------------------
#
# What an endpoint's `params` may hold: OpenAI's chat completion parameters, with the types and ranges
# the API accepts (https://platform.openai.com/docs/api-reference/chat/create; the SDK's
# types/chat/completion_create_params.py), so that a value the model would refuse (max_tokens -1,
# temperature 1e308) is refused here, naming it, instead of failing every call of a run. Other keys
# (top_k, min_p, repetition_penalty... that vLLM, Ollama or llama.cpp read) are sent as they are and
# listed back (`params_warnings`). Every number must also fit JSON and the database (jsonsafe).

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Set by ftvp on every call: a parameter of that name would be ignored (model) or break it.
SET_BY_FTVP = {
    "model": "the endpoint's model field sets it",
    "messages": "the strategy builds them from each case",
}
# What the local provider reads (providers/local.py); it ignores any other parameter.
LOCAL_PARAMS = ("temperature", "max_tokens", "top_p", "seed")
UNKNOWN_PARAMS = "unknown parameters passed as they are: {names}"
LOCAL_IGNORED = "parameters the local model ignores: {names}"


def _got(value: object) -> str:
    """A value for a message: numbers and booleans as written, anything else by its JSON type only
    (a string may be a pasted secret, never echoed)."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    return f"a {json_type(value)}"


def _number(low: float, high: float, *, integer: bool = False):
    what = "an integer" if integer else "a number"
    if high == INT64_MAX and low != INT64_MIN:
        wanted = f"{what} of at least {low}"
    elif (low, high) == (INT64_MIN, INT64_MAX):
        wanted = f"{what} between -2^63 and 2^63-1 (64-bit)"
    else:
        wanted = f"{what} between {low} and {high}"

    def check(value):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return value, f"must be {wanted}; got {_got(value)}"
        if integer and isinstance(value, float):
            if not value.is_integer():
                return value, f"must be {wanted}; got {_got(value)}"
            if abs(value) <= 2**53:  # 256.0 is 256; a larger float is no exact integer: refused below
                value = int(value)
        if not low <= value <= high or (integer and isinstance(value, float)):
            return value, f"must be {wanted}; got {_got(value)}"
        return value, None

    return check


def _of_type(types: type | tuple[type, ...], wanted: str):
    def check(value):
        if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
            return value, f"must be {wanted}; got {_got(value)}"
        if not isinstance(value, types):
            return value, f"must be {wanted}; got {_got(value)}"
        return value, None

    return check


def _stop(value):
    if isinstance(value, str):
        return value, None
    if isinstance(value, list) and len(value) <= 4 and all(isinstance(v, str) for v in value):
        return value, None
    if isinstance(value, list) and len(value) > 4:
        return value, f"may list up to 4 stop sequences; got {len(value)}"
    return value, f"must be a string or a list of up to 4 strings; got {_got(value)}"


def _logit_bias(value):
    if not isinstance(value, dict):
        return value, f"must be an object of token ids and biases between -100 and 100; got {_got(value)}"
    for token, bias in value.items():
        if not str(token).isdigit():
            return value, f"{token!r} is not a token id (a whole number, as a string key)"
        if isinstance(bias, bool) or not isinstance(bias, int | float) or not -100 <= bias <= 100:
            return value, f"the bias of token {token} must be a number between -100 and 100; got {_got(bias)}"
    return value, None


def _string_map(value):
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        return value, f"must be an object of strings (up to 16 keys); got {_got(value)}"
    if len(value) > 16:
        return value, f"may hold up to 16 keys; got {len(value)}"
    return value, None


def _string_list(value):
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return value, f"must be a list of strings; got {_got(value)}"
    return value, None


def _response_format(value):
    kinds = ("text", "json_object", "json_schema")
    if not isinstance(value, dict) or value.get("type") not in kinds:
        return value, f"must be an object whose type is one of {', '.join(kinds)}"
    return value, None


def _not_streamed(value):
    if value is False:
        return value, None
    return value, "ftvp reads whole answers: leave stream out (or false)"


_STRING = _of_type(str, "a string")
_BOOLEAN = _of_type(bool, "true or false")
_OBJECT = _of_type(dict, "an object")
_LIST = _of_type(list, "a list")
_STRING_OR_OBJECT = _of_type((str, dict), "a string or an object")

# name -> (check, may be null)
OPENAI_PARAMS = {
    "temperature": (_number(0, 2), True),
    "top_p": (_number(0, 1), True),
    "max_tokens": (_number(1, INT64_MAX, integer=True), True),
    "max_completion_tokens": (_number(1, INT64_MAX, integer=True), True),
    "presence_penalty": (_number(-2, 2), True),
    "frequency_penalty": (_number(-2, 2), True),
    "n": (_number(1, 128, integer=True), True),
    "seed": (_number(INT64_MIN, INT64_MAX, integer=True), True),
    "logprobs": (_BOOLEAN, True),
    "top_logprobs": (_number(0, 20, integer=True), True),
    "stop": (_stop, True),
    "logit_bias": (_logit_bias, True),
    "response_format": (_response_format, False),
    "reasoning_effort": (_STRING, True),
    "verbosity": (_STRING, True),
    "service_tier": (_STRING, True),
    "user": (_STRING, False),
    "prompt_cache_key": (_STRING, False),
    "safety_identifier": (_STRING, False),
    "store": (_BOOLEAN, True),
    "parallel_tool_calls": (_BOOLEAN, False),
    "metadata": (_string_map, True),
    "modalities": (_string_list, True),
    "tools": (_LIST, False),
    "functions": (_LIST, False),
    "tool_choice": (_STRING_OR_OBJECT, False),
    "function_call": (_STRING_OR_OBJECT, False),
    "audio": (_OBJECT, True),
    "prediction": (_OBJECT, True),
    "web_search_options": (_OBJECT, False),
    "stream_options": (_OBJECT, True),
    "stream": (_not_streamed, True),
}

NUMBER_REMEDY = "give a finite number"
EXAMPLE_PARAMS = '{"temperature": 0, "max_tokens": 256}'


def params_check(params: object) -> dict:
    """An endpoint's generation parameters, checked: a JSON object whose numbers JSON and the database
    can hold, the OpenAI parameters it sets within their ranges (whole floats such as 256.0 become
    integers). ValidationError naming every offending parameter (``params.temperature``) otherwise;
    unknown keys are kept (see `params_warnings`)."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise ValidationError({"params": f"must be an object such as {EXAMPLE_PARAMS}; got {_got(params)}"})
    errors: dict[str, list[str]] = {}
    for path, _, problem in jsonsafe.unsafe_numbers(params):
        errors.setdefault(jsonsafe.dotted(path, "params"), []).append(f"{problem}; {NUMBER_REMEDY}")
    checked = {}
    for name, value in params.items():
        field = f"params.{name}"
        if not isinstance(name, str):
            errors.setdefault("params", []).append(f"parameter names are strings; got {_got(name)}")
            continue
        if field in errors or any(key.startswith((f"{field}.", f"{field}[")) for key in errors):
            continue
        if name in SET_BY_FTVP:
            errors[field] = [f"is not a parameter: {SET_BY_FTVP[name]}; remove it"]
            continue
        check, nullable = OPENAI_PARAMS.get(name, (None, True))
        if check is not None and value is None and not nullable:
            errors[field] = ["must not be null: give a value or leave it out"]
            continue
        if check is not None and value is not None:
            value, problem = check(value)
            if problem:
                errors[field] = [problem]
                continue
        checked[name] = value
    if checked.get("top_logprobs") is not None and checked.get("logprobs") is not True:
        errors.setdefault("params.top_logprobs", []).append("needs logprobs: true as well")
    if errors:
        raise ValidationError(errors)
    return checked


def params_warnings(params: dict | None, provider: str = Provider.OPENAI) -> list[str]:
    """What to tell whoever set `params`: parameters ftvp does not know, sent to the server as they
    are (top_k for vLLM, ...), or those the local model does not read."""
    names = sorted(str(name) for name in (params or {}))
    if provider == Provider.LOCAL:
        ignored = [name for name in names if name not in LOCAL_PARAMS]
        return [LOCAL_IGNORED.format(names=", ".join(ignored))] if ignored else []
    unknown = [name for name in names if name not in OPENAI_PARAMS and name not in SET_BY_FTVP]
    return [UNKNOWN_PARAMS.format(names=", ".join(unknown))] if unknown else []


_DEFAULT_PORTS = {"http": 80, "https": 443}
_ENCODED_SEPARATOR = re.compile(r"%(2f|5c)", re.IGNORECASE)  # an encoded slash or backslash
_BARE_PORT = re.compile(r"^(https?://[^/]*):(/.*)?$", re.IGNORECASE)  # http://127.0.0.1: (any port)


def _url_parts(url: str) -> tuple[str, str, int, str, str] | None:
    """(scheme, host, port, decoded path, raw path) of an http(s) URL without userinfo, lower-cased
    where URLs are case-insensitive, the port made explicit; None when `url` is not one."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        return None
    host = parts.hostname.lower().rstrip(".")
    return scheme, host, port or _DEFAULT_PORTS[scheme], unquote(parts.path), parts.path


def url_allowed(url: str, allowlist: list[str]) -> bool:
    """True when `url` is under one of the `allowlist` prefixes: the same scheme, host and port
    (parsed, so https://api.openai.com.evil.example or https://api.openai.com@evil.example never
    match https://api.openai.com/), and a path that is the prefix's path or below it, segment by
    segment (/v1 admits /v1 and /v1/..., not /v10), compared percent-decoded: a "." or ".." segment
    (%2e%2e too), an encoded slash or backslash (%2f, %5c), a backslash or a doubly encoded path is
    refused. A prefix without a port admits only the scheme's default port; one that ends with a
    bare ":" (http://127.0.0.1:) admits any port."""
    target = _url_parts(url)
    if target is None:
        return False
    scheme, host, port, decoded, raw = target  # decoded: the path as the server reads it
    if "\\" in decoded or _ENCODED_SEPARATOR.search(raw) or unquote(decoded) != decoded:
        return False  # ..%2fadmin, a backslash, or %252e%252e decoded twice may be read as a separator
    if any(segment.split(";")[0] in (".", "..") for segment in decoded.split("/")):
        return False  # /v1/../admin, /v1/%2e%2e/admin or /v1/..;/admin would leave the prefix's path
    for prefix in allowlist:
        prefix = prefix.strip()
        bare_port = _BARE_PORT.match(prefix)
        if bare_port:
            prefix = bare_port.group(1) + (bare_port.group(2) or "")
        allowed = _url_parts(prefix)
        if allowed is None or allowed[:2] != (scheme, host) or (not bare_port and allowed[2] != port):
            continue
        base = allowed[3].rstrip("/")
        if decoded == base or decoded.startswith(base + "/"):
            return True
    return False


def base_url_check(base_url: str, *, field: str = "base_url") -> None:
    """Refuse an OpenAI-compatible base URL outside FTVP_ENDPOINT_URL_ALLOWLIST (when set); an empty
    one means OpenAI's own address."""
    from evaluations.providers.openai_compat import OPENAI_BASE_URL

    allowlist = settings.FTVP_ENDPOINT_URL_ALLOWLIST
    url = (base_url or "").strip() or OPENAI_BASE_URL
    if allowlist and not url_allowed(url, allowlist):
        raise ValidationError(
            {
                field: f"{url} is not under any of the URL prefixes FTVP_ENDPOINT_URL_ALLOWLIST "
                f"allows ({', '.join(allowlist)}); use one of them, or ask whoever runs ftvp to add it"
            }
        )


def _decimal(value: object, field: str) -> Decimal:
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValidationError({field: f"{value!r} is not a number"}) from None
    if result < 0:
        raise ValidationError({field: "must not be negative"})
    return result


def _optional_decimal(value: object, field: str) -> Decimal | None:
    """None (or an empty string) means unknown."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return _decimal(value, field)


@transaction.atomic
def endpoint_create(
    *,
    name: str,
    provider: str,
    model: str,
    base_url: str = "",
    api_key_env: str = "",
    kind: str = EndpointKind.BASE,
    base_endpoint: Endpoint | None = None,
    price_in: object = 0,
    price_out: object = 0,
    price_hour: object = 0,
    price_train: object = 0,
    training_cost: object = None,
    hosting_monthly: object = 0,
    adapter: str = "",
    max_concurrency: int = 4,
    timeout_seconds: int = 60,
    params: dict | None = None,
    user=None,
) -> Endpoint:
    api_key_env = env_name_check(api_key_env, field="api_key_env")
    secrets_check(base_url=base_url, params=params)
    params = params_check(params)
    if provider == Provider.OPENAI:
        base_url_check(base_url)
    training = _optional_decimal(training_cost, "training_cost")
    endpoint = Endpoint(
        name=name.strip(),
        provider=provider,
        model=model.strip(),
        base_url=base_url.strip(),
        api_key_env=api_key_env,
        kind=kind,
        base_endpoint=base_endpoint,
        price_in=_decimal(price_in, "price_in"),
        price_out=_decimal(price_out, "price_out"),
        price_hour=_decimal(price_hour, "price_hour"),
        price_train=_decimal(price_train, "price_train"),
        training_cost=training,
        hosting_monthly=_decimal(hosting_monthly, "hosting_monthly"),
        adapter=adapter,
        max_concurrency=max_concurrency,
        timeout_seconds=timeout_seconds,
        params=params,
    )
    _check(endpoint)
    endpoint.full_clean()
    endpoint.save()
    endpoint.refresh_from_db()
    audit_record(actor=user, action="endpoint.create", obj=endpoint, after=snapshot(endpoint, AUDITED))
    return endpoint


def _check(endpoint: Endpoint) -> None:
    """The rules an endpoint keeps beyond its field types (a fine-tuned model's base, adapter, costs)."""
    if endpoint.provider == Provider.OPENAI and not endpoint.model:
        raise ValidationError({"model": "an OpenAI-compatible endpoint needs a model name"})
    if endpoint.kind == EndpointKind.BASE and endpoint.base_endpoint_id is not None:
        raise ValidationError({"base_endpoint": "only a fine-tuned endpoint has a base endpoint"})
    if endpoint.base_endpoint_id is not None and endpoint.base_endpoint_id == endpoint.pk:
        raise ValidationError({"base_endpoint": "an endpoint cannot be its own base endpoint"})
    if endpoint.adapter and (endpoint.provider != Provider.LOCAL or endpoint.kind != EndpointKind.FINE_TUNED):
        raise ValidationError({"adapter": "only a local fine-tuned endpoint loads a LoRA adapter"})
    if endpoint.adapter:
        adapter_path(endpoint.adapter)  # inside the media directory's adapters/, or refused
    if endpoint.kind == EndpointKind.BASE and endpoint.training_cost:
        raise ValidationError({"training_cost": "only a fine-tuned endpoint has a training cost"})
    if endpoint.kind != EndpointKind.FINE_TUNED:
        endpoint.training_cost = None


# What an endpoint's audit events record: names of key variables, never a key (none is stored).
AUDITED = (
    "name", "provider", "model", "base_url", "api_key_env", "kind", "base_endpoint", "params", "price_in",
    "price_out", "price_hour", "price_train", "training_cost", "hosting_monthly", "adapter",
    "max_concurrency", "timeout_seconds",
)  # fmt: skip


# What `endpoint_update` may change. The provider, kind, base endpoint and adapter make the endpoint
# another model: register a new endpoint for that, so past runs keep saying what they ran.
UPDATABLE = (
    "name", "model", "base_url", "api_key_env", "params", "price_in", "price_out", "price_hour",
    "price_train", "training_cost", "hosting_monthly", "max_concurrency", "timeout_seconds",
)  # fmt: skip


@transaction.atomic
def endpoint_update(*, endpoint: Endpoint, user=None, **changes) -> Endpoint:
    """Change some of an endpoint's fields (any of UPDATABLE), with the rules of `endpoint_create`."""
    before = stored_snapshot(endpoint, AUDITED)
    unknown = sorted(set(changes) - set(UPDATABLE))
    if unknown:
        raise ValidationError(
            {unknown[0]: "cannot be changed on an existing endpoint; register a new endpoint instead"}
        )
    if "api_key_env" in changes:
        changes["api_key_env"] = env_name_check(changes["api_key_env"], field="api_key_env")
    secrets_check(base_url=changes.get("base_url"), params=changes.get("params"))
    for field in ("name", "model", "base_url"):
        if field in changes:
            changes[field] = (changes[field] or "").strip()
    new_url = "base_url" in changes and changes["base_url"] != endpoint.base_url
    if new_url and endpoint.provider == Provider.OPENAI:
        base_url_check(changes["base_url"])
    if new_url and endpoint.api_key_env and "api_key_env" not in changes:
        # Else a new URL alone would send the key (e.g. a production one) to whatever host it names.
        raise ValidationError(
            {
                "api_key_env": f"give api_key_env again when base_url changes: the key in "
                f"{endpoint.api_key_env} would be sent to the new host (send it unchanged to confirm, "
                "or empty to send no key)"
            }
        )
    for field in ("price_in", "price_out", "price_hour", "price_train", "hosting_monthly"):
        if field in changes:
            changes[field] = _decimal(changes[field], field)
    if "training_cost" in changes:
        changes["training_cost"] = _optional_decimal(changes["training_cost"], "training_cost")
    if "params" in changes:
        changes["params"] = params_check(changes["params"])
    for field, value in changes.items():
        setattr(endpoint, field, value)
    _check(endpoint)
    endpoint.full_clean()
    endpoint.save(update_fields=list(changes) or None)
    audit_update(actor=user, action="endpoint.update", obj=endpoint, before=before, fields=AUDITED)
    return endpoint


def adapter_path(adapter: str) -> Path:
    """The folder of a fine-tune's adapter: `adapter` is relative to MEDIA_ROOT/adapters and may not
    leave it (an absolute path or `..` would let an endpoint load any folder on the worker)."""
    root = (Path(settings.MEDIA_ROOT) / "adapters").resolve()
    path = (Path(settings.MEDIA_ROOT) / adapter).resolve()
    if Path(adapter).is_absolute() or root not in path.parents:
        raise ValidationError(
            {"adapter": f"{adapter!r} is not a folder under the media directory's adapters/"}
        )
    return path


def _provider_adapter(endpoint: Endpoint) -> Path | None:
    if not endpoint.adapter:
        return None
    try:
        return adapter_path(endpoint.adapter)
    except ValidationError as exc:
        raise ProviderError(f"endpoint {endpoint.name!r}: {' '.join(exc.messages)}") from None


def endpoint_api_key(endpoint: Endpoint) -> str | None:
    if not endpoint.api_key_env:
        return None
    if env_reserved(endpoint.api_key_env):  # a row saved before the rule: still never sent
        raise ProviderError(
            f"endpoint {endpoint.name!r}: {endpoint.api_key_env} is one of ftvp's own settings, never "
            "sent as an API key; set api_key_env to the variable holding the provider's key"
        )
    key = os.environ.get(endpoint.api_key_env)
    if not key:
        raise ProviderError(
            f"endpoint {endpoint.name!r}: environment variable {endpoint.api_key_env} "
            "is not set in the worker"
        )
    return key


def endpoint_provider(endpoint: Endpoint):
    """The Provider that calls this endpoint."""
    if endpoint.provider == Provider.LOCAL:
        from evaluations.providers.local import LocalProvider

        return LocalProvider(
            model=endpoint.model,
            adapter=_provider_adapter(endpoint),
            price_hour=float(endpoint.price_hour),
            batch_size=settings.FTVP_LOCAL_BATCH,
            max_new_tokens=settings.FTVP_LOCAL_MAX_NEW_TOKENS,
        )
    from evaluations.providers.limits import get_limiter
    from evaluations.providers.openai_compat import OpenAICompatProvider

    try:  # a row stored before the allow-list was set (or narrowed) is never called
        base_url_check(endpoint.base_url)
    except ValidationError as exc:
        raise ProviderError(f"endpoint {endpoint.name!r}: {' '.join(exc.messages)}") from None
    prefix = (
        settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", "") if settings.REDIS_URL else ""
    )
    return OpenAICompatProvider(
        model=endpoint.model,
        base_url=endpoint.base_url or None,
        api_key=endpoint_api_key(endpoint),
        timeout=float(endpoint.timeout_seconds),
        max_retries=settings.FTVP_HTTP_RETRIES,
        max_concurrency=endpoint.max_concurrency,
        limiter=get_limiter(settings.REDIS_URL or None, prefix=prefix),
        limiter_key=f"endpoint:{endpoint.pk}",
    )


@transaction.atomic
def endpoint_update_costs(
    *,
    endpoint: Endpoint,
    price_in: object,
    price_out: object,
    price_hour: object,
    hosting_monthly: object,
    training_cost: object = None,
    price_train: object = None,
    user=None,
) -> Endpoint:
    """Set what an endpoint costs: per-token and compute prices, hosting, and (fine-tuned models)
    the one-time training cost (None: unknown, to be estimated). Decisions use them from then on."""
    endpoint.price_in = _decimal(price_in, "price_in")
    endpoint.price_out = _decimal(price_out, "price_out")
    endpoint.price_hour = _decimal(price_hour, "price_hour")
    endpoint.hosting_monthly = _decimal(hosting_monthly, "hosting_monthly")
    if price_train is not None:  # None keeps it (callers that predate the training price)
        endpoint.price_train = _decimal(price_train, "price_train")
    if endpoint.kind == EndpointKind.FINE_TUNED:
        endpoint.training_cost = _optional_decimal(training_cost, "training_cost")
    elif training_cost not in (None, ""):
        raise ValidationError({"training_cost": "only a fine-tuned endpoint has a training cost"})
    before = stored_snapshot(endpoint, AUDITED)
    endpoint.full_clean()
    fields = ["price_in", "price_out", "price_hour", "price_train", "hosting_monthly", "training_cost"]
    endpoint.save(update_fields=fields)
    audit_update(actor=user, action="endpoint.update", obj=endpoint, before=before, fields=AUDITED)
    return endpoint
