"""Cost of a call: measured tokens x per-1M prices, or compute seconds x hourly price."""

from __future__ import annotations


def token_cost(
    prompt_tokens: int | None, completion_tokens: int | None, price_in: float, price_out: float
) -> float:
    return ((prompt_tokens or 0) * price_in + (completion_tokens or 0) * price_out) / 1_000_000


def compute_cost(seconds: float, price_hour: float) -> float:
    return seconds * price_hour / 3600.0
