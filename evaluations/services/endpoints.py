"""Endpoint writes, and turning an Endpoint row into a Provider (the API key read from env here only)."""

from __future__ import annotations

import os
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from evaluations.models import Endpoint, EndpointKind, Provider
from evaluations.providers.base import ProviderError

# Environment variable names as people write them (OPENAI_API_KEY): upper case, short. Anything else
# (hf_..., gsk_..., sk-...) is more likely a pasted key, which must never be stored.
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,63}$")


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
    training_cost: object = None,
    hosting_monthly: object = 0,
    adapter: str = "",
    max_concurrency: int = 4,
    timeout_seconds: int = 60,
    params: dict | None = None,
) -> Endpoint:
    if api_key_env and not ENV_NAME.match(api_key_env):
        raise ValidationError(
            {
                "api_key_env": "give the NAME of an environment variable (e.g. OPENAI_API_KEY), "
                "never the key itself"
            }
        )
    if provider == Provider.OPENAI and not model:
        raise ValidationError({"model": "an OpenAI-compatible endpoint needs a model name"})
    if kind == EndpointKind.BASE and base_endpoint is not None:
        raise ValidationError({"base_endpoint": "only a fine-tuned endpoint has a base endpoint"})
    if adapter and (provider != Provider.LOCAL or kind != EndpointKind.FINE_TUNED):
        raise ValidationError({"adapter": "only a local fine-tuned endpoint loads a LoRA adapter"})
    if adapter:
        adapter_path(adapter)  # inside the media directory's adapters/, or refused
    training = _optional_decimal(training_cost, "training_cost")
    if kind == EndpointKind.BASE and training:
        raise ValidationError({"training_cost": "only a fine-tuned endpoint has a training cost"})
    endpoint = Endpoint(
        name=name.strip(),
        provider=provider,
        model=model.strip(),
        base_url=base_url.strip(),
        api_key_env=api_key_env.strip(),
        kind=kind,
        base_endpoint=base_endpoint,
        price_in=_decimal(price_in, "price_in"),
        price_out=_decimal(price_out, "price_out"),
        price_hour=_decimal(price_hour, "price_hour"),
        training_cost=training if kind == EndpointKind.FINE_TUNED else None,
        hosting_monthly=_decimal(hosting_monthly, "hosting_monthly"),
        adapter=adapter,
        max_concurrency=max_concurrency,
        timeout_seconds=timeout_seconds,
        params=params or {},
    )
    endpoint.full_clean()
    endpoint.save()
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
) -> Endpoint:
    """Set what an endpoint costs: per-token and compute prices, hosting, and (fine-tuned models)
    the one-time training cost (None: unknown, to be estimated). Decisions use them from then on."""
    endpoint.price_in = _decimal(price_in, "price_in")
    endpoint.price_out = _decimal(price_out, "price_out")
    endpoint.price_hour = _decimal(price_hour, "price_hour")
    endpoint.hosting_monthly = _decimal(hosting_monthly, "hosting_monthly")
    if endpoint.kind == EndpointKind.FINE_TUNED:
        endpoint.training_cost = _optional_decimal(training_cost, "training_cost")
    elif training_cost not in (None, ""):
        raise ValidationError({"training_cost": "only a fine-tuned endpoint has a training cost"})
    endpoint.full_clean()
    endpoint.save(update_fields=["price_in", "price_out", "price_hour", "hosting_monthly", "training_cost"])
    return endpoint
