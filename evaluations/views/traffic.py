"""Captured traffic's pages (docs/traffic.md): the traffic page (charts per day, by endpoint and tag,
the filterable table, the form that samples calls into a suite), one call, and the capture tokens."""

from __future__ import annotations

from datetime import date, timedelta

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from evaluations import roles
from evaluations.access import role_required
from evaluations.forms import CaptureTokenForm, TrafficToSuiteForm
from evaluations.models import CaptureToken, TrafficKind
from evaluations.selectors import traffic as reads
from evaluations.services.capture_tokens import CaptureTokenError, capture_token_create, capture_token_revoke
from evaluations.services.traffic_suite import TrafficSuiteError, traffic_to_suite

PER_PAGE = 50
RANGES = (7, 30, 90)
FILTER_FIELDS = ("endpoint", "tag", "status", "kind", "date_from", "date_to")


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _filters(request: HttpRequest) -> tuple[reads.TrafficFilter, int, list[str]]:
    """The page's filters from the query string; a value that cannot be read is dropped, said so."""
    get = request.GET
    problems = []
    values: dict = {}
    for name in ("endpoint", "tag"):
        if get.get(name, "").strip():
            values[name] = get[name].strip()[:100]
    if get.get("status") in reads.STATUSES:
        values["status"] = get["status"]
    if get.get("kind") in TrafficKind.values:
        values["kind"] = get["kind"]
    for name in ("date_from", "date_to"):
        raw = get.get(name, "").strip()
        if raw and _day(raw) is None:
            problems.append(f"{name}: {raw[:20]!r} is not a date (YYYY-MM-DD); ignored")
        elif raw:
            values[name] = _day(raw)
    if values.get("date_from") and values.get("date_to") and values["date_from"] > values["date_to"]:
        problems.append("date_from: after date_to; the dates are ignored")
        values.pop("date_from"), values.pop("date_to")
    raw_days = get.get("days", "")
    days = (
        int(raw_days) if raw_days.isdigit() and 1 <= int(raw_days) <= reads.MAX_DAYS else reads.DEFAULT_DAYS
    )
    return reads.TrafficFilter(**values), days, problems


def _page(request: HttpRequest, form: TrafficToSuiteForm | None = None, status: int = 200) -> HttpResponse:
    filters, days, problems = _filters(request)
    summary = reads.traffic_summary(filters, days=days)
    page = Paginator(reads.traffic_calls(filters), PER_PAGE).get_page(request.GET.get("page"))
    kept = dict(filters.as_dict())
    if days != reads.DEFAULT_DAYS:
        kept["days"] = days
    if form is None and request.user.has_perm(roles.UPLOAD):
        initial = {
            k: v for k, v in filters.as_dict().items() if k in ("endpoint", "tag", "date_from", "date_to")
        }
        form = TrafficToSuiteForm(initial=initial)
    return render(
        request,
        "evaluations/traffic.html",
        {
            "summary": summary,
            "page": page,
            "filters": filters,
            "query": kept,
            "days": days,
            "ranges": RANGES,
            "problems": problems,
            "endpoint_names": reads.traffic_endpoint_names(),
            "kinds": TrafficKind.choices,
            "form": form,
        },
        status=status,
    )


@require_GET
@role_required(roles.READ)
def traffic_page(request: HttpRequest) -> HttpResponse:
    return _page(request)


@require_GET
@role_required(roles.READ)
def traffic_call_detail(request: HttpRequest, pk: int) -> HttpResponse:
    call = reads.traffic_call(pk)
    if call is None:
        raise Http404(f"no traffic call #{pk}")
    return render(
        request,
        "evaluations/traffic_call.html",
        {
            "call": call,
            "request_json": reads.pretty(call.request),
            "response_json": reads.pretty(call.response),
            "messages_in": reads.call_messages(call),
            "output": reads.call_output(call),
            "is_error": reads.is_error(call.status, call.error),
        },
    )


@require_POST
@role_required(roles.UPLOAD)
def traffic_to_suite_view(request: HttpRequest) -> HttpResponse:
    form = TrafficToSuiteForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        filters = reads.TrafficFilter(
            **{k: data[k] for k in ("endpoint", "tag", "date_from", "date_to") if data.get(k)}
        )
        try:
            outcome = traffic_to_suite(
                suite=data.get("suite"), suite_name=data.get("suite_name"), filters=filters,
                sample_size=data["sample_size"], seed=data["seed"], test_share=data["test_share"],
                user=request.user,
            )  # fmt: skip
        except TrafficSuiteError as exc:
            form.add_error(None, str(exc))
        else:
            run = f"; their captured answers are run #{outcome.run.pk}, to review" if outcome.run else ""
            messages.success(
                request,
                f"{outcome.sampled:,} case(s) from traffic ({outcome.train:,} train, {outcome.test:,} test; "
                f"{outcome.duplicates:,} duplicate(s) skipped) are version {outcome.version.number} of "
                f"{outcome.suite.name}{run}.",
            )
            if outcome.run is not None:
                return redirect("evaluations:run-detail", outcome.run.pk)
            return redirect("evaluations:suite-detail", outcome.suite.pk)
    return _page(request, form=form, status=400)


@never_cache
@role_required(roles.ENDPOINT_CONNECTION)
def capture_token_list(request: HttpRequest) -> HttpResponse:
    form = CaptureTokenForm(request.POST or None)
    created = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        days = data["expires_in_days"]
        try:
            row, token = capture_token_create(
                name=data["name"], endpoints=list(data["endpoints"]), rate_per_minute=data["rate_per_minute"],
                tags=data["tags"], expires_at=timezone.now() + timedelta(days=days) if days else None,
                user=request.user,
            )  # fmt: skip
        except CaptureTokenError as exc:
            form.add_error(None, str(exc))
        else:
            # Rendered (not redirected): the token must not pass through the session or a message.
            created = {"row": row, "token": token}
            form = CaptureTokenForm()
    return render(
        request,
        "evaluations/capture_tokens.html",
        {
            "tokens": reads.capture_tokens(),
            "form": form,
            "created": created,
            "now": timezone.now(),
            "proxy_base": request.build_absolute_uri(reverse("evaluations:home")).rstrip("/") + "/proxy",
        },
        status=400 if request.method == "POST" and created is None else 200,
    )


@require_POST
@role_required(roles.ENDPOINT_CONNECTION)
def capture_token_revoke_view(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(CaptureToken, pk=pk)
    capture_token_revoke(token=token, user=request.user)
    messages.success(
        request, f"Capture token {token.name} ({token.prefix}…) revoked: the proxy refuses it within seconds."
    )
    return redirect("evaluations:capture-token-list")
