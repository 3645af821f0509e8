"""Formatting for numbers that span orders of magnitude (a request costs $0.00005, a month $5,000)."""

from __future__ import annotations

import math

from django import template
from django.utils.html import conditional_escape
from django.utils.safestring import mark_safe

register = template.Library()


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@register.filter
def usd(value) -> str:
    """'$1,234.50', '$0.50', '$0.0012', '$0.0000512'; an em dash for unknown."""
    number = _number(value)
    if number is None:
        return "—"
    sign = "-" if number < 0 else ""
    number = abs(number)
    if number == 0:
        return "$0"
    if number < 1e-7:
        return f"{sign}${number:.2e}"
    if number >= 0.01:
        return f"{sign}${number:,.2f}"
    digits = min(10, 2 - math.floor(math.log10(number)))  # three significant digits
    return f"{sign}${number:.{digits}f}".rstrip("0")


@register.filter
def num(value, digits: int = 3) -> str:
    number = _number(value)
    return "—" if number is None else f"{number:,.{int(digits)}f}"


@register.filter
def signed(value, digits: int = 3) -> str:
    number = _number(value)
    return "—" if number is None else f"{number:+,.{int(digits)}f}"


@register.filter
def pvalue(value) -> str:
    number = _number(value)
    if number is None:
        return "—"
    return "<0.0001" if number < 0.0001 else f"{number:.4f}"


@register.filter
def word_diff_html(pieces) -> str:
    """A word diff's (op, text) pieces as `<span class="d-OP">TEXT</span>`, both escaped: one filter
    call instead of a template loop over hundreds of pieces on a compare page."""
    return mark_safe(  # noqa: S308  (every piece is escaped here)
        "".join(
            f'<span class="d-{conditional_escape(op)}">{conditional_escape(text)}</span>'
            for op, text in pieces
        )
    )
