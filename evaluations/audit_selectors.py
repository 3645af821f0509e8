"""Reads of the audit log: a suite's history, the global log with its filters, and each event as a
compact row (when, who, action, object, before -> after)."""

from __future__ import annotations

import json

from django.db.models import QuerySet

from evaluations.models import AuditEvent

HISTORY_PER_PAGE = 20
AUDIT_PER_PAGE = 50
VALUE_CHARS = 120  # a value longer than this is cut in the compact rows


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


def audit_actions() -> list[str]:
    """Every action recorded so far, for the filter's choices."""
    return list(AuditEvent.objects.order_by("action").values_list("action", flat=True).distinct())


def audit_actors() -> list[str]:
    return list(AuditEvent.objects.order_by("actor_name").values_list("actor_name", flat=True).distinct())


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
