"""Reads of the audit log: a suite's history, the global log with its filters, and each event as a
compact row (when, who, action, object, before -> after)."""

from __future__ import annotations

import json

from django.db.models import QuerySet

from evaluations.models import AuditEvent

HISTORY_PER_PAGE = 20
AUDIT_PER_PAGE = 50
VALUE_CHARS = 120  # a value longer than this is cut in the compact rows
FILTER_WINDOW = 10_000  # the filters offer the actions and people of this many latest events


def suite_events(suite_id: int) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(suite_id=suite_id).order_by("-seq")


def audit_events(*, action: str = "", actor: str = "", suite_id: int | None = None) -> QuerySet[AuditEvent]:
    """Newest first. `action` matches exactly, or as a prefix when it ends with "." (e.g. "signoff.");
    `actor` is a username (or "system")."""
    qs = AuditEvent.objects.order_by("-seq")
    if action:
        qs = qs.filter(action__startswith=action) if action.endswith(".") else qs.filter(action=action)
    if actor:
        qs = qs.filter(actor_name=actor)
    if suite_id is not None:
        qs = qs.filter(suite_id=suite_id)
    return qs


def _recent_distinct(column: str, selected: str) -> list[str]:
    """The distinct values of `column` among the latest FILTER_WINDOW events (a bounded read through
    the seq index: the columns have no index of their own), plus the one selected."""
    recent = AuditEvent.objects.order_by("-seq").values("pk")[:FILTER_WINDOW]
    values = set(AuditEvent.objects.filter(pk__in=recent).values_list(column, flat=True).distinct())
    return sorted(values | ({selected} if selected else set()))


def audit_actions(*, selected: str = "") -> list[str]:
    """The actions recorded lately (and the `selected` one), for the filter's choices."""
    return _recent_distinct("action", selected)


def audit_actors(*, selected: str = "") -> list[str]:
    """Who made the latest changes (usernames, "system"), and the `selected` one."""
    return _recent_distinct("actor_name", selected)


def _short(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"


def event_changes(event: AuditEvent) -> list[dict]:
    """The event's fields as rows {field, before, after} (either may be absent: "")."""
    before = (
        event.before
        if isinstance(event.before, dict)
        else ({} if event.before is None else {"": event.before})
    )
    after = (
        event.after if isinstance(event.after, dict) else ({} if event.after is None else {"": event.after})
    )
    rows = []
    for key in dict.fromkeys([*before, *after]):
        rows.append(
            {
                "field": key,
                "before": _short(before[key]) if key in before else "",
                "after": _short(after[key]) if key in after else "",
                "has_before": key in before,
                "has_after": key in after,
            }
        )
    return rows


def audit_rows(events) -> list[dict]:
    return [{"event": e, "changes": event_changes(e)} for e in events]
