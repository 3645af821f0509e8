"""Shadow evaluation pages: the shadows with their agreement, a form to start one, and one shadow's
agreement, cost and latency against the live calls over time (docs/capture.md)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST, require_safe

from evaluations import roles
from evaluations.access import role_required
from evaluations.forms import ShadowForm
from evaluations.selectors.shadow import live_answer, shadow_configs, shadow_pairs, shadow_summary
from evaluations.services.shadow import ShadowError, shadow_config_create, shadow_config_set_enabled
from evaluations.views.pages import _page


@role_required(roles.READ, post=roles.RUN)
def shadow_list(request: HttpRequest) -> HttpResponse:
    form = ShadowForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            config = shadow_config_create(**form.cleaned_data, user=request.user)
        except ShadowError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(
                request, f"Shadow {config.name!r} started: new live calls are mirrored from now on."
            )
            return redirect("evaluations:shadow-detail", pk=config.pk)
    rows = [(c, shadow_summary(c)) for c in shadow_configs()[:100]]
    return render(
        request,
        "evaluations/shadow_list.html",
        {"form": form, "rows": rows},
        status=400 if request.method == "POST" else 200,
    )


@role_required(roles.READ)
@require_safe
def shadow_detail(request: HttpRequest, pk: int) -> HttpResponse:
    config = get_object_or_404(shadow_configs(), pk=pk)
    summary = shadow_summary(config)
    chart = {
        "days": [d["day"] for d in summary["daily"]],
        "agreement": [d["agreement_rate"] for d in summary["daily"]],
        "candidate_cost": [d["candidate_cost_per_request"] for d in summary["daily"]],
        "live_cost": [d["live_cost_per_request"] for d in summary["daily"]],
        "candidate_latency": [d["candidate_latency_p50_ms"] for d in summary["daily"]],
        "live_latency": [d["live_latency_p50_ms"] for d in summary["daily"]],
    }
    page = _page(request, shadow_pairs(config), 50)
    pairs = [(pair, live_answer(pair.call.response)) for pair in page.object_list]
    return render(
        request,
        "evaluations/shadow_detail.html",
        {"config": config, "summary": summary, "chart": chart, "page": page, "pairs": pairs},
    )


@role_required(roles.RUN)
@require_POST
def shadow_enable(request: HttpRequest, pk: int) -> HttpResponse:
    config = get_object_or_404(shadow_configs(), pk=pk)
    enabled = request.POST.get("enabled") == "1"
    shadow_config_set_enabled(config=config, enabled=enabled, user=request.user)
    messages.info(request, f"Shadow {config.name!r} {'resumed' if enabled else 'paused'}.")
    return redirect("evaluations:shadow-detail", pk=config.pk)
