"""Captured calls written straight to the database, as the proxy's spool drain would (no proxy)."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from django.utils import timezone

from evaluations.models import Endpoint, TrafficCall

_ids = itertools.count(1)


def chat_request(question: str, *, system: str | None = "You route support tickets.") -> dict:
    messages = [{"role": "system", "content": system}] if system else []
    return {"model": "fake-model", "messages": [*messages, {"role": "user", "content": question}]}


def chat_response(answer: str) -> dict:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}
        ],
    }


def call(
    endpoint: Endpoint | None = None,
    *,
    question: str = "where is my parcel?",
    answer: str = "shipping",
    started_at: datetime | None = None,
    days_ago: float = 0,
    status: int = 200,
    error: str = "",
    latency_ms: float | None = 100.0,
    prompt_tokens: int | None = 20,
    completion_tokens: int | None = 5,
    cost: float | None = 0.001,
    tags: list[str] | None = None,
    kind: str = "chat",
    system: str | None = "You route support tickets.",
    **fields,
) -> TrafficCall:
    n = next(_ids)
    when = started_at or timezone.now() - timedelta(days=days_ago)
    return TrafficCall.objects.create(
        call_id=fields.pop("call_id", f"call-{n:06d}"),
        endpoint=endpoint,
        endpoint_name=endpoint.name if endpoint is not None else fields.pop("endpoint_name", "gone"),
        kind=kind,
        model="fake-model",
        request=fields.pop("request", chat_request(question, system=system)),
        response=fields.pop(
            "response", chat_response(answer) if status < 400 else {"error": {"message": error}}
        ),
        status=status,
        error=error,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        latency_ms=latency_ms,
        cost=cost,
        tags=tags or [],
        started_at=when,
        **fields,
    )
