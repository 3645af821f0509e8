"""The secrets ftvp is configured with, and the redactor that keeps them out of what it stores.

ftvp stores only the NAMES of the variables that hold secrets; their values live in the processes'
environment. A remote answer can still carry one back (a gateway that echoes the request's
Authorization header in its answer, an error page that quotes the key, a webhook that repeats its
URL), so every text saved from a model, the judge or an alert receiver goes through `redactor()`
first: runs (outputs, extracted answers, errors, the completion cache), the judge's verdicts and
alert deliveries' errors. `evaluations.redaction` says which forms of a secret are masked, and why
values shorter than MIN_SECRET_LENGTH (or the placeholder key "not-needed") are not.

The secrets: the value of every variable a row names in a field ending in `_env` (an endpoint's
`api_key_env`, an alert channel's `url_env`: the whole URL, and its path, query and password),
the judge's (FTVP_JUDGE_* settings or variables named like a secret, and those ending in _ENV name
the variable that holds one), and ftvp's own (SECRET_KEY, EMAIL_HOST_PASSWORD, the database's and
broker's passwords).
"""

from __future__ import annotations

import contextlib
import os
from urllib.parse import unquote, urlsplit

from django.conf import settings

from evaluations.models import AlertChannel, Endpoint
from evaluations.redaction import Redactor, remember
from evaluations.services.audit import secret_name

# The models whose rows name environment variables holding secrets, in fields ending in "_env".
_NAMING_MODELS = (Endpoint, AlertChannel)
JUDGE_PREFIX = "FTVP_JUDGE_"


def _env_names() -> set[str]:
    names: set[str] = set()
    for model in _NAMING_MODELS:
        fields = [f.attname for f in model._meta.concrete_fields if f.name.endswith("_env")]
        for row in model.objects.values_list(*fields).distinct():
            names.update(name.strip() for name in row if name and name.strip())
    return names


def _judge_secrets() -> list[str]:
    """FTVP_JUDGE_* settings and variables: a value named like a secret (FTVP_JUDGE_API_KEY), or the
    value of the variable one names (FTVP_JUDGE_API_KEY_ENV)."""
    found = []
    configured = {n: getattr(settings, n) for n in dir(settings) if n.startswith(JUDGE_PREFIX)}
    configured.update({n: v for n, v in os.environ.items() if n.startswith(JUDGE_PREFIX)})
    for name, value in configured.items():
        if not isinstance(value, str) or not value.strip():
            continue
        if name.endswith("_ENV"):
            found.append(os.environ.get(value.strip(), ""))
        elif secret_name(name):
            found.append(value)
    return found


def _url_secrets(value: str) -> list[str]:
    """A URL-valued secret (a webhook URL) and the parts of it that are secret on their own."""
    if "://" not in value:
        return []
    try:
        parts = urlsplit(value)
        password = parts.password or ""
    except ValueError:
        return []
    return [value.rstrip("/"), parts.path, unquote(parts.path), parts.query, password, unquote(password)]


def _own_secrets() -> list[str]:
    found = [settings.SECRET_KEY, getattr(settings, "EMAIL_HOST_PASSWORD", "")]
    found += [db.get("PASSWORD") or "" for db in settings.DATABASES.values()]
    for url in (getattr(settings, "REDIS_URL", ""), getattr(settings, "CELERY_BROKER_URL", "")):
        with contextlib.suppress(ValueError):  # not a URL: nothing of it to mask
            found.append(urlsplit(url or "").password or "")
    return found


def configured_secrets() -> list[str]:
    """Every secret value ftvp is configured with, read now (one query per model naming variables)."""
    values = [os.environ.get(name, "") for name in sorted(_env_names())]
    values += _judge_secrets()
    found: list[str] = []
    for value in values:
        value = value or ""
        for secret in (value, value.strip()):  # as set, and as sent (a key read from a file ends with \n)
            found.append(secret)
            found.extend(_url_secrets(secret))
    found += _own_secrets()
    return [s for s in dict.fromkeys(found) if isinstance(s, str) and s]


def redactor() -> Redactor:
    """A Redactor for the configured secrets, as they are now; the log filter masks them from now on."""
    masker = Redactor(configured_secrets())
    remember(masker)
    return masker


def redact_stored(text: str) -> str:
    """`text` without any configured secret: for a text written once (a run's error)."""
    return redactor()(text)
