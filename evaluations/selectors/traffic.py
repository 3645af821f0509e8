"""Reads of captured traffic (docs/traffic.md): the calls the capture proxy recorded, filtered and
paginated; their figures per day, per endpoint and per tag over a window; one call; the capture
tokens with their scope.

A call is an error when its HTTP status is 400 or more or it carries an error text; latency and
tokens are figures of the calls that succeeded (an error's latency says little about the model).
Days are calendar days in the project's time zone (FTVP_TIME_ZONE), the window ending today.
The page, `GET /api/v1/traffic/summary/` and `manage.py traffic --json` all return `traffic_summary`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta

from django.db import connection
from django.db.models import Count, Prefetch, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from evaluations.analysis.stats import percentile
from evaluations.models import CaptureToken, Endpoint, TrafficCall, TrafficKind

DEFAULT_DAYS = 30
MAX_DAYS = 366
STATUSES = ("ok", "error")
ERROR_Q = Q(status__gte=400) | ~Q(error="")
TOP_SERIES = 8  # endpoints or tags charted one line each; the others are summed as "other"


class TrafficFilterError(ValueError):
    """A filter cannot be read; the message names it."""


@dataclass(frozen=True)
class TrafficFilter:
    endpoint: str | None = None  # the endpoint's name as called
    tag: str | None = None
    status: str | None = None  # "ok" | "error"
    kind: str | None = None  # "chat" | "embeddings"
    date_from: date | None = None  # inclusive, local calendar days
    date_to: date | None = None  # inclusive

    def __post_init__(self) -> None:
        if self.status not in (None, *STATUSES):
            raise TrafficFilterError(f"status: {self.status!r}; use ok or error")
        if self.kind not in (None, *TrafficKind.values):
            raise TrafficFilterError(f"kind: {self.kind!r}; use {' or '.join(TrafficKind.values)}")
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise TrafficFilterError("date_from: after date_to")

    def as_dict(self) -> dict:
        return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in asdict(self).items() if v}


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())


def _with_tag(queryset: QuerySet, tag: str) -> QuerySet:
    """Calls whose tags list holds `tag` exactly (SQLite has no JSON containment: json_each)."""
    if connection.features.supports_json_field_contains:
        return queryset.filter(tags__contains=[tag])
    table = TrafficCall._meta.db_table  # the model's own table name, not user input
    ids = RawSQL(f"SELECT t.id FROM {table} t, json_each(t.tags) j WHERE j.value = %s", [tag])  # noqa: S608, S611
    return queryset.filter(id__in=ids)


def traffic_calls(filters: TrafficFilter | None = None) -> QuerySet:
    """The calls matching `filters`, newest first (request and response not loaded: the table's)."""
    f = filters or TrafficFilter()
    qs = TrafficCall.objects.defer("request", "response")
    if f.endpoint:
        qs = qs.filter(endpoint_name=f.endpoint)
    if f.tag:
        qs = _with_tag(qs, f.tag)
    if f.status == "error":
        qs = qs.filter(ERROR_Q)
    elif f.status == "ok":
        qs = qs.exclude(ERROR_Q)
    if f.kind:
        qs = qs.filter(kind=f.kind)
    if f.date_from:
        qs = qs.filter(started_at__gte=_day_start(f.date_from))
    if f.date_to:
        qs = qs.filter(started_at__lt=_day_start(f.date_to + timedelta(days=1)))
    return qs.order_by("-started_at", "-id")


def is_error(status: int, error: str) -> bool:
    return status >= 400 or bool(error)


class _Figures:
    """Running figures of a group of calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.errors = 0
        self.cost = 0.0
        self.latencies: list[float] = []
        self.prompt: list[int] = []
        self.completion: list[int] = []

    def add(self, status, error, latency, prompt, completion, cost) -> None:
        self.calls += 1
        self.cost += cost or 0.0
        if is_error(status, error):
            self.errors += 1
            return
        if latency is not None:
            self.latencies.append(latency)
        if prompt is not None:
            self.prompt.append(prompt)
            self.completion.append(completion or 0)

    def as_dict(self) -> dict:
        def mean(values) -> float | None:
            return round(sum(values) / len(values), 2) if values else None

        def pct(q) -> float | None:
            value = percentile(self.latencies, q)
            return None if value is None else round(value, 2)

        totals = [p + c for p, c in zip(self.prompt, self.completion, strict=True)]
        return {
            "calls": self.calls,
            "errors": self.errors,
            "error_rate": round(self.errors / self.calls, 4) if self.calls else None,
            "cost": round(self.cost, 8),
            "latency_p50": pct(50),
            "latency_p95": pct(95),
            "tokens_per_request": mean(totals),
            "prompt_tokens_per_request": mean(self.prompt),
            "completion_tokens_per_request": mean(self.completion),
        }


def _series(by_day: dict[str, dict[date, int]], days: list[date]) -> list[dict]:
    """Calls per day of the busiest groups, one list each; the rest summed as "other"."""
    ranked = sorted(by_day, key=lambda name: (-sum(by_day[name].values()), name))
    shown, rest = ranked[:TOP_SERIES], ranked[TOP_SERIES:]
    series = [{"name": name, "calls": [by_day[name].get(d, 0) for d in days]} for name in shown]
    if rest:
        series.append({"name": "other", "calls": [sum(by_day[n].get(d, 0) for n in rest) for d in days]})
    return series


def traffic_summary(filters: TrafficFilter | None = None, *, days: int = DEFAULT_DAYS, now=None) -> dict:
    """The window's figures: totals, one row per day (every day, zeros included), per endpoint and
    per tag (a call with several tags counts under each; "(none)" for a call without), and the
    calls per day of the busiest endpoints and tags, for the charts."""
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise TrafficFilterError(f"days: a whole number from 1 to {MAX_DAYS}")
    f = filters or TrafficFilter()
    today = timezone.localdate(now or timezone.now())
    first = today - timedelta(days=days - 1)
    window_days = [first + timedelta(days=i) for i in range(days)]
    rows = traffic_calls(f).filter(
        started_at__gte=_day_start(first), started_at__lt=_day_start(today + timedelta(days=1))
    )
    fields = ("started_at", "endpoint_name", "tags", "status", "error", "latency_ms", "prompt_tokens",
              "completion_tokens", "cost")  # fmt: skip
    total = _Figures()
    per_day: dict[date, _Figures] = defaultdict(_Figures)
    per_endpoint: dict[str, _Figures] = defaultdict(_Figures)
    per_tag: dict[str, _Figures] = defaultdict(_Figures)
    endpoint_days: dict[str, dict[date, int]] = defaultdict(lambda: defaultdict(int))
    tag_days: dict[str, dict[date, int]] = defaultdict(lambda: defaultdict(int))
    for started, endpoint, tags, *figures in rows.order_by().values_list(*fields).iterator(chunk_size=5000):
        day = timezone.localtime(started).date()
        endpoint = endpoint or "(unknown)"
        total.add(*figures)
        per_day[day].add(*figures)
        per_endpoint[endpoint].add(*figures)
        endpoint_days[endpoint][day] += 1
        names = [str(t) for t in tags] if isinstance(tags, list) and tags else ["(none)"]
        for tag in dict.fromkeys(names):
            per_tag[tag].add(*figures)
            tag_days[tag][day] += 1

    def groups(table: dict[str, _Figures]) -> list[dict]:
        ranked = sorted(table.items(), key=lambda kv: (-kv[1].calls, kv[0]))
        return [{"name": name, **fig.as_dict()} for name, fig in ranked]

    return {
        "window": {"days": days, "since": first.isoformat(), "until": today.isoformat()},
        "filters": f.as_dict(),
        "totals": total.as_dict(),
        "days": [{"date": d.isoformat(), **per_day[d].as_dict()} for d in window_days],
        "by_endpoint": groups(per_endpoint),
        "by_tag": groups(per_tag),
        "series": {
            "endpoint": _series(endpoint_days, window_days),
            "tag": _series(tag_days, window_days),
        },
    }


def traffic_call(pk: int) -> TrafficCall | None:
    return TrafficCall.objects.select_related("endpoint", "token").filter(pk=pk).first()


def call_messages(call: TrafficCall) -> list[dict] | None:
    """A chat call's messages as sent (the system message included), or None."""
    messages = call.request.get("messages") if isinstance(call.request, dict) else None
    if not isinstance(messages, list) or not messages:
        return None
    if not all(isinstance(m, dict) and "role" in m for m in messages):
        return None
    return messages


def call_output(call: TrafficCall) -> str | None:
    """The answer of a chat call: the first choice's message content (a stream: as assembled)."""
    response = call.response if isinstance(call.response, dict) else {}
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    choice = choices[0]
    message = choice.get("message") or choice.get("delta") or {}
    content = message.get("content") if isinstance(message, dict) else None
    if content is None and isinstance(choice.get("text"), str):
        content = choice["text"]
    if isinstance(content, list):  # content parts
        content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else None


def pretty(value: object) -> str:
    """A request or response as indented JSON, for the detail page (escaped by the template)."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def traffic_endpoint_names() -> list[str]:
    """The endpoint names seen in traffic and the registered ones, for the filters' choices."""
    seen = set(TrafficCall.objects.order_by().values_list("endpoint_name", flat=True).distinct())
    seen |= set(Endpoint.objects.values_list("name", flat=True))
    return sorted(n for n in seen if n)


def capture_tokens() -> QuerySet:
    """Every capture token, newest first, with its endpoints and its number of recorded calls."""
    return (
        CaptureToken.objects.select_related("created_by")
        .prefetch_related(Prefetch("endpoints", queryset=Endpoint.objects.order_by("name")))
        .annotate(call_count=Count("calls"))
        .order_by("-created_at", "-id")
    )
