from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError

from evaluations.models import Endpoint, EndpointKind, Provider
from evaluations.services.endpoints import endpoint_create


class Command(BaseCommand):
    help = "Register a model endpoint (OpenAI-compatible server or the local model)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--provider", required=True, choices=Provider.values)
        parser.add_argument(
            "--model", required=True, help="model name; local: smollm2-135m-instruct or a folder"
        )
        parser.add_argument("--base-url", default="", help="e.g. http://localhost:11434/v1")
        parser.add_argument("--api-key-env", default="", help="NAME of the env variable holding the API key")
        parser.add_argument("--kind", choices=EndpointKind.values, default=EndpointKind.BASE)
        parser.add_argument("--base-endpoint", default=None, help="the base endpoint of a fine-tuned one")
        parser.add_argument("--price-in", default="0", help="USD per 1M input tokens")
        parser.add_argument("--price-out", default="0", help="USD per 1M output tokens")
        parser.add_argument("--price-hour", default="0", help="USD per compute hour (local models)")
        parser.add_argument(
            "--training-cost",
            default=None,
            help="one-time USD (fine-tuned); omit when unknown (then estimated)",
        )
        parser.add_argument(
            "--price-train", default="0", help="USD per 1M training tokens (hosted fine-tuning of this base)"
        )
        parser.add_argument("--hosting-monthly", default="0", help="USD a month to host it (self-hosted)")
        parser.add_argument("--max-concurrency", type=int, default=4)
        parser.add_argument("--timeout", type=int, default=60, help="seconds per request")
        parser.add_argument("--temperature", type=float, default=0.0)
        parser.add_argument("--max-tokens", type=int, default=256)

    def handle(self, *args, **opts):
        base = None
        if opts["base_endpoint"]:
            base = Endpoint.objects.filter(name=opts["base_endpoint"]).first()
            if base is None:
                raise CommandError(f"--base-endpoint {opts['base_endpoint']!r}: no such endpoint")
        try:
            endpoint = endpoint_create(
                name=opts["name"],
                provider=opts["provider"],
                model=opts["model"],
                base_url=opts["base_url"],
                api_key_env=opts["api_key_env"],
                kind=opts["kind"],
                base_endpoint=base,
                price_in=opts["price_in"],
                price_out=opts["price_out"],
                price_hour=opts["price_hour"],
                training_cost=opts["training_cost"],
                price_train=opts["price_train"],
                hosting_monthly=opts["hosting_monthly"],
                max_concurrency=opts["max_concurrency"],
                timeout_seconds=opts["timeout"],
                params={"temperature": opts["temperature"], "max_tokens": opts["max_tokens"]},
            )
        except ValidationError as exc:
            details = "; ".join(f"{f}: {' '.join(m)}" for f, m in exc.message_dict.items())
            raise CommandError(f"endpoint not added: {details}") from None
        except IntegrityError:
            raise CommandError(f"endpoint {opts['name']!r} exists already") from None
        self.stdout.write(f"added endpoint {endpoint.name} ({endpoint.provider}, {endpoint.model})")
